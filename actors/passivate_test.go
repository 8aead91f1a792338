package actors

import (
	"fmt"
	"testing"
	"time"
)

// A held lock leaves no resident actor once idle (LockConfig.IdleTimeout,
// here the default, far below the runtime's minute), and every operation
// on it afterwards activates it from its compact record: renewals, status,
// fence checks and re-acquires read nothing from the loader, the record
// carries every change (a renewal's expiry, new metadata), and only once
// the lock is free does an activation read the loader again.
func TestHeldLockPassivatesAndActivatesFromItsRecord(t *testing.T) {
	st := newMemStore(false)
	locks, sys, clk := newTestLocks(t, st, time.Minute, 0)
	ctx := t.Context()
	meta := "job 7"
	g, err := locks.AcquireWith(ctx, "held", LockRequest{Caller: "alice", HolderID: "w1", TTL: time.Minute,
		LockDelay: 2 * time.Second, Metadata: &meta})
	if err != nil {
		t.Fatal(err)
	}
	idle := func() {
		t.Helper()
		waitFor(t, func() bool { return sys.LiveActors() == 0 })
	}
	loads := func() int64 { return locks.loads.Load() }
	idle()
	if loads() != 1 {
		t.Fatalf("%d loader reads for the first grant, want 1", loads())
	}
	clk.Add(10 * time.Second)
	r, err := locks.Renew(ctx, "held", "alice", g.Lock.LeaseID, time.Hour)
	if err != nil || !r.ExpiresAt.Equal(clk.Now().Add(time.Hour)) {
		t.Fatalf("renew: %+v %v", r, err)
	}
	idle()
	st2, err := locks.Status(ctx, "held")
	if err != nil || !st2.Held || st2.Lock != r {
		t.Fatalf("status after passivation:\n got %+v %v\nwant %+v", st2.Lock, err, r)
	}
	idle()
	if res, err := locks.Fence(ctx, "held", g.Lock.Token); err != nil || !res.Valid {
		t.Fatalf("fence: %+v %v", res, err)
	}
	idle()
	meta2 := "job 8"
	g2, err := locks.AcquireWith(ctx, "held", LockRequest{Caller: "alice", HolderID: "w1", TTL: time.Second, Metadata: &meta2})
	if err != nil || g2.New || g2.Lock.LeaseID != g.Lock.LeaseID || g2.Lock.Metadata != meta2 || g2.Lock.LockDelay != 2*time.Second {
		t.Fatalf("re-acquire: %+v %v", g2, err)
	}
	idle()
	if loads() != 1 {
		t.Fatalf("%d loader reads, want still 1: a held lock activates from its record", loads())
	}
	if acts := locks.activations.Load(); acts != 5 {
		t.Fatalf("%d activations, want one per operation (5): the actor stayed resident", acts)
	}
	if err := locks.Release(ctx, "held", "alice", g.Lock.LeaseID); err != nil {
		t.Fatal(err)
	}
	// A free lock's actor follows the runtime's idle timeout (a minute
	// here): it stays, and the lock is no longer in the index.
	time.Sleep(3 * DefaultLockIdleTimeout) // a load pattern, not a wait for a condition: idle time
	if sys.LiveActors() != 1 {
		t.Fatalf("%d live actors after a release, want 1: a free lock's actor stays for the runtime's idle timeout", sys.LiveActors())
	}
	if _, _, ok := locks.holdings.lookup("held"); ok {
		t.Fatal("the released lock is still in the index")
	}
	st3, err := locks.Status(ctx, "held")
	if err != nil || st3.Held || st3.Lock.Token != 1 {
		t.Fatalf("status of the released lock: %+v %v", st3, err)
	}
}

// A passivated held lock expires through the expiry schedule (the injected
// timers: one per part, not one per lock), is activated by it, and the
// expiry is recorded once.
func TestPassivatedLockExpiresThroughTheSchedule(t *testing.T) {
	st := newMemStore(false)
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	ts := newManualTimers(clk)
	sys := NewSystem(Config{Store: st, Now: clk.Now, AfterFunc: ts.AfterFunc, IdleTimeout: time.Minute})
	locks := NewLocks(sys, LockConfig{Loader: st, MaxPerUser: -1, IdleTimeout: 5 * time.Millisecond})
	t.Cleanup(sys.Close)
	ctx := t.Context()
	const n = 500
	for i := 0; i < n; i++ {
		if _, err := locks.Acquire(ctx, fmt.Sprint("l", i), "alice", time.Duration(1+i%5)*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return sys.LiveActors() == 0 })
	if ts.Made() > expiryParts {
		t.Fatalf("%d runtime timers for %d held locks, want at most %d", ts.Made(), n, expiryParts)
	}
	if got := locks.expiry.scheduled(); got != n {
		t.Fatalf("%d scheduled, want %d", got, n)
	}
	for s := 1; s <= 5; s++ {
		clk.Add(time.Second)
		ts.fire()
		want := n - n/5*s
		waitFor(t, func() bool { return locks.Indexed() == want })
	}
	for i := 0; i < n; i += 37 {
		g, err := locks.Acquire(ctx, fmt.Sprint("l", i), "bob", time.Minute)
		if err != nil || !g.New || g.Lock.Token != 2 {
			t.Fatalf("l%d after its expiry: %+v %v", i, g, err)
		}
	}
	// Closing the runtime stops the schedule (bob's holds are in it).
	sys.Close()
	if ts.armed() != 0 || locks.expiry.scheduled() != 0 {
		t.Fatalf("after Close: %d timers armed, %d scheduled", ts.armed(), locks.expiry.scheduled())
	}
}

// The index ends as the store does when a hold expires while its renewal
// is still committing (a writer stalled beyond the TTL): the renewal's
// commit puts its record back after the expiry removed it at once, and the
// expiry's own commit removes it again, so no activation reads a hold the
// store has ended (it would announce the expiry a second time).
func TestExpiryAfterAStalledRenewalLeavesNoRecord(t *testing.T) {
	st := newMemStore(true)
	locks, sys, clk := newTestLocks(t, st, time.Minute, 0)
	ctx := t.Context()
	granted := make(chan LockGrant, 1)
	go func() { g, _ := locks.Acquire(ctx, "x", "alice", 2*time.Second); granted <- g }()
	waitFor(t, func() bool { return st.pending() == 1 })
	st.commit()
	g := <-granted
	renewed := make(chan error, 1)
	go func() { _, err := locks.Renew(ctx, "x", "alice", g.Lock.LeaseID, 2*time.Second); renewed <- err }()
	waitFor(t, func() bool { return st.pending() == 1 }) // the renewal, not committed
	clk.Add(3 * time.Second)
	expired := make(chan error, 1)
	go func() { expired <- sys.call(ctx, lockKey("x"), &expireLock{}) }()
	waitFor(t, func() bool { return st.pending() == 2 }) // and the expiry behind it
	st.commit()
	if err := <-renewed; err != nil {
		t.Fatal(err)
	}
	if err := <-expired; err != nil {
		t.Fatal(err)
	}
	if r, _, ok := locks.holdings.lookup("x"); ok {
		t.Fatalf("the index still has %+v after the expiry committed", r)
	}
	if n := locks.Indexed(); n != 0 {
		t.Fatalf("%d entries in the index, want 0", n)
	}
}
