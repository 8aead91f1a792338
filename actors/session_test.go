package actors_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
)

// Sessions on the real store, with an injected clock whose timers the test
// fires: locks held under a session follow its expiry, end with it (expired
// or released), and all of that survives restarts.

func sessionEnv(t *testing.T, path string, clk *clock, ev *recorder, ts *timers) *env {
	t.Helper()
	return openEnv(t, path, resourceConfig{clk: clk, ev: ev, timers: ts})
}

func TestSessionLocksFollowTheSession(t *testing.T) {
	clk := &clock{now: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)}
	ts, ev := newTimers(clk), &recorder{}
	e := sessionEnv(t, filepath.Join(t.TempDir(), "db"), clk, ev, ts)
	ctx := t.Context()

	s, err := e.sessions.Create(ctx, "alice", 10*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "c"} {
		g, err := e.locks.AcquireWith(ctx, name, actors.LockRequest{Caller: "alice", SessionID: s.ID})
		if err != nil || !g.New || g.Lock.SessionID != s.ID || !g.Lock.ExpiresAt.Equal(s.ExpiresAt) {
			t.Fatalf("acquire %s under the session: %+v %v", name, g, err)
		}
	}
	// Renewing a session lock is refused: keep the session alive instead.
	st, _ := e.locks.Status(ctx, "a")
	if _, err := e.locks.Renew(ctx, "a", "alice", st.Lock.LeaseID, time.Hour); !errors.Is(err, actors.ErrSessionLock) {
		t.Fatalf("renew of a session lock: %v", err)
	}
	// A keepalive moves every lock's expiry.
	clk.Add(8 * time.Second)
	ts.fire()
	k, err := e.sessions.KeepAlive(ctx, s.ID, "alice")
	if err != nil || !k.ExpiresAt.Equal(clk.Now().Add(10*time.Second)) {
		t.Fatalf("keepalive: %+v %v", k, err)
	}
	if st, _ := e.locks.Status(ctx, "b"); !st.Held || !st.Lock.ExpiresAt.Equal(k.ExpiresAt) {
		t.Fatalf("status after the keepalive: %+v", st)
	}
	if l := e.locks.List("alice"); len(l) != 3 || !l[0].ExpiresAt.Equal(k.ExpiresAt) {
		t.Fatalf("listing: %+v", l)
	}
	if l := e.sessions.List("alice"); len(l) != 1 || fmt.Sprint(l[0].Locks) != "[a b c]" {
		t.Fatalf("sessions: %+v", l)
	}
	ev.take()

	// No keepalive: at the session's expiry every lock ends, then the
	// session, each announced once.
	clk.Add(10 * time.Second)
	ts.fire()
	want := []string{"lock.expired a alice 1", "lock.expired b alice 1", "lock.expired c alice 1", "session.expired " + s.ID + "  0"}
	got := waitEvents(t, ev, len(want))
	if len(got) != 4 || got[3] != want[3] || !sameSet(got[:3], want[:3]) {
		t.Fatalf("events at the session's expiry: %q,\nwant %q", got, want)
	}
	for _, name := range []string{"a", "b", "c"} {
		if st, _ := e.locks.Status(ctx, name); st.Held {
			t.Fatalf("%s held after its session expired: %+v", name, st)
		}
	}
	if _, err := e.sessions.KeepAlive(ctx, s.ID, "alice"); !errors.Is(err, actors.ErrSessionNotFound) {
		t.Fatalf("keepalive of an expired session: %v", err)
	}
	if _, ok, err := e.store.LoadSession(s.ID); ok || err != nil {
		t.Fatalf("the expired session's row: %v %v", ok, err)
	}
	if g, err := e.locks.Acquire(ctx, "a", "bob", time.Minute); err != nil || g.Lock.Token != 2 {
		t.Fatalf("bob after the expiry: %+v %v", g, err)
	}
}

func sameSet(a, b []string) bool {
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return len(a) == len(b)
}

// Closing a session releases its locks at once (lock.released, no
// lock-delay) and answers with their number once that is durable.
func TestSessionCloseReleasesItsLocks(t *testing.T) {
	clk := &clock{now: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)}
	ts, ev := newTimers(clk), &recorder{}
	e := sessionEnv(t, filepath.Join(t.TempDir(), "db"), clk, ev, ts)
	ctx := t.Context()
	s, err := e.sessions.Create(ctx, "alice", time.Minute, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"x", "y"} {
		if _, err := e.locks.AcquireWith(ctx, name, actors.LockRequest{Caller: "alice", SessionID: s.ID}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.locks.Acquire(ctx, "z", "alice", time.Minute); err != nil { // not the session's
		t.Fatal(err)
	}
	// Only its owner closes it.
	if _, err := e.sessions.Close(ctx, s.ID, "bob", false); !errors.Is(err, actors.ErrSessionNotFound) {
		t.Fatalf("bob closing alice's session: %v", err)
	}
	ev.take()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second) // a close that never ends fails, not hangs
	defer cancel()
	n, err := e.sessions.Close(cctx, s.ID, "alice", false)
	if err != nil || n != 2 {
		t.Fatalf("close: %d %v", n, err)
	}
	want := []string{"lock.released x alice 1", "lock.released y alice 1", "session.closed " + s.ID + "  0"}
	if got := waitEvents(t, ev, 3); len(got) != 3 || got[2] != want[2] || !sameSet(got[:2], want[:2]) {
		t.Fatalf("events of the close: %q", got)
	}
	// Released, not expired: no lock-delay, the next grant is at once.
	if g, err := e.locks.Acquire(ctx, "x", "bob", time.Minute); err != nil || g.Lock.Token != 2 {
		t.Fatalf("bob after the close: %+v %v", g, err)
	}
	if st, _ := e.locks.Status(ctx, "z"); !st.Held {
		t.Fatalf("a lock outside the session was released: %+v", st)
	}
	for _, err := range []error{
		func() error { _, err := e.sessions.KeepAlive(ctx, s.ID, "alice"); return err }(),
		func() error { _, err := e.sessions.Close(ctx, s.ID, "alice", false); return err }(),
		func() error {
			_, err := e.locks.AcquireWith(ctx, "w", actors.LockRequest{Caller: "alice", SessionID: s.ID})
			return err
		}(),
	} {
		if !errors.Is(err, actors.ErrSessionNotFound) {
			t.Fatalf("a closed session: %v", err)
		}
	}
}

// A session's lock is held across restarts while the session lives; a
// session that expired while the server was down ends, with its locks,
// right after the next start.
func TestSessionAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	clk := &clock{now: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)}
	ev := &recorder{}
	ts := newTimers(clk)
	e := sessionEnv(t, path, clk, ev, ts)
	ctx := t.Context()
	s, err := e.sessions.Create(ctx, "alice", 30*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	g, err := e.locks.AcquireWith(ctx, "r", actors.LockRequest{Caller: "alice", SessionID: s.ID})
	if err != nil {
		t.Fatal(err)
	}
	e.close()

	clk.Add(20 * time.Second)
	ts = newTimers(clk)
	e = sessionEnv(t, path, clk, ev, ts)
	ts.fire()
	st, err := e.locks.Status(ctx, "r")
	if err != nil || !st.Held || st.Lock.LeaseID != g.Lock.LeaseID || !st.Lock.ExpiresAt.Equal(s.ExpiresAt) {
		t.Fatalf("after a restart: %+v %v", st, err)
	}
	k, err := e.sessions.KeepAlive(ctx, s.ID, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if l := e.locks.List("alice"); len(l) != 1 || !l[0].ExpiresAt.Equal(k.ExpiresAt) {
		t.Fatalf("listing after a restart and a keepalive: %+v", l)
	}
	e.close()
	ev.take()

	clk.Add(time.Hour) // the session expires while no server runs
	ts = newTimers(clk)
	e = sessionEnv(t, path, clk, ev, ts)
	ts.fire()
	want := []string{"lock.expired r alice 1", "session.expired " + s.ID + "  0"}
	if got := waitEvents(t, ev, 2); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after a restart past the session's expiry: %q, want %q", got, want)
	}
	if st, _ := e.locks.Status(ctx, "r"); st.Held {
		t.Fatalf("held after its session expired while down: %+v", st)
	}
	if n := len(e.sessions.List("")); n != 0 {
		t.Fatalf("%d sessions left", n)
	}
}

// Sessions are their owner's: another user's session is "not found", for a
// keepalive, a close and an acquire under it; a user has at most
// SessionConfig.MaxPerUser.
func TestSessionOwnerAndQuota(t *testing.T) {
	clk := &clock{now: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)}
	ts := newTimers(clk)
	e := sessionEnv(t, filepath.Join(t.TempDir(), "db"), clk, &recorder{}, ts)
	ctx := t.Context()
	s, err := e.sessions.Create(ctx, "alice", time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.sessions.KeepAlive(ctx, s.ID, "bob"); !errors.Is(err, actors.ErrSessionNotFound) {
		t.Fatalf("bob's keepalive of alice's session: %v", err)
	}
	if _, err := e.locks.AcquireWith(ctx, "q", actors.LockRequest{Caller: "bob", SessionID: s.ID}); !errors.Is(err, actors.ErrSessionNotFound) {
		t.Fatalf("bob's acquire under alice's session: %v", err)
	}
	if st, _ := e.locks.Status(ctx, "q"); st.Held {
		t.Fatalf("granted under a foreign session: %+v", st)
	}
	if n, err := e.sessions.Close(ctx, s.ID, "", true); err != nil || n != 0 { // the admin closes anybody's
		t.Fatalf("admin close: %d %v", n, err)
	}
	ts.fire()

	e2 := openEnv(t, filepath.Join(t.TempDir(), "db2"), resourceConfig{clk: clk, maxSessions: 2})
	for i := 0; i < 2; i++ {
		if _, err := e2.sessions.Create(ctx, "alice", time.Minute, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e2.sessions.Create(ctx, "alice", time.Minute, 0); !errors.Is(err, actors.ErrQuota) {
		t.Fatalf("a third session with a quota of 2: %v", err)
	}
	if _, err := e2.sessions.Create(ctx, "bob", time.Minute, 0); err != nil {
		t.Fatalf("another user: %v", err)
	}
}

// A waiter gets the lock when the session holding it expires.
func TestSessionExpiryHandsTheLockToAWaiter(t *testing.T) {
	clk := &clock{now: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)}
	ts, ev := newTimers(clk), &recorder{}
	e := sessionEnv(t, filepath.Join(t.TempDir(), "db"), clk, ev, ts)
	ctx := t.Context()
	s, err := e.sessions.Create(ctx, "alice", 10*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.locks.AcquireWith(ctx, "h", actors.LockRequest{Caller: "alice", SessionID: s.ID}); err != nil {
		t.Fatal(err)
	}
	type res struct {
		g   actors.LockGrant
		err error
	}
	got := make(chan res, 1)
	go func() {
		g, err := e.locks.AcquireWith(ctx, "h", actors.LockRequest{Caller: "bob", TTL: time.Minute, Wait: time.Minute})
		got <- res{g, err}
	}()
	waitFor(t, func() bool { st, _ := e.locks.Status(ctx, "h"); return st.Waiters == 1 })
	clk.Add(10 * time.Second)
	ts.fire()
	r := <-got
	if r.err != nil || r.g.Lock.Holder != "bob" || r.g.Lock.Token != 2 {
		t.Fatalf("bob: %+v %v", r.g, r.err)
	}
}
