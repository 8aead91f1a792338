package actors

import (
	"container/heap"
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Sessions: a client keeps one session alive (a keepalive every so often)
// and ties locks (and semaphore slots) to it instead of renewing each; they
// are held while the session lives. When the session expires (no keepalive
// within its TTL) or is closed, every hold of it ends at once: closed →
// released, expired → expired (with the session's lock-delay). Like etcd's
// leases and Consul's sessions.
//
// Who owns what:
//   - The session actor (one per session id, KindSession) owns the durable
//     record: creation, keepalive, close and expiry are its operations, each
//     a write answered after its commit.
//   - The session index (sessionIndex, owned by Sessions, guarded by its
//     mutex) is the authority on liveness: a session is live while its
//     entry is not ended and the clock, read under the index's mutex, is
//     before its expiry. The session actor extends it (keepalive) and ends
//     it (close, expiry) under that mutex; lock actors read it and add their
//     holds under it (hold), so a hold is never added to a session whose end
//     has been decided, and no lock sees a session expired that a keepalive
//     extended first.
//   - Lock and semaphore actors own their holds; the index only lists which
//     resources hold a session (holds), so that the session's end can tell
//     them (sessionEnded) and they can answer (holdEnded). The session's row
//     is removed only once every hold has answered: their writes were queued
//     before the removal, so after a crash a hold never outlives the record
//     of its session's expiry.

// SessionRecord is the durable state of one session.
type SessionRecord struct {
	ID    string // a UUID
	Owner string // the user that created it
	TTL   time.Duration
	// LockDelay applies to the session's holds when the session expires
	// (lock-delay: nobody is granted them before their expiry plus it).
	LockDelay time.Duration
	ExpiresAt time.Time
	CreatedAt time.Time
}

// SessionStore reads the durable sessions. Package persistence implements
// it.
type SessionStore interface {
	// LoadSession loads a session; ok is false when there is none.
	LoadSession(id string) (SessionRecord, bool, error)
	// Sessions calls fn for every stored session, expired ones included
	// (recovery at start).
	Sessions(fn func(SessionRecord)) error
}

// SessionConfig configures sessions.
type SessionConfig struct {
	Store SessionStore
	// MaxPerUser caps the sessions one user has at once (0:
	// DefaultMaxSessionsPerUser; negative: no cap).
	MaxPerUser int
}

// Sessions is the entry point for sessions: typed calls to the session's
// actor, and the session index that locks and semaphores consult.
type Sessions struct {
	sys   *System
	store SessionStore
	idx   *sessionIndex
}

// NewSessions registers the session kind with sys. Register it before the
// kinds whose holds refer to sessions (NewLocks), so that it recovers first.
func NewSessions(sys *System, cfg SessionConfig) *Sessions {
	if cfg.MaxPerUser == 0 {
		cfg.MaxPerUser = DefaultMaxSessionsPerUser
	}
	s := &Sessions{sys: sys, store: cfg.Store, idx: &sessionIndex{now: sys.Now, max: cfg.MaxPerUser,
		byID: map[string]*sessionEntry{}, owned: map[string]int{}}}
	sys.Register(KindSpec{
		Kind:    KindSession,
		New:     func(k Key) Behavior { return &sessionBehavior{id: k.Name, s: s} },
		Recover: s.recover,
		Start:   s.start,
	})
	return s
}

func sessionKey(id string) Key { return Key{Kind: KindSession, Name: id} }

// recover loads every stored session into the index (quota counts, and the
// liveness locks consult while they recover).
func (s *Sessions) recover(time.Time) (int, error) {
	n := 0
	err := s.store.Sessions(func(r SessionRecord) {
		n++
		s.idx.load(r)
	})
	if err != nil {
		return 0, fmt.Errorf("recover sessions: %w", err)
	}
	return n, nil
}

// start arms every session's expiry timer, once the holds of every kind are
// indexed: a session that expired while no server ran ends at once, and its
// holds with it.
func (s *Sessions) start(now time.Time) {
	for _, id := range s.idx.ids() {
		v, _ := s.idx.view(id)
		s.sys.AfterFunc(sessionKey(id), v.ExpiresAt.Sub(now), &sessionExpire{})
	}
}

// Sentinel errors of sessions.
var (
	// ErrSessionNotFound answers an operation on a session that does not
	// exist, has expired or been closed, or is another user's (404).
	ErrSessionNotFound = caseOf(ErrNotFound, "Session not found or not owned by caller")
	// ErrSessionLock refuses a renew of a lock held by a session: it lives
	// as long as the session (422).
	ErrSessionLock = NewError(CodeInvalid, "this lock is held by a session: keep the session alive instead of renewing the lock")
)

// Create opens a session of owner that lives ttl after each keepalive;
// lockDelay is the lock-delay of its holds when it expires. ErrQuota beyond
// SessionConfig.MaxPerUser. Answered after the session is committed.
func (s *Sessions) Create(ctx context.Context, owner string, ttl, lockDelay time.Duration) (SessionRecord, error) {
	id := newLease()
	op := &createSession{owner: owner, ttl: ttl, lockDelay: lockDelay}
	return answer(s.sys.call(ctx, sessionKey(id), op), &op.rec)
}

// KeepAlive sets the session's expiry to now + its TTL.
// ErrSessionNotFound when it is not owner's live session.
func (s *Sessions) KeepAlive(ctx context.Context, id, owner string) (SessionRecord, error) {
	op := &keepaliveSession{owner: owner}
	return answer(s.sys.call(ctx, sessionKey(id), op), &op.rec)
}

// Close ends owner's session (admin: anyone's): every hold of it is
// released at once, and the answer, the number of holds released, comes
// once those releases and the session's removal are committed.
// ErrSessionNotFound when it is not a live session of owner's.
func (s *Sessions) Close(ctx context.Context, id, owner string, admin bool) (int, error) {
	op := &closeSession{owner: owner, admin: admin}
	return answer(s.sys.call(ctx, sessionKey(id), op), &op.released)
}

// SessionState is a live session as listed: its record and the names of
// the locks and semaphores it holds.
type SessionState struct {
	SessionRecord
	Locks      []string
	Semaphores []string
}

// List returns owner's live sessions ("" : everybody's), sorted by id,
// from the index (no actor, no scan of the store): all of them (ListPage is
// a page).
func (s *Sessions) List(owner string) []SessionState { return s.idx.list(owner) }

// ListPage is one page of owner's live sessions ("": everybody's) by id
// after q.AfterName (sessions are ordered by id whoever owns them), with
// the count of them all.
func (s *Sessions) ListPage(owner string, q PageQuery) Page[SessionState] {
	return s.idx.page(owner, q)
}

// Live is the number of sessions in the index (the sessions gauge).
func (s *Sessions) Live() int { return s.idx.len() }

// Session operations.
type (
	createSession struct {
		owner          string
		ttl, lockDelay time.Duration
		rec            SessionRecord
	}
	keepaliveSession struct {
		owner string
		rec   SessionRecord
	}
	closeSession struct {
		owner    string
		admin    bool
		released int
	}
	// sessionExpire is sent by the session's expiry timer.
	sessionExpire struct{}
	// sessionEnded tells a lock (or semaphore) that the session id has
	// ended: closed (its holds are released) or expired.
	sessionEnded struct {
		id     string
		closed bool
	}
	// holdEnded answers sessionEnded: the resource key has ended its holds
	// of the session (ended: it had one).
	holdEnded struct {
		key   Key
		ended bool
	}
)

// Session event types.
const (
	EventSessionCreated = "session.created"
	EventSessionClosed  = "session.closed"
	EventSessionExpired = "session.expired"
)

// --- the session index ---

// SessionView is what a lock or semaphore sees of a session.
type SessionView struct {
	Owner     string
	ExpiresAt time.Time // when it ends: its expiry, or when it was closed
	LockDelay time.Duration
	Live      bool
	Closed    bool // ended by a close: its holds are released, not expired
}

// sessionIndex is the authority on session liveness (see the top of this
// file). now is the runtime clock, read under mu by every decision that
// depends on it.
type sessionIndex struct {
	now func() time.Time
	max int // sessions per owner (<= 0: no cap)
	// mu guards byID, owned and the entries.
	mu    sync.Mutex
	byID  map[string]*sessionEntry
	owned map[string]int // entries per owner (quota)
}

type sessionEntry struct {
	rec    SessionRecord
	ended  bool // expired or closed: its holds are being ended
	closed bool
	holds  map[Key]int // resources holding this session, with how many holds each
}

func (e *sessionEntry) live(now time.Time) bool { return !e.ended && now.Before(e.rec.ExpiresAt) }

func (e *sessionEntry) view(now time.Time) SessionView {
	return SessionView{Owner: e.rec.Owner, ExpiresAt: e.rec.ExpiresAt, LockDelay: e.rec.LockDelay,
		Live: e.live(now), Closed: e.closed}
}

// load adds a stored session (recovery).
func (x *sessionIndex) load(r SessionRecord) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.byID[r.ID]; !ok {
		x.owned[r.Owner]++
	}
	x.byID[r.ID] = &sessionEntry{rec: r, holds: map[Key]int{}}
}

// create adds a new session; ErrQuota when its owner has max already.
func (x *sessionIndex) create(r SessionRecord) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.max > 0 && x.owned[r.Owner] >= x.max {
		return ErrQuota.Withf("at most %d sessions per user", x.max)
	}
	x.owned[r.Owner]++
	x.byID[r.ID] = &sessionEntry{rec: r, holds: map[Key]int{}}
	return nil
}

// remove forgets a session (its removal committed, or its creation failed).
func (x *sessionIndex) remove(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.byID[id]
	if !ok {
		return
	}
	delete(x.byID, id)
	if x.owned[e.rec.Owner] <= 1 {
		delete(x.owned, e.rec.Owner)
	} else {
		x.owned[e.rec.Owner]--
	}
}

// reset makes the entry say what is durable (after a failed write), its
// holds kept.
func (x *sessionIndex) reset(r SessionRecord) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if e, ok := x.byID[r.ID]; ok {
		e.rec, e.ended, e.closed = r, false, false
		return
	}
	x.owned[r.Owner]++
	x.byID[r.ID] = &sessionEntry{rec: r, holds: map[Key]int{}}
}

// view reads a session; ok is false when the index has none.
func (x *sessionIndex) view(id string) (SessionView, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.byID[id]
	if !ok {
		return SessionView{}, false
	}
	return e.view(x.now()), true
}

// listView is how a listing shows a hold of a holder index (a LockView;
// x may be nil: no sessions): a hold under a session with its session's
// expiry, and not at all once its session has ended.
func (x *sessionIndex) listView(r *LockRecord) bool {
	if r.SessionID == "" {
		return true
	}
	if x == nil {
		return false
	}
	v, ok := x.view(r.SessionID)
	if !ok || !v.Live {
		return false
	}
	r.ExpiresAt = v.ExpiresAt
	return true
}

// hold records that k holds owner's live session id, and returns the
// session; ErrSessionNotFound when it is not owner's live session.
func (x *sessionIndex) hold(id, owner string, k Key) (SessionView, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.byID[id]
	if !ok || e.rec.Owner != owner || !e.live(x.now()) {
		return SessionView{}, ErrSessionNotFound
	}
	e.holds[k]++
	return e.view(x.now()), nil
}

// unhold forgets one hold of k on id (released, or its grant failed).
func (x *sessionIndex) unhold(id string, k Key) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if e, ok := x.byID[id]; ok {
		if e.holds[k] <= 1 {
			delete(e.holds, k)
		} else {
			e.holds[k]--
		}
	}
}

// addHold indexes a hold found at recovery, whatever the session's state
// (its end, when it comes, ends the hold).
func (x *sessionIndex) addHold(id string, k Key) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.byID[id]
	if ok {
		e.holds[k]++
	}
	return ok
}

// keepalive extends owner's live session to now + its TTL.
func (x *sessionIndex) keepalive(id string) (time.Time, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.byID[id]
	now := x.now()
	if !ok || !e.live(now) {
		return time.Time{}, false
	}
	e.rec.ExpiresAt = now.Add(e.rec.TTL)
	return e.rec.ExpiresAt, true
}

// endExpired ends the session if it has expired, and returns its holds.
func (x *sessionIndex) endExpired(id string) ([]Key, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.byID[id]
	if !ok || e.ended || x.now().Before(e.rec.ExpiresAt) {
		return nil, false
	}
	e.ended = true
	return keysOf(e.holds), true
}

// close ends the live session now, and returns its holds.
func (x *sessionIndex) close(id string) ([]Key, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.byID[id]
	now := x.now()
	if !ok || !e.live(now) {
		return nil, false
	}
	e.ended, e.closed = true, true
	e.rec.ExpiresAt = now
	return keysOf(e.holds), true
}

func keysOf(m map[Key]int) []Key {
	out := make([]Key, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func (x *sessionIndex) ids() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]string, 0, len(x.byID))
	for id := range x.byID {
		out = append(out, id)
	}
	return out
}

func (x *sessionIndex) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.byID)
}

// list returns owner's live sessions ("": everybody's), by id.
func (x *sessionIndex) list(owner string) []SessionState {
	var out []SessionState
	q := PageQuery{Limit: 1024}
	for {
		pg := x.page(owner, q)
		out = append(out, pg.Items...)
		if !pg.More || len(pg.Items) == 0 {
			return out
		}
		q.AfterName = pg.Items[len(pg.Items)-1].ID
	}
}

// page is one page of owner's live sessions ("": everybody's) by id after
// q.AfterName, with the count of them all. The index is a map by id: the
// page is the q.Limit+1 smallest ids after the position, kept in a bounded
// heap while the map is walked once (memory: the page, not the index).
func (x *sessionIndex) page(owner string, q PageQuery) Page[SessionState] {
	x.mu.Lock()
	defer x.mu.Unlock()
	now := x.now()
	var pg Page[SessionState]
	var h idHeap // max-heap of the smallest ids seen
	for _, e := range x.byID {
		if (owner != "" && e.rec.Owner != owner) || !e.live(now) {
			continue
		}
		pg.Total++
		if e.rec.ID <= q.AfterName {
			continue
		}
		if len(h) <= q.Limit {
			heap.Push(&h, e)
		} else if e.rec.ID < h[0].rec.ID {
			h[0] = e
			heap.Fix(&h, 0)
		}
	}
	if len(h) > q.Limit {
		pg.More = true
		heap.Pop(&h) // the largest: the first of the next page
	}
	es := []*sessionEntry(h)
	sort.Slice(es, func(i, j int) bool { return es[i].rec.ID < es[j].rec.ID })
	pg.Items = make([]SessionState, len(es))
	for i, e := range es {
		st := SessionState{SessionRecord: e.rec, Locks: []string{}, Semaphores: []string{}}
		for k := range e.holds {
			switch k.Kind {
			case KindLock:
				st.Locks = append(st.Locks, k.Name)
			case KindSemaphore:
				st.Semaphores = append(st.Semaphores, k.Name)
			}
		}
		sort.Strings(st.Locks)
		sort.Strings(st.Semaphores)
		pg.Items[i] = st
	}
	return pg
}

// idHeap is a max-heap of session entries by id.
type idHeap []*sessionEntry

func (h idHeap) Len() int           { return len(h) }
func (h idHeap) Less(i, j int) bool { return h[i].rec.ID > h[j].rec.ID }
func (h idHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *idHeap) Push(x any)        { *h = append(*h, x.(*sessionEntry)) }
func (h *idHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// --- the session actor ---

type sessionBehavior struct {
	id     string
	s      *Sessions
	rec    SessionRecord
	exists bool
	timer  Timer // expiry timer
	// activated is set after the first Activate (a later one is the
	// fall-back to durable state after a failed write).
	activated bool

	// The end of the session (close or expiry): the holds that have not
	// answered yet, how many of them ended a hold, and the closes waiting
	// for the end to be committed.
	ending   bool
	closed   bool
	pending  map[Key]bool
	released int
	closers  []parkedClose
}

type parkedClose struct {
	op *closeSession
	p  Parked
}

func (b *sessionBehavior) Activate(h *Host) error {
	r, ok, err := b.s.store.LoadSession(b.id)
	if err != nil {
		return err
	}
	b.rec, b.exists = r, ok
	if b.activated && ok {
		// Back on durable state after a failed write: the index follows.
		b.s.idx.reset(r)
		b.ending, b.closed, b.pending, b.released = false, false, nil, 0
	}
	if b.activated && b.closers != nil {
		for _, c := range b.closers {
			h.Answer(c.p, ErrUnavailable)
		}
		b.closers = nil
	}
	b.activated = true
	if ok {
		v, found := b.s.idx.view(b.id)
		if !found {
			b.s.idx.load(r)
			v, _ = b.s.idx.view(b.id)
		}
		b.arm(h, v.ExpiresAt.Sub(h.Now()))
	}
	return nil
}

// Passivatable: not while the session's end waits for its holds.
func (b *sessionBehavior) Passivatable(*Host) bool { return !b.ending }

func (b *sessionBehavior) arm(h *Host, d time.Duration) {
	if b.timer != nil {
		b.timer.Reset(d)
		return
	}
	b.timer = h.AfterFunc(d, &sessionExpire{})
}

func (b *sessionBehavior) Handle(h *Host, op any) error {
	now := h.Now()
	switch op := op.(type) {
	case *createSession:
		if b.exists {
			return NewError(CodeConflict, "session id in use") // a UUID collision: never
		}
		r := SessionRecord{ID: b.id, Owner: op.owner, TTL: op.ttl, LockDelay: op.lockDelay,
			ExpiresAt: now.Add(op.ttl), CreatedAt: now}
		if err := b.s.idx.create(r); err != nil {
			return err
		}
		idx, pub := b.s.idx, h.sys.cfg.Events
		err := h.Write(PutSession{Session: r}, func(err error) {
			if err != nil {
				idx.remove(r.ID)
				return
			}
			pub.Publish(sessionEvent(EventSessionCreated, r, now))
		})
		if err != nil {
			idx.remove(r.ID)
			return err
		}
		b.rec, b.exists = r, true
		b.arm(h, op.ttl)
		op.rec = r
		return nil
	case *keepaliveSession:
		if !b.exists || b.ending || b.rec.Owner != op.owner {
			return ErrSessionNotFound
		}
		exp, ok := b.s.idx.keepalive(b.id)
		if !ok {
			b.expire(h, now) // expired by the clock: end it now
			return ErrSessionNotFound
		}
		r := b.rec
		r.ExpiresAt = exp
		if err := h.Write(PutSession{Session: r}, nil); err != nil {
			return err
		}
		b.rec = r
		b.arm(h, exp.Sub(now))
		op.rec = r
		return nil
	case *closeSession:
		if !b.exists || (!op.admin && b.rec.Owner != op.owner) {
			return ErrSessionNotFound
		}
		if b.ending {
			if !b.closed {
				return ErrSessionNotFound // expiring
			}
			b.closers = append(b.closers, parkedClose{op: op, p: h.Park()}) // a retried close joins
			return nil
		}
		holds, ok := b.s.idx.close(b.id)
		if !ok {
			b.expire(h, now)
			return ErrSessionNotFound
		}
		b.closers = append(b.closers, parkedClose{op: op, p: h.Park()})
		b.end(h, holds, true, now)
		return nil
	case *sessionExpire:
		switch {
		case !b.exists:
		case b.ending && len(b.pending) == 0:
			b.finish(h, now) // a removal that could not be queued before
		case !b.ending:
			b.expire(h, now)
		}
		return nil
	case *holdEnded:
		if !b.ending || !b.pending[op.key] {
			return nil
		}
		delete(b.pending, op.key)
		if op.ended {
			b.released++
		}
		if len(b.pending) == 0 {
			b.finish(h, now)
		}
		return nil
	}
	return fmt.Errorf("session: unknown operation %T", op)
}

// expire ends the session if the index says it has expired; otherwise
// (a keepalive came first) re-arms the timer.
func (b *sessionBehavior) expire(h *Host, now time.Time) {
	holds, ok := b.s.idx.endExpired(b.id)
	if !ok {
		if v, found := b.s.idx.view(b.id); found && v.Live {
			b.arm(h, v.ExpiresAt.Sub(now)) // a keepalive came first
		}
		return
	}
	b.end(h, holds, false, now)
}

// end tells every resource holding the session that it ended; the row is
// removed once they have all answered (finish).
func (b *sessionBehavior) end(h *Host, holds []Key, closed bool, now time.Time) {
	b.ending, b.closed, b.released = true, closed, 0
	b.pending = make(map[Key]bool, len(holds))
	for _, k := range holds {
		b.pending[k] = true
		h.sys.send(k, &sessionEnded{id: b.id, closed: closed})
	}
	if b.timer != nil {
		b.timer.Stop()
	}
	if len(b.pending) == 0 {
		b.finish(h, now)
	}
}

// finish removes the session, once every hold's end is queued before the
// removal, and answers the closes waiting for it.
func (b *sessionBehavior) finish(h *Host, now time.Time) {
	r, typ := b.rec, EventSessionExpired
	if b.closed {
		typ = EventSessionClosed
	}
	idx, pub := b.s.idx, h.sys.cfg.Events
	err := h.Write(RemoveSession{ID: r.ID}, func(err error) {
		if err == nil {
			idx.remove(r.ID)
			pub.Publish(sessionEvent(typ, r, now))
		}
	})
	if err != nil {
		// Not queued (overloaded, closing): try again shortly (the
		// session is ended already: nothing holds it any more).
		for _, c := range b.closers {
			h.Answer(c.p, err)
		}
		b.closers = nil
		b.arm(h, expiryRetry)
		return
	}
	b.exists, b.ending, b.pending = false, false, nil
	for _, c := range b.closers {
		c.op.released = b.released
		h.Answer(c.p, nil)
	}
	b.closers = nil
}

func sessionEvent(typ string, r SessionRecord, now time.Time) Event {
	return Event{Type: typ, Kind: "session", Name: r.ID, Owner: r.Owner, ExpiresAt: r.ExpiresAt, Time: now}
}
