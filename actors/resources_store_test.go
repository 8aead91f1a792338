package actors_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/persistence"
)

// The limit, flag and config actors on the real store: events, quota
// bookkeeping through failed writes, write-behind counters on close.

type recorder struct {
	mu     sync.Mutex
	events []actors.Event
}

func (r *recorder) Publish(e actors.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) take() []actors.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type env struct {
	path  string
	db    *persistence.DB
	store *persistence.Store
	sys   *actors.System
	res   *actors.Resources
	ev    *recorder
	clk   *clock
}

func openEnv(t *testing.T, path string, cfg actors.ResourceConfig) *env {
	t.Helper()
	db, err := persistence.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := persistence.NewWriter(db, persistence.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{path: path, db: db, store: persistence.NewStore(db, w), ev: &recorder{},
		clk: &clock{now: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)}}
	e.sys = actors.NewSystem(actors.Config{Store: e.store, Events: e.ev, Now: e.clk.Now, IdleTimeout: time.Hour})
	cfg.Loader = e.store
	if e.res, err = actors.RegisterResources(e.sys, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.close)
	return e
}

func (e *env) close() {
	if e.sys == nil {
		return
	}
	e.sys.Close()
	e.res.Close()
	e.store.Close()
	e.db.Close()
	e.sys = nil
}

func (e *env) do(t *testing.T, kind actors.Kind, name string, op any) (any, error) {
	t.Helper()
	return e.sys.Do(actors.Key{Kind: kind, Owner: "alice", Name: name}, op)
}

func (e *env) must(t *testing.T, kind actors.Kind, name string, op any) any {
	t.Helper()
	v, err := e.do(t, kind, name, op)
	if err != nil {
		t.Fatalf("%T on %s: %v", op, name, err)
	}
	return v
}

// Events are published once the change is committed (before the reply),
// with the owner set; limit.denied at most once a second per limit.
func TestResourceEvents(t *testing.T) {
	e := openEnv(t, filepath.Join(t.TempDir(), "db"), actors.ResourceConfig{})
	now := e.clk.Now()
	e.must(t, actors.KindFlag, "beta", actors.SetFlag{Enabled: true, Percentage: 20})
	e.must(t, actors.KindFlag, "beta", actors.DeleteFlag{})
	e.must(t, actors.KindConfig, "k", actors.SetConfig{Value: []byte(`1`), Expected: actors.ExpectAny})
	e.must(t, actors.KindConfig, "k", actors.SetConfig{Value: []byte(`2`), Expected: actors.ExpectAny})
	e.must(t, actors.KindConfig, "k", actors.DeleteConfig{})
	// failed operations publish nothing
	if _, err := e.do(t, actors.KindFlag, "beta", actors.DeleteFlag{}); !errors.Is(err, actors.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := e.do(t, actors.KindConfig, "k", actors.SetConfig{Value: []byte(`3`), Expected: 7}); err == nil {
		t.Fatal("conflict expected")
	}
	got := e.ev.take()
	want := []actors.Event{
		{Type: actors.EventFlagSet, Kind: "flag", Name: "beta", Owner: "alice", Time: now},
		{Type: actors.EventFlagDeleted, Kind: "flag", Name: "beta", Owner: "alice", Time: now},
		{Type: actors.EventConfigWritten, Kind: "config", Name: "k", Owner: "alice", Version: 1, Time: now},
		{Type: actors.EventConfigWritten, Kind: "config", Name: "k", Owner: "alice", Version: 2, Time: now},
		{Type: actors.EventConfigDeleted, Kind: "config", Name: "k", Owner: "alice", Version: 2, Time: now},
	}
	if len(got) != len(want) {
		t.Fatalf("events %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d: %+v, want %+v", i, got[i], want[i])
		}
	}

	one := actors.CheckLimit{Max: 1, Window: time.Minute}
	e.must(t, actors.KindLimit, "api", one)
	for i := 0; i < 5; i++ { // five denials in the same second: one event
		if r := e.must(t, actors.KindLimit, "api", one).(actors.LimitReply); r.Allowed {
			t.Fatal("allowed")
		}
	}
	e.clk.Add(time.Second)
	e.must(t, actors.KindLimit, "api", one)
	e.must(t, actors.KindLimit, "api", actors.ResetLimit{})
	got = e.ev.take()
	if len(got) != 3 || got[0].Type != actors.EventLimitDenied || got[1].Type != actors.EventLimitDenied ||
		got[2].Type != actors.EventLimitReset || got[2].Owner != "alice" || got[2].Name != "api" || !got[1].Time.Equal(now.Add(time.Second)) {
		t.Fatalf("limit events %+v", got)
	}
}

// A failed write never leaves the quota counter off: a failed create frees
// its slot, a failed delete keeps counting the resource.
func TestQuotaThroughFailedWrites(t *testing.T) {
	e := openEnv(t, filepath.Join(t.TempDir(), "db"), actors.ResourceConfig{MaxFlagsPerUser: 1, MaxConfigKeysPerUser: 1, MaxLimitsPerUser: 1})
	diskErr := errors.New("disk on fire")
	fail := func(on bool) {
		if on {
			e.store.SetFaultHook(func() error { return diskErr })
		} else {
			e.store.SetFaultHook(nil)
		}
	}
	set := actors.SetFlag{Enabled: true, Percentage: actors.NoPercentage}
	cfg := actors.SetConfig{Value: []byte(`{}`), Expected: actors.ExpectAny}

	fail(true)
	if _, err := e.do(t, actors.KindFlag, "a", set); !errors.Is(err, actors.ErrUnavailable) {
		t.Fatalf("create on a failing disk: %v", err)
	}
	if _, err := e.do(t, actors.KindConfig, "a", cfg); !errors.Is(err, actors.ErrUnavailable) {
		t.Fatalf("create on a failing disk: %v", err)
	}
	fail(false)
	if n := e.res.Owned(actors.KindFlag, "alice"); n != 0 {
		t.Fatalf("failed create still counted: %d", n)
	}
	// the failed creates left nothing: the one slot is free
	e.must(t, actors.KindFlag, "b", set)
	e.must(t, actors.KindConfig, "b", cfg)
	if r := e.must(t, actors.KindFlag, "a", actors.GetFlag{}).(actors.FlagReply); r.Found {
		t.Fatal("failed create exists")
	}

	fail(true)
	if _, err := e.do(t, actors.KindFlag, "b", actors.DeleteFlag{}); !errors.Is(err, actors.ErrUnavailable) {
		t.Fatalf("delete on a failing disk: %v", err)
	}
	if _, err := e.do(t, actors.KindConfig, "b", actors.DeleteConfig{}); !errors.Is(err, actors.ErrUnavailable) {
		t.Fatalf("delete on a failing disk: %v", err)
	}
	fail(false)
	// b still exists and still counts
	if _, err := e.do(t, actors.KindFlag, "c", set); !errors.Is(err, actors.ErrQuota) {
		t.Fatalf("create over quota after a failed delete: %v", err)
	}
	if _, err := e.do(t, actors.KindConfig, "c", cfg); !errors.Is(err, actors.ErrQuota) {
		t.Fatalf("create over quota after a failed delete: %v", err)
	}
	if r := e.must(t, actors.KindFlag, "b", actors.GetFlag{}).(actors.FlagReply); !r.Found {
		t.Fatal("flag b lost")
	}
	if n := e.res.Owned(actors.KindFlag, "alice"); n != 1 {
		t.Fatalf("flags counted: %d", n)
	}
	e.must(t, actors.KindFlag, "b", actors.DeleteFlag{})
	e.must(t, actors.KindFlag, "c", set)
}

// Rate limit counters are written behind, coalesced, and written by a
// graceful close: a new process sees every admitted check. With a
// one-second interval, 500 checks on 20 limits made in well under a second
// cost at most one write per limit.
func TestLimitCountersSurviveClose(t *testing.T) {
	for _, interval := range []time.Duration{time.Second, -1} {
		t.Run(fmt.Sprint("interval ", interval), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "db")
			e := openEnv(t, path, actors.ResourceConfig{LimitFlushInterval: interval})
			const n, limits = 500, 20
			start := time.Now()
			for i := 0; i < n; i++ {
				e.must(t, actors.KindLimit, fmt.Sprint("api-", i%limits), actors.CheckLimit{Max: 10000, Window: time.Hour})
			}
			writes, fast := e.store.Stats().Writes, time.Since(start) < 900*time.Millisecond
			e.close()
			if interval == time.Second && fast && writes > 1 {
				t.Fatalf("%d writes within the first interval", writes)
			}
			e2 := openEnv(t, path, actors.ResourceConfig{})
			for l := 0; l < limits; l++ {
				r := e2.must(t, actors.KindLimit, fmt.Sprint("api-", l), actors.PeekLimit{}).(actors.LimitReply)
				if r.Count != n/limits || r.Max != 10000 || r.Window != time.Hour {
					t.Fatalf("after close: %+v", r)
				}
			}
			if got := e2.res.Owned(actors.KindLimit, "alice"); got != limits {
				t.Fatalf("limits counted after restart: %d", got)
			}
		})
	}
}

// SyncLimits makes every acknowledged check durable at once, whatever the
// interval; a failed flush is retried, not dropped.
func TestLimitSyncAndRetry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	e := openEnv(t, path, actors.ResourceConfig{LimitFlushInterval: time.Hour})
	check := actors.CheckLimit{Max: 100, Window: time.Hour}
	for i := 0; i < 3; i++ {
		e.must(t, actors.KindLimit, "a", check)
	}
	if err := e.res.SyncLimits(); err != nil {
		t.Fatal(err)
	}
	if w, ok, err := e.store.LoadLimit("alice", "a"); err != nil || !ok || w.Count(e.clk.Now()) != 3 {
		t.Fatalf("after sync: %v %v %d", ok, err, w.Count(e.clk.Now()))
	}
	e.store.SetFaultHook(func() error { return errors.New("disk on fire") })
	e.must(t, actors.KindLimit, "a", check)
	e.must(t, actors.KindLimit, "b", check)
	if err := e.res.SyncLimits(); err == nil {
		t.Fatal("sync on a failing disk succeeded")
	}
	e.must(t, actors.KindLimit, "a", check) // counting goes on in memory
	e.store.SetFaultHook(nil)
	if err := e.res.SyncLimits(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{"a": 5, "b": 1} {
		if w, ok, _ := e.store.LoadLimit("alice", name); !ok || w.Count(e.clk.Now()) != want {
			t.Fatalf("%s after the retry: %v %d, want %d", name, ok, w.Count(e.clk.Now()), want)
		}
	}
}

// The flag read view holds only committed state, follows every write, and
// forgets a flag whose actor is passivated.
func TestFlagReadView(t *testing.T) {
	e := openEnv(t, filepath.Join(t.TempDir(), "db"), actors.ResourceConfig{})
	if _, ok := e.res.LookupFlag("alice", "f"); ok {
		t.Fatal("view answers for a flag never loaded")
	}
	e.must(t, actors.KindFlag, "f", actors.GetFlag{}) // activation: not found, cached
	if r, ok := e.res.LookupFlag("alice", "f"); !ok || r.Found {
		t.Fatalf("unknown flag: %+v %v", r, ok)
	}
	e.must(t, actors.KindFlag, "f", actors.SetFlag{Enabled: true, Percentage: 30})
	if r, ok := e.res.LookupFlag("alice", "f"); !ok || !r.Found || r.Flag.Percentage != 30 || !r.Flag.Enabled {
		t.Fatalf("after set: %+v %v", r, ok)
	}
	// a failed write is not in the view
	e.store.SetFaultHook(func() error { return errors.New("disk on fire") })
	if _, err := e.do(t, actors.KindFlag, "f", actors.SetFlag{Enabled: false, Percentage: 5}); err == nil {
		t.Fatal("write on a failing disk succeeded")
	}
	e.store.SetFaultHook(nil)
	if r, ok := e.res.LookupFlag("alice", "f"); !ok || r.Flag.Percentage != 30 {
		t.Fatalf("after a failed write: %+v %v", r, ok)
	}
	e.must(t, actors.KindFlag, "f", actors.DeleteFlag{})
	if r, ok := e.res.LookupFlag("alice", "f"); !ok || r.Found {
		t.Fatalf("after delete: %+v %v", r, ok)
	}
	if r, ok := e.res.LookupFlag("bob", "f"); ok {
		t.Fatalf("bob sees alice's flag: %+v", r)
	}
}

func TestFlagReadViewForgetsPassivated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := persistence.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := persistence.NewWriter(db, persistence.WriterOptions{})
	st := persistence.NewStore(db, w)
	sys := actors.NewSystem(actors.Config{Store: st, IdleTimeout: 20 * time.Millisecond})
	res, err := actors.RegisterResources(sys, actors.ResourceConfig{Loader: st})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { sys.Close(); res.Close(); st.Close(); db.Close() }()
	if _, err := sys.Do(actors.Key{Kind: actors.KindFlag, Owner: "alice", Name: "f"}, actors.SetFlag{Enabled: true, Percentage: actors.NoPercentage}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for sys.LiveActors() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("flag actor never passivated")
		}
		time.Sleep(5 * time.Millisecond) // nothing signals a passivation
	}
	if _, ok := res.LookupFlag("alice", "f"); ok {
		t.Fatal("view still answers for a passivated flag")
	}
	r, err := sys.Do(actors.Key{Kind: actors.KindFlag, Owner: "alice", Name: "f"}, actors.GetFlag{})
	if err != nil || !r.(actors.FlagReply).Found {
		t.Fatalf("reloaded: %+v %v", r, err)
	}
	if _, ok := res.LookupFlag("alice", "f"); !ok {
		t.Fatal("reloaded flag not in the view")
	}
}
