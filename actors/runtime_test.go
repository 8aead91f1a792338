package actors

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// noTimers discards expiry timers (tests drive expiry through the clock).
func noTimers(time.Duration, func()) Timer { return stopped{} }

type stopped struct{}

func (stopped) Stop() bool { return false }

func (stopped) Reset(time.Duration) bool { return false }

// newTestLocks starts a runtime with the lock kind on st. Calls use
// t.Context(): a test that hangs fails by its own timeout.
func newTestLocks(t *testing.T, st *memStore, idle time.Duration, maxPerUser int) (*Locks, *System, *fakeClock) {
	t.Helper()
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	sys := NewSystem(Config{Store: st, Now: clk.Now, AfterFunc: noTimers, IdleTimeout: idle})
	locks := NewLocks(sys, LockConfig{Loader: st, MaxPerUser: maxPerUser})
	t.Cleanup(sys.Close)
	return locks, sys, clk
}

// A reply is delivered only after the write it depends on commits, and a
// later operation on the same lock proceeds in memory meanwhile, its reply
// following in commit order.
func TestReplyWaitsForCommit(t *testing.T) {
	st := newMemStore(true)
	locks, _, _ := newTestLocks(t, st, time.Minute, 0)
	ctx := t.Context()

	type res struct {
		v   LockGrant
		err error
	}
	first := make(chan res, 1)
	go func() {
		v, err := locks.Acquire(ctx, "a", "alice", time.Minute)
		first <- res{v, err}
	}()
	waitFor(t, func() bool { return st.pending() == 1 })
	second := make(chan res, 1)
	go func() {
		v, err := locks.Acquire(ctx, "a", "bob", time.Minute)
		second <- res{v, err}
	}()
	// bob's conflict is computed from alice's uncommitted grant: it must not
	// be answered before that grant is durable.
	select {
	case r := <-first:
		t.Fatalf("acquire answered before commit: %+v", r)
	case r := <-second:
		t.Fatalf("conflict answered before the grant it saw was committed: %+v", r)
	case <-time.After(50 * time.Millisecond): // absence of a reply cannot be signalled; bounded wait
	}
	if n := st.commit(); n != 1 {
		t.Fatalf("committed %d writes, want 1", n)
	}
	r1 := <-first
	r2 := <-second
	if r1.err != nil || !r1.v.New || r1.v.Lock.Token != 1 {
		t.Fatalf("first = %+v", r1)
	}
	var held *LockHeldError
	if !errors.As(r2.err, &held) || held.Holder != "alice" {
		t.Fatalf("second = %+v, want held by alice", r2)
	}
	if got := locks.List("alice"); len(got) != 1 || got[0].Name != "a" {
		t.Fatalf("holdings after commit = %+v", got)
	}
}

// A failed write answers ErrUnavailable, and the actor falls back to the
// durable state: the lost grant is not visible and its token is reused only
// because nobody ever saw it.
func TestFailedWriteRevertsToDurableState(t *testing.T) {
	st := newMemStore(false)
	locks, _, _ := newTestLocks(t, st, time.Minute, 0)
	ctx := t.Context()
	if _, err := locks.Acquire(ctx, "a", "alice", time.Minute); err != nil {
		t.Fatal(err)
	}
	s, _ := locks.Status(ctx, "a")
	lease := s.Lock.LeaseID
	if err := locks.Release(ctx, "a", "alice", lease); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	st.failNext = true
	st.mu.Unlock()
	_, err := locks.Acquire(ctx, "a", "bob", time.Minute)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("acquire with failing disk: err = %v, want ErrUnavailable", err)
	}
	s, err = locks.Status(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if s.Held {
		t.Fatalf("after failed grant the lock is %+v, want available", s)
	}
	g, err := locks.Acquire(ctx, "a", "carol", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if tok := g.Lock.Token; tok != 2 {
		t.Fatalf("token after a failed grant = %d, want 2 (the failed grant was never acknowledged)", tok)
	}
}

// Idle actors are passivated; re-activation finds the state they had: a
// held lock from its compact record in the holder index, without a read of
// the loader (only the first activation of each free lock reads it).
func TestPassivationKeepsState(t *testing.T) {
	st := newMemStore(false)
	locks, sys, _ := newTestLocks(t, st, 20*time.Millisecond, 0)
	ctx := t.Context()
	const n = 200
	for i := 0; i < n; i++ {
		if _, err := locks.Acquire(ctx, fmt.Sprint("l", i), "alice", time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return sys.LiveActors() == 0 })
	for i := 0; i < n; i++ {
		r, err := locks.Acquire(ctx, fmt.Sprint("l", i), "alice", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if r.New || r.Lock.Token != 1 {
			t.Fatalf("after re-activation: %+v, want held with token 1", r)
		}
	}
	st.mu.Lock()
	loads := st.loads
	st.mu.Unlock()
	if acts := locks.activations.Load(); acts < 2*n {
		t.Fatalf("activations = %d, want >= %d (every name activated twice)", acts, 2*n)
	}
	if loads != n || locks.loads.Load() != n {
		t.Fatalf("loader reads = %d (counted by the runtime: %d), want %d: a held lock activates from its record",
			loads, locks.loads.Load(), n)
	}
}

// Operations on one lock from many goroutines are serialised: exactly one
// of many concurrent acquirers wins each round.
func TestConcurrentAcquireOneWinner(t *testing.T) {
	st := newMemStore(false)
	locks, _, _ := newTestLocks(t, st, time.Minute, 0)
	ctx := t.Context()
	for round := 0; round < 20; round++ {
		var wg sync.WaitGroup
		var mu sync.Mutex
		winners := 0
		var lease string
		var caller string
		for c := 0; c < 8; c++ {
			wg.Add(1)
			go func(c int) {
				defer wg.Done()
				who := fmt.Sprint("user", c)
				g, err := locks.Acquire(ctx, "hot", who, time.Minute)
				if err == nil && g.New {
					mu.Lock()
					winners++
					lease, caller = g.Lock.LeaseID, who
					mu.Unlock()
				}
			}(c)
		}
		wg.Wait()
		if winners != 1 {
			t.Fatalf("round %d: %d winners", round, winners)
		}
		if err := locks.Release(ctx, "hot", caller, lease); err != nil {
			t.Fatal(err)
		}
	}
}

// Expiry through the injected clock: a timer op delivered after the clock
// passes expires_at frees the lock and removes it from the holder index.
func TestExpiryUpdatesIndex(t *testing.T) {
	st := newMemStore(false)
	locks, sys, clk := newTestLocks(t, st, time.Minute, 0)
	ctx := t.Context()
	if _, err := locks.Acquire(ctx, "e", "alice", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := len(locks.List("alice")); n != 1 {
		t.Fatalf("count = %d", n)
	}
	clk.Add(2 * time.Second)
	if err := sys.call(ctx, lockKey("e"), &expireLock{}); err != nil {
		t.Fatal(err)
	}
	if n := locks.Indexed(); n != 0 {
		t.Fatalf("index still has %d entries after expiry", n)
	}
	r, _ := locks.Acquire(ctx, "e", "bob", time.Second)
	if r.Lock.Token != 2 || r.Lock.Holder != "bob" {
		t.Fatalf("after expiry: %+v", r)
	}
}

func TestQuota(t *testing.T) {
	st := newMemStore(false)
	locks, _, clk := newTestLocks(t, st, time.Minute, 3)
	ctx := t.Context()
	for i := 0; i < 3; i++ {
		if _, err := locks.Acquire(ctx, fmt.Sprint("q", i), "alice", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := locks.Acquire(ctx, "q3", "alice", time.Minute); !errors.Is(err, ErrQuota) {
		t.Fatalf("4th lock: err = %v, want ErrQuota", err)
	}
	// re-acquiring one already held is not a new lock
	if _, err := locks.Acquire(ctx, "q0", "alice", time.Minute); err != nil {
		t.Fatalf("re-acquire within quota: %v", err)
	}
	clk.Add(time.Minute) // all expired: the quota frees up
	if _, err := locks.Acquire(ctx, "q3", "alice", time.Minute); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// eventLog records published events (the internal tests' Publisher).
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) Publish(e Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

// types lists the recorded events as "type holder token".
func (l *eventLog) types() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, len(l.events))
	for i, e := range l.events {
		out[i] = fmt.Sprintf("%s %s %d", e.Type, e.Holder, e.FencingToken)
	}
	return out
}

// One expiry, one event: a lock whose expiry was announced, then whose actor
// was passivated and reloaded, does not announce it again when the next
// acquire arrives (the reloaded record must not look like a hold to end).
// Both ways of noticing the expiry are covered: the timer, and an acquire
// that arrives first.
func TestExpiryAnnouncedOnceAcrossPassivation(t *testing.T) {
	for _, byTimer := range []bool{true, false} {
		t.Run(fmt.Sprintf("timer=%v", byTimer), func(t *testing.T) {
			st := newMemStore(false)
			ev := &eventLog{}
			clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			sys := NewSystem(Config{Store: st, Now: clk.Now, AfterFunc: noTimers, IdleTimeout: 20 * time.Millisecond, Events: ev})
			locks := NewLocks(sys, LockConfig{Loader: st})
			t.Cleanup(sys.Close)
			ctx := t.Context()

			if _, err := locks.Acquire(ctx, "e", "alice", 2*time.Second); err != nil {
				t.Fatal(err)
			}
			clk.Add(2 * time.Second)
			if byTimer {
				if err := sys.call(ctx, lockKey("e"), &expireLock{}); err != nil {
					t.Fatal(err)
				}
			} else if _, err := locks.Acquire(ctx, "e", "carol", time.Second); err != nil {
				t.Fatal(err)
			}
			for round := 0; round < 3; round++ {
				waitFor(t, func() bool { return sys.LiveActors() == 0 }) // passivated
				if byTimer && round == 0 {
					// The timer may fire again for a reloaded actor (a
					// recovery timer, a stale one): nothing to announce.
					if err := sys.call(ctx, lockKey("e"), &expireLock{}); err != nil {
						t.Fatal(err)
					}
					waitFor(t, func() bool { return sys.LiveActors() == 0 })
				}
				if _, err := locks.Status(ctx, "e"); err != nil { // reload, read
					t.Fatal(err)
				}
			}
			waitFor(t, func() bool { return sys.LiveActors() == 0 })
			clk.Add(time.Second) // carol's hold (if any) ran out too
			g, err := locks.Acquire(ctx, "e", "bob", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"lock.acquired alice 1", "lock.expired alice 1", "lock.acquired bob 2"}
			if !byTimer {
				want = []string{"lock.acquired alice 1", "lock.expired alice 1", "lock.acquired carol 2",
					"lock.expired carol 2", "lock.acquired bob 3"}
			}
			if got := ev.types(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("events %q,\nwant %q", got, want)
			}
			if g.Lock.Token != uint64(len(want)+1)/2 {
				t.Fatalf("bob's token %d", g.Lock.Token)
			}
		})
	}
}
