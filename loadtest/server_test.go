package loadtest

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/octostore/octostore/tools/client"
	"github.com/octostore/octostore/tools/servertest"
)

// Runs against the real server: the octostore binary, built once by
// TestMain, serving on 127.0.0.1:0 with a temporary database.

// octostoreBin is the binary TestMain builds.
var octostoreBin string

func TestMain(m *testing.M) { os.Exit(servertest.BuildAndRun(m, false, &octostoreBin)) }

const (
	srvTokA     = "tokA" // alice
	srvTokB     = "tokB" // bob
	srvAdminKey = "admin-secret"
)

func startServer(t *testing.T, args ...string) string {
	t.Helper()
	return servertest.Serve(t, octostoreBin, append([]string{
		"--static-tokens", "alice:" + srvTokA + ",bob:" + srvTokB, "--admin-key", srvAdminKey}, args...)...).URL
}

// namespace lists what token's user has named with prefix, by kind: held
// locks, rate limits, flags and config keys.
func namespace(t *testing.T, url, token, prefix string) map[string][]string {
	t.Helper()
	c, err := client.New(url, token)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	ctx := context.Background()
	out := map[string][]string{}
	add := func(kind string, names []string, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if strings.HasPrefix(n, prefix) {
				out[kind] = append(out[kind], n)
			}
		}
	}
	locks, err := c.ListLocks(ctx)
	add("locks", mapSlice(locks, func(l client.LockInfo) string { return l.Name }), err)
	limits, err := c.ListLimits(ctx)
	add("limits", mapSlice(limits, func(l client.LimitInfo) string { return l.Name }), err)
	flags, err := c.ListFlags(ctx)
	add("flags", mapSlice(flags, func(f client.Flag) string { return f.Name }), err)
	configs, err := c.ListConfig(ctx)
	add("config keys", mapSlice(configs, func(e client.ConfigEntry) string { return e.Key }), err)
	return out
}

func mapSlice[T any](xs []T, f func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

// Every scenario at once, over two users, with leases left to expire: at the
// end nothing of the run is left in either user's namespace; with Keep it
// all is, under the run's prefix.
func TestRunCleansUpOnRealServer(t *testing.T) {
	url := startServer(t)
	target, err := NewHTTPTarget(url, []string{srvTokA, srvTokB}, HTTPOptions{Driver: DriverRaw})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	all := []Weight{}
	for _, s := range Scenarios {
		all = append(all, Weight{s, 1})
	}
	for _, keep := range []bool{false, true} {
		// Long leases, half of the contended holds abandoned: held locks
		// are left at the end of the run unless the cleanup releases them.
		rep := mustRun(t, Config{Scenario: "mixed", Mix: all, Target: target, Concurrency: 4, Keys: 8,
			LockTTL: time.Minute, Abandon: 0.5, Duration: 400 * time.Millisecond, Keep: keep})
		if rep.Errors != 0 {
			t.Fatalf("keep=%v: errors %v", keep, rep.ErrorsBy)
		}
		prefix := Prefix(rep.RunID)
		if len(rep.RunID) != 8 || rep.Cleanup == nil || rep.Cleanup.Prefix != prefix {
			t.Fatalf("keep=%v: run id %q, cleanup %+v", keep, rep.RunID, rep.Cleanup)
		}
		left := map[string]int{}
		for _, tok := range []string{srvTokA, srvTokB} {
			for kind, names := range namespace(t, url, tok, prefix) {
				left[kind] += len(names)
			}
		}
		if !keep {
			if len(left) != 0 || !rep.Cleanup.Complete() || rep.Cleanup.Left != 0 {
				t.Fatalf("after the run: %v left; cleanup %+v", left, rep.Cleanup)
			}
			// flag-eval and config-read create 8 each per user; limits
			// exist once checked; the lock-status holds and abandoned leases
			// were released.
			r := rep.Cleanup.Removed
			if r["flags"] != 16 || r["config keys"] < 16 || r["limits"] == 0 || r["locks"] < 4 {
				t.Fatalf("removed %v", r)
			}
			if f := rep.Judge(DefaultMaxErrorRate); len(f) != 0 {
				t.Fatalf("a clean run failed: %v", f)
			}
			continue
		}
		if !rep.Cleanup.Kept || left["flags"] != 16 || left["config keys"] < 16 || left["limits"] == 0 || left["locks"] < 4 {
			t.Fatalf("--keep: left %v, cleanup %+v", left, rep.Cleanup)
		}
		var table strings.Builder
		rep.WriteTable(&table)
		if !strings.Contains(table.String(), "kept: everything this run created is named "+prefix+"*") {
			t.Fatalf("table:\n%s", table.String())
		}
	}
}

// cancelAfter wraps a target so that ctx is cancelled once its workers have
// sent n requests: an interrupt in the middle of the measured run.
type cancelAfter struct {
	Target
	n      atomic.Int64
	cancel context.CancelFunc
}

type cancelConn struct {
	Conn
	t *cancelAfter
}

func (c *cancelAfter) Conn(user int) (Conn, error) {
	conn, err := c.Target.Conn(user)
	return cancelConn{conn, c}, err
}

func (c *cancelAfter) Cleanup(ctx context.Context, prefix string) CleanupReport {
	return c.Target.(Cleaner).Cleanup(ctx, prefix)
}

func (c cancelConn) EvalFlag(name, subject string) (bool, Status) {
	if c.t.n.Add(1) == 200 {
		c.t.cancel()
	}
	return c.Conn.EvalFlag(name, subject)
}

// An interrupted run still deletes what it created, and fails.
func TestInterruptedRunCleansUp(t *testing.T) {
	url := startServer(t)
	inner, err := NewHTTPTarget(url, []string{srvTokA}, HTTPOptions{Driver: DriverClient})
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	target := &cancelAfter{Target: inner, cancel: cancel}
	rep, err := Run(ctx, Config{Scenario: "flag-eval", Target: target, Concurrency: 2, Keys: 20, Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Interrupted || target.n.Load() < 200 {
		t.Fatalf("interrupted %v after %d requests", rep.Interrupted, target.n.Load())
	}
	if left := namespace(t, url, srvTokA, Prefix(rep.RunID)); len(left) != 0 || rep.Cleanup.Removed["flags"] != 20 {
		t.Fatalf("left %v, cleanup %+v", left, rep.Cleanup)
	}
	if f := rep.Judge(DefaultMaxErrorRate); len(f) != 1 || f[0] != "interrupted" {
		t.Fatalf("failures %q", f)
	}
}

// A setup that fails half way (the flag quota runs out) leaves nothing.
func TestFailedSetupCleansUp(t *testing.T) {
	url := startServer(t, "--max-flags-per-user", "5")
	target, err := NewHTTPTarget(url, []string{srvTokA}, HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	_, err = Run(context.Background(), Config{Scenario: "flag-eval", Target: target, Keys: 10, Duration: time.Second, RunID: "setupfail"})
	if err == nil || !strings.Contains(err.Error(), "status 403") {
		t.Fatalf("setup beyond the quota: %v", err)
	}
	if left := namespace(t, url, srvTokA, Prefix("setupfail")); len(left) != 0 {
		t.Fatalf("left after a failed setup: %v", left)
	}
}

// With the admin key every lock request is refused (403): the run fails on
// its error rate, and the safety check says it checked nothing instead of
// passing.
func TestAdminKeyRunFails(t *testing.T) {
	url := startServer(t)
	target, err := NewHTTPTarget(url, []string{srvAdminKey}, HTTPOptions{Driver: DriverRaw})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	rep := mustRun(t, Config{Scenario: "lock-cycle", Target: target, Concurrency: 2, Duration: 200 * time.Millisecond})
	if rep.Ops == 0 || rep.Errors != rep.Ops || rep.ErrorsBy["403"] != rep.Ops {
		t.Fatalf("ops %d errors %d %v", rep.Ops, rep.Errors, rep.ErrorsBy)
	}
	f := rep.Judge(DefaultMaxErrorRate)
	if len(f) != 2 || !strings.HasPrefix(f[0], "error rate 100% (") || !strings.Contains(f[0], "403=") ||
		f[1] != "lock safety not checked: no lease was granted" {
		t.Fatalf("failures %q", f)
	}
	var table strings.Builder
	rep.WriteTable(&table)
	for _, want := range []string{"safety: not checked: no lease was granted", "FAILED: error rate 100%"} {
		if !strings.Contains(table.String(), want) {
			t.Fatalf("table lacks %q:\n%s", want, table.String())
		}
	}
	if strings.Contains(table.String(), "0 violations") {
		t.Fatalf("a check of nothing reported as a pass:\n%s", table.String())
	}
}

// stuckCleaner is a target whose cleanup never finishes by itself.
type stuckCleaner struct{ Target }

func (s stuckCleaner) Cleanup(ctx context.Context, prefix string) CleanupReport {
	<-ctx.Done()
	return CleanupReport{Left: -1, Error: ctx.Err().Error()}
}

// The cleanup is bounded: by CleanupTimeout, and by Abort (a second
// Ctrl-C); either way the report says so and the run fails.
func TestCleanupIsBounded(t *testing.T) {
	noop, err := NewHTTPTarget(startNoop(t), nil, HTTPOptions{Driver: DriverRaw})
	if err != nil {
		t.Fatal(err)
	}
	defer noop.Close()
	target := stuckCleaner{noop}
	rep := mustRun(t, Config{Scenario: "flag-eval", Target: target, Concurrency: 1, Duration: 50 * time.Millisecond,
		CleanupTimeout: 100 * time.Millisecond})
	if c := rep.Cleanup; c.Complete() || c.Error != "cleanup timed out after 100ms" {
		t.Fatalf("cleanup %+v", c)
	}
	if f := rep.Judge(DefaultMaxErrorRate); len(f) != 1 || !strings.HasPrefix(f[0], "cleanup INCOMPLETE") {
		t.Fatalf("failures %q", f)
	}

	abort := make(chan struct{})
	close(abort)
	rep = mustRun(t, Config{Scenario: "flag-eval", Target: target, Concurrency: 1, Duration: 50 * time.Millisecond,
		CleanupTimeout: time.Hour, Abort: abort})
	if c := rep.Cleanup; c.Complete() || c.Error != "cleanup cut short by a second interrupt" {
		t.Fatalf("cleanup %+v", c)
	}
}

// The admin key among the tokens lists every user's resources; the cleanup
// leaves other users' to their own tokens instead of failing on a 403.
func TestCleanupWithAdminKeyAmongTokens(t *testing.T) {
	url := startServer(t)
	target, err := NewHTTPTarget(url, []string{srvAdminKey, srvTokA}, HTTPOptions{Driver: DriverRaw})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	rep := mustRun(t, Config{Scenario: "config-write", Target: target, Concurrency: 2, Keys: 5, Duration: 200 * time.Millisecond})
	if c := rep.Cleanup; !c.Complete() || c.Removed["config keys"] == 0 {
		t.Fatalf("cleanup %+v", c)
	}
	if left := namespace(t, url, srvTokA, Prefix(rep.RunID)); len(left) != 0 {
		t.Fatalf("left %v", left)
	}
}

// lock-queue against the real server: workers wait their turn in the
// server's queues; the hand-off latency is measured, grants follow arrival
// order, and the safety checker finds no two holders at once.
func TestLockQueueOnRealServer(t *testing.T) {
	url := startServer(t)
	for _, driver := range []string{DriverClient, DriverRaw} {
		target, err := NewHTTPTarget(url, []string{srvTokA, srvTokB}, HTTPOptions{Driver: driver})
		if err != nil {
			t.Fatal(err)
		}
		rep := mustRun(t, Config{Scenario: "lock-queue", Target: target, Concurrency: 8, Keys: 2,
			Duration: time.Second, QueueWait: 10 * time.Second})
		target.Close()
		q := rep.Queue
		if q == nil || q.Grants == 0 || q.HandOffs == 0 || q.HandOff.P50 <= 0 || rep.Safety == nil || rep.Safety.Violations != 0 {
			t.Fatalf("%s: queue %+v, safety %+v, errors %v", driver, q, rep.Safety, rep.ErrorsBy)
		}
		if f := rep.Judge(DefaultMaxErrorRate); len(f) != 0 {
			t.Fatalf("%s: %v", driver, f)
		}
		t.Logf("%s: %d grants, %d hand-offs, p50 %.3f ms p99 %.3f ms, %d overtaken",
			driver, q.Grants, q.HandOffs, q.HandOff.P50, q.HandOff.P99, q.Overtaken)
	}
}

// The semaphore scenario against the real server: the semaphore checker
// sees slots held up to the limit, never over it.
func TestSemaphoreScenarioOnRealServer(t *testing.T) {
	url := startServer(t)
	for _, driver := range []string{DriverClient, DriverRaw} {
		target, err := NewHTTPTarget(url, []string{srvTokA, srvTokB}, HTTPOptions{Driver: driver})
		if err != nil {
			t.Fatal(err)
		}
		rep := mustRun(t, Config{Scenario: "semaphore", Target: target, Concurrency: 8, Keys: 2, SemLimit: 2,
			Duration: time.Second, QueueWait: 10 * time.Second, Hold: time.Millisecond})
		target.Close()
		s := rep.Semaphore
		if s == nil || s.Slots == 0 || s.Violations != 0 || s.MaxHeld != 2 {
			t.Fatalf("%s: %+v, errors %v", driver, s, rep.ErrorsBy)
		}
		if f := rep.Judge(DefaultMaxErrorRate); len(f) != 0 {
			t.Fatalf("%s: %v", driver, f)
		}
		t.Logf("%s: %.0f ops/s, %d slots checked, at most %d held", driver, rep.OpsPerSec, s.Slots, s.MaxHeld)
	}
}
