package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock fires After channels only when the test advances it.
type fakeClock struct {
	mu      sync.Mutex // guards now and waiters
	now     time.Time
	waiters []fakeWaiter
	changed chan struct{} // signalled (non-blocking) when a waiter is added
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), changed: make(chan struct{}, 1)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{c.now.Add(d), ch})
	select {
	case c.changed <- struct{}{}:
	default:
	}
	return ch
}

// Advance moves time forward and fires due waiters.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// WaitForWaiter blocks until some goroutine waits on the clock, and returns
// how long until the earliest waiter fires.
func (c *fakeClock) WaitForWaiter(t *testing.T) time.Duration {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		if len(c.waiters) > 0 {
			d := c.waiters[0].at.Sub(c.now)
			for _, w := range c.waiters[1:] {
				d = min(d, w.at.Sub(c.now))
			}
			c.mu.Unlock()
			return d
		}
		c.mu.Unlock()
		select {
		case <-c.changed:
		case <-timeout:
			t.Fatal("no goroutine waited on the clock")
		}
	}
}

func newFakeLocker(t *testing.T, c *Client, name string, ttl time.Duration) (*Locker, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	l := NewLocker(c, name, ttl, WithPollInterval(10*time.Millisecond, 40*time.Millisecond))
	l.clk = clk
	t.Cleanup(func() { l.Unlock(context.Background()) })
	return l, clk
}

func TestLockerRenewsAtAThirdOfTTL(t *testing.T) {
	srv, alice, _ := fake(t)
	l, clk := newFakeLocker(t, alice, "job", 3*time.Second)
	if err := l.TryLock(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := l.Lease()
	if first.FencingToken != 1 || first.LeaseID == "" {
		t.Fatalf("lease = %+v", first)
	}
	for i := 1; i <= 3; i++ {
		if d := clk.WaitForWaiter(t); d != time.Second {
			t.Fatalf("renewal %d scheduled in %v, want TTL/3 = 1s", i, d)
		}
		if n := srv.Requests("POST /locks/job/renew"); n != i-1 {
			t.Fatalf("renewals before tick %d = %d", i, n)
		}
		clk.Advance(time.Second)
		clk.WaitForWaiter(t) // the goroutine renewed and sleeps again
		if n := srv.Requests("POST /locks/job/renew"); n != i {
			t.Fatalf("renewals after tick %d = %d", i, n)
		}
	}
	select {
	case <-l.Done():
		t.Fatal("Done closed while held")
	default:
	}
	if got := l.Lease(); got.LeaseID != first.LeaseID || got.FencingToken != 1 {
		t.Fatalf("lease changed: %+v", got)
	}
	if err := l.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-l.Done()
	if l.Err() != nil || l.Held() || srv.Holder("job") != "" {
		t.Fatalf("after Unlock: err=%v held=%v holder=%q", l.Err(), l.Held(), srv.Holder("job"))
	}
}

func TestLockerDoneWhenRenewRefused(t *testing.T) {
	srv, alice, _ := fake(t)
	l, clk := newFakeLocker(t, alice, "job", 3*time.Second)
	if err := l.TryLock(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.StealLock("job", "bob", time.Minute)
	clk.WaitForWaiter(t)
	clk.Advance(time.Second)
	<-l.Done()
	if !errors.Is(l.Err(), ErrLockLost) || !errors.Is(l.Err(), ErrNotFound) {
		t.Fatalf("Err = %v, want lock lost caused by not found", l.Err())
	}
	if l.Held() || l.Lease() != (Lease{}) {
		t.Fatal("still held after loss")
	}
	if err := l.Unlock(context.Background()); !errors.Is(err, ErrLockLost) {
		t.Fatalf("Unlock after loss = %v", err)
	}
	if srv.Holder("job") != "bob" {
		t.Fatal("Unlock after loss released someone else's lock")
	}
}

func TestLockerDoneWhenUnreachablePastExpiry(t *testing.T) {
	srv, alice, _ := fakeOffContract(t)
	l, clk := newFakeLocker(t, alice, "job", 3*time.Second)
	if err := l.TryLock(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(503)
		w.Write([]byte(`{"error":"degraded"}`))
		return true
	})
	// Keep advancing whatever the goroutine waits for; it retries until the
	// local expiry (acquire time + TTL) and then gives up.
	deadline := clk.Now().Add(3 * time.Second)
	for clk.Now().Before(deadline) {
		select {
		case <-l.Done():
			t.Fatalf("lost at %v, before the lease expired", clk.Now())
		default:
		}
		clk.Advance(clk.WaitForWaiter(t))
	}
	<-l.Done()
	if !errors.Is(l.Err(), ErrLockLost) {
		t.Fatalf("Err = %v", l.Err())
	}
	if srv.Requests("POST /locks/job/renew") < 2 {
		t.Fatalf("renew attempts = %d, want retries", srv.Requests("POST /locks/job/renew"))
	}
}

func TestLockerSurvivesATransientFailure(t *testing.T) {
	srv, alice, _ := fakeOffContract(t)
	l, clk := newFakeLocker(t, alice, "job", 3*time.Second)
	if err := l.TryLock(context.Background()); err != nil {
		t.Fatal(err)
	}
	fail := true
	srv.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if fail {
			fail = false // only the goroutine's requests reach here, one at a time
			w.WriteHeader(503)
			return true
		}
		return false
	})
	clk.Advance(clk.WaitForWaiter(t)) // first renewal fails
	clk.Advance(clk.WaitForWaiter(t)) // retry succeeds
	clk.WaitForWaiter(t)
	if n := srv.Requests("POST /locks/job/renew"); n != 2 {
		t.Fatalf("renew requests = %d", n)
	}
	select {
	case <-l.Done():
		t.Fatalf("lost after one transient failure: %v", l.Err())
	default:
	}
}

// TestLockerHealth: Health tells the local deadline (send time of the last
// successful grant or renewal + TTL) and the latest renewal error, and
// Updates signals every renewal attempt: what lock run's stop schedule reads.
func TestLockerHealth(t *testing.T) {
	srv, alice, _ := fakeOffContract(t)
	l, clk := newFakeLocker(t, alice, "job", 3*time.Second)
	if h := l.Health(); h != (LeaseHealth{}) {
		t.Fatalf("health before the lock: %+v", h)
	}
	t0 := clk.Now()
	if err := l.TryLock(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h := l.Health(); !h.Deadline.Equal(t0.Add(3*time.Second)) || h.RenewErr != nil {
		t.Fatalf("health after the grant: %+v", h)
	}
	var fail atomic.Bool
	fail.Store(true)
	srv.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if fail.Load() {
			w.WriteHeader(503)
			return true
		}
		return false
	})
	clk.Advance(clk.WaitForWaiter(t)) // the renewal at TTL/3 fails
	<-l.Updates()
	if h := l.Health(); !h.Deadline.Equal(t0.Add(3*time.Second)) || !errors.Is(h.RenewErr, ErrUnavailable) {
		t.Fatalf("health after a failed renewal: %+v", h)
	}
	fail.Store(false)
	clk.Advance(clk.WaitForWaiter(t)) // the retry succeeds
	<-l.Updates()
	if h := l.Health(); !h.Deadline.Equal(clk.Now().Add(3*time.Second)) || h.RenewErr != nil {
		t.Fatalf("health after a renewal at %v: %+v", clk.Now(), h)
	}
	if err := l.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-l.Updates()
	if h := l.Health(); h != (LeaseHealth{}) {
		t.Fatalf("health after Unlock: %+v", h)
	}
}

// TestLockerHangingRenewalIsAFailure: a renewal the server does not answer
// (a proxy that stopped forwarding) is reported as failed after TTL/6, long
// before the deadline, so that a holder can start stopping early.
func TestLockerHangingRenewalIsAFailure(t *testing.T) {
	srv, alice, _ := fakeOffContract(t)
	l, clk := newFakeLocker(t, alice, "job", 3*time.Second)
	if err := l.TryLock(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := l.Health().Deadline
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) }) // before the server closes: it waits for its handlers
	srv.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		select { // no answer: the client gives up (and keeps the connection)
		case <-r.Context().Done():
		case <-stop:
		}
		return true
	})
	clk.Advance(clk.WaitForWaiter(t))
	<-l.Updates()
	if h := l.Health(); !h.Deadline.Equal(deadline) || !errors.Is(h.RenewErr, context.DeadlineExceeded) {
		t.Fatalf("health after a renewal without an answer: %+v", h)
	}
	select {
	case <-l.Done():
		t.Fatal("lost before the deadline")
	default:
	}
}

func TestLockerTryLockHeld(t *testing.T) {
	srv, alice, bob := fake(t)
	a, _ := newFakeLocker(t, alice, "job", 3*time.Second)
	if err := a.TryLock(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, _ := newFakeLocker(t, bob, "job", 3*time.Second)
	var he *LockHeldError
	if err := b.TryLock(context.Background()); !errors.Is(err, ErrLockHeld) || !errors.As(err, &he) || he.Holder != "alice" {
		t.Fatalf("other user TryLock = %v", err)
	}
	// Another Locker with the same token is excluded too.
	a2, _ := newFakeLocker(t, alice, "job", 3*time.Second)
	if err := a2.TryLock(context.Background()); !errors.Is(err, ErrLockHeld) {
		t.Fatalf("same token TryLock = %v", err)
	}
	if a2.Held() {
		t.Fatal("second locker thinks it holds the lock")
	}
	if a.Lease().LeaseID == "" || srv.Holder("job") != "alice" {
		t.Fatal("first locker lost its lock")
	}
}

// Lock waits in the server's queue: one acquire request with wait_seconds,
// answered when the holder releases, no polling.
func TestLockerLockWaitsForRelease(t *testing.T) {
	srv, alice, bob := fake(t)
	holder := NewLocker(alice, "job", time.Minute)
	if err := holder.TryLock(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer holder.Unlock(context.Background())
	waiter := NewLocker(bob, "job", time.Minute)
	defer waiter.Unlock(context.Background())
	bodies := make(chan string, 8)
	srv.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/locks/job/acquire" && r.Header.Get("Authorization") == "Bearer tokB" {
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(b))
			bodies <- string(b)
		}
		return false
	})
	errc := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() { errc <- waiter.Lock(ctx) }()
	if b := <-bodies; !strings.Contains(b, `"wait_seconds":20`) && !strings.Contains(b, `"wait_seconds":19`) {
		t.Fatalf("Lock's acquire %s, want wait_seconds up to the context's deadline", b)
	}
	waitQueued(t, alice, "job", 1)
	if err := holder.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got := waiter.Lease(); got.FencingToken != 2 || srv.Holder("job") != "bob" {
		t.Fatalf("waiter lease = %+v holder %q", got, srv.Holder("job"))
	}
	if n := srv.Requests("POST /locks/job/acquire"); n != 2 {
		t.Fatalf("acquire requests = %d, want 2: the holder's and one waiting acquire", n)
	}
}

// waitQueued waits until name has n waiters.
func waitQueued(t *testing.T, c *Client, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := c.LockStatus(context.Background(), name)
		if err == nil && st.Waiters == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiters of %s: %+v %v, want %d", name, st, err, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// When Lock's context ends, its request's connection closes and the server
// takes it out of the queue: it is never granted the lock.
func TestLockerLockCancelLeavesTheQueue(t *testing.T) {
	srv, alice, bob := fake(t)
	holder := NewLocker(alice, "job", time.Minute)
	if err := holder.TryLock(context.Background()); err != nil {
		t.Fatal(err)
	}
	w := NewLocker(bob, "job", time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Lock(ctx) }()
	waitQueued(t, alice, "job", 1)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock = %v", err)
	}
	waitQueued(t, alice, "job", 0)
	if err := holder.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h := srv.Holder("job"); h != "" || w.Held() {
		t.Fatalf("after the release: holder %q, waiter held %v", h, w.Held())
	}
}

// Two Lockers of one token are two holders (random holder ids): the
// second's attempts are refused like anyone else's (409), so they never
// extend the first's hold, and Lock waits by acquire like any contender.
// Without holder ids (WithHolderID("")) the server would answer "held" and
// extend the hold: Lock then polls by status instead.
func TestLockerLockSameTokenDoesNotExtendHolder(t *testing.T) {
	for _, holderIDs := range []bool{true, false} {
		t.Run(map[bool]string{true: "holder ids", false: "no holder ids"}[holderIDs], func(t *testing.T) {
			srv, alice, _ := fake(t)
			var opts []LockerOption
			if !holderIDs {
				opts = append(opts, WithHolderID(""))
			}
			first := NewLocker(alice, "job", time.Minute, opts...)
			if err := first.TryLock(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer first.Unlock(context.Background())
			before, err := alice.LockStatus(context.Background(), "job")
			if err != nil {
				t.Fatal(err)
			}
			second := NewLocker(alice, "job", time.Hour, append(opts, WithPollInterval(2*time.Millisecond, 5*time.Millisecond))...)
			seen := make(chan string, 64)
			srv.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path == "/locks/job" || r.URL.Path == "/locks/job/acquire" {
					select {
					case seen <- r.Method + " " + r.URL.Path:
					default:
					}
				}
				return false
			})
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() { errc <- second.Lock(ctx) }()
			// With holder ids the second waits in the queue (one acquire);
			// without, the server answers "held" and it polls by status.
			if holderIDs {
				waitQueued(t, alice, "job", 1)
			} else {
				for n := 0; n < 3; {
					if got := <-seen; got == "GET /locks/job" {
						n++
					}
				}
			}
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Fatalf("Lock = %v", err)
			}
			after, err := alice.LockStatus(context.Background(), "job")
			if err != nil {
				t.Fatal(err)
			}
			if second.Held() {
				t.Fatal("the second Locker thinks it holds the lock")
			}
			if holderIDs {
				if !after.ExpiresAt.Equal(before.ExpiresAt) {
					t.Fatalf("the second Locker's attempts moved the first's expiry from %s to %s", before.ExpiresAt, after.ExpiresAt)
				}
			}
			if n := srv.Requests("POST /locks/job/acquire"); n != 2 {
				t.Fatalf("acquire requests = %d, want 2 (first locker, one try by the second)", n)
			}
		})
	}
}

// A Locker takes a "held" answer as its own hold only for its own holder
// id: two Lockers given one holder id on purpose share the hold (same lease
// and token); a "held" answer without the holder id (a server without holder
// ids) is someone else's.
func TestLockerHeldOnlyForItsHolderID(t *testing.T) {
	srv, alice, _ := fake(t)
	a := NewLocker(alice, "job", time.Minute, WithHolderID("deploy-1"))
	if err := a.TryLock(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer a.Unlock(context.Background())
	if got := a.Lease().HolderID; got != "deploy-1" {
		t.Fatalf("lease holder id %q", got)
	}
	shared := NewLocker(alice, "job", time.Minute, WithHolderID("deploy-1"))
	if err := shared.TryLock(context.Background()); err != nil {
		t.Fatalf("same holder id: %v", err)
	}
	defer shared.Unlock(context.Background())
	if shared.Lease().LeaseID != a.Lease().LeaseID || shared.Lease().FencingToken != a.Lease().FencingToken {
		t.Fatalf("shared hold %+v, want %+v", shared.Lease(), a.Lease())
	}
	other := NewLocker(alice, "job", time.Minute)
	if err := other.TryLock(context.Background()); !errors.Is(err, ErrLockHeld) {
		t.Fatalf("another holder id of the same token: %v", err)
	}
	if id := other.HolderID(); len(id) != 32 || id == NewHolderID() {
		t.Fatalf("default holder id %q", id)
	}
	// A server that answers "held" without holder_id (it has no holder
	// ids): not this Locker's hold.
	srv.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/locks/old/acquire" {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"held","name":"old","lease_id":"550e8400-e29b-41d4-a716-446655440000","fencing_token":3,"expires_at":"2030-01-01T00:00:00Z","holder":"alice"}`)
		return true
	})
	old := NewLocker(alice, "old", time.Minute)
	if err := old.TryLock(context.Background()); !errors.Is(err, ErrLockHeld) || old.Held() {
		t.Fatalf("held without holder id: %v (held %v)", err, old.Held())
	}
}

func TestLockerLockContextDeadline(t *testing.T) {
	_, alice, bob := fake(t)
	holder := NewLocker(alice, "job", time.Minute)
	if err := holder.TryLock(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer holder.Unlock(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	w := NewLocker(bob, "job", time.Minute, WithPollInterval(5*time.Millisecond, 10*time.Millisecond))
	if err := w.Lock(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock = %v", err)
	}
	if w.Held() {
		t.Fatal("held after timeout")
	}
}

func TestLockerLockReturnsPermanentErrors(t *testing.T) {
	srv, _, _ := fake(t)
	c, _ := New(srv.URL, "wrong", checked(t)...)
	l := NewLocker(c, "job", time.Minute)
	if err := l.Lock(context.Background()); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Lock = %v", err)
	}
}
