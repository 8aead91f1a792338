package client

import (
	"context"
	"errors"
	"testing"
	"time"
)

func withSessionClock(c clock) SessionOption { return func(o *sessionOptions) { o.clk = c } }

// A Session sends a keepalive every TTL/3; Lockers on it hold their locks
// under it without renewing them; when the server says the session is gone
// (it expired), the session and its Lockers are lost.
func TestSessionKeepsAliveAndLockersFollowIt(t *testing.T) {
	srv, alice, _ := fake(t)
	clk := newFakeClock()
	ctx := context.Background()
	s, err := NewSession(ctx, alice, WithSessionTTL(9*time.Second), withSessionClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Orphan()
	if len(s.ID()) != 36 || s.TTL() != 9*time.Second {
		t.Fatalf("session %q ttl %s", s.ID(), s.TTL())
	}
	a, b := s.NewLocker("a"), s.NewLocker("b")
	for _, l := range []*Locker{a, b} {
		if err := l.TryLock(ctx); err != nil {
			t.Fatal(err)
		}
		if got := l.Lease(); got.SessionID != s.ID() {
			t.Fatalf("lease %+v, want it under the session", got)
		}
	}
	for i := 1; i <= 3; i++ {
		if d := clk.WaitForWaiter(t); d != 3*time.Second {
			t.Fatalf("keepalive %d in %v, want TTL/3", i, d)
		}
		clk.Advance(3 * time.Second)
		clk.WaitForWaiter(t) // sent, and sleeping again
		if n := srv.Requests("POST /sessions/" + s.ID() + "/keepalive"); n != i {
			t.Fatalf("keepalives after %d ticks: %d", i, n)
		}
	}
	if n := srv.Requests("POST /locks/a/renew") + srv.Requests("POST /locks/b/renew"); n != 0 {
		t.Fatalf("%d renewals of locks held under a session", n)
	}
	srv.ExpireSession(s.ID())
	clk.Advance(3 * time.Second) // the next keepalive is refused: 404
	<-s.Done()
	if !errors.Is(s.Err(), ErrSessionLost) || !errors.Is(s.Err(), ErrNotFound) {
		t.Fatalf("session Err = %v", s.Err())
	}
	for _, l := range []*Locker{a, b} {
		<-l.Done()
		if !errors.Is(l.Err(), ErrLockLost) || !errors.Is(l.Err(), ErrSessionLost) {
			t.Fatalf("locker Err = %v", l.Err())
		}
	}
	if err := s.NewLocker("c").TryLock(ctx); !errors.Is(err, ErrSessionLost) {
		t.Fatalf("a Locker on an ended session: %v", err)
	}
}

// Close releases every lock of the session at once and ends its Lockers.
func TestSessionCloseReleasesItsLocks(t *testing.T) {
	srv, alice, bob := fake(t)
	ctx := context.Background()
	s, err := NewSession(ctx, alice, WithSessionTTL(time.Minute), WithLockDelay(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	l := s.NewLocker("job")
	if err := l.TryLock(ctx); err != nil {
		t.Fatal(err)
	}
	list, err := alice.ListSessions(ctx)
	if err != nil || len(list) != 1 || list[0].SessionID != s.ID() || len(list[0].Locks) != 1 || list[0].LockDelaySeconds != 1 {
		t.Fatalf("ListSessions = %+v %v", list, err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	<-l.Done()
	if srv.Holder("job") != "" || s.Err() != nil {
		t.Fatalf("after Close: holder %q, session err %v", srv.Holder("job"), s.Err())
	}
	if _, err := bob.Acquire(ctx, "job", time.Minute); err != nil {
		t.Fatalf("bob after the close: %v", err)
	}
	if _, err := alice.KeepAliveSession(ctx, s.ID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("keepalive of a closed session: %v", err)
	}
	if _, err := alice.Renew(ctx, "job", "550e8400-e29b-41d4-a716-446655440000", time.Minute); !errors.Is(err, ErrNotFound) {
		t.Fatalf("renew: %v", err)
	}
}
