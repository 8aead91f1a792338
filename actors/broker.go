package actors

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// EventLagged is the last event of a subscription that fell behind: the
// broker closes the subscription right after it.
const EventLagged = "lagged"

// EventLockState is the first event of a lock watch: the lock's current
// state (holder empty when the lock is available). The broker never
// publishes it; the watch handler makes it.
const EventLockState = "lock.state"

// Broker is the Publisher that fans events out to subscribers. It numbers
// every event (Seq), filters per subscriber by kind, name and owner, and
// never blocks the publisher: each subscriber has a bounded queue, and one
// that is full gets a final lagged event and is closed.
//
// mu guards seq, subs and closed, and is held while an event is queued for
// every subscriber, so that each subscriber sees events in Seq order.
// Queueing is an append under the subscriber's own mutex (never held for
// long: Take only swaps the queue out), so the critical section is short and
// bounded by the number of subscribers.
type Broker struct {
	buffer int

	mu     sync.Mutex
	seq    uint64
	subs   map[*Subscription]struct{}
	closed bool

	subscribers atomic.Int64
	published   atomic.Uint64
	delivered   atomic.Uint64
	dropped     atomic.Uint64 // subscribers cut off as lagged
	now         func() time.Time
}

// BrokerOptions tune a Broker.
type BrokerOptions struct {
	// Buffer is the number of events a subscriber may be behind before it is
	// cut off (default DefaultEventBuffer).
	Buffer int
	// Now is the clock of lagged events (default time.Now).
	Now func() time.Time
}

var _ Publisher = (*Broker)(nil)

// NewBroker returns a broker with no subscribers.
func NewBroker(o BrokerOptions) *Broker {
	if o.Buffer <= 0 {
		o.Buffer = DefaultEventBuffer
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Broker{buffer: o.Buffer, subs: map[*Subscription]struct{}{}, now: o.Now}
}

// Filter selects the events of a subscription and what the subscriber may
// see of them.
type Filter struct {
	Kind   string // "" (every kind), lock, semaphore, session, flag, config or limit
	Prefix string // name prefix ("" for every name)
	Name   string // exact name ("" for every name)
	// Login and Admin say who subscribes. Locks and semaphores are one
	// shared namespace: everybody sees their events, but the lease id (and
	// holder and session ids) only go to the holder and the admin. Events of
	// the other kinds go to their owner and the admin only.
	Login string
	Admin bool
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
	if !f.Admin && !sharedKind(e.Kind) && e.Owner != f.Login {
		return false
	}
	return true
}

// sharedKind: locks and semaphores are one namespace shared by every user,
// whose events everybody sees (lease and holder ids aside).
func sharedKind(kind string) bool { return kind == "lock" || kind == "semaphore" }

// Visible returns e as the subscriber may see it: without the lease id, the
// holder id and the session id unless the subscriber holds the lock or is
// the admin.
func (f *Filter) Visible(e Event) Event {
	if (e.LeaseID != "" || e.HolderID != "" || e.SessionID != "") && !f.Admin && e.Holder != f.Login {
		e.LeaseID, e.HolderID, e.SessionID = "", "", ""
	}
	return e
}

// Subscription is one subscriber's stream of events. Its queue grows only
// with what the subscriber has not read yet (at most Buffer events and the
// lagged event), so an idle subscription costs a few hundred bytes.
type Subscription struct {
	b     *Broker
	f     Filter
	ready chan struct{} // capacity 1: there is something to Take, or the subscription ended

	// mu guards queue, done and lagged. Lock order: Broker.mu, then mu.
	mu     sync.Mutex
	queue  []Event
	done   bool
	lagged bool
}

// Ready is signalled when events are queued or the subscription ends; then
// call Take.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Take appends the queued events (in Seq order) to buf and reports whether
// the subscription has ended: then nothing follows them (the last one is
// the lagged event if the subscriber was cut off).
func (s *Subscription) Take(buf []Event) ([]Event, bool) {
	s.mu.Lock()
	buf = append(buf, s.queue...)
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

// Close ends the subscription (idempotent). Events already queued may still
// be taken.
func (s *Subscription) Close() {
	b := s.b
	b.mu.Lock()
	b.removeLocked(s)
	b.mu.Unlock()
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
	s := &Subscription{b: b, f: f, ready: make(chan struct{}, 1)}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	b.subs[s] = struct{}{}
	b.subscribers.Add(1)
	return s, nil
}

func (b *Broker) removeLocked(s *Subscription) {
	if _, ok := b.subs[s]; !ok {
		return
	}
	delete(b.subs, s)
	s.mu.Lock()
	s.done = true
	s.mu.Unlock()
	s.signal()
	b.subscribers.Add(-1)
}

// Publish implements Publisher: it numbers e and queues it for every
// matching subscriber without blocking.
func (b *Broker) Publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.seq++
	e.Seq = b.seq
	b.published.Add(1)
	for s := range b.subs {
		if !s.f.allows(&e) {
			continue
		}
		s.mu.Lock()
		if len(s.queue) < b.buffer {
			s.queue = append(s.queue, s.f.Visible(e))
			s.mu.Unlock()
			b.delivered.Add(1)
			s.signal()
			continue
		}
		// Cut off: the lagged event names the first event it misses.
		s.queue = append(s.queue, Event{Seq: e.Seq, Type: EventLagged, Time: b.now().UTC()})
		s.lagged = true
		s.mu.Unlock()
		b.dropped.Add(1)
		b.removeLocked(s)
	}
}

// Seq is the number of the last event published.
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
	for s := range b.subs {
		b.removeLocked(s)
	}
}

// BrokerStats are the broker's counters.
type BrokerStats struct {
	Subscribers int64  // current subscribers
	Published   uint64 // events published
	Delivered   uint64 // events handed to subscribers
	Dropped     uint64 // subscribers cut off as lagged
}

// Stats returns the broker's counters.
func (b *Broker) Stats() BrokerStats {
	return BrokerStats{
		Subscribers: b.subscribers.Load(),
		Published:   b.published.Load(),
		Delivered:   b.delivered.Load(),
		Dropped:     b.dropped.Load(),
	}
}
