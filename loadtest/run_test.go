package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
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
				if sc == "lock-contended" {
					continue // the no-op server is no lock service; see TestSafetyCatchesBrokenLockService
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

// TestProgressLines: the progress loop, driven tick by tick with a stepped
// clock, prints one well-formed line per tick (warmup marked, the rate of
// the interval, the errors so far) as lines, or as one rewritten line on a
// terminal. Deterministic: it used to run the load generator for real and
// count lines, and failed when a loaded machine delivered the first tick
// after the warmup.
func TestProgressLines(t *testing.T) {
	for _, tty := range []bool{false, true} {
		t.Run(fmt.Sprintf("tty=%v", tty), func(t *testing.T) {
			lines := make(chan string, 16)
			r := &run{cfg: &Config{Progress: chanWriter(lines), ProgressTTY: tty}, measureFrom: 100 * time.Millisecond}
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
				{50 * time.Millisecond, 50, 0, "2000 ops/s         0 errors", true},
				{150 * time.Millisecond, 200, 1, "4000 ops/s         2 errors", false},
				{400 * time.Millisecond, 0, 0, "0 ops/s         2 errors", false},
			} {
				// The previous line is printed: the loop is back waiting
				// for a tick and reads neither the clock nor the counters.
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
				body := l
				if tty {
					var ok bool
					if body, ok = strings.CutPrefix(l, "\r\033[K"); !ok || strings.Contains(body, "\n") {
						t.Fatalf("terminal progress must rewrite one line: %q", l)
					}
				} else {
					var ok bool
					if body, ok = strings.CutSuffix(l, "\n"); !ok || strings.ContainsAny(body, "\r\n") {
						t.Fatalf("plain progress must print lines: %q", l)
					}
				}
				if !strings.HasPrefix(body, fmt.Sprintf("%6.1fs", step.at.Seconds())) || !strings.Contains(body, step.want) ||
					!strings.Contains(body, "p99    1.50") || strings.Contains(body, "(warmup)") != step.isWarmup {
					t.Fatalf("at %s: %q, want %q, p99 1.5 ms, warmup %v", step.at, body, step.want, step.isWarmup)
				}
			}
			close(done)
			<-finished
			if tty {
				if l := next("end"); l != "\n" {
					t.Fatalf("terminal progress must end its line: %q", l)
				}
			}
			select {
			case l := <-lines:
				t.Fatalf("printed after the end: %q", l)
			default:
			}
		})
	}
}

// TestProgressDuringARun: a real run with progress prints only well-formed
// lines (how many depends on the machine's speed, so it is not counted).
func TestProgressDuringARun(t *testing.T) {
	url := startNoop(t)
	target, err := NewHTTPTarget(url, nil, HTTPOptions{Driver: DriverRaw})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	line := regexp.MustCompile(`^ *[0-9]+\.[0-9]s +[0-9]+ ops/s +[0-9]+ errors  p99 +[0-9]+\.[0-9]{3} ms(  \(warmup\))?$`)
	for _, tty := range []bool{false, true} {
		var out bytes.Buffer
		mustRun(t, Config{Scenario: "flag-eval", Target: target, Concurrency: 2, Duration: 200 * time.Millisecond,
			Warmup: 50 * time.Millisecond, Progress: &out, ProgressTTY: tty, ProgressEvery: 20 * time.Millisecond})
		s := out.String()
		var parts []string
		if tty {
			body, ok := strings.CutSuffix(s, "\n")
			if !ok || strings.Contains(body, "\n") {
				t.Fatalf("terminal progress must rewrite one line and end it: %q", s)
			}
			parts = strings.Split(body, "\r\033[K")[1:]
		} else {
			parts = strings.Split(strings.TrimSuffix(s, "\n"), "\n")
			if s == "" {
				parts = nil
			}
		}
		for _, p := range parts {
			if !line.MatchString(p) {
				t.Fatalf("tty=%v: malformed progress line %q in %q", tty, p, s)
			}
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
		"closed loop, 64 workers, 1 user(s), 10000 keys; 10.0s measured after 1.0s warmup",
		"p99.9 ms", "errors by status: conn=2", "1 violations", "SAFETY VIOLATION overlap",
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
