package actors_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
)

// Lock-delay: a hold lost by expiry keeps the lock from everyone until its
// expiry plus the delay; a release frees it at once; waiters wait through
// the delay; all of it survives a restart.

func TestLockDelayStateMachine(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	n := 0
	lease := func() string { n++; return string(rune('a' + n)) }
	l := actors.LockRecord{Name: "d"}
	l, _, err := actors.AcquireIn(l, actors.Grantee{Caller: "alice", TTL: 10 * time.Second, LockDelay: 5 * time.Second}, t0, lease)
	if err != nil || l.LockDelay != 5*time.Second {
		t.Fatalf("grant: %+v %v", l, err)
	}
	freed, ok := actors.Expire(l, t0.Add(10*time.Second))
	if !ok || freed.Holder != "" || freed.DelayHolder != "alice" || !freed.AvailableAt.Equal(t0.Add(15*time.Second)) || !freed.ExpiresAt.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("expired: %+v", freed)
	}
	for _, at := range []time.Duration{10 * time.Second, 15*time.Second - time.Millisecond} {
		for _, who := range []string{"bob", "alice"} { // the former holder too
			_, _, err := actors.AcquireIn(freed, actors.Grantee{Caller: who, TTL: time.Minute}, t0.Add(at), lease)
			var d *actors.LockDelayError
			if !errors.As(err, &d) || d.Holder != "alice" || !d.AvailableAt.Equal(t0.Add(15*time.Second)) {
				t.Fatalf("%s at +%s: %v, want lock-delay until +15s", who, at, err)
			}
		}
	}
	next, out, err := actors.AcquireIn(freed, actors.Grantee{Caller: "bob", TTL: time.Minute}, t0.Add(15*time.Second), lease)
	if err != nil || out != actors.LockAcquired || next.Token != 2 || !next.AvailableAt.IsZero() || next.DelayHolder != "" || next.LockDelay != 0 {
		t.Fatalf("at the end of the delay: %+v %v", next, err)
	}
	// A release is not an expiry: no delay.
	released, err := actors.Release(l, "alice", l.LeaseID, false, t0.Add(time.Second))
	if err != nil || !released.AvailableAt.IsZero() {
		t.Fatalf("release: %+v %v", released, err)
	}
	if _, _, err := actors.AcquireIn(released, actors.Grantee{Caller: "bob", TTL: time.Minute}, t0.Add(time.Second), lease); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	// Without a delay, an expiry frees at once.
	plain, _, _ := actors.AcquireIn(actors.LockRecord{Name: "p"}, actors.Grantee{Caller: "alice", TTL: time.Second}, t0, lease)
	if f, _ := actors.Expire(plain, t0.Add(time.Second)); !f.AvailableAt.IsZero() || !f.ExpiresAt.IsZero() {
		t.Fatalf("expiry without a delay: %+v", f)
	}
}

func TestLockDelayWaitersAndRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	clk := &clock{now: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)}
	ts, ev := newTimers(clk), &recorder{}
	e := openEnv(t, path, resourceConfig{clk: clk, ev: ev, timers: ts})
	ctx := t.Context()
	if _, err := e.locks.AcquireWith(ctx, "d", actors.LockRequest{Caller: "alice", TTL: 10 * time.Second, LockDelay: 20 * time.Second}); err != nil {
		t.Fatal(err)
	}
	type res struct {
		g   actors.LockGrant
		err error
	}
	got := make(chan res, 1)
	go func() {
		g, err := e.locks.AcquireWith(ctx, "d", actors.LockRequest{Caller: "bob", TTL: time.Minute, Wait: time.Minute})
		got <- res{g, err}
	}()
	waitFor(t, func() bool { st, _ := e.locks.Status(ctx, "d"); return st.Waiters == 1 })
	clk.Add(10 * time.Second) // alice's hold expires: the delay starts
	ts.fire()
	st, err := e.locks.Status(ctx, "d")
	if err != nil || st.Held || !st.Delayed || st.Waiters != 1 || !st.Lock.AvailableAt.Equal(clk.Now().Add(20*time.Second)) {
		t.Fatalf("in the delay: %+v %v", st, err)
	}
	var d *actors.LockDelayError
	if _, err := e.locks.Acquire(ctx, "d", "carol", time.Minute); !errors.As(err, &d) || d.Holder != "alice" {
		t.Fatalf("carol during the delay: %v", err)
	}
	select {
	case r := <-got:
		t.Fatalf("bob granted during the delay: %+v", r)
	default:
	}
	clk.Add(20 * time.Second)
	ts.fire() // the end of the delay: the waiter first
	if r := <-got; r.err != nil || r.g.Lock.Holder != "bob" || r.g.Lock.Token != 2 {
		t.Fatalf("bob at the end of the delay: %+v %v", r.g, r.err)
	}

	// Across a restart: a delay recorded before it still holds after it,
	// and one of a hold that expired while the server was down too.
	if _, err := e.locks.AcquireWith(ctx, "r1", actors.LockRequest{Caller: "alice", TTL: 5 * time.Second, LockDelay: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.locks.AcquireWith(ctx, "r2", actors.LockRequest{Caller: "alice", TTL: 20 * time.Second, LockDelay: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	clk.Add(5 * time.Second)
	ts.fire() // r1 expires and its delay is recorded
	waitFor(t, func() bool { st, _ := e.locks.Status(ctx, "r1"); return st.Delayed })
	e.close()
	clk.Add(20 * time.Second) // r2 expires while down
	ts = newTimers(clk)
	e = openEnv(t, path, resourceConfig{clk: clk, ev: ev, timers: ts})
	ts.fire()
	for _, name := range []string{"r1", "r2"} {
		if _, err := e.locks.Acquire(ctx, name, "bob", time.Minute); !errors.As(err, &d) {
			t.Fatalf("%s after the restart: %v, want lock-delay", name, err)
		}
	}
	clk.Add(10 * time.Second) // r1's delay (until +35s) is over; r2's (until +50s) is not
	if g, err := e.locks.Acquire(ctx, "r1", "bob", time.Minute); err != nil || g.Lock.Token != 2 {
		t.Fatalf("r1 after its delay: %+v %v", g, err)
	}
	if _, err := e.locks.Acquire(ctx, "r2", "bob", time.Minute); !errors.As(err, &d) || !d.AvailableAt.Equal(clk.Now().Add(15*time.Second)) {
		t.Fatalf("r2 before its delay is over: %v", err)
	}
}

// A session's lock-delay applies to its locks when it expires, not when it
// is closed.
func TestLockDelayOfASession(t *testing.T) {
	clk := &clock{now: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)}
	ts := newTimers(clk)
	e := openEnv(t, filepath.Join(t.TempDir(), "db"), resourceConfig{clk: clk, timers: ts})
	ctx := t.Context()
	for _, close := range []bool{false, true} {
		s, err := e.sessions.Create(ctx, "alice", 10*time.Second, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		name := map[bool]string{false: "expiring", true: "closing"}[close]
		if _, err := e.locks.AcquireWith(ctx, name, actors.LockRequest{Caller: "alice", SessionID: s.ID}); err != nil {
			t.Fatal(err)
		}
		if close {
			if _, err := e.sessions.Close(ctx, s.ID, "alice", false); err != nil {
				t.Fatal(err)
			}
		} else {
			clk.Add(10 * time.Second)
			ts.fire()
			waitFor(t, func() bool { st, _ := e.locks.Status(ctx, name); return !st.Held })
		}
		_, err = e.locks.Acquire(ctx, name, "bob", time.Minute)
		var d *actors.LockDelayError
		if close && err != nil || !close && !errors.As(err, &d) {
			t.Fatalf("%s: bob's acquire: %v", name, err)
		}
	}
}
