package persistence

import (
	"fmt"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
)

func openTestStore(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "db")
	return openStoreAt(t, path), path
}

func openStoreAt(t *testing.T, path string) *Store {
	t.Helper()
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(db, WriterOptions{})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	s := NewStore(db, w)
	t.Cleanup(func() {
		s.Close()
		db.Close()
	})
	return s
}

func mustApply(t *testing.T, s *Store, ms ...actors.Mutation) {
	t.Helper()
	for _, m := range ms {
		if err := s.Apply(m); err != nil {
			t.Fatalf("apply %T: %v", m, err)
		}
	}
}

func counts(t *testing.T, s *Store) map[actors.Kind]map[string]int {
	t.Helper()
	out := map[actors.Kind]map[string]int{}
	for _, k := range []actors.Kind{actors.KindLimit, actors.KindFlag, actors.KindConfig} {
		if err := s.CountOwned(k, func(owner string, n int) {
			if out[k] == nil {
				out[k] = map[string]int{}
			}
			out[k][owner] = n
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

var resT0 = time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)

func TestFlagsStore(t *testing.T) {
	s, _ := openTestStore(t)
	a := actors.FlagRecord{Owner: "alice", Name: "beta", Enabled: true, Percentage: 30, CreatedAt: resT0, UpdatedAt: resT0.Add(time.Minute)}
	b := actors.FlagRecord{Owner: "bob", Name: "beta", Enabled: false, Percentage: actors.NoPercentage, CreatedAt: resT0, UpdatedAt: resT0}
	c := actors.FlagRecord{Owner: "alice", Name: "alpha", Enabled: true, Percentage: 0, CreatedAt: resT0, UpdatedAt: resT0}
	mustApply(t, s, actors.PutFlag{Flag: a}, actors.PutFlag{Flag: b}, actors.PutFlag{Flag: c})
	for _, want := range []actors.FlagRecord{a, b, c} {
		got, ok, err := s.LoadFlag(want.Owner, want.Name)
		if err != nil || !ok || !reflect.DeepEqual(got, want) {
			t.Fatalf("load %s/%s: %+v %v %v, want %+v", want.Owner, want.Name, got, ok, err, want)
		}
	}
	mine, err := listFlags(t, s, "alice")
	if err != nil || !reflect.DeepEqual(mine, []actors.FlagRecord{c, a}) {
		t.Fatalf("alice's flags: %+v %v", mine, err)
	}
	all, err := listFlags(t, s, "")
	if err != nil || !reflect.DeepEqual(all, []actors.FlagRecord{c, a, b}) {
		t.Fatalf("all flags: %+v %v", all, err)
	}
	if got := counts(t, s)[actors.KindFlag]; got["alice"] != 2 || got["bob"] != 1 {
		t.Fatalf("counts %v", got)
	}
	mustApply(t, s, actors.RemoveFlag{Owner: "alice", Name: "beta"})
	if _, ok, _ := s.LoadFlag("alice", "beta"); ok {
		t.Fatal("removed flag still there")
	}
	if _, ok, _ := s.LoadFlag("bob", "beta"); !ok {
		t.Fatal("bob's flag removed with alice's")
	}
}

func TestConfigStore(t *testing.T) {
	ctx := t.Context()
	s, _ := openTestStore(t)
	put := func(v int64, value, desc string, keep int) {
		mustApply(t, s, actors.PutConfig{Keep: keep, Config: actors.ConfigRecord{Owner: "alice", Key: "app.timeout", Version: v,
			Value: []byte(value), Description: desc, CreatedAt: resT0, UpdatedAt: resT0.Add(time.Duration(v) * time.Minute)}})
	}
	// numbers keep their formatting; whitespace inside is kept as sent
	odd := `{"a": 1.50, "b":[1e3, -0.0, 12345678901234567890], "c": "\u00e9"}`
	for v := int64(1); v <= 5; v++ {
		value := `"v"`
		if v == 5 {
			value = odd
		}
		put(v, value, "d", 3)
	}
	c, ok, err := s.LoadConfig("alice", "app.timeout")
	if err != nil || !ok || c.Version != 5 || string(c.Value) != odd || c.Description != "d" || !c.Live() ||
		!c.CreatedAt.Equal(resT0) || !c.UpdatedAt.Equal(resT0.Add(5*time.Minute)) {
		t.Fatalf("load: %+v %v %v", c, ok, err)
	}
	hist, _, ok, err := s.ConfigHistory(ctx, "alice", "app.timeout", 0, 1000)
	if err != nil || !ok || len(hist) != 3 || hist[0].Version != 5 || hist[2].Version != 3 || string(hist[0].Value) != odd {
		t.Fatalf("history keeps the newest 3: %+v %v %v", hist, ok, err)
	}
	if _, ok, _ := s.ConfigVersion(ctx, "alice", "app.timeout", 2); ok {
		t.Fatal("version 2 should have been pruned")
	}
	if v, ok, _ := s.ConfigVersion(ctx, "alice", "app.timeout", 4); !ok || string(v.Value) != `"v"` || !v.UpdatedAt.Equal(resT0.Add(4*time.Minute)) {
		t.Fatalf("version 4: %+v %v", v, ok)
	}
	if _, ok, _ := s.ConfigVersion(ctx, "bob", "app.timeout", 4); ok {
		t.Fatal("bob reads alice's version")
	}
	if got := counts(t, s)[actors.KindConfig]; got["alice"] != 1 {
		t.Fatalf("counts %v", got)
	}

	mustApply(t, s, actors.RemoveConfig{Owner: "alice", Key: "app.timeout", Version: 5, At: resT0.Add(time.Hour)})
	c, ok, err = s.LoadConfig("alice", "app.timeout")
	if err != nil || !ok || c.Live() || !c.Deleted || c.Version != 5 {
		t.Fatalf("deleted key: %+v %v %v", c, ok, err)
	}
	if _, _, ok, _ := s.ConfigHistory(ctx, "alice", "app.timeout", 0, 1000); ok {
		t.Fatal("deleted key has a history")
	}
	if _, ok, _ := s.ConfigVersion(ctx, "alice", "app.timeout", 5); ok {
		t.Fatal("deleted key has a version")
	}
	if l, _ := listConfig(t, s, "alice"); len(l) != 0 {
		t.Fatalf("deleted key listed: %+v", l)
	}
	if got := counts(t, s)[actors.KindConfig]; got["alice"] != 0 {
		t.Fatalf("deleted key counted: %v", got)
	}
	put(6, `null`, "", 3)
	hist, _, ok, _ = s.ConfigHistory(ctx, "alice", "app.timeout", 0, 1000)
	if !ok || len(hist) != 1 || hist[0].Version != 6 || string(hist[0].Value) != `null` {
		t.Fatalf("re-created history: %+v", hist)
	}
	l, err := listConfig(t, s, "")
	if err != nil || len(l) != 1 || l[0].Owner != "alice" || l[0].Version != 6 || l[0].Value != nil {
		t.Fatalf("list: %+v %v", l, err)
	}
}

func TestLimitsStore(t *testing.T) {
	s, _ := openTestStore(t)
	var w actors.SlidingWindow
	for i := 0; i < 7; i++ {
		w.Check(resT0.Add(time.Duration(i)*time.Second), 5, time.Minute)
	}
	mustApply(t, s, actors.NewPutLimit("alice", "api", w), actors.NewPutLimit("bob", "api", actors.SlidingWindow{}))
	got, ok, err := s.LoadLimit("alice", "api")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	now := resT0.Add(10 * time.Second)
	if a, b := got.Status(now), w.Status(now); a != b || got.Window.Max != 5 || got.Window.Window != 60000 || got.Algorithm != actors.AlgSlidingWindow {
		t.Fatalf("loaded window %+v, want %+v", a, b)
	}
	if err := s.Barrier(); err != nil {
		t.Fatal(err)
	}
	l, err := listLimits(t, s, "alice")
	if err != nil || len(l) != 1 || l[0].Name != "api" || l[0].State.Count(now) != 5 || !l[0].UpdatedAt.Equal(resT0.Add(4*time.Second)) {
		t.Fatalf("list: %+v %v", l, err)
	}
	if all, _ := listLimits(t, s, ""); len(all) != 2 {
		t.Fatalf("all limits: %+v", all)
	}
	if got := counts(t, s)[actors.KindLimit]; got["alice"] != 1 || got["bob"] != 1 {
		t.Fatalf("counts %v", got)
	}
	mustApply(t, s, actors.RemoveLimit{Owner: "alice", Name: "api"})
	if _, ok, _ := s.LoadLimit("alice", "api"); ok {
		t.Fatal("reset limit still there")
	}
}

// The schema of 0002 is applied once and survives a reopen.
func TestResourcesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := NewWriter(db, WriterOptions{})
	s := NewStore(db, w)
	f := actors.FlagRecord{Owner: "alice", Name: "f", Enabled: true, Percentage: actors.NoPercentage, CreatedAt: resT0, UpdatedAt: resT0}
	mustApply(t, s, actors.PutFlag{Flag: f})
	s.Close()
	db.Close()
	s2 := openStoreAt(t, path)
	if got, ok, err := s2.LoadFlag("alice", "f"); err != nil || !ok || !reflect.DeepEqual(got, f) {
		t.Fatalf("after reopen: %+v %v %v", got, ok, err)
	}
	if SchemaVersion() < 2 {
		t.Fatalf("schema version %d", SchemaVersion())
	}
}

// Writes enqueued while a batch commits are never lost. (Regression: after
// an empty drain the writer left its queue and spare slices on one array, so
// entries enqueued during the next commit overwrote the batch being
// committed and were then erased: lost writes, waiters that never return.)
// Each round: the writer goes idle, takes one write, and while it commits
// (held in FaultHook) more writes are enqueued.
func TestWriterConcurrentEnqueueLosesNothing(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(db, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore(db, w)
	t.Cleanup(func() { s.Close(); db.Close() })
	type hold struct{ entered, gate chan struct{} }
	holds := make(chan hold, 1)
	// Set before the first write: the writer reads it after the wake-up
	// that the first Enqueue's send happens before.
	w.FaultHook = func() error {
		select {
		case h := <-holds:
			close(h.entered)
			<-h.gate
		default:
		}
		return nil
	}
	const rounds, burst = 50, 8
	var done atomic.Int64
	all := make(chan struct{})
	enqueue := func(r, i int) uint64 {
		f := actors.FlagRecord{Owner: "o", Name: fmt.Sprintf("f-%d-%d", r, i), Percentage: actors.NoPercentage, CreatedAt: resT0, UpdatedAt: resT0}
		seq, err := s.Enqueue(actors.PutFlag{Flag: f}, func(err error) {
			if err != nil {
				t.Error(err)
			}
			if done.Add(1) == rounds*burst {
				close(all)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	var last uint64
	for r := 0; r < rounds; r++ {
		s.WaitResolved(last)
		// Let the writer drain its empty queue and go idle (nothing signals
		// that), so that the next batch starts after an empty drain.
		time.Sleep(time.Millisecond)
		h := hold{entered: make(chan struct{}), gate: make(chan struct{})}
		holds <- h
		enqueue(r, 0)
		<-h.entered // the writer is committing a batch of one
		for i := 1; i < burst; i++ {
			last = enqueue(r, i)
		}
		close(h.gate)
	}
	select {
	case <-all:
	case <-time.After(60 * time.Second):
		t.Fatalf("%d of %d writes resolved: the others were lost in the writer's queue", done.Load(), rounds*burst)
	}
	if got := counts(t, s)[actors.KindFlag]["o"]; got != rounds*burst {
		t.Fatalf("%d rows, want %d", got, rounds*burst)
	}
}

// Listings read a page at a time (actors.AllPages, three items a page).

func listLimits(t *testing.T, s *Store, owner string) ([]actors.LimitRecord, error) {
	return actors.AllPages(3, func(q actors.PageQuery) (actors.Page[actors.LimitRecord], error) {
		return s.ListLimits(t.Context(), owner, q)
	},
		func(r *actors.LimitRecord) (string, string) { return r.Owner, r.Name })
}

func listFlags(t *testing.T, s *Store, owner string) ([]actors.FlagRecord, error) {
	return actors.AllPages(3, func(q actors.PageQuery) (actors.Page[actors.FlagRecord], error) {
		return s.ListFlags(t.Context(), owner, q)
	},
		func(f *actors.FlagRecord) (string, string) { return f.Owner, f.Name })
}

func listConfig(t *testing.T, s *Store, owner string) ([]actors.ConfigRecord, error) {
	return actors.AllPages(3, func(q actors.PageQuery) (actors.Page[actors.ConfigRecord], error) {
		return s.ListConfig(t.Context(), owner, q)
	},
		func(c *actors.ConfigRecord) (string, string) { return c.Owner, c.Key })
}
