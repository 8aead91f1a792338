package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// clock is the time source of a Locker; tests inject a fake one.
type clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Locker holds one named lock for a process, in the style of etcd's
// concurrency.Mutex: TryLock or Lock(ctx) to take it, renewal in the
// background every TTL/3 while held, Done closed when the lock is lost,
// Unlock to release it.
//
// Mutual exclusion is per Locker, not per token: each Locker acquires with
// its own random holder id (NewHolderID; WithHolderID sets one), so two
// Lockers using the same token, in one process or on two hosts, exclude each
// other (the server answers 409 to the second, as to any other user). A
// "held" answer is taken as this Locker's own hold only when it names this
// Locker's holder id (a server without holder ids answers "held" to every
// request of the token: that is held by someone else).
//
// A Locker is safe for concurrent use.
type Locker struct {
	c        *Client
	name     string
	ttl      time.Duration
	holderID string // sent with every acquire; "" none
	clk      clock
	pollMin  time.Duration
	pollMax  time.Duration
	useWatch bool

	mu  sync.Mutex // guards cur
	cur *holding   // the current acquisition, nil before the first

	updates chan struct{} // capacity 1: a renewal attempt ended or the lock was lost (Updates)
}

// holding is one acquisition of the lock. lease and err change under
// Locker.mu; done is closed exactly once (closed guards it), when the lock is
// lost or unlocked.
type holding struct {
	lease    Lease
	deadline time.Time // local: send time of the last successful grant or renewal + TTL
	renewErr error     // the latest renewal attempt's error; nil after a success
	held     bool
	done     chan struct{}
	closed   bool
	err      error              // why it ended: nil after Unlock, wraps ErrLockLost when lost
	cancel   context.CancelFunc // stops the renewal goroutine
	stopped  chan struct{}      // closed when the renewal goroutine has returned
}

// LockerOption configures a Locker.
type LockerOption func(*Locker)

// WithPollInterval bounds the jittered backoff between attempts while Lock
// waits (default 100ms up to 2s).
func WithPollInterval(min, max time.Duration) LockerOption {
	return func(l *Locker) { l.pollMin, l.pollMax = min, max }
}

// WithoutWatch makes Lock poll only, without the /locks/{name}/watch stream
// it otherwise uses as a hint that the lock was released.
func WithoutWatch() LockerOption { return func(l *Locker) { l.useWatch = false } }

// WithHolderID sets the holder id the Locker acquires with, instead of a
// random one. Lockers given the same id (and token) are one holder on
// purpose: each takes the other's hold as its own (same lease and fencing
// token), and either's Unlock releases it for both. "" acquires without a
// holder id (the server's per-token re-entrance; every "held" answer is then
// taken as someone else's hold). The id must match ^[A-Za-z0-9._:@/+=-]{1,128}$
// (the server refuses others: TryLock and Lock return ErrValidation).
func WithHolderID(id string) LockerOption { return func(l *Locker) { l.holderID = id } }

// NewLocker returns a Locker for the named lock with the given TTL (whole
// seconds, at least 1s). It acquires with a random holder id
// (NewHolderID) unless WithHolderID sets one.
func NewLocker(c *Client, name string, ttl time.Duration, opts ...LockerOption) *Locker {
	l := &Locker{c: c, name: name, ttl: ttl, holderID: NewHolderID(), clk: realClock{},
		pollMin: 100 * time.Millisecond, pollMax: 2 * time.Second, useWatch: true, updates: make(chan struct{}, 1)}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Name returns the lock name.
func (l *Locker) Name() string { return l.name }

// HolderID returns the holder id the Locker acquires with ("" none).
func (l *Locker) HolderID() string { return l.holderID }

// ErrLeaseExpired is the cause (under ErrLockLost) of a loss by the lease's
// local deadline passing without a successful renewal, as opposed to a
// renewal the server refused.
var ErrLeaseExpired = errors.New("lease ran out without a successful renewal")

// TTL returns the lease's time-to-live.
func (l *Locker) TTL() time.Duration { return l.ttl }

// closedChan is returned by Done before the first acquisition.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Done returns a channel closed when the current acquisition ends: the lock
// was lost (Err then wraps ErrLockLost) or Unlock was called (Err nil).
// Before the first acquisition it returns a closed channel.
func (l *Locker) Done() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur == nil {
		return closedChan
	}
	return l.cur.done
}

// Err reports why the last acquisition ended: nil while held or after
// Unlock, an error wrapping ErrLockLost (and the cause) when it was lost.
func (l *Locker) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur == nil {
		return nil
	}
	return l.cur.err
}

// Lease returns the current lease (zero when not held). ExpiresAt is the
// server's expiry after the latest renewal.
func (l *Locker) Lease() Lease {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur == nil || !l.cur.held {
		return Lease{}
	}
	return l.cur.lease
}

// LeaseHealth is what a Locker knows of its current lease, for a holder that
// must stop acting before the lease can run out (Health).
type LeaseHealth struct {
	// Deadline is when the lease ends unless it is renewed, on this
	// process's clock: the time the last successful grant or renewal was
	// sent plus the TTL. The server granted it at some instant after that
	// send, so its own expiry (expires_at: grant time + TTL on its clock)
	// is no earlier, by the request's one-way latency and the server's
	// processing time: the server's expires_at minus the round trip's
	// uncertainty. Only this process's monotonic clock is read; the offset
	// between the two clocks does not matter, their rates are assumed equal
	// (a difference in rate over one TTL is the caller's margin to keep).
	// Zero when the lock is not held.
	Deadline time.Time
	// RenewErr is the error of the latest renewal attempt, nil when it
	// succeeded or none was made since the grant. An attempt that has no
	// answer within TTL/6 counts as failed (context.DeadlineExceeded), so a
	// server that stops answering shows here well before the deadline.
	RenewErr error
}

// Health returns the state of the current lease (zero when not held).
func (l *Locker) Health() LeaseHealth {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur == nil || !l.cur.held {
		return LeaseHealth{}
	}
	return LeaseHealth{Deadline: l.cur.deadline, RenewErr: l.cur.renewErr}
}

// Updates returns a channel that receives after every renewal attempt, and
// when the lock is lost or unlocked; read Health (or Done) then. Sends never
// block: several updates between two receives arrive as one.
func (l *Locker) Updates() <-chan struct{} { return l.updates }

func (l *Locker) notify() {
	select {
	case l.updates <- struct{}{}:
	default:
	}
}

// Held reports whether the lock is held right now (as far as this process
// knows).
func (l *Locker) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur != nil && l.cur.held
}

// TryLock makes one attempt. It returns a *LockHeldError (errors.Is
// ErrLockHeld) when someone else holds the lock, including another process
// or Locker with the same token. Holding it already is not an error, and
// neither is a "held" answer for this Locker's holder id: the hold is then
// this Locker's (an earlier acquire of it whose answer was lost, or a hold
// it lost track of after failed renewals, which the server still had), and
// it is taken up with its lease and fencing token.
func (l *Locker) TryLock(ctx context.Context) error {
	if l.Held() {
		return nil
	}
	sentAt := l.clk.Now()
	lease, err := l.c.AcquireAs(ctx, l.name, l.holderID, l.ttl)
	if err != nil {
		return err
	}
	if lease.Status == "held" && (l.holderID == "" || lease.HolderID != l.holderID) {
		// Granted earlier to our token but not to this Locker's holder id
		// (a server without holder ids, or no holder id given).
		return &LockHeldError{Name: l.name, Holder: lease.Holder, ExpiresAt: lease.ExpiresAt}
	}
	h := &holding{lease: *lease, deadline: sentAt.Add(l.ttl), held: true, done: make(chan struct{}), stopped: make(chan struct{})}
	var rctx context.Context
	rctx, h.cancel = context.WithCancel(context.Background())
	l.mu.Lock()
	l.cur = h
	l.mu.Unlock()
	go l.renew(rctx, h, sentAt.Add(l.ttl))
	return nil
}

// Lock waits until the lock is acquired or ctx ends (then it returns
// ctx.Err()). While waiting it polls with jittered backoff, woken early by
// release/expiry events on the lock's watch stream. Transient failures
// (ErrUnavailable, ErrRateLimited) are waited out; other errors are returned.
func (l *Locker) Lock(ctx context.Context) error {
	var w watchHint
	if l.useWatch {
		// Subscribe in the background: the stream is only a hint and must
		// never hold up the attempts. Its first event (lock.state) tells the
		// current state, so nothing is missed between subscribing and trying.
		wctx, cancel := context.WithCancel(ctx)
		pending := make(chan *EventStream, 1)
		w.pending, w.cancel = pending, cancel
		go func() {
			s, err := l.c.WatchLock(wctx, l.name)
			if err != nil {
				s = nil
			}
			pending <- s
		}()
		defer w.close()
	}
	// The holder has our token and the server answered "held" (no holder
	// ids): each acquire would extend its hold, so poll by status instead.
	sameIdentity := false
	for attempt := 0; ; attempt++ {
		var until time.Time // when the current holder's lease ends, if known
		try := true
		if sameIdentity {
			st, err := l.c.LockStatus(ctx, l.name)
			switch {
			case err == nil && !st.Available() && !st.ExpiresAt.IsZero():
				try, until = false, st.ExpiresAt
			case err != nil && !transient(err):
				return err
			case err != nil:
				try = false
			}
		}
		if try {
			err := l.TryLock(ctx)
			if err == nil {
				return nil
			}
			var he *LockHeldError
			switch {
			case errors.As(err, &he):
				until = he.ExpiresAt
				sameIdentity = he.Err == nil
			case ctx.Err() != nil:
				return ctx.Err()
			case !transient(err):
				return err
			}
		}
		wait := jitter(l.pollMin, l.pollMax, attempt)
		if !until.IsZero() {
			if d := until.Sub(l.clk.Now()) + 20*time.Millisecond; d < wait {
				wait = max(d, l.pollMin/2)
			}
		}
		if err := l.wait(ctx, wait, &w); err != nil {
			return err
		}
	}
}

// watchHint is the optional watch stream used by Lock.
type watchHint struct {
	pending <-chan *EventStream // delivers the stream (nil: none) once subscribed
	cancel  context.CancelFunc  // ends the subscription attempt and the stream
	stream  *EventStream
	events  <-chan Event
}

func (w *watchHint) close() {
	if w.cancel != nil {
		w.cancel()
	}
	if w.pending != nil {
		if s := <-w.pending; s != nil { // the subscriber goroutine always delivers
			s.Close()
		}
	}
	if w.stream != nil {
		w.stream.Close()
	}
}

// wait sleeps for d, or until a watch event says the lock may be free.
func (l *Locker) wait(ctx context.Context, d time.Duration, w *watchHint) error {
	timer := l.clk.After(d)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer:
			return nil
		case s := <-w.pending:
			w.pending = nil
			if s != nil {
				w.stream, w.events = s, s.C
			}
		case ev, ok := <-w.events:
			if !ok {
				w.events = nil // stream ended: poll only
				continue
			}
			switch ev.Type {
			case EventLockReleased, EventLockExpired:
				return nil
			case EventLockState:
				if ev.Holder == "" {
					return nil
				}
			}
		}
	}
}

func transient(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrRateLimited)
}

// renew keeps h alive until ctx is cancelled (Unlock) or the lease is lost.
// expiry is the local deadline: the send time of the last successful grant or
// renewal plus the TTL (the server's clock is not read; LeaseHealth).
func (l *Locker) renew(ctx context.Context, h *holding, expiry time.Time) {
	defer close(h.stopped)
	interval := l.ttl / 3
	if interval <= 0 {
		interval = time.Millisecond
	}
	leaseID := h.lease.LeaseID
	wait := interval
	for attempt := 0; ; {
		select {
		case <-ctx.Done():
			return
		case <-l.clk.After(wait):
		}
		now := l.clk.Now()
		if !now.Before(expiry) {
			l.lose(h, fmt.Errorf("%w (local deadline %s)", ErrLeaseExpired, expiry.Format(time.RFC3339Nano)))
			return
		}
		// An attempt gets half the renewal interval: a server that stops
		// answering is reported (RenewErr) well before the deadline, and
		// the attempts are retried until it.
		rctx, cancel := context.WithTimeout(ctx, min(expiry.Sub(now), max(interval/2, time.Millisecond)))
		lease, err := l.c.Renew(rctx, l.name, leaseID, l.ttl)
		cancel()
		if ctx.Err() != nil {
			return // unlocked meanwhile
		}
		if err == nil {
			expiry = now.Add(l.ttl)
			attempt, wait = 0, interval
			l.mu.Lock()
			h.lease.ExpiresAt = lease.ExpiresAt
			h.lease.Status = lease.Status
			h.deadline, h.renewErr = expiry, nil
			l.mu.Unlock()
			l.notify()
			continue
		}
		l.mu.Lock()
		h.renewErr = err
		l.mu.Unlock()
		l.notify()
		if !transient(err) && !errors.Is(err, context.DeadlineExceeded) {
			l.lose(h, err) // refused: not found / not owned, auth, validation
			return
		}
		// Unreachable or throttled: retry soon, until the lease runs out.
		wait = min(jitter(l.pollMin, interval, attempt), max(expiry.Sub(l.clk.Now()), 0))
		attempt++
	}
}

// lose marks h lost with cause and closes its done channel.
func (l *Locker) lose(h *holding, cause error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !h.held {
		return
	}
	h.held = false
	h.err = &LockLostError{Name: l.name, Cause: cause}
	if !h.closed {
		h.closed = true
		close(h.done)
	}
	l.notify()
}

// Unlock stops renewal and releases the lock. If the lock was already lost it
// returns an error wrapping ErrLockLost; if it is not held it returns nil.
// Done is closed when Unlock returns.
func (l *Locker) Unlock(ctx context.Context) error {
	l.mu.Lock()
	h := l.cur
	if h == nil {
		l.mu.Unlock()
		return nil
	}
	wasHeld, lostErr := h.held, h.err
	h.held = false
	l.mu.Unlock()
	if h.cancel != nil {
		h.cancel()
		<-h.stopped
	}
	var err error
	if wasHeld {
		err = l.c.Release(ctx, l.name, h.lease.LeaseID)
		if errors.Is(err, ErrNotFound) {
			err = &LockLostError{Name: l.name, Cause: err}
		}
	} else {
		err = lostErr
	}
	l.mu.Lock()
	if err != nil && h.err == nil && errors.Is(err, ErrLockLost) {
		h.err = err
	}
	if !h.closed {
		h.closed = true
		close(h.done)
	}
	l.mu.Unlock()
	l.notify()
	return err
}
