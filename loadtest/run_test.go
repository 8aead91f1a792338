package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

// startNoop runs the no-op server in-process on 127.0.0.1:0 and returns its URL.
func startNoop(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := newLinePipe()
	done := make(chan error, 1)
	go func() { done <- ServeNoop(ctx, "127.0.0.1:0", pw) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("noop server: %v", err)
		}
	})
	select {
	case line := <-pr:
		u, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
		if !ok {
			t.Fatalf("noop server said %q", line)
		}
		return u
	case err := <-done:
		t.Fatalf("noop server: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("noop server did not start")
	}
	return ""
}

// lineWriter sends each Write to a channel (the server writes one line).
type lineWriter chan string

func (w lineWriter) Write(p []byte) (int, error) { w <- string(p); return len(p), nil }

func newLinePipe() (<-chan string, lineWriter) {
	c := make(chan string, 4)
	return c, lineWriter(c)
}

// startRedis runs a real redis-server on a free loopback port. The test
// fails (does not skip) when redis-server is not installed.
func startRedis(t testing.TB, extra ...string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is needed for this test (apt-get install -y redis-server): %v", err)
	}
	dir := t.TempDir()
	for attempt := 0; attempt < 5; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		args := append([]string{"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--logfile", "", "--daemonize", "no"}, extra...)
		cmd := exec.Command(bin, args...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan bool, 1)
		var log bytes.Buffer
		go func() {
			sc := bufio.NewScanner(out)
			ok := false
			for sc.Scan() {
				log.WriteString(sc.Text() + "\n")
				if !ok && strings.Contains(sc.Text(), "Ready to accept connections") {
					ok = true
					ready <- true
				}
			}
			if !ok {
				ready <- false
			}
		}()
		var up bool
		select {
		case up = <-ready:
		case <-time.After(15 * time.Second):
		}
		if up {
			t.Cleanup(func() {
				cmd.Process.Kill()
				cmd.Wait()
			})
			return fmt.Sprintf("redis://127.0.0.1:%d", port)
		}
		cmd.Process.Kill()
		cmd.Wait()
		t.Logf("redis-server on port %d did not start (attempt %d)", port, attempt+1)
	}
	t.Fatal("could not start redis-server")
	return ""
}

func mustRun(t *testing.T, cfg Config) *Report {
	t.Helper()
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run %s: %v", cfg.Scenario, err)
	}
	return rep
}

func TestRunAgainstNoopServer(t *testing.T) {
	url := startNoop(t)
	for _, driver := range []string{DriverClient, DriverRaw} {
		t.Run(driver, func(t *testing.T) {
			target, err := NewHTTPTarget(url, []string{"tokA", "tokB"}, HTTPOptions{Driver: driver})
			if err != nil {
				t.Fatal(err)
			}
			defer target.Close()
			if err := target.Ping(); err != nil {
				t.Fatal(err)
			}
			for _, sc := range append(append([]string{}, Scenarios...), "mixed") {
				if sc == "lock-contended" || sc == "semaphore" {
					continue // the no-op server is no lock service (nor semaphore); see TestSafetyCatchesBrokenLockService
				}
				mix, _ := ParseMix("lock-cycle=1,flag-eval=1,config-write=1")
				var progress bytes.Buffer
				rep := mustRun(t, Config{Scenario: sc, Mix: mix, Target: target, Concurrency: 4,
					Duration: 150 * time.Millisecond, Warmup: 30 * time.Millisecond, Progress: &progress})
				if rep.Ops == 0 || rep.Errors != 0 || rep.OpsPerSec <= 0 {
					t.Fatalf("%s: ops %d errors %d (%v)", sc, rep.Ops, rep.Errors, rep.ErrorsBy)
				}
				if rep.Latency.P50 <= 0 || rep.Latency.Max < rep.Latency.P99 || rep.Latency.P99 < rep.Latency.P50 {
					t.Fatalf("%s: latency %+v", sc, rep.Latency)
				}
				if rep.Users != 2 || rep.TargetKind != "octostore" || rep.Driver != driver {
					t.Fatalf("%s: report header %+v", sc, rep)
				}
				if sc == "lock-cycle" {
					if rep.Safety.Checked == 0 || rep.Safety.Violations != 0 {
						t.Fatalf("lock-cycle safety: %+v", rep.Safety)
					}
					if rep.PerOp["acquire"].Ops == 0 || rep.PerOp["release"].Ops == 0 {
						t.Fatalf("lock-cycle per op: %v", rep.PerOp)
					}
				}
			}
		})
	}
}

// TestProgressLine: the progress loop, driven tick by tick with a stepped
// clock, rewrites one terminal line per tick (elapsed of total, the rate of
// the interval, the errors so far, p99, warmup marked) and erases it at the
// end. Deterministic: it used to run the load generator for real and need a
// tick inside the 100 ms warmup, which a loaded machine did not always
// deliver (1 failure in 5 runs of -count=5).
func TestProgressLine(t *testing.T) {
	lines := make(chan string, 16)
	r := &run{cfg: &Config{Progress: chanWriter(lines)}, measureFrom: 100 * time.Millisecond, measureTo: 400 * time.Millisecond}
	workers := []*worker{{stats: newWorkerStats()}, {stats: newWorkerStats()}}
	clk := &stepClock{}
	ticks, done, finished := make(chan time.Time), make(chan struct{}), make(chan struct{})
	go func() { r.progress(workers, clk, ticks, done); close(finished) }()
	next := func(what string) string {
		t.Helper()
		select {
		case l := <-lines:
			return l
		case <-time.After(time.Minute):
			t.Fatalf("%s: nothing printed", what)
		}
		return ""
	}
	for _, step := range []struct {
		at       time.Duration
		ops      int64 // per worker during the step
		errs     int64
		want     string
		isWarmup bool
	}{
		{50 * time.Millisecond, 50, 0, "0.1s of 0.4s  2000 ops/s  0 errors  p99 1.50", true},
		{150 * time.Millisecond, 200, 1, "0.1s of 0.4s  4000 ops/s  2 errors  p99 1.50", false},
		{400 * time.Millisecond, 0, 0, "0.4s of 0.4s  0 ops/s  2 errors  p99 1.50", false},
	} {
		// The previous line is printed: the loop is back waiting for a
		// tick and reads neither the clock nor the counters.
		clk.now.Store(int64(step.at))
		for _, w := range workers {
			w.stats.done.Add(step.ops)
			w.stats.errs.Add(step.errs)
			w.stats.mu.Lock()
			w.stats.interval.RecordValue(1500) // µs: p99 1.50x ms (two significant digits)
			w.stats.mu.Unlock()
		}
		ticks <- time.Time{}
		l := next(step.want)
		body, ok := strings.CutPrefix(l, "\r\033[K")
		if !ok || strings.ContainsAny(body, "\r\n") {
			t.Fatalf("progress must rewrite one line: %q", l)
		}
		if !strings.HasPrefix(body, step.want) || strings.Contains(body, "(warmup)") != step.isWarmup {
			t.Fatalf("at %s: %q, want %q..., warmup %v", step.at, body, step.want, step.isWarmup)
		}
	}
	close(done)
	<-finished
	if l := next("end"); l != "\r\033[K" {
		t.Fatalf("progress must erase its line at the end: %q", l)
	}
	select {
	case l := <-lines:
		t.Fatalf("printed after the end: %q", l)
	default:
	}
	// The widest line there can be still fits 80 columns.
	if l := progressLine(time.Hour, 2*time.Hour, 1e12, 1e15, 600000, true); utf8.RuneCountInString(l) > 80 {
		t.Fatalf("%d columns: %q", utf8.RuneCountInString(l), l)
	}
}

// TestProgressDuringARun: a real run with progress rewrites only
// well-formed lines, says when it cleans up, and leaves the line erased.
// How many lines depends on the machine's speed: not counted.
func TestProgressDuringARun(t *testing.T) {
	url := startNoop(t)
	target, err := NewHTTPTarget(url, nil, HTTPOptions{Driver: DriverRaw})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	var out bytes.Buffer
	mustRun(t, Config{Scenario: "flag-eval", Target: target, Concurrency: 2, Duration: 200 * time.Millisecond,
		Warmup: 50 * time.Millisecond, Progress: &out, ProgressEvery: 20 * time.Millisecond})
	s := out.String()
	if strings.Contains(s, "\n") || !strings.HasSuffix(s, "\r\033[K") || !strings.Contains(s, "cleaning up lt-") {
		t.Fatalf("progress must rewrite one line, say it cleans up, and erase the line at the end: %q", s)
	}
	line := regexp.MustCompile(`^[0-9]+\.[0-9]s of [0-9]+\.[0-9]s  [0-9]+ ops/s  [0-9]+ errors  p99 [0-9]+\.[0-9]{3} ms(  \(warmup\))?$`)
	for _, p := range strings.Split(s, "\r\033[K") {
		if p != "" && !strings.HasPrefix(p, "cleaning up ") && !line.MatchString(p) {
			t.Fatalf("malformed progress line %q in %q", p, s)
		}
	}
}

// chanWriter sends each write to its channel.
type chanWriter chan string

func (w chanWriter) Write(p []byte) (int, error) { w <- string(p); return len(p), nil }

// stepClock is a Clock the test sets.
type stepClock struct{ now atomic.Int64 }

func (c *stepClock) Now() time.Duration { return time.Duration(c.now.Load()) }

func (c *stepClock) Sleep(d time.Duration) bool { c.now.Add(int64(d)); return true }

func TestOpenLoopAgainstNoopServer(t *testing.T) {
	url := startNoop(t)
	target, err := NewHTTPTarget(url, nil, HTTPOptions{Driver: DriverRaw})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	rep := mustRun(t, Config{Scenario: "flag-eval", Target: target, Concurrency: 4, Rate: 2000,
		Duration: 500 * time.Millisecond, Warmup: 100 * time.Millisecond})
	// 2000/s over 0.5s measured: 1000 due, all sent on this idle machine
	// unless it is badly overloaded.
	if rep.Mode != "open" || rep.Ops < 800 || rep.Ops > 1000 {
		t.Fatalf("open loop: mode %s, %d ops, want about 1000", rep.Mode, rep.Ops)
	}
}

// The safety checker wired into a run must catch a lock service that grants
// every request: lock-contended against the no-op server.
func TestSafetyCatchesBrokenLockService(t *testing.T) {
	url := startNoop(t)
	target, err := NewHTTPTarget(url, []string{"a", "b"}, HTTPOptions{Driver: DriverRaw})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	rep := mustRun(t, Config{Scenario: "lock-contended", Target: target, Concurrency: 4, Keys: 2,
		Duration: 200 * time.Millisecond})
	if rep.Safety.Violations == 0 || len(rep.Safety.Evidence) == 0 {
		t.Fatalf("a server that grants every acquire passed the safety check: %+v", rep.Safety)
	}
	if !strings.Contains(rep.Safety.Evidence[0], "SAFETY VIOLATION") {
		t.Fatalf("evidence: %q", rep.Safety.Evidence[0])
	}
}

func TestRunAgainstRedis(t *testing.T) {
	for _, persist := range []struct {
		name string
		args []string
	}{
		{"no-persistence", []string{"--appendonly", "no"}},
		{"appendfsync-always", []string{"--appendonly", "yes", "--appendfsync", "always"}},
	} {
		t.Run(persist.name, func(t *testing.T) {
			url := startRedis(t, persist.args...)
			fencings := []bool{false, true}
			if persist.name != "no-persistence" {
				fencings = fencings[:1]
			}
			for _, fencing := range fencings {
				target, err := NewRedisTarget(url, RedisOptions{Fencing: fencing})
				if err != nil {
					t.Fatal(err)
				}
				if err := target.Ping(); err != nil {
					t.Fatal(err)
				}
				for _, sc := range []string{"lock-cycle", "lock-contended", "lock-status", "ratelimit-check"} {
					cfg := Config{Scenario: sc, Target: target, Concurrency: 8, Duration: 200 * time.Millisecond}
					if sc == "lock-contended" {
						// short leases, some left to expire: handoffs by release and by expiry.
						cfg.LockTTL, cfg.Abandon, cfg.Keys, cfg.Duration = 200*time.Millisecond, 0.2, 3, 700*time.Millisecond
					}
					if sc == "ratelimit-check" {
						cfg.LimitMax, cfg.Keys = 5, 10
					}
					rep := mustRun(t, cfg)
					if rep.Ops == 0 || rep.Errors != 0 {
						t.Fatalf("%s fencing=%v: ops %d errors %d %v", sc, fencing, rep.Ops, rep.Errors, rep.ErrorsBy)
					}
					if rep.TargetKind != "redis" {
						t.Fatalf("kind %q", rep.TargetKind)
					}
					switch sc {
					case "lock-cycle", "lock-contended":
						if rep.Safety.Checked == 0 || rep.Safety.Violations != 0 {
							t.Fatalf("%s fencing=%v safety: %+v", sc, fencing, rep.Safety)
						}
					case "ratelimit-check":
						if rep.Rejected == 0 || rep.PerOp["ratelimit-check"].OK == 0 {
							t.Fatalf("sliding window never denied or never allowed: %+v", rep.PerOp["ratelimit-check"])
						}
					}
					if sc == "lock-contended" {
						a := rep.PerOp["acquire"]
						if a.OK == 0 || a.Rejected == 0 {
							t.Fatalf("no contention: %+v", a)
						}
					}
				}
				if _, err := Run(context.Background(), Config{Scenario: "flag-eval", Target: target}); err == nil {
					t.Fatal("flag-eval against redis must be refused")
				}
				target.Close()
			}
		})
	}
}

// The Redis history of lock-contended with fencing tokens: tokens are really
// checked (a history where the INCR is missing would have none).
func TestRedisFencingTokens(t *testing.T) {
	url := startRedis(t, "--appendonly", "no")
	target, err := NewRedisTarget(url, RedisOptions{Fencing: true})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	c, err := target.Conn(0)
	if err != nil {
		t.Fatal(err)
	}
	r1, st := c.Acquire("fence-test", time.Second)
	if st != 200 || r1.Token == 0 {
		t.Fatalf("acquire: %v %+v", st, r1)
	}
	if _, st := c.Acquire("fence-test", time.Second); st != 409 {
		t.Fatalf("second acquire: %v", st)
	}
	if st := c.Release("fence-test", r1.Lease); st != 200 {
		t.Fatalf("release: %v", st)
	}
	if st := c.Release("fence-test", r1.Lease); st != 404 {
		t.Fatalf("second release: %v", st)
	}
	r2, st := c.Acquire("fence-test", time.Second)
	if st != 200 || r2.Token != r1.Token+1 {
		t.Fatalf("re-acquire: %v %+v after %+v", st, r2, r1)
	}
	if _, st := c.Renew("fence-test", r1.Lease, time.Second); st != 404 {
		t.Fatalf("renew of the old lease: %v", st)
	}
	if _, st := c.Renew("fence-test", r2.Lease, time.Second); st != 200 {
		t.Fatalf("renew: %v", st)
	}
}

func TestReportTableJSONAndCompare(t *testing.T) {
	a := &Report{
		Scenario: "lock-cycle", Target: "redis://127.0.0.1:1", TargetKind: "redis", Driver: "go-redis",
		Mode: "closed", Concurrency: 64, Users: 1, Keys: 10000, DurationS: 10, WarmupS: 1,
		Ops: 600000, OpsPerSec: 60000, Errors: 2, ErrorsBy: map[string]int64{"conn": 2},
		Latency: Latency{P50: 1, P90: 2, P99: 4, P999: 8, Max: 16},
		PerOp: map[string]*OpReport{
			"release": {Ops: 300000, OpsPerSec: 30000, Latency: Latency{P50: 1, P99: 4}},
			"acquire": {Ops: 300000, OpsPerSec: 30000, Latency: Latency{P50: 1, P99: 4}},
		},
		Safety:  &SafetyReport{Checked: 600000, Leases: 300000, SlackMS: 100},
		ToolCPU: CPU{UserS: 1, SysS: 1, Cores: 0.2, MicrosPerOp: 3.3},
	}
	b := *a
	b.TargetKind, b.Target, b.Driver, b.Label = "octostore", "http://127.0.0.1:2", "client", "durable"
	b.OpsPerSec = 90000
	b.Latency = Latency{P50: 0.5, P90: 1, P99: 2, P999: 4, Max: 8}
	b.Safety = &SafetyReport{Checked: 10, Violations: 1, Evidence: []string{"SAFETY VIOLATION overlap on lock \"x\": ..."}}

	var tbl bytes.Buffer
	b.WriteTable(&tbl)
	for _, want := range []string{
		"durable: lock-cycle against octostore http://127.0.0.1:2 [client]",
		"closed loop, 64 workers, 1 user(s), 10000 keys\n10.0s measured after 1.0s warmup\n",
		"\nop       ", "\nlatency ms", "p99.9", "errors by status: conn=2", "1 violations", "SAFETY VIOLATION overlap",
		"tool cpu: 1.00s user + 1.00s sys = 0.20 cores, 3.3 µs per request",
	} {
		if !strings.Contains(tbl.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tbl.String())
		}
	}
	if i, j := strings.Index(tbl.String(), "acquire"), strings.Index(tbl.String(), "release"); i < 0 || j < i {
		t.Errorf("acquire must come before release:\n%s", tbl.String())
	}

	dir := t.TempDir()
	pa, pb := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	if err := a.WriteJSON(pa); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteJSON(pb); err != nil {
		t.Fatal(err)
	}
	// The fields machines rely on.
	var raw map[string]any
	data, _ := json.Marshal(a)
	json.Unmarshal(data, &raw)
	for _, k := range []string{"scenario", "target", "duration_s", "ops", "ops_per_sec", "errors", "latency_ms", "safety", "per_op", "tool_cpu"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	for _, k := range []string{"p50", "p90", "p99", "p999", "max"} {
		if _, ok := raw["latency_ms"].(map[string]any)[k]; !ok {
			t.Errorf("latency_ms lacks %q", k)
		}
	}
	for _, k := range []string{"checked", "violations"} {
		if _, ok := raw["safety"].(map[string]any)[k]; !ok {
			t.Errorf("safety lacks %q", k)
		}
	}
	ra, err := ReadReport(pa)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := ReadReport(pb)
	if err != nil {
		t.Fatal(err)
	}
	var cmp bytes.Buffer
	Compare(&cmp, ra, rb)
	out := cmp.String()
	for _, want := range []string{"A: lock-cycle against redis", "B: durable: lock-cycle against octostore", "1.50x", "0.50x", "acquire ops/s"} {
		if !strings.Contains(out, want) {
			t.Errorf("compare lacks %q:\n%s", want, out)
		}
	}
	// ops/s 60000 -> 90000 is 1.50x, p99 4 -> 2 is 0.50x, on the right lines.
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && f[0] == "ops/s" && f[3] != "1.50x" {
			t.Errorf("ops/s line: %q", line)
		}
		if len(f) == 5 && f[0] == "p99" && f[4] != "0.50x" {
			t.Errorf("p99 line: %q", line)
		}
	}
	if _, err := ReadReport(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing file read")
	}
}

// The human summary fits 80 columns whatever the figures: the default mix,
// a long label and URL, huge counts and latencies. Only the evidence of a
// violation is printed whole.
func TestTableFits80Columns(t *testing.T) {
	mix, _ := ParseMix(DefaultMix)
	big := &OpReport{Ops: 123456789012, OpsPerSec: 12345678.9, Rejected: 123456789012, Errors: 123456789012,
		Latency: Latency{P50: 600000, P90: 600000, P99: 600000, P999: 600000, Max: 600000}}
	r := &Report{
		Scenario: "mixed", Mix: mixNames(mix), Label: "a rather long label for this run",
		Target: "http://octostore-under-test.example.internal:3000/some/prefix", TargetKind: "octostore", Driver: "client",
		Mode: "open", Rate: 123456, Concurrency: 10000, Users: 16, Keys: 123456, DurationS: 3600, WarmupS: 60,
		Ops: big.Ops, OpsPerSec: big.OpsPerSec, Errors: big.Errors, Rejected: big.Rejected, Latency: big.Latency,
		ErrorsBy: map[string]int64{"conn": 1e9, "bad-reply": 1e9, "401": 1e9, "403": 1e9, "404": 1e9, "409": 1e9, "500": 1e9, "503": 1e9, "429": 1e9},
		PerOp:    map[string]*OpReport{},
		Safety:   &SafetyReport{Checked: 1e9, Leases: 1e9, Violations: 1, SlackMS: 100, CutoffS: 3600, Evidence: []string{strings.Repeat("evidence ", 20)}},
		ToolCPU:  CPU{UserS: 100000, SysS: 100000, Cores: 2, MicrosPerOp: 123456},
		Cleanup:  &CleanupReport{Prefix: "lt-1a2b3c4d-", Removed: map[string]int{"locks": 1e6, "limits": 1e6, "flags": 1e6, "config keys": 1e6}, Left: 1e6, Error: strings.Repeat("x", 100)},
	}
	for _, n := range opNames {
		r.PerOp[n] = big
	}
	r.Judge(0.01)
	var b strings.Builder
	r.WriteTable(&b)
	out := b.String()
	for _, want := range []string{"mix: config-read=", "ratelimit-check=3", "…", "FAILED: error rate 100%", "cleanup INCOMPLETE"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if n := utf8.RuneCountInString(l); n > 80 && !strings.HasPrefix(l, "evidence") {
			t.Errorf("%d columns: %q", n, l)
		}
	}
	var cmp strings.Builder
	Compare(&cmp, r, r)
	for _, l := range strings.Split(cmp.String(), "\n") {
		if n := utf8.RuneCountInString(l); n > 80 {
			t.Errorf("compare: %d columns: %q", n, l)
		}
	}
}

func TestJudge(t *testing.T) {
	ok := func() *Report {
		return &Report{Ops: 1000, Errors: 10, ErrorsBy: map[string]int64{"503": 10},
			Safety: &SafetyReport{Checked: 1000, Leases: 500}, Cleanup: &CleanupReport{Prefix: "lt-x-"}}
	}
	for _, tt := range []struct {
		name  string
		edit  func(r *Report)
		max   float64
		wants []string
	}{
		{"1% of errors passes at 1%", func(r *Report) {}, 0.01, nil},
		{"no safety report (no lock scenario)", func(r *Report) { r.Safety = nil }, 0.01, nil},
		{"kept on purpose", func(r *Report) { r.Cleanup = &CleanupReport{Kept: true, Left: 9} }, 0.01, nil},
		{"1% of errors fails at 0.5%", func(r *Report) {}, 0.005, []string{"error rate 1% (10 of 1000 requests) is above the allowed 0.5%; errors by status: 503=10"}},
		{"refusals", func(r *Report) { r.Errors, r.ErrorsBy = 1000, map[string]int64{"403": 1000} }, 0.01,
			[]string{"error rate 100% (1000 of 1000 requests) is above the allowed 1%; errors by status: 403=1000 (refused: a user's token is needed; the admin key owns no locks, limits, flags or config)"}},
		{"nothing measured", func(r *Report) { r.Ops, r.Errors = 0, 0 }, 0.01, []string{"no request was answered in the measured time"}},
		{"violations", func(r *Report) { r.Safety.Violations = 3 }, 0.01, []string{"3 lock safety violations"}},
		{"nothing checked", func(r *Report) { r.Safety = &SafetyReport{Checked: 900, NotChecked: "no lease was granted"} }, 0.01,
			[]string{"lock safety not checked: no lease was granted"}},
		{"interrupted", func(r *Report) { r.Interrupted = true }, 0.01, []string{"interrupted"}},
		{"cleanup left some", func(r *Report) { r.Cleanup.Left, r.Cleanup.Removed = 2, map[string]int{"flags": 5} }, 0.01,
			[]string{"cleanup INCOMPLETE: removed 5 flags named lt-x-*, 2 left"}},
		{"cleanup timed out", func(r *Report) { r.Cleanup.Left, r.Cleanup.Error = -1, "cleanup timed out after 30s" }, 0.01,
			[]string{"cleanup INCOMPLETE: nothing to remove named lt-x-*, what is left is unknown: cleanup timed out after 30s"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := ok()
			tt.edit(r)
			got := r.Judge(tt.max)
			if strings.Join(got, "|") != strings.Join(tt.wants, "|") || strings.Join(r.Failures, "|") != strings.Join(tt.wants, "|") {
				t.Fatalf("got %q\nwant %q", got, tt.wants)
			}
		})
	}
}

func TestParseErrorRate(t *testing.T) {
	for in, want := range map[string]float64{"1%": 0.01, "0.5%": 0.005, " 100 % ": 1, "0": 0, "0.02": 0.02, "1": 1, "0%": 0} {
		if got, err := ParseErrorRate(in); err != nil || math.Abs(got-want) > 1e-12 {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "%", "x", "-1%", "101%", "1.5", "NaN", "1%%"} {
		if _, err := ParseErrorRate(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseMix(t *testing.T) {
	m, err := ParseMix("lock-cycle=5, flag-eval=3,config-read=0")
	if err != nil || len(m) != 2 || m[0] != (Weight{"lock-cycle", 5}) || m[1] != (Weight{"flag-eval", 3}) {
		t.Fatalf("%v %v", m, err)
	}
	for _, bad := range []string{"", "nope=1", "lock-cycle", "lock-cycle=x", "lock-cycle=1,lock-cycle=2", "flag-eval=0"} {
		if _, err := ParseMix(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := ParseMix(DefaultMix); err != nil {
		t.Fatal(err)
	}
}

func TestJSONField(t *testing.T) {
	body := []byte(`{"status":"held","name":"lease_id","lease_id" : "550e8400-e29b-41d4-a716-446655440000","fencing_token":42,"ok":true}`)
	if got := string(jsonField(body, keyLeaseID)); got != "550e8400-e29b-41d4-a716-446655440000" {
		t.Fatalf("lease_id = %q", got)
	}
	if got := string(jsonField(body, keyFencingToken)); got != "42" {
		t.Fatalf("fencing_token = %q", got)
	}
	if got := string(jsonField(body, keyStatus)); got != "held" {
		t.Fatalf("status = %q", got)
	}
	if jsonField(body, keyAllowed) != nil {
		t.Fatal("absent key found")
	}
	if n, ok := parseInt([]byte("42")); !ok || n != 42 {
		t.Fatal("parseInt")
	}
	if _, ok := parseInt([]byte("4x")); ok {
		t.Fatal("parseInt accepted 4x")
	}
}

// The raw driver allocates nothing per request once warm.
func TestRawDriverAllocations(t *testing.T) {
	url := startNoop(t)
	target, err := NewHTTPTarget(url, []string{"tok"}, HTTPOptions{Driver: DriverRaw})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	c, _ := target.Conn(0)
	c.EvalFlag("f", "s") // warm up
	allocs := testing.AllocsPerRun(200, func() {
		if _, st := c.EvalFlag("f", "subject"); st != 200 {
			t.Fatalf("status %v", st)
		}
		rep, st := c.Acquire("l", time.Second)
		if st != 200 {
			t.Fatalf("status %v", st)
		}
		c.Release("l", rep.Lease)
	})
	if limit := 1.0; allocs > limit && !raceEnabled {
		t.Fatalf("%.1f allocations per three requests", allocs)
	}
}

func BenchmarkDriver(b *testing.B) {
	url := startNoop(b)
	for _, driver := range []string{DriverClient, DriverRaw} {
		b.Run(driver, func(b *testing.B) {
			target, err := NewHTTPTarget(url, []string{"tok"}, HTTPOptions{Driver: driver})
			if err != nil {
				b.Fatal(err)
			}
			defer target.Close()
			c, _ := target.Conn(0)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				rep, _ := c.Acquire("bench", time.Second)
				c.Release("bench", rep.Lease)
			}
		})
	}
}

func TestProcCPU(t *testing.T) {
	c0, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// burn about 50ms of CPU, then /proc must show it (10ms ticks).
	self0 := readCPU()
	x := 0
	for readCPU().sub(self0).user < 50*time.Millisecond {
		x++
	}
	c1, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d := c1.sub(c0); d.user+d.sys < 30*time.Millisecond {
		t.Fatalf("/proc shows %v of CPU after burning 50ms (%d loops)", d, x)
	}
	if _, err := procCPU(-1); err == nil {
		t.Fatal("pid -1 read")
	}
}

// On Redis the run's keys (fencing counters never expire) are deleted at
// the end, or kept with Keep.
func TestRedisCleanup(t *testing.T) {
	url := startRedis(t, "--appendonly", "no")
	target, err := NewRedisTarget(url, RedisOptions{Fencing: true})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	rdb := target.(*redisTarget).rdb
	keys := func(prefix string) []string {
		ks, err := rdb.Keys(context.Background(), "lt:*:"+prefix+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}
	mix := []Weight{{"lock-contended", 1}, {"lock-status", 1}, {"ratelimit-check", 1}}
	for _, keep := range []bool{false, true} {
		rep := mustRun(t, Config{Scenario: "mixed", Mix: mix, Target: target, Concurrency: 4, Keys: 6, Abandon: 0.5,
			Duration: 200 * time.Millisecond, Keep: keep})
		left := keys(Prefix(rep.RunID))
		switch {
		case !keep && (len(left) != 0 || rep.Cleanup.Removed["keys"] == 0 || !rep.Cleanup.Complete()):
			t.Fatalf("left %q, cleanup %+v", left, rep.Cleanup)
		case keep && (len(left) == 0 || !rep.Cleanup.Kept):
			t.Fatalf("--keep: left %q, cleanup %+v", left, rep.Cleanup)
		}
	}
}
