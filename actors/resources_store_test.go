package actors_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
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
	path     string
	db       *persistence.DB
	store    *persistence.Store
	sys      *actors.System
	locks    *actors.Locks
	sessions *actors.Sessions
	sems     *actors.Semaphores
	limits   *actors.Limits
	flags    *actors.Flags
	config   *actors.ConfigKeys
	ev       *recorder
	clk      *clock
}

// resourceConfig is what the tests vary: quotas and the flush interval;
// and, for tests that restart, the clock and event recorder to keep (nil:
// new ones), injected timers (nil: real ones) and the idle timeout (0: an
// hour).
type resourceConfig struct {
	maxLimits, maxFlags, maxConfig int
	maxSessions                    int
	flushInterval                  time.Duration
	clk                            *clock
	ev                             *recorder
	timers                         *timers
	idle                           time.Duration
}

func openEnv(t *testing.T, path string, cfg resourceConfig) *env {
	t.Helper()
	db, err := persistence.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := persistence.NewWriter(db, persistence.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{path: path, db: db, store: persistence.NewStore(db, w), ev: cfg.ev, clk: cfg.clk}
	if e.ev == nil {
		e.ev = &recorder{}
	}
	if e.clk == nil {
		e.clk = &clock{now: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)}
	}
	sc := actors.Config{Store: e.store, Events: e.ev, Now: e.clk.Now, IdleTimeout: cfg.idle}
	if sc.IdleTimeout == 0 {
		sc.IdleTimeout = time.Hour
	}
	if cfg.timers != nil {
		sc.AfterFunc = cfg.timers.AfterFunc
	}
	e.sys = actors.NewSystem(sc)
	e.sessions = actors.NewSessions(e.sys, actors.SessionConfig{Store: e.store, MaxPerUser: cfg.maxSessions})
	e.locks = actors.NewLocks(e.sys, actors.LockConfig{Loader: e.store, Sessions: e.sessions})
	e.sems = actors.NewSemaphores(e.sys, actors.SemaphoreConfig{Store: e.store, Sessions: e.sessions})
	e.limits = actors.NewLimits(e.sys, actors.LimitConfig{Store: e.store, MaxPerUser: cfg.maxLimits, FlushInterval: cfg.flushInterval})
	e.flags = actors.NewFlags(e.sys, actors.FlagConfig{Store: e.store, MaxPerUser: cfg.maxFlags})
	e.config = actors.NewConfigKeys(e.sys, actors.ConfigKeysConfig{Store: e.store, MaxPerUser: cfg.maxConfig})
	t.Cleanup(e.close)
	if err := e.sys.Recover(); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) close() {
	if e.sys == nil {
		return
	}
	e.sys.Close()
	e.limits.Close()
	e.store.Close()
	e.db.Close()
	e.sys = nil
}

// ok fails the test if a call failed: ok(t)(e.flags.Put(…)).
func ok(t *testing.T) func(any, error) {
	return func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// val fails the test if a call failed, and returns its answer:
// val[actors.FlagState](t)(e.flags.Get(…)).
func val[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Events are published once the change is committed (before the reply),
// with the owner set; limit.denied at most once a second per limit.
func TestResourceEvents(t *testing.T) {
	e := openEnv(t, filepath.Join(t.TempDir(), "db"), resourceConfig{})
	ctx := t.Context()
	now := e.clk.Now()
	ok(t)(e.flags.Put(ctx, "alice", "beta", actors.FlagWrite{Enabled: true, Percentage: 20}))
	mustOK(t, e.flags.Delete(ctx, "alice", "beta"))
	ok(t)(e.config.Put(ctx, "alice", "k", actors.ConfigWrite{Value: []byte(`1`), Expected: actors.ExpectAny}))
	ok(t)(e.config.Put(ctx, "alice", "k", actors.ConfigWrite{Value: []byte(`2`), Expected: actors.ExpectAny}))
	mustOK(t, e.config.Delete(ctx, "alice", "k"))
	// failed operations publish nothing
	if err := e.flags.Delete(ctx, "alice", "beta"); !errors.Is(err, actors.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := e.config.Put(ctx, "alice", "k", actors.ConfigWrite{Value: []byte(`3`), Expected: 7}); err == nil {
		t.Fatal("conflict expected")
	}
	got := e.ev.take()
	want := []actors.Event{
		{Type: actors.EventFlagSet, Kind: "flag", Name: "beta", Owner: "alice", Time: now},
		{Type: actors.EventFlagDeleted, Kind: "flag", Name: "beta", Owner: "alice", Time: now},
		{Type: actors.EventConfigWritten, Kind: "config", Name: "k", Owner: "alice", Version: 1, Value: []byte(`1`), Time: now},
		{Type: actors.EventConfigWritten, Kind: "config", Name: "k", Owner: "alice", Version: 2, Value: []byte(`2`), Time: now},
		{Type: actors.EventConfigDeleted, Kind: "config", Name: "k", Owner: "alice", Version: 2, Time: now},
	}
	if len(got) != len(want) {
		t.Fatalf("events %+v", got)
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("event %d: %+v, want %+v", i, got[i], want[i])
		}
	}

	check := func() actors.LimitReply {
		return val[actors.LimitReply](t)(e.limits.Check(ctx, "alice", "api", actors.LimitParams{Max: 1, Window: time.Minute}))
	}
	check()
	for i := 0; i < 5; i++ { // five denials in the same second: one event
		if r := check(); r.Allowed {
			t.Fatal("allowed")
		}
	}
	e.clk.Add(time.Second)
	check()
	mustOK(t, e.limits.Reset(ctx, "alice", "api"))
	got = e.ev.take()
	if len(got) != 3 || got[0].Type != actors.EventLimitDenied || got[1].Type != actors.EventLimitDenied ||
		got[2].Type != actors.EventLimitReset || got[2].Owner != "alice" || got[2].Name != "api" || !got[1].Time.Equal(now.Add(time.Second)) {
		t.Fatalf("limit events %+v", got)
	}
}

// A failed write never leaves the quota counter off: a failed create frees
// its slot, a failed delete keeps counting the resource.
func TestQuotaThroughFailedWrites(t *testing.T) {
	e := openEnv(t, filepath.Join(t.TempDir(), "db"), resourceConfig{maxFlags: 1, maxConfig: 1, maxLimits: 1})
	ctx := t.Context()
	diskErr := errors.New("disk on fire")
	fail := func(on bool) {
		if on {
			e.store.SetFaultHook(func() error { return diskErr })
		} else {
			e.store.SetFaultHook(nil)
		}
	}
	set := actors.FlagWrite{Enabled: true, Percentage: actors.NoPercentage}
	cfg := actors.ConfigWrite{Value: []byte(`{}`), Expected: actors.ExpectAny}

	fail(true)
	if _, err := e.flags.Put(ctx, "alice", "a", set); !errors.Is(err, actors.ErrUnavailable) {
		t.Fatalf("create on a failing disk: %v", err)
	}
	if _, err := e.config.Put(ctx, "alice", "a", cfg); !errors.Is(err, actors.ErrUnavailable) {
		t.Fatalf("create on a failing disk: %v", err)
	}
	fail(false)
	if n := e.flags.Owned("alice"); n != 0 {
		t.Fatalf("failed create still counted: %d", n)
	}
	// the failed creates left nothing: the one slot is free
	ok(t)(e.flags.Put(ctx, "alice", "b", set))
	ok(t)(e.config.Put(ctx, "alice", "b", cfg))
	if r := val[actors.FlagState](t)(e.flags.Get(ctx, "alice", "a")); r.Found {
		t.Fatal("failed create exists")
	}

	fail(true)
	if err := e.flags.Delete(ctx, "alice", "b"); !errors.Is(err, actors.ErrUnavailable) {
		t.Fatalf("delete on a failing disk: %v", err)
	}
	if err := e.config.Delete(ctx, "alice", "b"); !errors.Is(err, actors.ErrUnavailable) {
		t.Fatalf("delete on a failing disk: %v", err)
	}
	fail(false)
	// b still exists and still counts
	if _, err := e.flags.Put(ctx, "alice", "c", set); !errors.Is(err, actors.ErrQuota) {
		t.Fatalf("create over quota after a failed delete: %v", err)
	}
	if _, err := e.config.Put(ctx, "alice", "c", cfg); !errors.Is(err, actors.ErrQuota) {
		t.Fatalf("create over quota after a failed delete: %v", err)
	}
	if r := val[actors.FlagState](t)(e.flags.Get(ctx, "alice", "b")); !r.Found {
		t.Fatal("flag b lost")
	}
	if n := e.flags.Owned("alice"); n != 1 {
		t.Fatalf("flags counted: %d", n)
	}
	mustOK(t, e.flags.Delete(ctx, "alice", "b"))
	ok(t)(e.flags.Put(ctx, "alice", "c", set))
}

// Rate limit counters are written behind, coalesced, and written by a
// graceful close: a new process sees every admitted check. With a
// one-second interval, 500 checks on 20 limits made in well under a second
// cost at most one write per limit.
func TestLimitCountersSurviveClose(t *testing.T) {
	for _, interval := range []time.Duration{time.Second, actors.LimitFlushEveryBatch} {
		t.Run(fmt.Sprint("interval ", interval), func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "db")
			e := openEnv(t, path, resourceConfig{flushInterval: interval})
			const n, limits = 500, 20
			start := time.Now()
			for i := 0; i < n; i++ {
				ok(t)(e.limits.Check(ctx, "alice", fmt.Sprint("api-", i%limits), actors.LimitParams{Max: 10000, Window: time.Hour}))
			}
			writes, fast := e.store.Stats().Writes, time.Since(start) < 900*time.Millisecond
			e.close()
			if interval == time.Second && fast && writes > 1 {
				t.Fatalf("%d writes within the first interval", writes)
			}
			e2 := openEnv(t, path, resourceConfig{})
			for l := 0; l < limits; l++ {
				r := val[actors.LimitReply](t)(e2.limits.Status(ctx, "alice", fmt.Sprint("api-", l)))
				if r.Count != n/limits || r.Max != 10000 || r.Window != time.Hour {
					t.Fatalf("after close: %+v", r)
				}
			}
			if got := e2.limits.Owned("alice"); got != limits {
				t.Fatalf("limits counted after restart: %d", got)
			}
		})
	}
}

// Sync makes every acknowledged check durable at once, whatever the
// interval; a failed flush is retried, not dropped.
func TestLimitSyncAndRetry(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "db")
	e := openEnv(t, path, resourceConfig{flushInterval: time.Hour})
	check := func(name string) {
		ok(t)(e.limits.Check(ctx, "alice", name, actors.LimitParams{Max: 100, Window: time.Hour}))
	}
	for i := 0; i < 3; i++ {
		check("a")
	}
	if err := e.limits.Sync(); err != nil {
		t.Fatal(err)
	}
	if w, ok, err := e.store.LoadLimit("alice", "a"); err != nil || !ok || w.Count(e.clk.Now()) != 3 {
		t.Fatalf("after sync: %v %v %d", ok, err, w.Count(e.clk.Now()))
	}
	e.store.SetFaultHook(func() error { return errors.New("disk on fire") })
	check("a")
	check("b")
	if err := e.limits.Sync(); err == nil {
		t.Fatal("sync on a failing disk succeeded")
	}
	check("a") // counting goes on in memory
	e.store.SetFaultHook(nil)
	if err := e.limits.Sync(); err != nil {
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
	e := openEnv(t, filepath.Join(t.TempDir(), "db"), resourceConfig{})
	ctx := t.Context()
	if _, ok := e.flags.Lookup("alice", "f"); ok {
		t.Fatal("view answers for a flag never loaded")
	}
	ok(t)(e.flags.Get(ctx, "alice", "f")) // activation: not found, cached
	if r, ok := e.flags.Lookup("alice", "f"); !ok || r.Found {
		t.Fatalf("unknown flag: %+v %v", r, ok)
	}
	ok(t)(e.flags.Put(ctx, "alice", "f", actors.FlagWrite{Enabled: true, Percentage: 30}))
	if r, ok := e.flags.Lookup("alice", "f"); !ok || !r.Found || r.Flag.Percentage != 30 || !r.Flag.Enabled {
		t.Fatalf("after set: %+v %v", r, ok)
	}
	// a failed write is not in the view
	e.store.SetFaultHook(func() error { return errors.New("disk on fire") })
	if _, err := e.flags.Put(ctx, "alice", "f", actors.FlagWrite{Enabled: false, Percentage: 5}); err == nil {
		t.Fatal("write on a failing disk succeeded")
	}
	e.store.SetFaultHook(nil)
	if r, ok := e.flags.Lookup("alice", "f"); !ok || r.Flag.Percentage != 30 {
		t.Fatalf("after a failed write: %+v %v", r, ok)
	}
	mustOK(t, e.flags.Delete(ctx, "alice", "f"))
	if r, ok := e.flags.Lookup("alice", "f"); !ok || r.Found {
		t.Fatalf("after delete: %+v %v", r, ok)
	}
	if r, ok := e.flags.Lookup("bob", "f"); ok {
		t.Fatalf("bob sees alice's flag: %+v", r)
	}
}

func TestFlagReadViewForgetsPassivated(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "db")
	db, err := persistence.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := persistence.NewWriter(db, persistence.WriterOptions{})
	st := persistence.NewStore(db, w)
	sys := actors.NewSystem(actors.Config{Store: st, IdleTimeout: 20 * time.Millisecond})
	flags := actors.NewFlags(sys, actors.FlagConfig{Store: st})
	if err := sys.Recover(); err != nil {
		t.Fatal(err)
	}
	defer func() { sys.Close(); st.Close(); db.Close() }()
	ok(t)(flags.Put(ctx, "alice", "f", actors.FlagWrite{Enabled: true, Percentage: actors.NoPercentage}))
	deadline := time.Now().Add(10 * time.Second)
	for sys.LiveActors() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("flag actor never passivated")
		}
		time.Sleep(5 * time.Millisecond) // nothing signals a passivation
	}
	if _, ok := flags.Lookup("alice", "f"); ok {
		t.Fatal("view still answers for a passivated flag")
	}
	if r := val[actors.FlagState](t)(flags.Get(ctx, "alice", "f")); !r.Found {
		t.Fatalf("reloaded: %+v", r)
	}
	if _, ok := flags.Lookup("alice", "f"); !ok {
		t.Fatal("reloaded flag not in the view")
	}
}

// A batch interleaving many limits: checks of one name apply in batch
// order (each name's first max checks are the allowed ones), checks of
// different names do not disturb each other, and the results are those of
// single checks in that order, with and without a binding quota.
func TestCheckBatchOrder(t *testing.T) {
	for _, quota := range []int{-1, 4} {
		e := openEnv(t, filepath.Join(t.TempDir(), "db"), resourceConfig{maxLimits: quota})
		ctx := context.Background()
		var checks []actors.LimitCheck
		for i := 0; i < 100; i++ {
			checks = append(checks, actors.LimitCheck{Name: fmt.Sprint("n", i%5),
				LimitParams: actors.LimitParams{Max: 7, Window: time.Hour, Cost: 1 + i%2, Algorithm: actors.Algorithm(i % 5 % 2)}})
		}
		res := val[[]actors.BatchResult](t)(e.limits.CheckBatch(ctx, "alice", checks))
		used := map[string]int{}
		for i, r := range res {
			name := checks[i].Name
			if quota > 0 && name == "n4" {
				if !errors.Is(r.Err, actors.ErrQuota) {
					t.Fatalf("quota %d: check %d of the fifth limit: %+v", quota, i, r)
				}
				continue
			}
			want := used[name]+checks[i].Cost <= 7
			if r.Err != nil || r.Allowed != want || r.Algorithm != checks[i].Algorithm {
				t.Fatalf("quota %d: check %d (%s, cost %d, %d used): %+v, want allowed %v", quota, i, name, checks[i].Cost, used[name], r, want)
			}
			if want {
				used[name] += checks[i].Cost
			}
			if r.Remaining != 7-used[name] {
				t.Fatalf("check %d: remaining %d, want %d", i, r.Remaining, 7-used[name])
			}
		}
	}
}

// Rollback writes version n's value and description as a new version,
// durable when answered, on a condition; unknown versions and keys are
// not found; versions never repeat.
func TestConfigRollback(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	e := openEnv(t, path, resourceConfig{})
	ctx := t.Context()
	put := func(v, d string) actors.ConfigRecord {
		return val[actors.ConfigRecord](t)(e.config.Put(ctx, "alice", "k", actors.ConfigWrite{Value: []byte(v), Description: d, SetDescription: true, Expected: actors.ExpectAny}))
	}
	put(`{"a":1}`, "first")
	put(`2`, "second")
	put(`3`, "third")
	// Straight after the writes (their commits may still be queued).
	r := val[actors.ConfigRecord](t)(e.config.Rollback(ctx, "alice", "k", 1, actors.ExpectAny))
	if r.Version != 4 || string(r.Value) != `{"a":1}` || r.Description != "first" {
		t.Fatalf("rollback to 1: %+v", r)
	}
	if r := val[actors.ConfigRecord](t)(e.config.Rollback(ctx, "alice", "k", 4, 4)); r.Version != 5 || string(r.Value) != `{"a":1}` {
		t.Fatalf("rollback to the current version: %+v", r)
	}
	var conflict *actors.VersionConflictError
	if _, err := e.config.Rollback(ctx, "alice", "k", 2, 3); !errors.As(err, &conflict) || conflict.Current != 5 {
		t.Fatalf("rollback if at 3: %v", err)
	}
	if _, err := e.config.Rollback(ctx, "alice", "k", 9, actors.ExpectAny); !errors.Is(err, actors.ErrConfigVersionNotFound) {
		t.Fatalf("rollback to 9: %v", err)
	}
	if _, err := e.config.Rollback(ctx, "alice", "nope", 1, actors.ExpectAny); !errors.Is(err, actors.ErrConfigNotFound) {
		t.Fatalf("rollback of an unknown key: %v", err)
	}
	if r := val[actors.ConfigRecord](t)(e.config.Rollback(ctx, "alice", "k", 2, actors.ExpectExists)); r.Version != 6 || r.Description != "second" {
		t.Fatalf("rollback to 2: %+v", r)
	}
	// durable: after a restart the history has every version
	e.close()
	e = openEnv(t, path, resourceConfig{})
	h, more, err := e.config.History(ctx, "alice", "k", 0, 10)
	if err != nil || more || len(h) != 6 || h[0].Version != 6 || string(h[0].Value) != `2` || string(h[1].Value) != `{"a":1}` || h[2].Description != "first" {
		t.Fatalf("history after restart: %+v (more %v, %v)", h, more, err)
	}
	mustOK(t, e.config.Delete(ctx, "alice", "k"))
	if _, err := e.config.Rollback(ctx, "alice", "k", 1, actors.ExpectAny); !errors.Is(err, actors.ErrConfigNotFound) {
		t.Fatalf("rollback of a deleted key: %v", err)
	}
	if st := val[actors.ConfigRecord](t)(e.config.State(ctx, "alice", "k")); !st.Deleted || st.Version != 6 {
		t.Fatalf("state of the deleted key: %+v", st)
	}
}
