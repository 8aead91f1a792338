package actors_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/actors/internal/manualtime"
)

// The lock actors on the real store, across restarts, with an injected
// clock whose timers the test fires.

// timers is an injected actors.Config.AfterFunc: timers fire when the test
// calls fire, once the clock has reached them (manualtime).
type timers struct{ *manualtime.Timers }

func newTimers(clk *clock) *timers { return &timers{manualtime.New(clk.Now)} }

func (ts *timers) AfterFunc(d time.Duration, f func()) actors.Timer { return ts.Timers.AfterFunc(d, f) }

// fire runs every timer due at the clock's time, and returns how many ran.
func (ts *timers) fire() int { return ts.Fire() }

func eventList(evs []actors.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = fmt.Sprintf("%s %s %s %d", e.Type, e.Name, e.Holder, e.FencingToken)
	}
	return out
}

// waitEvents waits until n events are recorded (an expiry is published from
// the writer's commit callback, after the timer's operation returns).
func waitEvents(t *testing.T, ev *recorder, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ev.mu.Lock()
		got := len(ev.events)
		ev.mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			return eventList(ev.take())
		}
		time.Sleep(time.Millisecond)
	}
}

// One expiry, one event, across restarts: an expiry announced before a
// restart is not announced again after it (by the recovery or by the next
// acquire), and a hold that ran out while no server ran is announced once,
// after the start, without waiting for a request.
func TestLockExpiryAnnouncedOnceAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	clk := &clock{now: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)}
	ts := newTimers(clk)
	ev := &recorder{}
	ctx := t.Context()

	e := openEnv(t, path, resourceConfig{clk: clk, ev: ev, timers: ts})
	for _, l := range []struct {
		name string
		ttl  time.Duration
	}{{"early", 5 * time.Second}, {"late", 10 * time.Second}, {"kept", time.Hour}} {
		if _, err := e.locks.Acquire(ctx, l.name, "alice", l.ttl); err != nil {
			t.Fatal(err)
		}
	}
	clk.Add(5 * time.Second)
	ts.fire()
	want := []string{"lock.acquired early alice 1", "lock.acquired late alice 1", "lock.acquired kept alice 1",
		"lock.expired early alice 1"}
	if got := waitEvents(t, ev, len(want)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("before the restart: %q,\nwant %q", got, want)
	}
	e.close()

	// Down for a minute: "late" runs out meanwhile; "early" was announced.
	clk.Add(time.Minute)
	ts = newTimers(clk)
	e = openEnv(t, path, resourceConfig{clk: clk, ev: ev, timers: ts, idle: 20 * time.Millisecond})
	ts.fire() // the recovery's timers: what ran out while down
	want = []string{"lock.expired late alice 1"}
	if got := waitEvents(t, ev, len(want)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after the restart: %q,\nwant %q", got, want)
	}
	// Reload each lock a few times (passivation in between), let any timer
	// fire, then acquire: no expiry is announced again.
	for round := 0; round < 2; round++ {
		waitFor(t, func() bool { return e.sys.LiveActors() == 0 })
		for _, name := range []string{"early", "late", "kept"} {
			if _, err := e.locks.Status(ctx, name); err != nil {
				t.Fatal(err)
			}
		}
		ts.fire()
	}
	for _, name := range []string{"early", "late"} {
		g, err := e.locks.Acquire(ctx, name, "bob", time.Minute)
		if err != nil || g.Lock.Token != 2 {
			t.Fatalf("acquire %s: %+v %v", name, g, err)
		}
	}
	want = []string{"lock.acquired early bob 2", "lock.acquired late bob 2"}
	if got := waitEvents(t, ev, len(want)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after reloads and acquires: %q,\nwant %q", got, want)
	}
	if st, err := e.locks.Status(ctx, "kept"); err != nil || !st.Held || st.Lock.Holder != "alice" {
		t.Fatalf("kept: %+v %v", st, err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
