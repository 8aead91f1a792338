package actors

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// Waiting acquires (LockRequest.Wait): a FIFO queue per lock, no barging,
// hand-off in the same step, deadlines, callers that leave. Timers are not
// run (noTimers): the tests send the timer's operation themselves after
// moving the injected clock.

type waitResult struct {
	who   string
	grant LockGrant
	err   error
}

// startWaiter starts a waiting acquire of name by caller and waits until it
// is queued (the lock's waiter count reaches n).
func startWaiter(t *testing.T, ctx context.Context, locks *Locks, name, caller string, wait time.Duration, n int, out chan<- waitResult) {
	t.Helper()
	go func() {
		g, err := locks.AcquireWith(ctx, name, LockRequest{Caller: caller, TTL: time.Minute, Wait: wait})
		out <- waitResult{caller, g, err}
	}()
	waitFor(t, func() bool {
		st, err := locks.Status(t.Context(), name)
		return err == nil && st.Waiters == n
	})
}

func releaseHeld(t *testing.T, locks *Locks, name string) {
	t.Helper()
	st, err := locks.Status(t.Context(), name)
	if err != nil || !st.Held {
		t.Fatalf("status %s: %+v %v", name, st, err)
	}
	if err := locks.Release(t.Context(), name, st.Lock.Holder, st.Lock.LeaseID); err != nil {
		t.Fatal(err)
	}
}

// Grants go in arrival order, and nobody barges: an acquire that does not
// wait gets 409 while waiters queue, one that waits goes to the back.
func TestWaitingAcquireFIFONoBarging(t *testing.T) {
	st := newMemStore(false)
	locks, _, _ := newTestLocks(t, st, time.Minute, 0)
	ctx := t.Context()
	if _, err := locks.Acquire(ctx, "q", "alice", time.Minute); err != nil {
		t.Fatal(err)
	}
	got := make(chan waitResult, 8)
	for i, who := range []string{"bob", "carol", "dave"} {
		startWaiter(t, ctx, locks, "q", who, time.Minute, i+1, got)
	}
	// A newcomer that does not wait is refused, naming the holder.
	var held *LockHeldError
	if _, err := locks.Acquire(ctx, "q", "erin", time.Minute); !errors.As(err, &held) || held.Holder != "alice" {
		t.Fatalf("erin's acquire while three wait: %v, want held by alice", err)
	}
	var order []string
	for round, want := range []string{"bob", "carol", "dave"} {
		releaseHeld(t, locks, "q")
		r := <-got
		if r.err != nil || !r.grant.New || r.grant.Lock.Holder != want || r.grant.Lock.Token != uint64(round+2) {
			t.Fatalf("round %d: %+v, want a grant to %s with token %d", round, r, want, round+2)
		}
		order = append(order, r.who)
		if round == 0 {
			// erin waits now: behind carol and dave, although the lock
			// changed hands since they arrived.
			startWaiter(t, ctx, locks, "q", "erin", time.Minute, 3, got)
			if _, err := locks.Acquire(ctx, "q", "frank", time.Minute); !errors.As(err, &held) || held.Holder != "bob" {
				t.Fatalf("frank's acquire right after the hand-off: %v, want held by bob", err)
			}
		}
	}
	releaseHeld(t, locks, "q")
	r := <-got
	order = append(order, r.who)
	if fmt.Sprint(order) != "[bob carol dave erin]" || r.err != nil {
		t.Fatalf("grant order %v (last %+v), want arrival order", order, r)
	}
	if s, _ := locks.Status(ctx, "q"); s.Waiters != 0 || s.Lock.Holder != "erin" {
		t.Fatalf("after the queue drained: %+v", s)
	}
}

// The release and the grant to the first waiter are one step of the lock's
// actor: both writes are queued before either commits, and the waiter's
// answer waits for its grant's commit.
func TestWaitingAcquireHandOffInTheSameStep(t *testing.T) {
	st := newMemStore(true)
	locks, _, _ := newTestLocks(t, st, time.Minute, 0)
	ctx := t.Context()
	acq := make(chan waitResult, 1)
	go func() {
		g, err := locks.Acquire(ctx, "h", "alice", time.Minute)
		acq <- waitResult{"alice", g, err}
	}()
	waitFor(t, func() bool { return st.pending() == 1 })
	st.commit()
	alice := <-acq
	got := make(chan waitResult, 1)
	go func() {
		g, err := locks.AcquireWith(ctx, "h", LockRequest{Caller: "bob", TTL: time.Minute, Wait: time.Minute})
		got <- waitResult{"bob", g, err}
	}()
	waitFor(t, func() bool {
		s, err := locks.Status(ctx, "h")
		return err == nil && s.Waiters == 1
	})
	rel := make(chan error, 1)
	go func() { rel <- locks.Release(ctx, "h", "alice", alice.grant.Lock.LeaseID) }()
	waitFor(t, func() bool { return st.pending() == 2 }) // the release and bob's grant, uncommitted
	select {
	case r := <-got:
		t.Fatalf("bob answered before his grant committed: %+v", r)
	default:
	}
	if n := st.commit(); n != 2 {
		t.Fatalf("one commit took %d writes, want the release and the grant", n)
	}
	if err := <-rel; err != nil {
		t.Fatal(err)
	}
	if r := <-got; r.err != nil || r.grant.Lock.Holder != "bob" || r.grant.Lock.Token != 2 {
		t.Fatalf("bob: %+v", r)
	}
}

// An expiry hands the lock to the first waiter too; a waiter whose wait runs
// out first is answered 409 with the holder and leaves the queue.
func TestWaitingAcquireExpiryAndDeadline(t *testing.T) {
	st := newMemStore(false)
	locks, sys, clk := newTestLocks(t, st, time.Minute, 0)
	ctx := t.Context()
	if _, err := locks.Acquire(ctx, "e", "alice", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	got := make(chan waitResult, 2)
	startWaiter(t, ctx, locks, "e", "bob", 3*time.Second, 1, got)
	startWaiter(t, ctx, locks, "e", "carol", time.Minute, 2, got)
	clk.Add(3 * time.Second)
	if err := sys.call(ctx, lockKey("e"), &waitExpired{}); err != nil { // bob's deadline timer
		t.Fatal(err)
	}
	var held *LockHeldError
	if r := <-got; r.who != "bob" || !errors.As(r.err, &held) || held.Holder != "alice" {
		t.Fatalf("bob after his wait ran out: %+v, want 409 held by alice", r)
	}
	clk.Add(7 * time.Second)
	if err := sys.call(ctx, lockKey("e"), &expireLock{}); err != nil { // alice's expiry timer
		t.Fatal(err)
	}
	if r := <-got; r.who != "carol" || r.err != nil || r.grant.Lock.Token != 2 {
		t.Fatalf("carol after alice's expiry: %+v", r)
	}
}

// A waiter whose caller leaves is never granted; when its grant raced the
// caller's leaving, the grant is released at once and the next waiter gets
// the lock.
func TestWaitingAcquireCallerLeaves(t *testing.T) {
	t.Run("queued", func(t *testing.T) {
		st := newMemStore(false)
		locks, _, _ := newTestLocks(t, st, time.Minute, 0)
		ctx := t.Context()
		if _, err := locks.Acquire(ctx, "l", "alice", time.Minute); err != nil {
			t.Fatal(err)
		}
		bctx, cancel := context.WithCancel(ctx)
		got := make(chan waitResult, 1)
		startWaiter(t, bctx, locks, "l", "bob", time.Minute, 1, got)
		cancel()
		if r := <-got; !errors.Is(r.err, context.Canceled) {
			t.Fatalf("bob after leaving: %+v", r)
		}
		waitFor(t, func() bool { s, _ := locks.Status(ctx, "l"); return s.Waiters == 0 })
		releaseHeld(t, locks, "l")
		if s, _ := locks.Status(ctx, "l"); s.Held {
			t.Fatalf("granted to a waiter that left: %+v", s)
		}
	})
	t.Run("grant raced", func(t *testing.T) {
		st := newMemStore(true)
		locks, _, _ := newTestLocks(t, st, time.Minute, 0)
		ctx := t.Context()
		go locks.Acquire(ctx, "l", "alice", time.Minute)
		waitFor(t, func() bool { return st.pending() == 1 })
		st.commit()
		bctx, cancel := context.WithCancel(ctx)
		got := make(chan waitResult, 2)
		go func() {
			g, err := locks.AcquireWith(bctx, "l", LockRequest{Caller: "bob", TTL: time.Minute, Wait: time.Minute})
			got <- waitResult{"bob", g, err}
		}()
		waitFor(t, func() bool { s, _ := locks.Status(ctx, "l"); return s.Waiters == 1 })
		startWaiter(t, ctx, locks, "l", "carol", time.Minute, 2, got)
		s, _ := locks.Status(ctx, "l")
		go locks.Release(ctx, "l", "alice", s.Lock.LeaseID)
		waitFor(t, func() bool { return st.pending() == 2 }) // the release and bob's grant, not committed
		cancel()                                             // bob leaves before his answer
		if r := <-got; r.who != "bob" || !errors.Is(r.err, context.Canceled) {
			t.Fatalf("bob: %+v", r)
		}
		// bob's grant is released at once, and carol granted: two more writes.
		waitFor(t, func() bool { return st.pending() == 4 })
		st.commit()
		r := <-got
		if r.who != "carol" || r.err != nil || r.grant.Lock.Token != 3 {
			t.Fatalf("carol: %+v, want the grant after bob's (token 3)", r)
		}
		if s, _ := locks.Status(ctx, "l"); s.Lock.Holder != "carol" || s.Waiters != 0 {
			t.Fatalf("after: %+v", s)
		}
	})
}

// The queue is bounded: beyond MaxWaiters a waiting acquire is refused with
// ErrTooManyWaiters (429) and a Retry-After of the hold's remaining time.
func TestWaitingAcquireQueueBound(t *testing.T) {
	st := newMemStore(false)
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	sys := NewSystem(Config{Store: st, Now: clk.Now, AfterFunc: noTimers, IdleTimeout: time.Minute})
	t.Cleanup(sys.Close)
	locks := NewLocks(sys, LockConfig{Loader: st, MaxWaiters: 2})
	ctx := t.Context()
	if _, err := locks.Acquire(ctx, "b", "alice", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	got := make(chan waitResult, 3)
	startWaiter(t, ctx, locks, "b", "bob", time.Minute, 1, got)
	startWaiter(t, ctx, locks, "b", "carol", time.Minute, 2, got)
	_, err := locks.AcquireWith(ctx, "b", LockRequest{Caller: "dave", TTL: time.Minute, Wait: time.Minute})
	if !errors.Is(err, ErrTooManyWaiters) || AsError(err).Code != CodeTooManyRequests || AsError(err).RetryAfter != 30*time.Second {
		t.Fatalf("third waiter: %v (%+v), want ErrTooManyWaiters retrying after 30s", err, AsError(err))
	}
	// An acquire that does not wait still gets its 409.
	var held *LockHeldError
	if _, err := locks.Acquire(ctx, "b", "dave", time.Minute); !errors.As(err, &held) {
		t.Fatalf("dave without waiting: %v", err)
	}
}

// A retry of a waiting acquire by the same holder (same user and holder
// id) while the first is still queued: both are answered with the one grant.
func TestWaitingAcquireSameHolderTwice(t *testing.T) {
	st := newMemStore(false)
	locks, _, _ := newTestLocks(t, st, time.Minute, 0)
	ctx := t.Context()
	if _, err := locks.Acquire(ctx, "s", "alice", time.Minute); err != nil {
		t.Fatal(err)
	}
	got := make(chan waitResult, 3)
	startWaiter(t, ctx, locks, "s", "bob", time.Minute, 1, got)
	startWaiter(t, ctx, locks, "s", "carol", time.Minute, 2, got)
	startWaiter(t, ctx, locks, "s", "bob", time.Minute, 3, got)
	releaseHeld(t, locks, "s")
	a, b := <-got, <-got
	if a.who != "bob" || b.who != "bob" || a.err != nil || b.err != nil ||
		a.grant.Lock.LeaseID != b.grant.Lock.LeaseID || a.grant.New == b.grant.New {
		t.Fatalf("bob's two requests: %+v and %+v, want one grant, then held", a, b)
	}
	if s, _ := locks.Status(ctx, "s"); s.Waiters != 1 || s.Lock.Holder != "bob" {
		t.Fatalf("after: %+v (carol still waits)", s)
	}
}
