package actors

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Events that end or start a stream rather than report a change. The broker
// makes lagged, revoked and reset; the watch handlers make lock.state and
// config.state (EventConfigState).
const (
	// EventLagged is the last event of a subscription that fell behind: the
	// broker closes the subscription right after it.
	EventLagged = "lagged"
	// EventLockState is the first event of a lock watch: the lock's current
	// state (holder empty when the lock is available).
	EventLockState = "lock.state"
	// EventRevoked is the last event of a subscription whose credentials no
	// longer hold (Subscription.Revoke): it replaces whatever was queued.
	EventRevoked = "revoked"
	// EventReset is the first event of a subscription that was asked to
	// resume (Broker.Resume) where it could not: events may have been missed.
	EventReset = "reset"
)

// Broker is the Publisher that fans events out to subscribers. It never
// blocks the publisher: each subscriber has a bounded queue, and one that is
// full gets a final lagged event and is closed.
//
// Numbering. Events are numbered per visibility scope, so that a stream's
// numbers reveal nothing about what its subscriber may not see: a user's
// subscriptions number the events that user may see (every lock and
// semaphore event and the user's own session, flag, config and limit
// events: 1, 2, 3, … across the
// user's streams), the admin's number every event. An unfiltered stream's
// numbers are consecutive; a kind or prefix filter leaves gaps only for
// events of the subscriber's own scope. Event.Seq of a delivered event is
// its number in the subscriber's scope; ID renders it with the broker's
// epoch, a random name of this broker's numbering, for SSE ids.
//
// Fan-out. Subscriptions are indexed by what they can see: lock and
// semaphore events go to the subscriptions of every lock and semaphore and
// to the watchers of that name; an owner's session, flag, config and limit
// events go to that owner's subscriptions, the admin's, and the watchers of
// that one owner's resource (a filter with an owned Kind, a Name and an
// Owner: a config watch). Publishing costs O(subscriptions indexed under
// the event), never O(all subscriptions).
//
// Values. A config event carries the version's value and description
// (Event.Value, up to 100 KiB) for the subscriptions that ask for them
// (Filter.Values); each of those may have at most ValueBytes of values
// queued, or it is cut off as lagged. The replay buffer keeps no values.
//
// Resuming. The broker keeps the last Replay events; Resume starts a
// subscription with the events after a given id that it may see (numbered
// as they were), or with a reset event when they are not all kept.
//
// mu guards everything below it, and is held while an event is numbered and
// queued for its subscribers, so that each subscriber sees events in order.
// Queueing is an append under the subscriber's own mutex (never held for
// long: Take only swaps the queue out), so the critical section is short
// and bounded by the number of subscriptions indexed under the event.
type Broker struct {
	buffer     int
	valueBytes int    // BrokerOptions.ValueBytes
	epoch      string // names this broker's numbering in ids
	now        func() time.Time

	mu      sync.Mutex
	seq     uint64                 // events published: the admin's scope
	lockSeq uint64                 // lock and semaphore events published: every user's scope has them
	scopes  map[string]*scope      // by owner (user id)
	all     subSet                 // every open subscription
	locks   subSet                 // lock and semaphore events of every name
	watch   map[string]subSet      // lock and semaphore events of one name (Filter.Name)
	owned   map[watchedName]subSet // events of one owner's one flag, config key or limit (Filter.watches)
	admins  subSet                 // every owner's session, flag, config and limit events
	ring    []Event                // the last events published (Seq: the admin's number), oldest at ringAt when full
	ringAt  int
	closed  bool

	subscribers atomic.Int64
	published   atomic.Uint64
	delivered   atomic.Uint64
	dropped     atomic.Uint64 // subscribers cut off as lagged
	revoked     atomic.Uint64 // subscribers ended by Revoke
	examined    atomic.Uint64 // subscriptions looked at by Publish (tests check the index)
}

// scope is one user's numbering and the user's subscriptions to owner
// events.
type scope struct {
	seq  uint64 // the owner's flag, config and limit events published
	subs subSet // subscriptions that take the owner's flag, config and limit events (nil until one does)
}

type subSet map[*Subscription]struct{}

// watchedName names one owner's resource of one kind: the index of the
// subscriptions that watch it.
type watchedName struct{ kind, owner, name string }

// BrokerOptions tune a Broker.
type BrokerOptions struct {
	// Buffer is the number of events a subscriber may be behind before it is
	// cut off (default DefaultEventBuffer). A resumed subscription replays at
	// most Buffer events.
	Buffer int
	// ValueBytes bounds the bytes of config values (Event.Value) queued for
	// one subscriber that asked for them (Filter.Values); one that falls
	// further behind is cut off like one over Buffer (default
	// DefaultEventValueBytes). A config value is up to 100 KiB: without it a
	// slow watcher could hold Buffer of them.
	ValueBytes int
	// Replay is the number of recent events kept for Resume (default
	// DefaultEventReplay).
	Replay int
	// Now is the clock of lagged, revoked and reset events (default
	// time.Now).
	Now func() time.Time
}

var _ Publisher = (*Broker)(nil)

// NewBroker returns a broker with no subscribers and a random epoch.
func NewBroker(o BrokerOptions) *Broker {
	if o.Buffer <= 0 {
		o.Buffer = DefaultEventBuffer
	}
	if o.Replay <= 0 {
		o.Replay = DefaultEventReplay
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ValueBytes <= 0 {
		o.ValueBytes = DefaultEventValueBytes
	}
	var e [4]byte
	_, _ = rand.Read(e[:]) // never fails (crypto/rand)
	return &Broker{
		buffer: o.Buffer, valueBytes: o.ValueBytes, epoch: hex.EncodeToString(e[:]), now: o.Now,
		scopes: map[string]*scope{}, all: subSet{}, locks: subSet{}, watch: map[string]subSet{},
		owned: map[watchedName]subSet{}, admins: subSet{},
		ring: make([]Event, 0, o.Replay),
	}
}

// Filter selects the events of a subscription and what the subscriber may
// see of them.
type Filter struct {
	Kind   string // "" (every kind), lock, semaphore, session, flag, config or limit
	Prefix string // name prefix ("" for every name)
	Name   string // exact name ("" for every name)
	// Owner is the exact owner (a user id) of the session, flag, config and
	// limit events ("" for every owner the subscriber may see). With an owned Kind
	// and a Name it makes a watch of one resource, indexed under it alone.
	Owner string
	// Values asks for the values of config events (Event.Value,
	// Description): a config watch. Without it they are left out.
	Values bool
	// Login (the subscriber's user id, as events' Owner and Holder are)
	// and Admin say who subscribes. Locks and semaphores are one shared
	// namespace: everybody sees their events, but the lease id (and the
	// holder and session ids) only go to the holder and the admin. Events
	// of the other kinds (sessions included) go to their owner and the
	// admin only.
	Login string
	Admin bool
}

// sees reports whether the subscriber may see e at all (filters aside):
// the events its scope numbers.
func (f *Filter) sees(e *Event) bool {
	return f.Admin || sharedKind(e.Kind) || e.Owner == f.Login
}

// allows reports whether e passes the filter (the lease id aside).
func (f *Filter) allows(e *Event) bool {
	if f.Kind != "" && e.Kind != f.Kind {
		return false
	}
	if f.Name != "" && e.Name != f.Name {
		return false
	}
	if f.Prefix != "" && !strings.HasPrefix(e.Name, f.Prefix) {
		return false
	}
	if f.Owner != "" && !sharedKind(e.Kind) && e.Owner != f.Owner {
		return false
	}
	return f.sees(e)
}

// sharedKind: locks and semaphores are one namespace shared by every user,
// whose events everybody sees (lease, holder and session ids aside).
func sharedKind(kind string) bool { return kind == "lock" || kind == "semaphore" }

// locksWanted, ownedWanted and watches say which index the subscription is
// under: the shared kinds' (locks, semaphores), the owner's, or watches
// (one owner's resource), which excludes the other two.
func (f *Filter) locksWanted() bool { return f.Kind == "" || sharedKind(f.Kind) }
func (f *Filter) ownedWanted() bool { return !sharedKind(f.Kind) }
func (f *Filter) watches() (watchedName, bool) {
	if f.Kind == "" || sharedKind(f.Kind) || f.Name == "" || f.Owner == "" {
		return watchedName{}, false
	}
	return watchedName{f.Kind, f.Owner, f.Name}, true
}

// Visible returns e as the subscriber may see it: without the lease id, the
// holder id and the session id unless the subscriber holds the lock (or
// slot) or is the admin; without config values unless it asked for them
// (Values).
func (f *Filter) Visible(e Event) Event {
	if (e.LeaseID != "" || e.HolderID != "" || e.SessionID != "") && !f.Admin && e.Holder != f.Login {
		e.LeaseID, e.HolderID, e.SessionID = "", "", ""
	}
	if !f.Values {
		e.Value, e.Description = nil, ""
	}
	return e
}

// Subscription is one subscriber's stream of events. Its queue grows only
// with what the subscriber has not read yet (at most Buffer events and the
// lagged event), so an idle subscription costs a few hundred bytes.
type Subscription struct {
	b     *Broker
	f     Filter
	scope *scope        // the subscriber's numbering; nil for the admin
	ready chan struct{} // capacity 1: there is something to Take, or the subscription ended
	open  bool          // registered with the broker; guarded by Broker.mu

	// mu guards queue, valueBytes, done and lagged. Lock order: Broker.mu,
	// then mu.
	mu         sync.Mutex
	queue      []Event
	valueBytes int // of the queued events' values
	done       bool
	lagged     bool
}

// Ready is signalled when events are queued or the subscription ends; then
// call Take.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Take appends the queued events (in order) to buf and reports whether the
// subscription has ended: then nothing follows them (the last one is the
// lagged or revoked event if it ended for that).
func (s *Subscription) Take(buf []Event) ([]Event, bool) {
	s.mu.Lock()
	buf = append(buf, s.queue...)
	s.valueBytes = 0
	if cap(s.queue) > 256 {
		s.queue = nil // a burst is over: give its memory back
	} else {
		clear(s.queue)
		s.queue = s.queue[:0]
	}
	done := s.done
	s.mu.Unlock()
	return buf, done
}

// Lagged reports whether the subscription was cut off for falling behind.
func (s *Subscription) Lagged() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lagged
}

// Filter is the subscription's filter.
func (s *Subscription) Filter() Filter { return s.f }

// Position is the number, in the subscription's scope, of the last event
// published so far: every event queued from now on is numbered higher.
func (s *Subscription) Position() uint64 {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.b.positionLocked(s)
}

// ID renders the number seq of this broker's scopes as an SSE event id:
// "<epoch>-<seq>". Resume accepts it back.
func (b *Broker) ID(seq uint64) string { return string(b.AppendID(nil, seq)) }

// AppendID appends ID(seq) to dst.
func (b *Broker) AppendID(dst []byte, seq uint64) []byte {
	dst = append(dst, b.epoch...)
	dst = append(dst, '-')
	return strconv.AppendUint(dst, seq, 10)
}

// parseID returns the number of an id of this broker (ok false for an id of
// another broker, a restarted server's or a malformed one).
func (b *Broker) parseID(id string) (uint64, bool) {
	ep, n, ok := strings.Cut(id, "-")
	if !ok || ep != b.epoch {
		return 0, false
	}
	seq, err := strconv.ParseUint(n, 10, 64)
	return seq, err == nil
}

// Close ends the subscription (idempotent). Events already queued may still
// be taken.
func (s *Subscription) Close() {
	b := s.b
	b.mu.Lock()
	b.removeLocked(s)
	b.mu.Unlock()
}

// Revoke ends the subscription with a final revoked event, which replaces
// the events queued and not taken yet: nothing published for it after the
// call is delivered. It does nothing if the subscription has ended.
func (s *Subscription) Revoke() {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if !s.open {
		return
	}
	ev := Event{Seq: b.positionLocked(s), Type: EventRevoked, Time: b.now().UTC()}
	s.mu.Lock()
	clear(s.queue)
	s.queue = append(s.queue[:0], ev)
	s.valueBytes = 0
	s.mu.Unlock()
	b.revoked.Add(1)
	b.removeLocked(s)
}

func (s *Subscription) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Subscribe registers a subscriber. Events published after it returns are
// delivered (if they pass f). It fails with ErrClosed once the broker is
// closed.
func (b *Broker) Subscribe(f Filter) (*Subscription, error) {
	return b.subscribe(f, "", false)
}

// Resume is Subscribe for a subscriber that continues another stream: last
// is the id of the last event it received (SSE's Last-Event-ID). The
// subscription starts with the events after last that f allows, numbered as
// they were, if the broker still keeps all of them (the last Replay events
// published) and they are at most Buffer; otherwise (or for an id of
// another broker) it starts with a reset event, numbered as the
// subscriber's position, and continues from now. Either way nothing is
// delivered twice or out of order, and nothing is skipped without a reset.
// Replayed config events carry no values (Filter.Values): the broker does
// not keep them.
func (b *Broker) Resume(f Filter, last string) (*Subscription, error) {
	return b.subscribe(f, last, true)
}

func (b *Broker) subscribe(f Filter, last string, resume bool) (*Subscription, error) {
	s := &Subscription{b: b, f: f, ready: make(chan struct{}, 1)}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	if !f.Admin {
		s.scope = b.scopeLocked(f.Login)
	}
	if resume {
		if evs, ok := b.replayLocked(s, last); ok {
			s.queue = evs
		} else {
			s.queue = []Event{{Seq: b.positionLocked(s), Type: EventReset, Time: b.now().UTC()}}
		}
		if len(s.queue) > 0 {
			s.signal()
		}
	}
	b.addLocked(s)
	return s, nil
}

func (b *Broker) scopeLocked(owner string) *scope {
	sc := b.scopes[owner]
	if sc == nil {
		sc = &scope{}
		b.scopes[owner] = sc
	}
	return sc
}

// positionLocked is the number of the last event of s's scope.
func (b *Broker) positionLocked(s *Subscription) uint64 {
	if s.scope == nil {
		return b.seq
	}
	return b.lockSeq + s.scope.seq
}

// replayLocked returns the events after id last that s may receive,
// numbered in its scope, or false if they cannot all be had.
func (b *Broker) replayLocked(s *Subscription, last string) ([]Event, bool) {
	from, ok := b.parseID(last)
	n := b.positionLocked(s)
	if !ok || from > n {
		return nil, false
	}
	// Walk back from the newest event, counting down the scope's numbers,
	// until the event numbered from+1 has been seen.
	var out []Event
	for i := len(b.ring) - 1; i >= 0 && n > from; i-- {
		e := &b.ring[(b.ringAt+i)%len(b.ring)]
		if !s.f.sees(e) {
			continue
		}
		if s.f.allows(e) {
			if len(out) == b.buffer {
				return nil, false
			}
			v := s.f.Visible(*e)
			v.Seq = n
			out = append(out, v)
		}
		n--
	}
	if n != from {
		return nil, false // events after last are no longer kept
	}
	slices.Reverse(out)
	return out, true
}

// addLocked indexes s by what it can see.
func (b *Broker) addLocked(s *Subscription) {
	s.open = true
	b.all[s] = struct{}{}
	b.subscribers.Add(1)
	if k, ok := s.f.watches(); ok {
		w := b.owned[k]
		if w == nil {
			w = subSet{}
			b.owned[k] = w
		}
		w[s] = struct{}{}
		return
	}
	if s.f.locksWanted() {
		if s.f.Name != "" {
			w := b.watch[s.f.Name]
			if w == nil {
				w = subSet{}
				b.watch[s.f.Name] = w
			}
			w[s] = struct{}{}
		} else {
			b.locks[s] = struct{}{}
		}
	}
	if s.f.ownedWanted() {
		if s.scope == nil {
			b.admins[s] = struct{}{}
		} else {
			if s.scope.subs == nil {
				s.scope.subs = subSet{}
			}
			s.scope.subs[s] = struct{}{}
		}
	}
}

func (b *Broker) removeLocked(s *Subscription) {
	if !s.open {
		return
	}
	s.open = false
	delete(b.all, s)
	delete(b.locks, s)
	delete(b.admins, s)
	if s.scope != nil {
		delete(s.scope.subs, s)
	}
	if w := b.watch[s.f.Name]; w != nil {
		delete(w, s)
		if len(w) == 0 {
			delete(b.watch, s.f.Name)
		}
	}
	if k, ok := s.f.watches(); ok {
		if w := b.owned[k]; w != nil {
			delete(w, s)
			if len(w) == 0 {
				delete(b.owned, k)
			}
		}
	}
	s.mu.Lock()
	s.done = true
	s.mu.Unlock()
	s.signal()
	b.subscribers.Add(-1)
}

// Publish implements Publisher: it numbers e and queues it for every
// subscriber that may receive it, without blocking.
func (b *Broker) Publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.seq++
	e.Seq = b.seq
	b.published.Add(1)
	b.rememberLocked(e)
	var n int
	if sharedKind(e.Kind) {
		b.lockSeq++
		n = b.fanOutLocked(&e, b.locks) + b.fanOutLocked(&e, b.watch[e.Name])
	} else {
		sc := b.scopeLocked(e.Owner)
		sc.seq++
		n = b.fanOutLocked(&e, sc.subs) + b.fanOutLocked(&e, b.admins) +
			b.fanOutLocked(&e, b.owned[watchedName{e.Kind, e.Owner, e.Name}])
	}
	b.examined.Add(uint64(n))
}

// rememberLocked keeps e among the last Replay events, without its config
// value (Replay of them would be up to 100 KiB each).
func (b *Broker) rememberLocked(e Event) {
	e.Value, e.Description = nil, ""
	if len(b.ring) < cap(b.ring) {
		b.ring = append(b.ring, e)
		return
	}
	b.ring[b.ringAt] = e
	b.ringAt = (b.ringAt + 1) % len(b.ring)
}

// fanOutLocked queues e for the subscriptions of set it passes and returns
// how many it looked at. One with Buffer events or ValueBytes of values
// queued is cut off instead. A subscription cut off is removed from set
// meanwhile, which ranging over a map allows.
func (b *Broker) fanOutLocked(e *Event, set subSet) int {
	n := len(set)
	for s := range set {
		if !s.f.allows(e) {
			continue
		}
		v := s.f.Visible(*e)
		v.Seq = b.positionLocked(s)
		s.mu.Lock()
		if len(s.queue) < b.buffer && s.valueBytes+len(v.Value) <= b.valueBytes {
			s.queue = append(s.queue, v)
			s.valueBytes += len(v.Value)
			s.mu.Unlock()
			b.delivered.Add(1)
			s.signal()
			continue
		}
		// Cut off: the lagged event names the first event it misses.
		s.queue = append(s.queue, Event{Seq: v.Seq, Type: EventLagged, Time: b.now().UTC()})
		s.lagged = true
		s.mu.Unlock()
		b.dropped.Add(1)
		b.removeLocked(s)
	}
	return n
}

// Seq is the number of events published (the admin's scope).
func (b *Broker) Seq() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seq
}

// Close ends every subscription; later Subscribe calls fail with ErrClosed
// and later events are discarded.
func (b *Broker) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	for s := range b.all {
		b.removeLocked(s)
	}
}

// BrokerStats are the broker's counters.
type BrokerStats struct {
	Subscribers int64  // current subscribers
	Published   uint64 // events published
	Delivered   uint64 // events handed to subscribers
	Dropped     uint64 // subscribers cut off as lagged
	Revoked     uint64 // subscribers ended by Revoke
}

// Stats returns the broker's counters.
func (b *Broker) Stats() BrokerStats {
	return BrokerStats{
		Subscribers: b.subscribers.Load(),
		Published:   b.published.Load(),
		Delivered:   b.delivered.Load(),
		Dropped:     b.dropped.Load(),
		Revoked:     b.revoked.Load(),
	}
}
