package actors_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
)

// Semaphores on the real store, with an injected clock whose timers the
// test fires.

func semEnv(t *testing.T, path string) (*env, *clock, *timers, *recorder) {
	t.Helper()
	clk := &clock{now: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)}
	ts, ev := newTimers(clk), &recorder{}
	return openEnv(t, path, resourceConfig{clk: clk, ev: ev, timers: ts}), clk, ts, ev
}

func TestSemaphoreSlotsLimitAndTokens(t *testing.T) {
	e, _, _, _ := semEnv(t, filepath.Join(t.TempDir(), "db"))
	ctx := t.Context()
	acq := func(who, holderID string, limit int) (actors.SemaphoreGrant, error) {
		return e.sems.Acquire(ctx, "pool", actors.SemaphoreRequest{Caller: who, HolderID: holderID, Limit: limit, TTL: time.Minute})
	}
	a, err := acq("alice", "w1", 2)
	if err != nil || !a.New || a.Slot.Token != 1 || a.Holders != 1 || a.Limit != 2 {
		t.Fatalf("first: %+v %v", a, err)
	}
	// Every acquire takes a new slot (the same user without a holder id
	// too), unless it repeats a held holder id.
	b, err := acq("alice", "", 2)
	if err != nil || b.Slot.Token != 2 || b.Holders != 2 || b.Slot.LeaseID == a.Slot.LeaseID {
		t.Fatalf("second: %+v %v", b, err)
	}
	again, err := acq("alice", "w1", 2)
	if err != nil || again.New || again.Slot.LeaseID != a.Slot.LeaseID || again.Slot.Token != 1 {
		t.Fatalf("a repeated holder id: %+v %v", again, err)
	}
	var full *actors.SemaphoreFullError
	if _, err := acq("carol", "", 2); !errors.As(err, &full) || full.Limit != 2 || full.Holders != 2 {
		t.Fatalf("third with a limit of 2: %v", err)
	}
	if _, err := acq("carol", "", 3); !errors.Is(err, actors.ErrSemaphoreLimit) {
		t.Fatalf("another limit while held: %v", err)
	}
	if _, err := e.sems.Renew(ctx, "pool", "bob", b.Slot.LeaseID, time.Hour); !errors.Is(err, actors.ErrSemaphoreNotOwned) {
		t.Fatalf("bob renewing alice's slot: %v", err)
	}
	if r, err := e.sems.Renew(ctx, "pool", "alice", b.Slot.LeaseID, time.Hour); err != nil || r.Slot.Token != 2 {
		t.Fatalf("renew: %+v %v", r, err)
	}
	if err := e.sems.Release(ctx, "pool", "bob", b.Slot.LeaseID, false); !errors.Is(err, actors.ErrSemaphoreNotOwned) {
		t.Fatalf("bob releasing alice's slot: %v", err)
	}
	if err := e.sems.Release(ctx, "pool", "alice", b.Slot.LeaseID, false); err != nil {
		t.Fatal(err)
	}
	if err := e.sems.Release(ctx, "pool", "alice", b.Slot.LeaseID, false); !errors.Is(err, actors.ErrSemaphoreNotOwned) {
		t.Fatalf("a second release: %v", err)
	}
	c, err := acq("carol", "", 2)
	if err != nil || c.Slot.Token != 3 {
		t.Fatalf("carol after the release: %+v %v", c, err)
	}
	st, err := e.sems.Status(ctx, "pool")
	if err != nil || st.Limit != 2 || len(st.Slots) != 2 || st.Slots[0].Holder != "alice" || st.Slots[1].Holder != "carol" || st.Token != 3 {
		t.Fatalf("status: %+v %v", st, err)
	}
	// With every slot gone, the next acquire sets the limit.
	for _, sl := range st.Slots {
		if err := e.sems.Release(ctx, "pool", sl.Holder, sl.LeaseID, false); err != nil {
			t.Fatal(err)
		}
	}
	if g, err := acq("dave", "", 5); err != nil || g.Limit != 5 || g.Slot.Token != 4 {
		t.Fatalf("after the last release, a new limit: %+v %v", g, err)
	}
}

// Slots expire with their TTL; waiters are served in arrival order as
// slots free; across a restart the slots and the token survive, and slots
// that ran out while down end.
func TestSemaphoreExpiryWaitersRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	e, clk, ts, ev := semEnv(t, path)
	ctx := t.Context()
	if _, err := e.sems.Acquire(ctx, "one", actors.SemaphoreRequest{Caller: "alice", Limit: 1, TTL: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	type res struct {
		who string
		g   actors.SemaphoreGrant
		err error
	}
	got := make(chan res, 2)
	for i, who := range []string{"bob", "carol"} {
		go func() {
			g, err := e.sems.Acquire(ctx, "one", actors.SemaphoreRequest{Caller: who, Limit: 1, TTL: time.Hour, Wait: time.Minute})
			got <- res{who, g, err}
		}()
		waitFor(t, func() bool { st, _ := e.sems.Status(ctx, "one"); return st.Waiters == i+1 })
	}
	clk.Add(10 * time.Second)
	ts.fire() // alice's slot expires: bob, first in line
	r := <-got
	if r.who != "bob" || r.err != nil || r.g.Slot.Token != 2 {
		t.Fatalf("after the expiry: %+v", r)
	}
	if err := e.sems.Release(ctx, "one", "bob", r.g.Slot.LeaseID, false); err != nil {
		t.Fatal(err)
	}
	if r = <-got; r.who != "carol" || r.err != nil || r.g.Slot.Token != 3 {
		t.Fatalf("after bob's release: %+v", r)
	}
	waitEvents(t, ev, 5) // one: alice acquired, expired; bob acquired, released; carol acquired

	if _, err := e.sems.Acquire(ctx, "two", actors.SemaphoreRequest{Caller: "alice", Limit: 2, TTL: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	kept, err := e.sems.Acquire(ctx, "two", actors.SemaphoreRequest{Caller: "bob", Limit: 2, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	waitEvents(t, ev, 2)
	e.close()
	clk.Add(time.Minute) // alice's slot of "two" runs out while down
	ts = newTimers(clk)
	e = openEnv(t, path, resourceConfig{clk: clk, ev: ev, timers: ts})
	ts.fire()
	want := []string{"semaphore.expired two alice 1"}
	if got := waitEvents(t, ev, 1); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after the restart: %q", got)
	}
	st, err := e.sems.Status(ctx, "two")
	if err != nil || len(st.Slots) != 1 || st.Slots[0].LeaseID != kept.Slot.LeaseID || st.Limit != 2 {
		t.Fatalf("status after the restart: %+v %v", st, err)
	}
	if g, err := e.sems.Acquire(ctx, "one", actors.SemaphoreRequest{Caller: "dave", Limit: 1, TTL: time.Minute}); err == nil || g.Slot.Token != 0 {
		// carol still holds "one" (an hour left is not over): full.
		t.Fatalf("one after the restart: %+v %v", g, err)
	}
	if g, err := e.sems.Acquire(ctx, "two", actors.SemaphoreRequest{Caller: "dave", Limit: 2, TTL: time.Minute}); err != nil || g.Slot.Token != 3 {
		t.Fatalf("two after the restart: %+v %v, want token 3", g, err)
	}
}

// Slots held under a session end with it: released when it is closed,
// expired when it expires.
func TestSemaphoreSessionSlots(t *testing.T) {
	e, clk, ts, ev := semEnv(t, filepath.Join(t.TempDir(), "db"))
	ctx := t.Context()
	for _, closeIt := range []bool{true, false} {
		s, err := e.sessions.Create(ctx, "alice", 10*time.Second, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			g, err := e.sems.Acquire(ctx, "sp", actors.SemaphoreRequest{Caller: "alice", Limit: 3, SessionID: s.ID})
			if err != nil || g.Slot.SessionID != s.ID || !g.Slot.ExpiresAt.Equal(s.ExpiresAt) {
				t.Fatalf("acquire under the session: %+v %v", g, err)
			}
		}
		ev.take()
		if closeIt {
			if n, err := e.sessions.Close(ctx, s.ID, "alice", false); err != nil || n != 1 {
				t.Fatalf("close: %d %v (one semaphore held)", n, err)
			}
		} else {
			clk.Add(10 * time.Second)
			ts.fire()
		}
		typ := map[bool]string{true: "semaphore.released", false: "semaphore.expired"}[closeIt]
		got := waitEvents(t, ev, 3)
		if len(got) != 3 || got[0][:len(typ)] != typ || got[1][:len(typ)] != typ {
			t.Fatalf("close=%v: events %q", closeIt, got)
		}
		if st, _ := e.sems.Status(ctx, "sp"); len(st.Slots) != 0 {
			t.Fatalf("close=%v: slots left %+v", closeIt, st.Slots)
		}
	}
}

// Never more than limit slots held: concurrent acquires and releases of
// one semaphore, checked from the callers' side (a slot counts from its
// grant's answer to the moment its release is sent, inside the server's
// hold, so the count is at most what the server held).
func TestSemaphoreNeverOverLimit(t *testing.T) {
	e, _, _, _ := semEnv(t, filepath.Join(t.TempDir(), "db"))
	ctx := context.Background()
	const limit, workers, rounds = 3, 8, 60
	var mu sync.Mutex
	held, maxHeld, grants := 0, 0, 0
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := 0; i < rounds; i++ {
				g, err := e.sems.Acquire(ctx, "n", actors.SemaphoreRequest{Caller: fmt.Sprint("u", w), Limit: limit, TTL: time.Hour,
					Wait: time.Duration(rng.IntN(2)) * time.Minute})
				var full *actors.SemaphoreFullError
				if errors.As(err, &full) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				held++
				grants++
				maxHeld = max(maxHeld, held)
				over := held > limit
				mu.Unlock()
				if over {
					t.Errorf("%d slots held at once, limit %d", held, limit)
				}
				time.Sleep(time.Duration(rng.IntN(500)) * time.Microsecond) // the work under the slot
				mu.Lock()
				held--
				mu.Unlock()
				if err := e.sems.Release(ctx, "n", fmt.Sprint("u", w), g.Slot.LeaseID, false); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if grants < rounds || maxHeld < 2 {
		t.Fatalf("%d grants, at most %d held: the test did not contend", grants, maxHeld)
	}
	st, _ := e.sems.Status(ctx, "n")
	if st.Token != uint64(grants) {
		t.Fatalf("last token %d after %d grants", st.Token, grants)
	}
}

// The slot listings read the per-user slot index: a user's slots (the
// admin's ListAllPage: everyone's) by semaphore name, then lease, page
// after page; a session's slots with its expiry while it lives; expired
// slots not at all; the same after a restart (the index is rebuilt from
// the store).
func TestSemaphoreListings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	e, clk, _, _ := semEnv(t, path)
	ctx := t.Context()
	meta := "host-1 pid 7"
	acq := func(name, who string, r actors.SemaphoreRequest) actors.SemaphoreGrant {
		t.Helper()
		r.Caller, r.Limit = who, 3
		if r.TTL == 0 && r.SessionID == "" {
			r.TTL = time.Hour
		}
		g, err := e.sems.Acquire(ctx, name, r)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	s, err := e.sessions.Create(ctx, "alice", 30*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	acq("pool", "alice", actors.SemaphoreRequest{HolderID: "w1", Metadata: &meta})
	acq("pool", "alice", actors.SemaphoreRequest{SessionID: s.ID})
	acq("pool", "bob", actors.SemaphoreRequest{})
	acq("a", "alice", actors.SemaphoreRequest{})
	acq("pool-b", "alice", actors.SemaphoreRequest{})
	acq("short", "alice", actors.SemaphoreRequest{TTL: time.Second})
	acq("short", "bob", actors.SemaphoreRequest{TTL: time.Second})
	clk.Add(2 * time.Second) // the "short" slots ran out (their actor has not ended them yet)

	list := func(who string, limit int) []actors.HeldSlot {
		t.Helper()
		all, err := actors.AllPages(limit, func(q actors.PageQuery) (actors.Page[actors.HeldSlot], error) {
			var pg actors.Page[actors.HeldSlot]
			if who == "" {
				pg = e.sems.ListAllPage(q)
			} else {
				pg = e.sems.ListPage(who, q)
			}
			if pg.Total != map[string]int{"": 5, "alice": 4, "bob": 1}[who] {
				t.Fatalf("%q: total %d", who, pg.Total)
			}
			return pg, nil
		}, func(sl *actors.HeldSlot) (string, string) { return "", actors.SlotKey(sl.Name, sl.LeaseID) })
		if err != nil {
			t.Fatal(err)
		}
		return all
	}
	show := func(sls []actors.HeldSlot) string {
		var out []string
		for _, sl := range sls {
			out = append(out, fmt.Sprintf("%s/%d %s %q %q sess=%v exp=%s", sl.Name, sl.Limit, sl.Holder, sl.HolderID, sl.Metadata,
				sl.SessionID != "", sl.ExpiresAt.Sub(clk.Now())))
		}
		return fmt.Sprint(out)
	}
	check := func(stage string) {
		for _, who := range []string{"alice", "bob", ""} {
			var want []actors.HeldSlot
			for limit := 1; limit <= 6; limit++ {
				got := list(who, limit)
				if limit == 1 {
					want = got
					continue
				}
				if show(got) != show(want) {
					t.Fatalf("%s %q: pages of %d: %s, of 1: %s", stage, who, limit, show(got), show(want))
				}
			}
			var names []string
			for _, sl := range want {
				names = append(names, sl.Name+" "+sl.Holder)
				if sl.Token == 0 || sl.LeaseID == "" || sl.AcquiredAt.IsZero() {
					t.Fatalf("%s: %+v", stage, sl)
				}
				if sl.SessionID != "" && (sl.SessionID != s.ID || sl.ExpiresAt.After(clk.Now().Add(30*time.Second))) {
					t.Fatalf("%s: a session slot %+v, session %+v", stage, sl, s)
				}
			}
			wantNames := map[string]string{
				"alice": "[a alice pool alice pool alice pool-b alice]",
				"bob":   "[pool bob]",
				"":      "[a alice pool alice pool alice pool bob pool-b alice]",
			}[who]
			// pool's three slots are by lease id: sort the expectation's holders the same way.
			if who == "" {
				wantNames = "[a alice " + want[1].Name + " " + want[1].Holder + " " + want[2].Name + " " + want[2].Holder + " " +
					want[3].Name + " " + want[3].Holder + " pool-b alice]"
				if want[1].LeaseID >= want[2].LeaseID || want[2].LeaseID >= want[3].LeaseID {
					t.Fatalf("%s: pool's slots not by lease: %s", stage, show(want))
				}
			}
			if fmt.Sprint(names) != wantNames {
				t.Fatalf("%s %q: %v, want %s", stage, who, names, wantNames)
			}
		}
		got := show(list("alice", 10))
		if !strings.Contains(got, `pool/3 alice "w1" "host-1 pid 7" sess=false`) || !strings.Contains(got, `pool/3 alice "" "" sess=true`) {
			t.Fatalf("%s: alice's slots %s", stage, got)
		}
	}
	check("live")
	e.close()
	e = openEnv(t, path, resourceConfig{clk: clk, timers: newTimers(clk)})
	// The session index is rebuilt from the store too: alice's session slot
	// is still listed while the session lives.
	check("after a restart")

	// A session that ended takes its slots out of the listing at once
	// (before its semaphore's actor ends them).
	clk.Add(31 * time.Second)
	pg := e.sems.ListPage("alice", actors.PageQuery{Limit: 10})
	if pg.Total != 3 || len(pg.Items) != 3 {
		t.Fatalf("after the session expired: %+v, want alice's three TTL slots", pg)
	}
	for _, sl := range pg.Items {
		if sl.SessionID != "" {
			t.Fatalf("a slot of an ended session listed: %+v", sl)
		}
	}
}
