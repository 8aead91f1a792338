package actors

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

func init() { uuid.EnableRandPool() } // lease ids from a pooled crypto/rand buffer

// LockLoader reads the durable state of locks. Package persistence
// implements it; tests may use an in-memory one.
type LockLoader interface {
	// LoadLock loads a lock; ok is false if it was never written (the
	// record is then free, with Name set).
	LoadLock(name string) (LockRecord, bool, error)
	// ActiveLocks calls fn for every lock held at now (recovery at start).
	ActiveLocks(now time.Time, fn func(LockRecord)) error
	// ExpiredLocks calls fn for every lock whose hold ran out by now
	// (expires_at <= now) but whose end is not recorded yet (Holder is
	// still set): the holds that ended while no server ran, whose expiry
	// recovery announces (once: announcing records it).
	ExpiredLocks(now time.Time, fn func(LockRecord)) error
}

// HeldLockLoader is a LockLoader that reads every held lock in one pass
// (package persistence: one scan of the index of held rows, in name
// order). Recovery uses it when the loader has it, instead of ActiveLocks
// and then ExpiredLocks.
type HeldLockLoader interface {
	LockLoader
	// HeldLocks calls fn, from one goroutine, for every lock with a holder
	// at now: what ActiveLocks and ExpiredLocks give, together, each once
	// (ExpiredWhileDown tells them apart). Records in name order cost
	// recovery least (the holder index is sorted by name).
	HeldLocks(now time.Time, fn func(LockRecord)) error
}

// ExpiredWhileDown reports whether r, a lock with a holder, is a hold for a
// TTL that ran out by now (ExpiredLocks gives it); otherwise it is still
// held at now, or held while its session lives (ActiveLocks gives it).
func ExpiredWhileDown(r LockRecord, now time.Time) bool {
	return r.Holder != "" && r.SessionID == "" && !r.HeldAt(now)
}

// LockConfig configures locks.
type LockConfig struct {
	Loader LockLoader
	// MaxPerUser caps the locks one holder holds at once (0:
	// DefaultMaxLocksPerUser; negative: no cap).
	MaxPerUser int
	// MaxWaiters caps the waiting acquires queued on one lock (0:
	// DefaultMaxWaitersPerLock; negative: no cap). Beyond it an acquire that
	// would wait is refused with ErrTooManyWaiters.
	MaxWaiters int
	// Sessions, when set, lets locks be held under a session
	// (LockRequest.SessionID). Create it first (NewSessions).
	Sessions *Sessions
	// IdleTimeout is how long the actor of a held lock stays resident
	// without operations before it is passivated (0 or negative:
	// DefaultLockIdleTimeout; at most the System's Config.IdleTimeout); a
	// free lock's actor follows Config.IdleTimeout. A held
	// lock needs no actor: its record stays in the holder index and its
	// expiry in the expiry schedule, and its next operation activates it
	// from that record, without a read of the store.
	IdleTimeout time.Duration
}

// Locks is the entry point for locks: typed calls to the lock's actor
// (one per name, in one namespace shared by every user), and the
// per-holder index that serves listings without a scan. See System.call
// for what a cancelled ctx means.
type Locks struct {
	sys        *System
	loader     LockLoader
	max        int
	maxWaiters int
	holdings   *Holdings // the holder index, and the compact table of held locks
	expiry     *expiries // the expiry schedule of held locks
	idle       time.Duration
	sessions   *sessionIndex      // nil: no sessions
	statuses   opPool[lockStatus] // Status is a hot read
	// activations counts lock actor activations, loads those that read the
	// loader (a lock that was not held); tests read them.
	activations, loads atomic.Int64
}

// NewLocks registers the lock kind with sys.
func NewLocks(sys *System, cfg LockConfig) *Locks {
	if cfg.MaxPerUser == 0 {
		cfg.MaxPerUser = DefaultMaxLocksPerUser
	}
	if cfg.MaxWaiters == 0 {
		cfg.MaxWaiters = DefaultMaxWaitersPerLock
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultLockIdleTimeout
	}
	cfg.IdleTimeout = min(cfg.IdleTimeout, sys.cfg.IdleTimeout)
	l := &Locks{sys: sys, loader: cfg.Loader, max: cfg.MaxPerUser, maxWaiters: cfg.MaxWaiters,
		holdings: newLockHoldings(), expiry: newExpiries(sys), idle: cfg.IdleTimeout}
	if cfg.Sessions != nil {
		l.sessions = cfg.Sessions.idx
	}
	sys.Register(KindSpec{
		Kind:    KindLock,
		New:     func(k Key) Behavior { return &lockBehavior{name: k.Name, locks: l} },
		Recover: l.recover,
		Close:   l.expiry.close,
	})
	return l
}

// recover rebuilds the derived state of held locks after a start: the
// holder index (the compact records lock actors activate from) and the
// expiry schedule. Lock actors themselves load lazily. A hold that ran out
// while no server ran is scheduled at once: its expiry is recorded and
// announced once, without waiting for a request.
func (l *Locks) recover(now time.Time) (int, error) {
	n := 0
	at := now.UnixMilli()
	load := l.holdings.bulk()
	var due []*expiryItem // scheduled in bulk at the end
	expired := func(r LockRecord) {
		exp := newExpiryItem(r.Name)
		exp.due = at
		due = append(due, exp)
	}
	active := func(r LockRecord) {
		n++
		exp := newExpiryItem(r.Name)
		if r.SessionID != "" {
			// Held while its session lives: the session's end (at Start,
			// for one that expired while no server ran) ends it. A lock
			// whose session is gone ends now.
			if l.sessions != nil && l.sessions.addHold(r.SessionID, lockKey(r.Name)) {
				load.add(r, exp)
			} else {
				exp.due = at
				due = append(due, exp)
			}
			return
		}
		load.add(r, exp)
		exp.due = unixMS(r.ExpiresAt)
		due = append(due, exp)
	}
	if hl, ok := l.loader.(HeldLockLoader); ok {
		// One pass: the holds still running and those that ran out while
		// no server ran.
		err := pipe(func(fn func(LockRecord)) error { return hl.HeldLocks(now, fn) }, func(r LockRecord) {
			if ExpiredWhileDown(r, now) {
				expired(r)
			} else {
				active(r)
			}
		})
		if err != nil {
			return 0, fmt.Errorf("recover held locks: %w", err)
		}
	} else {
		err := pipe(func(fn func(LockRecord)) error { return l.loader.ActiveLocks(now, fn) }, active)
		if err != nil {
			return 0, fmt.Errorf("recover held locks: %w", err)
		}
		if err := l.loader.ExpiredLocks(now, expired); err != nil {
			return 0, fmt.Errorf("recover expired locks: %w", err)
		}
	}
	load.finish()
	l.expiry.load(due, at)
	return n, nil
}

// pipe runs scan (a loader's scan) on a goroutine of its own and calls fn
// with what it reads on this one, in batches, so that reading the store and
// building the index overlap (start-up). It returns scan's error once fn
// had every record scan gave before it.
func pipe(scan func(fn func(LockRecord)) error, fn func(LockRecord)) error {
	const batch = 1024
	full := make(chan []LockRecord, 4)
	empty := make(chan []LockRecord, 4)
	for range 4 {
		empty <- make([]LockRecord, 0, batch)
	}
	var err error
	go func() {
		defer close(full)
		b := <-empty
		err = scan(func(r LockRecord) {
			b = append(b, r)
			if len(b) == batch {
				full <- b
				b = <-empty
			}
		})
		if len(b) > 0 {
			full <- b
		}
	}()
	for b := range full {
		for i := range b {
			fn(b[i])
		}
		clear(b)
		empty <- b[:0]
	}
	return err // written before full was closed
}

func lockKey(name string) Key { return Key{Kind: KindLock, Name: name} }

// LockGrant answers Acquire.
type LockGrant struct {
	Lock LockRecord
	// New is true for a new grant (a new lease and the next fencing
	// token), false when the caller already held the lock and its hold was
	// extended.
	New bool
}

// LockState answers Status.
type LockState struct {
	// Lock is the lock as held; when not Held, only Name and Token (the
	// last fencing token handed out) are set, and when Delayed also
	// DelayHolder, ExpiresAt (when that hold expired) and AvailableAt.
	Lock LockRecord
	Held bool
	// Delayed: the lock is free but in lock-delay until Lock.AvailableAt.
	Delayed bool
	// Waiters is the number of waiting acquires queued behind the holder.
	Waiters int
	At      time.Time // the runtime clock when the state was read
}

// LockRequest is one acquire (AcquireWith).
type LockRequest struct {
	Caller   string // the user
	HolderID string // "" or a names.HolderID (the caller checks it)
	TTL      time.Duration
	// Wait, when positive, makes an acquire of a lock held by someone else
	// wait its turn: it joins the lock's FIFO queue and is granted the
	// moment the holders before it are done (released or expired), or
	// answered *LockHeldError once Wait has passed. 0: one attempt.
	Wait time.Duration
	// SessionID, when set, holds the lock under the caller's session
	// instead of for TTL: it is held while the session lives
	// (ErrSessionNotFound for one that is not the caller's live session).
	// The holder is then (Caller, HolderID, SessionID).
	SessionID string
	// LockDelay is the grant's lock-delay (0..60 s): when the hold is lost
	// by expiry (not released), nobody is granted the lock before its
	// expiry plus LockDelay. Under a session, the session's applies.
	LockDelay time.Duration
	// Metadata, when set, is the hold's metadata (a new grant's, or a
	// re-acquire's new one: "" clears it); nil keeps it (a new grant: none).
	Metadata *string
}

// Acquire is AcquireAs without a holder id: the seed API's re-entrance per
// user (any request of caller that gives no holder id is the same holder).
func (l *Locks) Acquire(ctx context.Context, name, caller string, ttl time.Duration) (LockGrant, error) {
	return l.AcquireWith(ctx, name, LockRequest{Caller: caller, TTL: ttl})
}

// AcquireAs grants the lock name to the holder (caller, holderID) for ttl,
// or extends that holder's hold to the later of its expiry and now+ttl. The
// holder is the pair: the lock held by caller under another holder id, or
// under none when holderID is set (or under one when it is not), is held by
// someone else. holderID is "" or a names.HolderID (the caller checks it).
// The answer is given once the grant is committed. Errors: *LockHeldError
// when someone else holds it (a case of CodeConflict); ErrQuota beyond
// LockConfig.MaxPerUser; ErrUnavailable, ErrOverloaded, ErrClosed; ctx's
// error if ctx ends first (the grant may then or may not have been made:
// see System.call).
func (l *Locks) AcquireAs(ctx context.Context, name, caller, holderID string, ttl time.Duration) (LockGrant, error) {
	return l.AcquireWith(ctx, name, LockRequest{Caller: caller, HolderID: holderID, TTL: ttl})
}

// AcquireWith is AcquireAs with every option of an acquire (LockRequest).
// A waiting acquire (r.Wait > 0) of a lock held by someone else queues in
// arrival order; no acquire, waiting or not, is granted the lock ahead of
// the queue (no barging), and on release or expiry the first waiter is
// granted in the same step of the lock's actor. Beyond
// LockConfig.MaxWaiters waiters it is refused with ErrTooManyWaiters. When
// ctx ends while it waits, it leaves the queue and is never granted; if the
// grant raced the end of ctx, the grant is released at once.
func (l *Locks) AcquireWith(ctx context.Context, name string, r LockRequest) (LockGrant, error) {
	op := &acquireLock{req: r}
	err := l.sys.call(ctx, lockKey(name), op)
	if err != nil && r.Wait > 0 && ctx.Err() != nil {
		// The caller is gone: take the waiter out of the queue, or give
		// back a grant it will never hear of. (op is read by the actor
		// only: nothing here reads it after the context ended.)
		l.sys.send(lockKey(name), &abandonWait{op: op})
	}
	return answer(err, &op.grant)
}

// Renew sets the expiry of caller's lease to now+ttl (it can shorten the
// hold). ErrLockNotOwned when leaseID is not caller's current lease.
func (l *Locks) Renew(ctx context.Context, name, caller, leaseID string, ttl time.Duration) (LockRecord, error) {
	op := &renewLock{caller: caller, leaseID: leaseID, ttl: ttl}
	return answer(l.sys.call(ctx, lockKey(name), op), &op.lock)
}

// Release frees the lock if leaseID is caller's current lease
// (ErrLockNotOwned otherwise). The fencing token is kept for the next
// grant.
func (l *Locks) Release(ctx context.Context, name, caller, leaseID string) error {
	return l.sys.call(ctx, lockKey(name), &releaseLock{caller: caller, leaseID: leaseID})
}

// ForceRelease frees the lock whoever holds it (the admin key);
// ErrLockNotOwned when it is not held.
func (l *Locks) ForceRelease(ctx context.Context, name string) error {
	return l.sys.call(ctx, lockKey(name), &releaseLock{admin: true})
}

// Status reads the lock (from its actor: never a state that is not
// committed).
func (l *Locks) Status(ctx context.Context, name string) (LockState, error) {
	return callPooled(l.sys, ctx, lockKey(name), &l.statuses, func(op *lockStatus) LockState { return op.state })
}

// FenceResult answers a fence check: Valid when the token is the one of
// the current, unexpired grant (Holder then holds it).
type FenceResult struct {
	Valid  bool
	Token  uint64 // the token checked
	Holder string
}

// StaleTokenError answers a fence check of a token that is not the current
// grant's: Current is the last token granted (0 if never). A conflict (409).
type StaleTokenError struct {
	Name    string
	Current uint64
}

func (e *StaleTokenError) Error() string {
	return fmt.Sprintf("fencing token of %q is not the current grant's (the last one granted is %d)", e.Name, e.Current)
}

// Is makes it a case of the conflict code.
func (e *StaleTokenError) Is(target error) bool { return target == errStaleToken }

var errStaleToken = NewError(CodeConflict, "Fencing token is not the current grant's")

// Fence checks, for the storage a holder writes to, that token is the
// fencing token of the lock's current, unexpired grant: a *StaleTokenError
// (with the last token granted) otherwise. Linearizable with grants: the
// check is an operation of the lock's actor, answered after the writes
// before it commit, so once a newer grant is acknowledged no check of an
// older token answers valid.
func (l *Locks) Fence(ctx context.Context, name string, token uint64) (FenceResult, error) {
	op := &fenceLock{token: token}
	return answer(l.sys.call(ctx, lockKey(name), op), &op.res)
}

// List returns holder's locks held now, sorted by name, from the holder
// index (no scan, no actor): all of them (ListPage is a page).
func (l *Locks) List(holder string) []LockRecord {
	return l.holdings.List(holder, l.sys.Now(), l.sessionView)
}

// ListAll returns every lock held now, sorted by name (the admin view):
// all of them (ListAllPage is a page).
func (l *Locks) ListAll() []LockRecord { return l.holdings.All(l.sys.Now(), l.sessionView) }

// sessionView is how a listing shows a lock of the holder index: a session
// lock with its session's expiry, and not at all once its session has
// ended (false).
func (l *Locks) sessionView(r *LockRecord) bool { return l.sessions.listView(r) }

// ListPage is one page of holder's locks held now, by name after
// q.AfterName, with the count of them all (the holder index: no scan of
// other holders' locks, no actor).
func (l *Locks) ListPage(holder string, q PageQuery) Page[LockRecord] {
	return l.holdings.Page(holder, l.sys.Now(), q, l.sessionView)
}

// ListAllPage is one page of every lock held now, by name after
// q.AfterName, with the count of them all (the admin view).
func (l *Locks) ListAllPage(q PageQuery) Page[LockRecord] {
	return l.holdings.AllPage(l.sys.Now(), q, l.sessionView)
}

// Indexed is the number of entries in the holder index (held, or expired
// and not yet removed): the held-locks gauge.
func (l *Locks) Indexed() int { return l.holdings.Total() }

// Lock operations: what a typed call sends the lock's actor. Each carries
// its answer back in its own fields (written by the actor before it
// replies, read by the caller after the reply).
type (
	acquireLock struct {
		req   LockRequest
		grant LockGrant
	}
	renewLock struct {
		caller, leaseID string
		ttl             time.Duration
		lock            LockRecord
	}
	releaseLock struct {
		caller, leaseID string
		admin           bool // release whatever lease is current
	}
	lockStatus struct{ state LockState }
	fenceLock  struct {
		token uint64
		res   FenceResult
	}
	// expireLock is sent by the expiry timer.
	expireLock struct{}
	// waitExpired is sent by the timer of the earliest waiter's deadline.
	waitExpired struct{}
	// serveWaiters asks the lock to grant its queue what it can (after a
	// fall-back to durable state).
	serveWaiters struct{}
	// abandonWait is sent when the caller of a waiting acquire is gone
	// (AcquireWith).
	abandonWait struct{ op *acquireLock }
)

// LockOutcome says what the acquire state machine did.
type LockOutcome uint8

// Outcomes.
const (
	LockAcquired LockOutcome = iota + 1 // a new grant (new lease, new token)
	LockHeld                            // the same holder already held it; renewed or re-acquired
)

// ErrLockNotOwned answers renew/release of a lease the caller does not hold.
var ErrLockNotOwned = NewError(CodeNotFound, "Lock not found or not owned by caller")

// ErrTooManyWaiters refuses a waiting acquire of a lock whose queue is full
// (LockConfig.MaxWaiters); its RetryAfter is the time left of the current
// hold, at least a second.
var ErrTooManyWaiters = NewError(CodeTooManyRequests, "too many waiters on this lock")

// errLockHeld is the coded form of every *LockHeldError (AsError).
var errLockHeld = NewError(CodeConflict, "Lock already held")

// errLockDelay is the coded form of every *LockDelayError (AsError).
var errLockDelay = NewError(CodeConflict, "Lock in lock-delay")

// LockDelayError answers an acquire of a lock in lock-delay: its holder's
// hold expired at ExpiresAt, and it is not granted before AvailableAt (a
// conflict: 409 with those).
type LockDelayError struct {
	Name        string
	Holder      string // who held it
	ExpiresAt   time.Time
	AvailableAt time.Time
}

func (e *LockDelayError) Error() string {
	return fmt.Sprintf("lock %q in lock-delay until %s (%s's hold expired at %s)", e.Name,
		e.AvailableAt.Format(time.RFC3339), e.Holder, e.ExpiresAt.Format(time.RFC3339))
}

// LockHeldError answers an acquire of a lock someone else holds (a
// conflict: the HTTP answer is 409 with the lock's holder and expiry).
type LockHeldError struct {
	Name      string
	Holder    string
	ExpiresAt time.Time
	Metadata  string // the hold's, shown to everybody
}

func (e *LockHeldError) Error() string {
	return fmt.Sprintf("lock %q held by %s until %s", e.Name, e.Holder, e.ExpiresAt.Format(time.RFC3339))
}

// HeldAt reports whether the lock is held at now.
func (l LockRecord) HeldAt(now time.Time) bool {
	return l.Holder != "" && now.Before(l.ExpiresAt)
}

// --- the pure state machine: functions of the current state and now ---

// Acquire computes the result of the holder (caller, holderID) acquiring l
// for ttl at now. Only the same pair re-acquires (LockHeld); "" is a holder
// id like any other, so a hold taken with a holder id is someone else's to
// a request without one, and the other way round.
func Acquire(l LockRecord, caller, holderID string, ttl time.Duration, now time.Time, newLease func() string) (LockRecord, LockOutcome, error) {
	return AcquireIn(l, Grantee{Caller: caller, HolderID: holderID, TTL: ttl}, now, newLease)
}

// Grantee is who an acquire grants the lock to, and on what terms.
type Grantee struct {
	Caller, HolderID string
	// SessionID: the hold lives as long as this session ("" for TTL), and
	// TTL is then the time left of the session.
	SessionID string
	TTL       time.Duration
	LockDelay time.Duration // of a new grant
	Metadata  *string       // nil: keep (a new grant: none)
}

// AcquireIn is Acquire with every term of the grant: a lock held under a
// session is re-acquired (LockHeld) only by the same holder with the same
// session, and one held for a TTL only without one; a new grant records its
// lock-delay. A lock in lock-delay (freed by an expiry, before AvailableAt)
// is granted to nobody: *LockDelayError.
func AcquireIn(l LockRecord, g Grantee, now time.Time, newLease func() string) (LockRecord, LockOutcome, error) {
	if l.HeldAt(now) {
		if l.Holder != g.Caller || l.HolderID != g.HolderID || l.SessionID != g.SessionID {
			return l, 0, &LockHeldError{Name: l.Name, Holder: l.Holder, ExpiresAt: l.ExpiresAt, Metadata: l.Metadata}
		}
		if exp := now.Add(g.TTL); exp.After(l.ExpiresAt) {
			l.ExpiresAt = exp
		}
		if g.Metadata != nil {
			l.Metadata = *g.Metadata
		}
		return l, LockHeld, nil
	}
	if now.Before(l.AvailableAt) {
		return l, 0, &LockDelayError{Name: l.Name, Holder: l.DelayHolder, ExpiresAt: l.ExpiresAt, AvailableAt: l.AvailableAt}
	}
	l.Holder, l.HolderID, l.SessionID = g.Caller, g.HolderID, g.SessionID
	l.LockDelay, l.AvailableAt, l.DelayHolder = g.LockDelay, time.Time{}, ""
	l.Metadata = ""
	if g.Metadata != nil {
		l.Metadata = *g.Metadata
	}
	ttl := g.TTL
	l.LeaseID = newLease()
	l.Token++
	l.AcquiredAt = now
	l.ExpiresAt = now.Add(ttl)
	return l, LockAcquired, nil
}

// Renew computes the result of renewing lease for ttl at now.
func Renew(l LockRecord, caller, lease string, ttl time.Duration, now time.Time) (LockRecord, error) {
	if !l.HeldAt(now) || l.Holder != caller || !sameLease(l.LeaseID, lease) {
		return l, ErrLockNotOwned
	}
	l.ExpiresAt = now.Add(ttl)
	return l, nil
}

// Release computes the result of releasing lease at now. admin releases
// whatever lease is current.
func Release(l LockRecord, caller, lease string, admin bool, now time.Time) (LockRecord, error) {
	if !l.HeldAt(now) || (!admin && (l.Holder != caller || !sameLease(l.LeaseID, lease))) {
		return l, ErrLockNotOwned
	}
	return free(l), nil
}

// Expire reports whether l has expired at now, and the freed state: with a
// lock-delay, in lock-delay until its expiry plus the delay (who held it
// and when the hold expired kept for the answers).
func Expire(l LockRecord, now time.Time) (LockRecord, bool) {
	if l.Holder == "" || now.Before(l.ExpiresAt) {
		return l, false
	}
	next := free(l)
	if l.LockDelay > 0 {
		next.AvailableAt, next.DelayHolder, next.ExpiresAt = l.ExpiresAt.Add(l.LockDelay), l.Holder, l.ExpiresAt
	}
	return next, true
}

// InDelayAt reports whether the free lock l is in lock-delay at now.
func (l LockRecord) InDelayAt(now time.Time) bool { return !l.HeldAt(now) && now.Before(l.AvailableAt) }

func free(l LockRecord) LockRecord {
	l.Holder, l.HolderID, l.LeaseID, l.SessionID = "", "", "", ""
	l.ExpiresAt, l.AcquiredAt = time.Time{}, time.Time{}
	l.LockDelay, l.AvailableAt, l.DelayHolder = 0, time.Time{}, ""
	l.Metadata = ""
	return l // Token is kept: the next grant continues from it
}

func sameLease(a, b string) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// --- the actor behavior ---

type lockBehavior struct {
	name  string
	locks *Locks
	state LockRecord
	// exp is the lock's entry in the expiry schedule (Locks.expiry), made
	// on the first hold and kept with the hold's record in the holder
	// index, so that the next activation re-arms the same entry.
	exp *expiryItem
	// activated is set after the first Activate: a later one is the
	// fall-back to durable state after a failed write.
	activated bool

	// queue holds the waiting acquires in arrival order (AcquireWith). It
	// is not empty only while the lock is held: a release or expiry grants
	// its head in the same step.
	queue     []*lockWaiter
	waitTimer Timer // fires at the earliest deadline of the queue
	// grantOp is the waiting acquire the current lease was granted to, as
	// long as no other answer has handed the lease out (a "held"
	// re-acquire): abandonWait releases the lease only then.
	grantOp *acquireLock
	// sessClosed: the session of the current hold was closed (refresh), so
	// its end is a release, not an expiry.
	sessClosed bool
}

// lockWaiter is one queued waiting acquire.
type lockWaiter struct {
	op       *acquireLock
	p        Parked
	deadline time.Time
}

// expiryRetry is how long an expiry whose write could not be queued or
// failed waits before it is tried again (the lock is free meanwhile: only
// recording and announcing its end waits).
const expiryRetry = time.Second

func (b *lockBehavior) Activate(h *Host) error {
	// A held lock activates from its compact record in the holder index:
	// it is the lock's committed state (the index changes only in commit
	// callbacks, and a passivated actor had no write pending). A lock that
	// is not held, and the fall-back to durable state after a failed write,
	// read the loader.
	b.locks.activations.Add(1)
	r, exp, ok := LockRecord{}, (*expiryItem)(nil), false
	if !b.activated {
		r, exp, ok = b.locks.holdings.lookup(b.name)
	}
	if !ok {
		var err error
		b.locks.loads.Add(1)
		if r, _, err = b.locks.loader.LoadLock(b.name); err != nil {
			return err
		}
	}
	if exp != nil {
		b.exp = exp
	}
	r.Name = b.name
	b.state = r
	b.grantOp = nil
	b.refresh(h.Now())
	r = b.state
	switch {
	case r.HeldAt(h.Now()):
		b.scheduleHold(h)
	case r.Holder != "" && b.activated:
		// A hold that ran out and whose recorded end did not commit:
		// try again later, not in a loop with a failing disk.
		b.arm(h, expiryRetry)
	case r.Holder != "":
		// A hold that ran out and whose end is not recorded (the server
		// stopped first): record and announce it now.
		b.arm(h, 0)
	}
	if b.activated && len(b.queue) > 0 {
		// Back on durable state after a failed write, with waiters: grant
		// them what is free now (in a step of its own).
		h.sys.send(h.key, &serveWaiters{})
	}
	b.activated = true
	return nil
}

// Passivatable: never with waiters (they live in memory only).
func (b *lockBehavior) Passivatable(h *Host) bool { return len(b.queue) == 0 }

// IdlePeriod implements IdlePeriodic: a held lock without waiters needs no
// actor (its record is in the holder index, its expiry in the schedule),
// so its actor goes after LockConfig.IdleTimeout; a free lock's stays as
// long as the runtime's (a lock acquired again and again keeps its actor,
// and its state, in memory).
func (b *lockBehavior) IdlePeriod(h *Host) time.Duration {
	if b.state.Holder != "" && len(b.queue) == 0 {
		return b.locks.idle
	}
	return 0
}

// schedule arms the expiry timer for the current hold's expiry.
func (b *lockBehavior) schedule(h *Host) { b.arm(h, b.state.ExpiresAt.Sub(h.Now())) }

// scheduleHold arms the expiry timer of a hold for a TTL; a session hold
// needs none (its session's end tells the lock: sessionEnded).
func (b *lockBehavior) scheduleHold(h *Host) {
	if b.state.SessionID == "" {
		b.schedule(h)
	} else {
		b.locks.expiry.stop(b.exp)
	}
}

// refresh gives a session hold its session's expiry, from the session
// index (the authority on liveness): a hold whose session has ended gets
// an expiry at or before now, so that it ends like any hold that ran out
// (endHold), as a release when the session was closed.
func (b *lockBehavior) refresh(now time.Time) {
	r := &b.state
	if r.SessionID == "" || r.Holder == "" {
		return
	}
	var v SessionView
	ok := false
	if b.locks.sessions != nil {
		v, ok = b.locks.sessions.view(r.SessionID)
	}
	switch {
	case ok && v.Live:
		r.ExpiresAt, b.sessClosed = v.ExpiresAt, false
	case ok:
		r.ExpiresAt, b.sessClosed = minTime(v.ExpiresAt, now), v.Closed
	default: // the session is gone: it expired
		r.ExpiresAt, b.sessClosed = minTime(r.ExpiresAt, now), false
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// endHold ends a hold that is over (ran out, or its session ended):
// released when its session was closed, expired otherwise.
func (b *lockBehavior) endHold(h *Host, now time.Time) error {
	if b.state.SessionID != "" && b.sessClosed {
		prev := b.state
		return b.persistRelease(h, prev, free(prev), now)
	}
	return b.expire(h, now)
}

// arm schedules the lock's expiry entry to send expireLock after d.
func (b *lockBehavior) arm(h *Host, d time.Duration) {
	b.locks.expiry.reset(b.entry(), d)
}

// entry is the lock's expiry entry, made on first use.
func (b *lockBehavior) entry() *expiryItem {
	if b.exp == nil {
		b.exp = newExpiryItem(b.name)
	}
	return b.exp
}

func (b *lockBehavior) Handle(h *Host, op any) error {
	now := h.Now()
	b.refresh(now)
	switch op := op.(type) {
	case *acquireLock:
		return b.acquire(h, op, now)
	case *renewLock:
		next, err := Renew(b.state, op.caller, op.leaseID, op.ttl, now)
		if err != nil {
			return err
		}
		if b.state.SessionID != "" {
			return ErrSessionLock
		}
		if err := b.persist(h, next, EventLockRenewed, now, false); err != nil {
			return err
		}
		op.lock = next
		return nil
	case *releaseLock:
		prev := b.state
		next, err := Release(prev, op.caller, op.leaseID, op.admin, now)
		if err != nil {
			return err
		}
		return b.persistRelease(h, prev, next, now)
	case *lockStatus:
		b.endRanOut(h, now)
		switch st := b.state; {
		case st.HeldAt(now):
			op.state = LockState{Lock: st, Held: true, Waiters: len(b.queue), At: now}
		case st.InDelayAt(now):
			op.state = LockState{Lock: LockRecord{Name: b.name, Token: st.Token, DelayHolder: st.DelayHolder,
				ExpiresAt: st.ExpiresAt, AvailableAt: st.AvailableAt}, Delayed: true, Waiters: len(b.queue), At: now}
		default:
			op.state = LockState{Lock: LockRecord{Name: b.name, Token: st.Token}, At: now}
		}
		return nil
	case *fenceLock:
		b.endRanOut(h, now)
		if st := b.state; !st.HeldAt(now) || st.Token != op.token {
			return &StaleTokenError{Name: b.name, Current: st.Token}
		}
		op.res = FenceResult{Valid: true, Token: op.token, Holder: b.state.Holder}
		return nil
	case *expireLock:
		if b.state.Holder == "" {
			return nil // free, or its end already recorded
		}
		if !b.state.HeldAt(now) {
			if err := b.endHold(h, now); err != nil {
				b.arm(h, expiryRetry) // not queued (overloaded, closing)
			}
		} else {
			b.scheduleHold(h) // fired early (clock skew) or stale: re-arm
		}
		return nil
	case *sessionEnded:
		// The session's end is decided (the index says so, and refresh
		// made the hold run out): record it, and tell the session.
		ended := false
		if b.state.SessionID == op.id && b.state.Holder != "" && !b.state.HeldAt(now) {
			b.sessClosed = op.closed
			if err := b.endHold(h, now); err != nil {
				b.arm(h, expiryRetry) // ended later through the timer
			} else {
				ended = true
			}
		}
		h.sys.send(sessionKey(op.id), &holdEnded{key: h.key, ended: ended})
		return nil
	case *waitExpired:
		b.endRanOut(h, now)
		b.expireWaiters(h, now)
		b.serve(h, now) // the end of a lock-delay
		return nil
	case *serveWaiters:
		b.endRanOut(h, now)
		b.serve(h, now)
		return nil
	case *abandonWait:
		b.abandon(h, op.op, now)
		return nil
	}
	return fmt.Errorf("lock: unknown operation %T", op)
}

// endRanOut records the end of a hold that ran out and whose timer has not
// fired yet, so that the queue moves on at once (and a waiter is never
// answered "held by" a holder whose time is over). A failure to queue the
// write leaves it to the timer.
func (b *lockBehavior) endRanOut(h *Host, now time.Time) {
	if b.state.Holder != "" && !b.state.HeldAt(now) && len(b.queue) > 0 {
		if err := b.endHold(h, now); err != nil {
			b.arm(h, expiryRetry)
		}
	}
}

// acquire runs the acquire state machine on the current state (expiring a
// hold that ran out first, which hands the lock to the queue) and persists
// a change; a waiting acquire of a lock held by someone else joins the
// queue instead of failing.
func (b *lockBehavior) acquire(h *Host, op *acquireLock, now time.Time) error {
	if b.state.Holder != "" && !b.state.HeldAt(now) {
		if err := b.endHold(h, now); err != nil {
			return err
		}
	}
	if len(b.queue) > 0 && !b.state.HeldAt(now) {
		b.serve(h, now) // after a fall-back to durable state: waiters first
	}
	err := b.grant(h, op, now)
	if err == nil || op.req.Wait <= 0 || !waitable(err) {
		return err
	}
	return b.enqueue(h, op, now)
}

// waitable reports whether a waiting acquire refused with err may queue:
// the lock is held by someone else, or in lock-delay. (A function of its
// own so that the targets errors.As needs are allocated only for a refusal,
// not on every grant.)
func waitable(err error) bool {
	var held *LockHeldError
	var delayed *LockDelayError
	return errors.As(err, &held) || errors.As(err, &delayed)
}

// refusal is the answer to an acquire that may not be granted now: held by
// someone else, or in lock-delay.
func (b *lockBehavior) refusal(now time.Time) error {
	if st := b.state; st.InDelayAt(now) {
		return &LockDelayError{Name: b.name, Holder: st.DelayHolder, ExpiresAt: st.ExpiresAt, AvailableAt: st.AvailableAt}
	}
	return &LockHeldError{Name: b.name, Holder: b.state.Holder, ExpiresAt: b.state.ExpiresAt, Metadata: b.state.Metadata}
}

// grant runs the acquire state machine for op and persists the change.
// Behind a queue nobody but the holder is granted anything: the queue is
// not empty only while the lock is held, and Acquire refuses a held lock
// to everyone but its holder.
func (b *lockBehavior) grant(h *Host, op *acquireLock, now time.Time) error {
	prev := b.state
	r := op.req
	g := Grantee{Caller: r.Caller, HolderID: r.HolderID, SessionID: r.SessionID, TTL: r.TTL, LockDelay: r.LockDelay,
		Metadata: r.Metadata}
	if r.SessionID != "" {
		v, ok := SessionView{}, false
		if b.locks.sessions != nil {
			v, ok = b.locks.sessions.view(r.SessionID)
		}
		if !ok || !v.Live || v.Owner != r.Caller {
			return ErrSessionNotFound
		}
		g.TTL, g.LockDelay = v.ExpiresAt.Sub(now), v.LockDelay
	}
	next, outcome, err := AcquireIn(prev, g, now, newLease)
	if err != nil {
		return err
	}
	sessionHold := false
	if outcome == LockAcquired && r.SessionID != "" {
		// Decided under the index's lock: the session is live now, and
		// its end, when it comes, will find this hold.
		v, err := b.locks.sessions.hold(r.SessionID, r.Caller, h.key)
		if err != nil {
			return err
		}
		next.ExpiresAt, sessionHold = v.ExpiresAt, true
	}
	unhold := func() {
		if sessionHold {
			b.locks.sessions.unhold(r.SessionID, h.key)
		}
	}
	op.grant = LockGrant{Lock: next, New: outcome == LockAcquired}
	reserved := false
	if outcome == LockAcquired {
		// The grant counts against the quota from now until it commits
		// (or fails), so concurrent grants to one user on different
		// locks cannot overshoot it.
		if max := b.locks.max; max > 0 {
			if !b.locks.holdings.Reserve(r.Caller, now, max) {
				unhold()
				return ErrQuota.Withf("at most %d active locks per user", max)
			}
			reserved = true
		}
	}
	if outcome == LockAcquired && r.Wait > 0 {
		b.grantOp = op
	} else {
		b.grantOp = nil // the lease is handed out once more
	}
	if next == prev {
		return nil
	}
	ev := EventLockAcquired
	if outcome == LockHeld {
		ev = EventLockRenewed
	}
	if err := b.persist(h, next, ev, now, reserved); err != nil {
		if reserved {
			b.locks.holdings.Unreserve(r.Caller)
		}
		unhold()
		return err
	}
	return nil
}

// enqueue parks a waiting acquire at the end of the queue.
func (b *lockBehavior) enqueue(h *Host, op *acquireLock, now time.Time) error {
	if n := b.locks.maxWaiters; n > 0 && len(b.queue) >= n {
		retry := max(b.state.ExpiresAt.Sub(now), time.Second)
		return ErrTooManyWaiters.Withf("at most %d", n).RetryIn(retry)
	}
	b.queue = append(b.queue, &lockWaiter{op: op, p: h.Park(), deadline: now.Add(op.req.Wait)})
	b.armWait(h, now)
	return nil
}

// serve hands the free lock to the head of the queue, in this step: the
// first waiter whose caller still waits is granted (one whose grant fails,
// at its quota, is answered that error and the next is tried), and queued
// waiters of the same holder are answered "held" with it.
func (b *lockBehavior) serve(h *Host, now time.Time) {
	for len(b.queue) > 0 && !b.state.HeldAt(now) && !b.state.InDelayAt(now) {
		w := b.pop()
		if w.p.Gone() {
			continue // the caller left (abandonWait will find nothing)
		}
		err := b.grant(h, w.op, now)
		h.Answer(w.p, err)
		if err == nil {
			b.answerSameHolder(h, now)
		}
	}
	b.armWait(h, now)
}

// answerSameHolder answers the queued acquires of the lock's holder (a
// retry of the waiter just granted, say): they hold it.
func (b *lockBehavior) answerSameHolder(h *Host, now time.Time) {
	keep := b.queue[:0]
	for _, w := range b.queue {
		if w.op.req.Caller != b.state.Holder || w.op.req.HolderID != b.state.HolderID {
			keep = append(keep, w)
			continue
		}
		h.Answer(w.p, b.grant(h, w.op, now))
	}
	clear(b.queue[len(keep):])
	b.queue = keep
}

func (b *lockBehavior) pop() *lockWaiter {
	w := b.queue[0]
	b.queue[0] = nil
	b.queue = b.queue[1:]
	if len(b.queue) == 0 {
		b.queue = nil
	}
	return w
}

// expireWaiters answers the waiters whose wait is over: the lock is still
// held by someone else (409).
func (b *lockBehavior) expireWaiters(h *Host, now time.Time) {
	keep := b.queue[:0]
	for _, w := range b.queue {
		if now.Before(w.deadline) {
			keep = append(keep, w)
			continue
		}
		h.Answer(w.p, b.refusal(now))
	}
	clear(b.queue[len(keep):])
	b.queue = keep
	if len(b.queue) == 0 {
		b.queue = nil
	}
	b.armWait(h, now)
}

// armWait sets the wait timer to the earliest deadline of the queue, or
// the end of the lock-delay the queue waits through if that comes first.
func (b *lockBehavior) armWait(h *Host, now time.Time) {
	if len(b.queue) == 0 {
		if b.waitTimer != nil {
			b.waitTimer.Stop()
		}
		return
	}
	due := b.queue[0].deadline
	for _, w := range b.queue[1:] {
		if w.deadline.Before(due) {
			due = w.deadline
		}
	}
	if b.state.InDelayAt(now) && b.state.AvailableAt.Before(due) {
		due = b.state.AvailableAt
	}
	if b.waitTimer == nil {
		b.waitTimer = h.AfterFunc(due.Sub(now), &waitExpired{})
		return
	}
	b.waitTimer.Reset(due.Sub(now))
}

// abandon takes a waiter whose caller is gone out of the queue; if it was
// granted the lock and nobody else has been handed the lease since, the
// lease is released at once (and the next waiter granted).
func (b *lockBehavior) abandon(h *Host, op *acquireLock, now time.Time) {
	for i, w := range b.queue {
		if w.op == op {
			b.queue = append(b.queue[:i], b.queue[i+1:]...)
			if len(b.queue) == 0 {
				b.queue = nil
			}
			b.armWait(h, now)
			return
		}
	}
	if b.grantOp != op || !b.state.HeldAt(now) || b.state.LeaseID != op.grant.Lock.LeaseID {
		return
	}
	prev := b.state
	next, err := Release(prev, "", "", true, now)
	if err == nil {
		_ = b.persistRelease(h, prev, next, now) // not queued: it expires
	}
}

// persist writes next, and once committed updates the holder index and
// publishes ev. reserved: the grant holds a quota reservation (Reserve) that
// the commit turns into a holding, or a failure gives back.
func (b *lockBehavior) persist(h *Host, next LockRecord, ev string, now time.Time, reserved bool) error {
	prev := b.state
	// One allocation carries the mutation and everything its commit
	// callback needs (two records captured by a closure would be two more).
	c := &lockCommit{put: PutLock{Lock: next}, prev: prev, ev: ev, now: now, reserved: reserved,
		locks: b.locks, pub: h.sys.cfg.Events, key: h.key, exp: b.entry()}
	err := h.Write(&c.put, func(err error) { c.granted(err) })
	if err != nil {
		return err
	}
	b.state = next
	if prev.ExpiresAt != next.ExpiresAt || prev.Holder == "" {
		b.scheduleHold(h)
	}
	return nil
}

// lockCommit is one lock write in flight: the mutation the writer applies
// (put, by pointer: no copy boxed into the Mutation) and what its commit
// callback needs. Read on the writer goroutine after the actor moved on;
// never changed after Write.
type lockCommit struct {
	put      PutLock
	prev     LockRecord // the state the write replaces
	ev       string     // the event a grant or renewal publishes
	now      time.Time
	reserved bool // a quota slot was reserved for the grant
	locks    *Locks
	pub      Publisher
	key      Key
	exp      *expiryItem // the lock's entry in the expiry schedule, kept with its record
}

// granted is persist's commit callback: on success the holder index and
// the event follow the committed grant or renewal; on failure the quota
// slot and the session hold taken for it are given back.
func (c *lockCommit) granted(err error) {
	next, prev, holdings := &c.put.Lock, &c.prev, c.locks.holdings
	if err != nil {
		if c.reserved {
			holdings.Unreserve(next.Holder)
		}
		if next.SessionID != "" && next.LeaseID != prev.LeaseID {
			c.locks.sessions.unhold(next.SessionID, c.key) // the grant never happened
		}
		return
	}
	if prev.Holder != "" && prev.LeaseID != next.LeaseID {
		holdings.Remove(prev.Holder, prev.Name, prev.LeaseID)
	}
	holdings.put(*next, c.exp, c.reserved)
	c.pub.Publish(lockEvent(c.ev, *next, c.now))
}

// released is persistRelease's commit callback.
func (c *lockCommit) released(err error) {
	if err != nil {
		return
	}
	c.locks.holdings.Remove(c.prev.Holder, c.prev.Name, c.prev.LeaseID)
	c.pub.Publish(lockEvent(EventLockReleased, c.prev, c.now))
}

// unholdSession forgets, in the session index, the session hold that prev
// was (it has ended).
func (b *lockBehavior) unholdSession(h *Host, prev LockRecord) {
	if prev.SessionID != "" && b.locks.sessions != nil {
		b.locks.sessions.unhold(prev.SessionID, h.key)
	}
}

// persistRelease writes the freed lock and hands it to the queue.
func (b *lockBehavior) persistRelease(h *Host, prev, next LockRecord, now time.Time) error {
	c := &lockCommit{put: PutLock{Lock: next}, prev: prev, now: now, locks: b.locks, pub: h.sys.cfg.Events, key: h.key}
	err := h.Write(&c.put, func(err error) { c.released(err) })
	if err != nil {
		return err
	}
	b.state = next
	b.grantOp = nil
	b.unholdSession(h, prev)
	b.locks.expiry.stop(b.exp) // the entry is kept: the next grant re-arms it
	b.serve(h, now)
	return nil
}

// expire ends a hold that ran out (its expiry has passed; the lock is free
// whether or not this runs) and hands the lock to the queue. The end is
// recorded: the freed record is written, and lock.expired is published once
// that write commits. So the expiry is decided once: a reloaded actor
// (after passivation, or a restart) finds the lock free, not a hold whose
// end it would announce again; and an expiry is announced only once it is
// durable, after the grant it ends. The holder index forgets the hold at
// once.
func (b *lockBehavior) expire(h *Host, now time.Time) error {
	prev := b.state
	next, _ := Expire(prev, now)
	pub, holdings := h.sys.cfg.Events, b.locks.holdings
	err := h.Write(PutLock{Lock: next}, func(err error) {
		if err == nil {
			// Again once committed: a renewal of the hold queued before
			// this write whose commit came after the removal below put its
			// record back (a writer stalled beyond the TTL); the index,
			// which activations read, must end as the store does.
			holdings.Remove(prev.Holder, prev.Name, prev.LeaseID)
			e := lockEvent(EventLockExpired, prev, now)
			e.AvailableAt = next.AvailableAt
			pub.Publish(e)
		}
	})
	if err != nil {
		return err
	}
	b.state = next
	b.grantOp = nil
	b.unholdSession(h, prev)
	b.locks.holdings.Remove(prev.Holder, prev.Name, prev.LeaseID)
	b.locks.expiry.stop(b.exp) // the entry is kept: the next grant re-arms it
	b.serve(h, now)
	return nil
}

func lockEvent(typ string, l LockRecord, now time.Time) Event {
	return Event{Type: typ, Kind: "lock", Name: l.Name, Holder: l.Holder, HolderID: l.HolderID, LeaseID: l.LeaseID,
		SessionID: l.SessionID, FencingToken: l.Token, ExpiresAt: l.ExpiresAt, Metadata: l.Metadata, Time: now}
}

func newLease() string { return uuid.NewString() }
