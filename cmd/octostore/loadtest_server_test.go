package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// A short loadtest of the real server: lock-cycle spread over two users and
// lock-contended, both through the safety checker, and a mix of the others.
func TestLoadtestAgainstServer(t *testing.T) {
	u := startServer(t)
	dir := t.TempDir()
	cycle := filepath.Join(dir, "cycle.json")
	r := octo(t, u, tokA, "loadtest", "lock-cycle", "--token", tokA, "--token", tokB,
		"--duration", "600ms", "--warmup", "100ms", "-c", "8", "--timeout", "5s", "--json", cycle)
	r.mustCode(t, exitOK, "loadtest lock-cycle")
	if !strings.Contains(r.stdout, "ops/s") || !strings.Contains(r.stdout, "0 violations") {
		t.Fatalf("output:\n%s", r.stdout)
	}
	rep := readReport(t, cycle)
	if rep.Ops == 0 || rep.Errors != 0 || rep.Users != 2 || rep.Safety.Checked == 0 || rep.Safety.Violations != 0 {
		t.Fatalf("lock-cycle report: ops %d errors %d %v users %d safety %+v", rep.Ops, rep.Errors, rep.ErrorsBy, rep.Users, rep.Safety)
	}

	// Two users fighting over two names, renewing, some leases left to expire.
	contended := filepath.Join(dir, "contended.json")
	octo(t, u, tokA, "loadtest", "lock-contended", "--token", tokA, "--token", tokB, "--keys", "2",
		"--lock-ttl", "1s", "--abandon", "0.02", "--duration", "700ms", "--warmup", "0s", "-c", "8",
		"--timeout", "5s", "--json", contended, "-q").mustCode(t, exitOK, "loadtest lock-contended")
	rep = readReport(t, contended)
	if a := rep.PerOp["acquire"]; a == nil || a.OK == 0 || a.Rejected == 0 || rep.Errors != 0 {
		t.Fatalf("lock-contended: %+v errors %v", rep.PerOp["acquire"], rep.ErrorsBy)
	}
	if rep.Safety.Checked == 0 || rep.Safety.Violations != 0 {
		t.Fatalf("lock-contended safety: %+v", rep.Safety)
	}

	mixed := filepath.Join(dir, "mixed.json")
	r = octo(t, u, tokA, "loadtest", "mixed", "--mix", "lock-status=1,ratelimit-check=1,flag-eval=1,config-read=1,config-write=1",
		"--duration", "700ms", "--warmup", "100ms", "-c", "8", "--timeout", "5s", "--json", mixed, "-q")
	r.mustCode(t, exitOK, "loadtest mixed")
	rep = readReport(t, mixed)
	if rep.Errors != 0 {
		t.Fatalf("mixed: errors %v", rep.ErrorsBy)
	}
	for _, op := range []string{"lock-status", "ratelimit-check", "flag-eval", "config-read", "config-write"} {
		if o := rep.PerOp[op]; o == nil || o.Ops == 0 {
			t.Fatalf("mixed: no %s requests: %v", op, rep.PerOp)
		}
	}
}

// The same scenario against the no-op server and octostore, then --compare.
func TestLoadtestCompareWithNoopServer(t *testing.T) {
	u, noop := startServer(t), startNoopServer(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "noop.json"), filepath.Join(dir, "octostore.json")
	for _, run := range []struct{ url, out string }{{noop, a}, {u, b}} {
		octo(t, run.url, tokA, "loadtest", "flag-eval", "--duration", "500ms", "--warmup", "100ms",
			"-c", "4", "--json", run.out, "-q").mustCode(t, exitOK, "loadtest flag-eval against "+run.url)
	}
	r := octo(t, u, tokA, "loadtest", "--compare", a, b).mustCode(t, exitOK, "loadtest --compare")
	for _, want := range []string{"A: flag-eval against octostore " + noop, "B: flag-eval against octostore " + u, "B/A", "ops/s", "flag-eval p99 ms"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("compare output lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestLoadtestRefusedToken(t *testing.T) {
	u := startServer(t)
	r := octo(t, u, "wrong-token", "loadtest", "lock-cycle", "-d", "200ms").mustCode(t, exitAuth, "loadtest with a wrong token")
	if !strings.Contains(r.stderr, "token refused") {
		t.Fatalf("stderr: %s", r.stderr)
	}
	octo(t, u, tokA, "loadtest", "lock-cycle", "--token", tokA, "--token", "nope", "-d", "200ms").mustCode(t, exitAuth, "second token wrong")
}
