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
// Unlock to release it. Lock waits in the lock's FIFO queue on the server
// (a waiting acquire, AcquireOptions.Wait): it is granted the lock the moment
// the holders before it are done, without polling.
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
	session  *Session // Session.NewLocker: held under the session, not renewed
	delay    time.Duration
	meta     *string // WithMetadata
	// sem, for a Semaphore's Locker: the semaphore's limit (its calls go to
	// /semaphores/{name}/…); 0 for a lock.
	sem int

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

// WithPollInterval bounds the jittered backoff between attempts of Lock
// after a transient failure (server unreachable, 503, a full queue: 429)
// and renewal retries (default 100ms up to 2s).
func WithPollInterval(min, max time.Duration) LockerOption {
	return func(l *Locker) { l.pollMin, l.pollMax = min, max }
}

// WithHolderID sets the holder id the Locker acquires with, instead of a
// random one. Lockers given the same id (and token) are one holder on
// purpose: each takes the other's hold as its own (same lease and fencing
// token), and either's Unlock releases it for both. "" acquires without a
// holder id (the server's per-token re-entrance; every "held" answer is then
// taken as someone else's hold). The id must match ^[A-Za-z0-9._:@/+=-]{1,128}$
// (the server refuses others: TryLock and Lock return ErrValidation).
func WithHolderID(id string) LockerOption { return func(l *Locker) { l.holderID = id } }

// WithLockerDelay sets the lock-delay of the Locker's grants (0..60 s): when
// its hold is lost by expiry (the process died, or could not renew), nobody
// is granted the lock before its expiry plus d. Ignored for a Locker of a
// Session (the session's applies).
func WithLockerDelay(d time.Duration) LockerOption { return func(l *Locker) { l.delay = d } }

// WithMetadata sets the metadata of the Locker's holds (host, pid, job id:
// at most 1,024 bytes of one line), shown to every user: never a secret.
func WithMetadata(m string) LockerOption { return func(l *Locker) { l.meta = &m } }

// NewLocker returns a Locker for the named lock with the given TTL (whole
// seconds, at least 1s). It acquires with a random holder id
// (NewHolderID) unless WithHolderID sets one.
func NewLocker(c *Client, name string, ttl time.Duration, opts ...LockerOption) *Locker {
	l := &Locker{c: c, name: name, ttl: ttl, holderID: NewHolderID(), clk: realClock{},
		pollMin: 100 * time.Millisecond, pollMax: 2 * time.Second, updates: make(chan struct{}, 1)}
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
func (l *Locker) TryLock(ctx context.Context) error { return l.acquire(ctx, 0) }

// acquire makes one attempt, waiting up to wait in the lock's queue (0: no
// wait), and takes up the hold it gets.
func (l *Locker) acquire(ctx context.Context, wait time.Duration) error {
	if l.Held() {
		return nil
	}
	sentAt := l.clk.Now()
	opts := AcquireOptions{HolderID: l.holderID, Wait: wait, LockDelay: l.delay, Metadata: l.meta}
	if l.session != nil {
		opts.LockDelay = 0 // the session's
		select {
		case <-l.session.Done():
			return &LockLostError{Name: l.name, Cause: fmt.Errorf("%w: the session has ended", ErrSessionLost)}
		default:
		}
		opts.SessionID = l.session.ID()
	}
	var lease *Lease
	var err error
	if l.sem > 0 {
		lease, err = l.c.AcquireSemaphore(ctx, l.name, l.sem, l.ttl, opts)
	} else {
		lease, err = l.c.AcquireWith(ctx, l.name, l.ttl, opts)
	}
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
	if l.session != nil {
		go l.follow(rctx, h)
	} else {
		go l.renew(rctx, h, sentAt.Add(l.ttl))
	}
	return nil
}

// follow is the renewal of a lock held under a session: none, but the lock
// is lost when the session ends.
func (l *Locker) follow(ctx context.Context, h *holding) {
	defer close(h.stopped)
	select {
	case <-ctx.Done():
	case <-l.session.Done():
		cause := l.session.Err()
		if cause == nil {
			cause = fmt.Errorf("%w: the session was closed", ErrSessionLost)
		}
		l.lose(h, cause)
	}
}

// Lock waits until the lock is acquired or ctx ends (then it returns
// ctx.Err()). It waits in the lock's FIFO queue on the server (at most
// MaxWait per request, or until ctx's deadline, then it queues again at the
// back), so it is granted the lock in turn, the moment the holders before it
// are done; when ctx ends, the request's connection closes and the server
// takes it out of the queue. Transient failures (ErrUnavailable,
// ErrRateLimited: a full queue) are waited out with jittered backoff; other
// errors are returned.
func (l *Locker) Lock(ctx context.Context) error {
	// sameIdentity: the holder is another Locker of our token without
	// holder ids, and the server answered "held": each acquire would
	// extend that hold, so wait by status reads until it ends instead.
	sameIdentity := false
	for attempt := 0; ; attempt++ {
		if sameIdentity {
			st, err := l.c.LockStatus(ctx, l.name)
			switch {
			case err != nil && !transient(err):
				return err
			case err == nil && st.Available():
				sameIdentity = false
				continue
			}
			if err := l.sleep(ctx, attempt, err); err != nil {
				return err
			}
			continue
		}
		wait := MaxWait
		if dl, ok := ctx.Deadline(); ok {
			// Rounded up to whole seconds by the client: ctx cuts it short.
			wait = max(min(wait, dl.Sub(l.clk.Now())), time.Second)
		}
		sent := l.clk.Now()
		err := l.acquire(ctx, wait)
		if err == nil {
			return nil
		}
		var he *LockHeldError
		var full *SemaphoreFullError
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case (errors.As(err, &he) && he.Err != nil || errors.As(err, &full)) && l.clk.Now().Sub(sent) >= wait/2:
			attempt = -1 // the wait ran out on the server: queue again
			continue
		case errors.As(err, &full):
			// A 409 long before the wait was over (a server that does not
			// queue): try again later.
		case errors.As(err, &he) && he.Err == nil:
			sameIdentity = true
			attempt = -1
			continue
		case errors.As(err, &he):
			// A 409 long before the wait was over (a server that does not
			// queue): try again later.
		case !transient(err):
			return err
		}
		if err := l.sleep(ctx, attempt, err); err != nil {
			return err
		}
	}
}

// sleep waits the jittered backoff of attempt (at least the Retry-After
// that err carries), or until ctx ends (its error).
func (l *Locker) sleep(ctx context.Context, attempt int, err error) error {
	d := jitter(l.pollMin, l.pollMax, attempt)
	if ra := RetryAfter(err); ra > d {
		d = ra
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-l.clk.After(d):
		return nil
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
		var lease *Lease
		var err error
		if l.sem > 0 {
			lease, err = l.c.RenewSemaphore(rctx, l.name, leaseID, l.ttl)
		} else {
			lease, err = l.c.Renew(rctx, l.name, leaseID, l.ttl)
		}
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
		if l.sem > 0 {
			err = l.c.ReleaseSemaphore(ctx, l.name, h.lease.LeaseID)
		} else {
			err = l.c.Release(ctx, l.name, h.lease.LeaseID)
		}
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
