package actors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Semaphores: "at most N at once" (Consul's semaphore, Curator's
// InterProcessSemaphoreV2). A semaphore is one actor (KindSemaphore, one
// namespace for every user, like locks) that owns its slots: every acquire
// takes a new slot (a lease, the semaphore's next fencing token) while fewer
// than limit are held, unless it repeats a holder_id the caller already
// holds (then it is that slot: "held", a safe retry). The actor serialises
// every grant, and a grant is answered only after its write commits, so
// never more than limit slots are held, under any interleaving, and the
// fencing tokens of one semaphore strictly increase across restarts (the
// semaphore's row keeps the last one). Slots expire like locks (TTL) or live
// as long as their session; waiting acquires queue in FIFO order as for
// locks. There is no lock-delay for semaphores.

// SemaphoreSlot is one held slot of a semaphore.
type SemaphoreSlot struct {
	Holder   string // the user
	HolderID string // names the process within the user ("" none)
	LeaseID  string
	// Token is the fencing token of the grant (per semaphore, strictly
	// increasing over grants).
	Token     uint64
	SessionID string // held under this session ("" for a TTL)
	ExpiresAt time.Time
	// AcquiredAt is when the slot was granted.
	AcquiredAt time.Time
	// Metadata is the holder's description of the slot (shown to every
	// user; never a secret).
	Metadata string
}

// SemaphoreRecord is the durable state of a semaphore: its limit (the one
// its holders use; the next acquire sets it when none is held), the last
// fencing token handed out, and the held slots by token.
type SemaphoreRecord struct {
	Name  string
	Limit int
	Token uint64
	Slots []SemaphoreSlot
}

// SemaphoreStore reads the durable semaphores. Package persistence
// implements it.
type SemaphoreStore interface {
	// LoadSemaphore loads a semaphore and its slots; ok is false when it
	// was never written.
	LoadSemaphore(name string) (SemaphoreRecord, bool, error)
	// HeldSemaphores calls fn for every semaphore with at least one slot
	// stored (recovery at start: expired slots included).
	HeldSemaphores(fn func(SemaphoreRecord)) error
}

// PutSemaphore writes a semaphore's head (limit, last token) and the
// changes to its slots: Put are written (new or renewed), Remove (lease ids)
// deleted. One mutation per step of the semaphore's actor.
type PutSemaphore struct {
	Name   string
	Limit  int
	Token  uint64
	Put    []SemaphoreSlot
	Remove []string
}

// Table implements Mutation.
func (PutSemaphore) Table() string { return "semaphores" }

// ApplyTo implements Mutation.
func (m PutSemaphore) ApplyTo(w MutationWriter) error { return w.PutSemaphore(m) }

// SemaphoreConfig configures semaphores.
type SemaphoreConfig struct {
	Store SemaphoreStore
	// MaxPerUser caps the slots one user holds at once over all semaphores
	// (0: DefaultMaxLocksPerUser; negative: no cap).
	MaxPerUser int
	// MaxWaiters caps the waiting acquires queued on one semaphore (0:
	// DefaultMaxWaitersPerLock; negative: no cap).
	MaxWaiters int
	// Sessions, when set, lets slots be held under a session.
	Sessions *Sessions
}

// Semaphores is the entry point for semaphores: typed calls to the
// semaphore's actor.
type Semaphores struct {
	sys        *System
	store      SemaphoreStore
	max        int
	maxWaiters int
	holdings   *Holdings // per-user slots (quota, listings), keyed SlotKey(name, lease)
	sessions   *sessionIndex
}

// NewSemaphores registers the semaphore kind with sys (after NewSessions).
func NewSemaphores(sys *System, cfg SemaphoreConfig) *Semaphores {
	if cfg.MaxPerUser == 0 {
		cfg.MaxPerUser = DefaultMaxLocksPerUser
	}
	if cfg.MaxWaiters == 0 {
		cfg.MaxWaiters = DefaultMaxWaitersPerLock
	}
	s := &Semaphores{sys: sys, store: cfg.Store, max: cfg.MaxPerUser, maxWaiters: cfg.MaxWaiters, holdings: NewHoldings()}
	if cfg.Sessions != nil {
		s.sessions = cfg.Sessions.idx
	}
	sys.Register(KindSpec{
		Kind:    KindSemaphore,
		New:     func(k Key) Behavior { return &semaphoreBehavior{name: k.Name, s: s} },
		Recover: s.recover,
	})
	return s
}

func semaphoreKey(name string) Key { return Key{Kind: KindSemaphore, Name: name} }

// recover rebuilds the per-user slot counts and the session holds, and
// gives every semaphore with a slot a timer (its actor arms its own for the
// slots' expiry on activation; slots that ran out while no server ran end
// now).
func (s *Semaphores) recover(now time.Time) (int, error) {
	n := 0
	err := s.store.HeldSemaphores(func(r SemaphoreRecord) {
		n++
		for _, sl := range r.Slots {
			if sl.SessionID != "" && s.sessions != nil {
				s.sessions.addHold(sl.SessionID, semaphoreKey(r.Name))
			}
			s.holdings.Put(slotHolding(r.Name, r.Limit, sl))
		}
		s.sys.AfterFunc(semaphoreKey(r.Name), 0, &expireSemaphore{})
	})
	if err != nil {
		return 0, fmt.Errorf("recover semaphores: %w", err)
	}
	return n, nil
}

// slotHolding is a slot of the semaphore name whose limit is limit as the
// per-user slot index keeps it: named SlotKey(name, lease), so that a
// holder's slots are ordered by semaphore, then lease. A slot held under a
// session counts as held while it is in the index (quota; holding.heldAt)
// and is listed with its session's expiry while the session lives
// (sessionIndex.listView).
func slotHolding(name string, limit int, sl SemaphoreSlot) LockRecord {
	return LockRecord{Name: SlotKey(name, sl.LeaseID), Holder: sl.Holder, HolderID: sl.HolderID, LeaseID: sl.LeaseID,
		Token: sl.Token, SessionID: sl.SessionID, ExpiresAt: sl.ExpiresAt, AcquiredAt: sl.AcquiredAt,
		Metadata: sl.Metadata, SlotLimit: limit}
}

// SlotKey is the position of the slot lease of the semaphore name in the
// slot listings' order (PageQuery.AfterName of ListPage and ListAllPage):
// by semaphore name, then lease id. NUL sorts before every byte a name may
// have, so "a"'s slots come before "a-b"'s.
func SlotKey(name, lease string) string { return name + "\x00" + lease }

// HeldSlot is one held slot as the slot listings show it.
type HeldSlot struct {
	Name string // the semaphore's
	// Limit is the semaphore's limit, as the slot index recorded it at the
	// slot's grant or last renewal (the same for every slot held at once).
	Limit int
	SemaphoreSlot
}

// ListPage is one page of holder's slots held now, by semaphore name then
// lease id after q.AfterName (a SlotKey), with the count of them all: from
// the per-user slot index (no actor is called, no other user's slots are
// read). A slot under a session shows its session's expiry, and is not
// listed once the session has ended.
func (s *Semaphores) ListPage(holder string, q PageQuery) Page[HeldSlot] {
	return heldSlots(s.holdings.Page(holder, s.sys.Now(), q, s.sessions.listView))
}

// ListAllPage is ListPage over every user's slots (the admin view).
func (s *Semaphores) ListAllPage(q PageQuery) Page[HeldSlot] {
	return heldSlots(s.holdings.AllPage(s.sys.Now(), q, s.sessions.listView))
}

func heldSlots(pg Page[LockRecord]) Page[HeldSlot] {
	out := Page[HeldSlot]{Items: make([]HeldSlot, len(pg.Items)), Total: pg.Total, More: pg.More}
	for i, r := range pg.Items {
		name, _, _ := strings.Cut(r.Name, "\x00")
		out.Items[i] = HeldSlot{Name: name, Limit: r.SlotLimit, SemaphoreSlot: SemaphoreSlot{Holder: r.Holder,
			HolderID: r.HolderID, LeaseID: r.LeaseID, Token: r.Token, SessionID: r.SessionID, ExpiresAt: r.ExpiresAt,
			AcquiredAt: r.AcquiredAt, Metadata: r.Metadata}}
	}
	return out
}

// SemaphoreRequest is one acquire of a semaphore.
type SemaphoreRequest struct {
	Caller   string
	HolderID string // "" or a names.HolderID: repeating a held one is that slot
	Limit    int    // 1..10000; must be the current holders' limit
	TTL      time.Duration
	// Wait, when positive, waits in the semaphore's FIFO queue while it is
	// full (as LockRequest.Wait).
	Wait time.Duration
	// SessionID holds the slot under the caller's session instead of for
	// TTL.
	SessionID string
	// Metadata, when set, is the slot's metadata (a repeated holder id's
	// new one); nil keeps it (a new slot: none).
	Metadata *string
}

// SemaphoreGrant answers Acquire and Renew.
type SemaphoreGrant struct {
	Slot SemaphoreSlot
	// New is true for a new slot, false for a slot the caller already
	// held (a repeated holder id, or a renew).
	New bool
	// Limit and Holders are the semaphore's after the operation.
	Limit, Holders int
}

// SemaphoreState answers Status: the held slots by token.
type SemaphoreState struct {
	Name    string
	Limit   int
	Token   uint64 // the last fencing token handed out
	Slots   []SemaphoreSlot
	Waiters int
	At      time.Time
}

// Sentinel errors of semaphores.
var (
	// ErrSemaphoreNotOwned answers renew/release of a lease that is not
	// the caller's, or is gone (404).
	ErrSemaphoreNotOwned = caseOf(ErrNotFound, "Semaphore lease not found or not owned by caller")
	// ErrSemaphoreLimit refuses an acquire whose limit differs from the
	// one the current holders use (422, as Consul does).
	ErrSemaphoreLimit = NewError(CodeInvalid, "limit differs from the limit the semaphore's holders use")
	// ErrSemaphoreSession refuses a renew of a slot held under a session.
	ErrSemaphoreSession = NewError(CodeInvalid, "this slot is held by a session: keep the session alive instead of renewing it")
	// ErrTooManySemaphoreWaiters is ErrTooManyWaiters for a semaphore.
	ErrTooManySemaphoreWaiters = NewError(CodeTooManyRequests, "too many waiters on this semaphore")
	errSemaphoreFull           = NewError(CodeConflict, "Semaphore full")
)

// SemaphoreFullError answers an acquire of a semaphore whose limit is
// reached (409 with its limit and holders).
type SemaphoreFullError struct {
	Name           string
	Limit, Holders int
}

func (e *SemaphoreFullError) Error() string {
	return fmt.Sprintf("semaphore %q full: %d of %d held", e.Name, e.Holders, e.Limit)
}

// Is makes every *SemaphoreFullError a case of the conflict code.
func (e *SemaphoreFullError) Is(target error) bool { return target == errSemaphoreFull }

// Acquire takes a slot of the semaphore name for r.Caller (see
// SemaphoreRequest). Errors: *SemaphoreFullError (conflict) when limit
// slots are held (after r.Wait, if set); ErrSemaphoreLimit;
// ErrSessionNotFound; ErrQuota; ErrTooManySemaphoreWaiters; the store's
// and ctx's errors (as Locks.AcquireWith).
func (s *Semaphores) Acquire(ctx context.Context, name string, r SemaphoreRequest) (SemaphoreGrant, error) {
	op := &acquireSemaphore{req: r}
	err := s.sys.call(ctx, semaphoreKey(name), op)
	if err != nil && r.Wait > 0 && ctx.Err() != nil {
		s.sys.send(semaphoreKey(name), &abandonSemaphoreWait{op: op})
	}
	return answer(err, &op.grant)
}

// Renew sets the expiry of caller's slot lease to now+ttl.
// ErrSemaphoreNotOwned when it is not caller's held slot;
// ErrSemaphoreSession for a slot held under a session.
func (s *Semaphores) Renew(ctx context.Context, name, caller, leaseID string, ttl time.Duration) (SemaphoreGrant, error) {
	op := &renewSemaphore{caller: caller, leaseID: leaseID, ttl: ttl}
	return answer(s.sys.call(ctx, semaphoreKey(name), op), &op.grant)
}

// Release frees caller's slot lease (admin: anyone's).
// ErrSemaphoreNotOwned otherwise.
func (s *Semaphores) Release(ctx context.Context, name, caller, leaseID string, admin bool) error {
	return s.sys.call(ctx, semaphoreKey(name), &releaseSemaphore{caller: caller, leaseID: leaseID, admin: admin})
}

// Status reads the semaphore from its actor.
func (s *Semaphores) Status(ctx context.Context, name string) (SemaphoreState, error) {
	op := &semaphoreStatus{}
	return answer(s.sys.call(ctx, semaphoreKey(name), op), &op.state)
}

// Fence checks that token is the fencing token of a slot of the semaphore
// held now (*StaleTokenError with the last token granted otherwise);
// linearizable with grants, as Locks.Fence.
func (s *Semaphores) Fence(ctx context.Context, name string, token uint64) (FenceResult, error) {
	op := &fenceSemaphore{token: token}
	return answer(s.sys.call(ctx, semaphoreKey(name), op), &op.res)
}

// Held is the number of slots in the per-user index (the held-slots
// gauge).
func (s *Semaphores) Held() int { return s.holdings.Total() }

// Semaphore operations.
type (
	acquireSemaphore struct {
		req   SemaphoreRequest
		grant SemaphoreGrant
	}
	renewSemaphore struct {
		caller, leaseID string
		ttl             time.Duration
		grant           SemaphoreGrant
	}
	releaseSemaphore struct {
		caller, leaseID string
		admin           bool
	}
	semaphoreStatus struct{ state SemaphoreState }
	fenceSemaphore  struct {
		token uint64
		res   FenceResult
	}
	expireSemaphore      struct{} // the expiry timer (and the wait deadlines)
	abandonSemaphoreWait struct{ op *acquireSemaphore }
)

// Semaphore event types.
const (
	EventSemaphoreAcquired = "semaphore.acquired"
	EventSemaphoreRenewed  = "semaphore.renewed"
	EventSemaphoreReleased = "semaphore.released"
	EventSemaphoreExpired  = "semaphore.expired"
)

// --- the actor ---

type semaphoreBehavior struct {
	name      string
	s         *Semaphores
	rec       SemaphoreRecord
	timer     Timer // the earliest slot expiry or waiter deadline
	activated bool

	// closed marks slots whose session was closed (refresh): their end is
	// a release, not an expiry.
	closed map[string]bool
	queue  []*semWaiter
	// grantOps: the waiting acquires the current slots were granted to
	// (abandonSemaphoreWait releases a slot only for the op it went to).
	grantOps map[string]*acquireSemaphore
}

type semWaiter struct {
	op       *acquireSemaphore
	p        Parked
	deadline time.Time
}

func (b *semaphoreBehavior) Activate(h *Host) error {
	r, _, err := b.s.store.LoadSemaphore(b.name)
	if err != nil {
		return err
	}
	r.Name = b.name
	b.rec, b.grantOps = r, map[string]*acquireSemaphore{}
	now := h.Now()
	b.refresh(now)
	if b.activated && len(b.queue) > 0 {
		h.sys.send(h.key, &expireSemaphore{}) // serve the queue from durable state
	}
	b.activated = true
	b.arm(h, now)
	return nil
}

func (b *semaphoreBehavior) Passivatable(*Host) bool { return len(b.queue) == 0 }

// refresh gives session slots their session's expiry (the index is the
// authority): a slot whose session ended gets an expiry at or before now.
func (b *semaphoreBehavior) refresh(now time.Time) {
	for i := range b.rec.Slots {
		sl := &b.rec.Slots[i]
		if sl.SessionID == "" {
			continue
		}
		var v SessionView
		ok := false
		if b.s.sessions != nil {
			v, ok = b.s.sessions.view(sl.SessionID)
		}
		switch {
		case ok && v.Live:
			sl.ExpiresAt = v.ExpiresAt
		case ok:
			sl.ExpiresAt = minTime(v.ExpiresAt, now)
			if v.Closed {
				if b.closed == nil {
					b.closed = map[string]bool{}
				}
				b.closed[sl.LeaseID] = true
			}
		default:
			sl.ExpiresAt = minTime(sl.ExpiresAt, now)
		}
	}
}

// held is the number of slots held at now.
func (b *semaphoreBehavior) held(now time.Time) int {
	n := 0
	for _, sl := range b.rec.Slots {
		if now.Before(sl.ExpiresAt) {
			n++
		}
	}
	return n
}

// limit is the semaphore's limit while it has holders, else want's.
func (b *semaphoreBehavior) limit(want int) int {
	if len(b.rec.Slots) > 0 {
		return b.rec.Limit
	}
	return want
}

// arm sets the timer to the earliest TTL slot expiry or waiter deadline.
func (b *semaphoreBehavior) arm(h *Host, now time.Time) {
	var due time.Time
	set := func(t time.Time) {
		if due.IsZero() || t.Before(due) {
			due = t
		}
	}
	for _, sl := range b.rec.Slots {
		if sl.SessionID == "" {
			set(sl.ExpiresAt)
		}
	}
	for _, w := range b.queue {
		set(w.deadline)
	}
	if due.IsZero() {
		if b.timer != nil {
			b.timer.Stop()
		}
		return
	}
	if b.timer == nil {
		b.timer = h.AfterFunc(due.Sub(now), &expireSemaphore{})
		return
	}
	b.timer.Reset(due.Sub(now))
}

func (b *semaphoreBehavior) Handle(h *Host, op any) error {
	now := h.Now()
	b.refresh(now)
	switch op := op.(type) {
	case *acquireSemaphore:
		if err := b.endRanOut(h, now); err != nil {
			return err
		}
		err := b.grant(h, op, now)
		var full *SemaphoreFullError
		if err == nil || op.req.Wait <= 0 || !errors.As(err, &full) {
			return err
		}
		return b.enqueue(h, op, now)
	case *renewSemaphore:
		i := b.find(op.leaseID, now)
		if i < 0 || b.rec.Slots[i].Holder != op.caller {
			return ErrSemaphoreNotOwned
		}
		sl := b.rec.Slots[i]
		if sl.SessionID != "" {
			return ErrSemaphoreSession
		}
		sl.ExpiresAt = now.Add(op.ttl)
		if err := b.write(h, now, []SemaphoreSlot{sl}, nil, EventSemaphoreRenewed, false); err != nil {
			return err
		}
		op.grant = SemaphoreGrant{Slot: sl, Limit: b.rec.Limit, Holders: b.held(now)}
		return nil
	case *releaseSemaphore:
		i := b.find(op.leaseID, now)
		if i < 0 || (!op.admin && b.rec.Slots[i].Holder != op.caller) {
			return ErrSemaphoreNotOwned
		}
		return b.end(h, now, []int{i}, EventSemaphoreReleased)
	case *semaphoreStatus:
		if err := b.endRanOut(h, now); err != nil {
			return err
		}
		op.state = SemaphoreState{Name: b.name, Limit: b.rec.Limit, Token: b.rec.Token,
			Slots: slices.Clone(b.rec.Slots), Waiters: len(b.queue), At: now}
		return nil
	case *fenceSemaphore:
		for _, sl := range b.rec.Slots {
			if sl.Token == op.token && now.Before(sl.ExpiresAt) {
				op.res = FenceResult{Valid: true, Token: op.token, Holder: sl.Holder}
				return nil
			}
		}
		return &StaleTokenError{Name: b.name, Current: b.rec.Token}
	case *expireSemaphore:
		if err := b.endRanOut(h, now); err != nil {
			b.arm(h, now.Add(expiryRetry)) // retried (the slots are free meanwhile)
			return nil
		}
		b.expireWaiters(h, now)
		b.serve(h, now)
		return nil
	case *sessionEnded:
		ended := false
		for _, sl := range b.rec.Slots {
			if sl.SessionID == op.id && !now.Before(sl.ExpiresAt) {
				ended = true
			}
		}
		if ended {
			if op.closed {
				for _, sl := range b.rec.Slots {
					if sl.SessionID == op.id {
						if b.closed == nil {
							b.closed = map[string]bool{}
						}
						b.closed[sl.LeaseID] = true
					}
				}
			}
			if err := b.endRanOut(h, now); err != nil {
				ended = false
				b.arm(h, now.Add(expiryRetry))
			}
		}
		h.sys.send(sessionKey(op.id), &holdEnded{key: h.key, ended: ended})
		return nil
	case *abandonSemaphoreWait:
		b.abandon(h, op.op, now)
		return nil
	}
	return fmt.Errorf("semaphore: unknown operation %T", op)
}

// find is the index of the held slot with lease, or -1.
func (b *semaphoreBehavior) find(lease string, now time.Time) int {
	for i, sl := range b.rec.Slots {
		if sameLease(sl.LeaseID, lease) && now.Before(sl.ExpiresAt) {
			return i
		}
	}
	return -1
}

// grant takes a slot for op (or answers the slot its holder id holds).
func (b *semaphoreBehavior) grant(h *Host, op *acquireSemaphore, now time.Time) error {
	r := op.req
	if r.HolderID != "" {
		for _, sl := range b.rec.Slots {
			if sl.Holder == r.Caller && sl.HolderID == r.HolderID && now.Before(sl.ExpiresAt) {
				return b.again(h, op, sl, now)
			}
		}
	}
	held := b.held(now)
	if held > 0 && r.Limit != b.rec.Limit {
		return ErrSemaphoreLimit.Withf("limit %d, the holders use %d", r.Limit, b.rec.Limit)
	}
	if held >= r.Limit {
		return &SemaphoreFullError{Name: b.name, Limit: r.Limit, Holders: held}
	}
	sl := SemaphoreSlot{Holder: r.Caller, HolderID: r.HolderID, LeaseID: newLease(), Token: b.rec.Token + 1,
		AcquiredAt: now, ExpiresAt: now.Add(r.TTL)}
	if r.Metadata != nil {
		sl.Metadata = *r.Metadata
	}
	sessionHold := false
	if r.SessionID != "" {
		if b.s.sessions == nil {
			return ErrSessionNotFound
		}
		v, err := b.s.sessions.hold(r.SessionID, r.Caller, h.key)
		if err != nil {
			return err
		}
		sl.SessionID, sl.ExpiresAt, sessionHold = r.SessionID, v.ExpiresAt, true
	}
	unhold := func() {
		if sessionHold {
			b.s.sessions.unhold(r.SessionID, h.key)
		}
	}
	if max := b.s.max; max > 0 {
		if !b.s.holdings.Reserve(r.Caller, now, max) {
			unhold()
			return ErrQuota.Withf("at most %d semaphore slots per user", max)
		}
	}
	b.rec.Limit = r.Limit
	if err := b.write(h, now, []SemaphoreSlot{sl}, nil, EventSemaphoreAcquired, true); err != nil {
		unhold()
		if b.s.max > 0 {
			b.s.holdings.Unreserve(r.Caller)
		}
		return err
	}
	if r.Wait > 0 {
		b.grantOps[sl.LeaseID] = op
	}
	op.grant = SemaphoreGrant{Slot: sl, New: true, Limit: b.rec.Limit, Holders: b.held(now)}
	return nil
}

// again answers an acquire that repeats the holder id of a held slot:
// that slot, its TTL extended like a lock's re-acquire.
func (b *semaphoreBehavior) again(h *Host, op *acquireSemaphore, sl SemaphoreSlot, now time.Time) error {
	delete(b.grantOps, sl.LeaseID) // handed out once more: an abandoned waiter must not release it
	next := sl
	if sl.SessionID == "" && op.req.SessionID == "" {
		if exp := now.Add(op.req.TTL); exp.After(sl.ExpiresAt) {
			next.ExpiresAt = exp
		}
	}
	if op.req.Metadata != nil {
		next.Metadata = *op.req.Metadata
	}
	if next != sl {
		if err := b.write(h, now, []SemaphoreSlot{next}, nil, EventSemaphoreRenewed, false); err != nil {
			return err
		}
		sl = next
	}
	op.grant = SemaphoreGrant{Slot: sl, Limit: b.rec.Limit, Holders: b.held(now)}
	return nil
}

// write queues the semaphore's head and the slot changes; the slots of put
// replace those of the same lease (or are added, by token), those of
// remove leave. ev is published for each slot of put (reserved: their
// quota reservations end at the commit).
func (b *semaphoreBehavior) write(h *Host, now time.Time, put []SemaphoreSlot, remove []SemaphoreSlot, ev string, reserved bool) error {
	m := PutSemaphore{Name: b.name, Limit: b.rec.Limit, Token: b.rec.Token}
	for _, sl := range put {
		m.Token = max(m.Token, sl.Token)
		m.Put = append(m.Put, sl)
	}
	for _, sl := range remove {
		m.Remove = append(m.Remove, sl.LeaseID)
	}
	holdings, pub, sessions, name, limit := b.s.holdings, h.sys.cfg.Events, b.s.sessions, b.name, b.rec.Limit
	key := h.key
	err := h.Write(m, func(err error) {
		if err != nil {
			for _, sl := range put {
				if reserved {
					holdings.Unreserve(sl.Holder)
					if sl.SessionID != "" {
						sessions.unhold(sl.SessionID, key)
					}
				}
			}
			return
		}
		for _, sl := range put {
			if reserved {
				holdings.PutReserved(slotHolding(name, limit, sl))
			} else {
				holdings.Put(slotHolding(name, limit, sl))
			}
			pub.Publish(semaphoreEvent(ev, name, sl, limit, now))
		}
	})
	if err != nil {
		return err
	}
	b.rec.Token = m.Token
	for _, sl := range put {
		if i := slices.IndexFunc(b.rec.Slots, func(x SemaphoreSlot) bool { return x.LeaseID == sl.LeaseID }); i >= 0 {
			b.rec.Slots[i] = sl
		} else {
			b.rec.Slots = append(b.rec.Slots, sl)
		}
	}
	b.arm(h, now)
	return nil
}

// end frees the slots at idx: one write; ev (released, or expired for
// slots that ran out) is published per slot once it commits; the queue is
// served.
func (b *semaphoreBehavior) end(h *Host, now time.Time, idx []int, ev string) error {
	var gone []SemaphoreSlot
	for _, i := range idx {
		gone = append(gone, b.rec.Slots[i])
	}
	m := PutSemaphore{Name: b.name, Limit: b.rec.Limit, Token: b.rec.Token}
	for _, sl := range gone {
		m.Remove = append(m.Remove, sl.LeaseID)
	}
	types := make([]string, len(gone))
	for i, sl := range gone {
		types[i] = ev
		if ev == EventSemaphoreExpired && b.closed[sl.LeaseID] {
			types[i] = EventSemaphoreReleased // its session was closed
		}
	}
	pub, name, limit := h.sys.cfg.Events, b.name, b.rec.Limit
	err := h.Write(m, func(err error) {
		if err != nil {
			return
		}
		for i, sl := range gone {
			pub.Publish(semaphoreEvent(types[i], name, sl, limit, now))
		}
	})
	if err != nil {
		return err
	}
	for _, sl := range gone {
		b.s.holdings.Remove(sl.Holder, SlotKey(name, sl.LeaseID), sl.LeaseID)
		if sl.SessionID != "" && b.s.sessions != nil {
			b.s.sessions.unhold(sl.SessionID, h.key)
		}
		delete(b.grantOps, sl.LeaseID)
		delete(b.closed, sl.LeaseID)
	}
	b.rec.Slots = slices.DeleteFunc(b.rec.Slots, func(x SemaphoreSlot) bool {
		return slices.ContainsFunc(gone, func(g SemaphoreSlot) bool { return g.LeaseID == x.LeaseID })
	})
	b.arm(h, now)
	b.serve(h, now)
	return nil
}

// endRanOut records the end of every slot that ran out (its TTL, or its
// session ended).
func (b *semaphoreBehavior) endRanOut(h *Host, now time.Time) error {
	var idx []int
	for i, sl := range b.rec.Slots {
		if !now.Before(sl.ExpiresAt) {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	return b.end(h, now, idx, EventSemaphoreExpired)
}

// enqueue parks a waiting acquire of a full semaphore.
func (b *semaphoreBehavior) enqueue(h *Host, op *acquireSemaphore, now time.Time) error {
	if n := b.s.maxWaiters; n > 0 && len(b.queue) >= n {
		return ErrTooManySemaphoreWaiters.Withf("at most %d", n).RetryIn(time.Second)
	}
	b.queue = append(b.queue, &semWaiter{op: op, p: h.Park(), deadline: now.Add(op.req.Wait)})
	b.arm(h, now)
	return nil
}

// serve grants free slots to the head of the queue, in this step.
func (b *semaphoreBehavior) serve(h *Host, now time.Time) {
	for len(b.queue) > 0 && b.held(now) < b.limit(b.queue[0].op.req.Limit) {
		w := b.queue[0]
		b.queue[0] = nil
		b.queue = b.queue[1:]
		if w.p.Gone() {
			continue
		}
		h.Answer(w.p, b.grant(h, w.op, now))
	}
	if len(b.queue) == 0 {
		b.queue = nil
	}
	b.arm(h, now)
}

// expireWaiters answers the waiters whose wait is over: still full.
func (b *semaphoreBehavior) expireWaiters(h *Host, now time.Time) {
	keep := b.queue[:0]
	for _, w := range b.queue {
		if now.Before(w.deadline) {
			keep = append(keep, w)
			continue
		}
		h.Answer(w.p, &SemaphoreFullError{Name: b.name, Limit: b.limit(w.op.req.Limit), Holders: b.held(now)})
	}
	clear(b.queue[len(keep):])
	b.queue = keep
	if len(b.queue) == 0 {
		b.queue = nil
	}
}

// abandon takes a waiter whose caller left out of the queue, or releases
// the slot it was granted if nobody else was handed it since.
func (b *semaphoreBehavior) abandon(h *Host, op *acquireSemaphore, now time.Time) {
	for i, w := range b.queue {
		if w.op == op {
			b.queue = slices.Delete(b.queue, i, i+1)
			b.arm(h, now)
			return
		}
	}
	lease := op.grant.Slot.LeaseID
	if b.grantOps[lease] != op {
		return
	}
	if i := b.find(lease, now); i >= 0 {
		_ = b.end(h, now, []int{i}, EventSemaphoreReleased) // not queued: it expires
	}
}

func semaphoreEvent(typ, name string, sl SemaphoreSlot, limit int, now time.Time) Event {
	return Event{Type: typ, Kind: "semaphore", Name: name, Holder: sl.Holder, HolderID: sl.HolderID, LeaseID: sl.LeaseID,
		SessionID: sl.SessionID, FencingToken: sl.Token, ExpiresAt: sl.ExpiresAt, Limit: limit, Metadata: sl.Metadata, Time: now}
}
