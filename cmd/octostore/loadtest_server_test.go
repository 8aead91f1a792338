package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/loadtest"
	"github.com/octostore/octostore/tools/client"
)

// A short loadtest of the real server: lock-cycle spread over two users and
// lock-contended, both through the safety checker, and a mix of the others.
func TestLoadtestAgainstServer(t *testing.T) {
	u := startServer(t)
	dir := t.TempDir()
	cycle := filepath.Join(dir, "cycle.json")
	r := octo(t, u, tokA, "loadtest", "lock-cycle", "--token", tokA, "--token", tokB,
		"--duration", "600ms", "--warmup", "100ms", "-c", "8", "--timeout", "5s", "--out", cycle)
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
		"--timeout", "5s", "--out", contended).mustCode(t, exitOK, "loadtest lock-contended")
	rep = readReport(t, contended)
	if a := rep.PerOp["acquire"]; a == nil || a.OK == 0 || a.Rejected == 0 || rep.Errors != 0 {
		t.Fatalf("lock-contended: %+v errors %v", rep.PerOp["acquire"], rep.ErrorsBy)
	}
	if rep.Safety.Checked == 0 || rep.Safety.Violations != 0 {
		t.Fatalf("lock-contended safety: %+v", rep.Safety)
	}

	mixed := filepath.Join(dir, "mixed.json")
	r = octo(t, u, tokA, "loadtest", "mixed", "--mix", "lock-status=1,ratelimit-check=1,flag-eval=1,config-read=1,config-write=1",
		"--duration", "700ms", "--warmup", "100ms", "-c", "8", "--timeout", "5s", "--out", mixed)
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
			"-c", "4", "--out", run.out).mustCode(t, exitOK, "loadtest flag-eval against "+run.url)
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

// With the admin key every lock request is refused: the run exits 1 and
// says why, and its safety check is "not checked", not a pass.
func TestLoadtestAdminKeyFails(t *testing.T) {
	u := startServer(t)
	r := octo(t, u, adminKey, "loadtest", "lock-cycle", "-d", "300ms", "--warmup", "0s", "-c", "2")
	r.mustCode(t, exitFailure, "loadtest with the admin key")
	for _, want := range []string{"error rate 100% (", "403=", "lock safety not checked: no lease was granted"} {
		if !strings.Contains(r.stderr, want) {
			t.Fatalf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if !strings.Contains(r.stdout, "safety: not checked: no lease was granted") || strings.Contains(r.stdout, "0 violations") {
		t.Fatalf("stdout:\n%s", r.stdout)
	}
	// The limit is a flag: with everything allowed the same run passes the
	// error rate (it still checked no lock).
	r = octo(t, u, adminKey, "loadtest", "lock-cycle", "-d", "200ms", "--warmup", "0s", "-c", "2", "--max-error-rate", "100%")
	r.mustCode(t, exitFailure, "loadtest with the admin key, all errors allowed")
	if strings.Contains(r.stderr, "error rate") || !strings.Contains(r.stderr, "not checked") {
		t.Fatalf("stderr: %s", r.stderr)
	}
	octo(t, u, tokA, "loadtest", "lock-cycle", "--max-error-rate", "2x").mustCode(t, exitUsage, "bad --max-error-rate")
}

// --json is a switch that prints the report on stdout (so `--json -d 1s`
// takes -d as the duration); --out FILE writes it; nothing of the run is
// left in the user's namespace, and --keep leaves it. stderr is a pipe here:
// no progress.
func TestLoadtestJSONOutAndCleanup(t *testing.T) {
	u := startServer(t)
	out := filepath.Join(t.TempDir(), "r.json")
	r := octo(t, u, tokA, "loadtest", "flag-eval", "--json", "-d", "300ms", "--warmup", "0s", "-c", "2", "--keys", "7", "--out", out)
	r.mustCode(t, exitOK, "loadtest flag-eval --json")
	var rep loadtest.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("stdout is not a report: %v\n%s", err, r.stdout)
	}
	if rep.DurationS < 0.29 || rep.DurationS > 0.31 || rep.Ops == 0 || rep.Cleanup == nil || rep.Cleanup.Removed["flags"] != 7 {
		t.Fatalf("report %+v cleanup %+v", rep, rep.Cleanup)
	}
	if file := readReport(t, out); file.RunID != rep.RunID || file.Ops != rep.Ops {
		t.Fatalf("--out wrote run %s (%d ops), stdout run %s (%d ops)", file.RunID, file.Ops, rep.RunID, rep.Ops)
	}
	if r.stderr != "" {
		t.Fatalf("stderr on a pipe: %q", r.stderr)
	}
	if left := userFlags(t, u, tokA, "lt-"); len(left) != 0 {
		t.Fatalf("left in the namespace: %v", left)
	}

	r = octo(t, u, tokA, "loadtest", "flag-eval", "-d", "200ms", "--warmup", "0s", "-c", "2", "--keys", "5", "--keep")
	r.mustCode(t, exitOK, "loadtest --keep")
	if left := userFlags(t, u, tokA, "lt-"); len(left) != 5 || !strings.Contains(r.stdout, "kept: everything this run created is named "+left[0][:len("lt-12345678-")]+"*") {
		t.Fatalf("--keep left %v; stdout:\n%s", left, r.stdout)
	}
}

// userFlags lists the names of token's flags that start with prefix.
func userFlags(t *testing.T, url, token, prefix string) []string {
	t.Helper()
	c, err := client.New(url, token)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	fs, err := c.ListFlags(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range fs {
		if strings.HasPrefix(f.Name, prefix) {
			out = append(out, f.Name)
		}
	}
	return out
}

// Ctrl-C in the middle of a run: it stops, deletes what it created, writes
// its report and exits 1 ("interrupted").
func TestLoadtestInterruptCleansUp(t *testing.T) {
	u := startServer(t)
	out := filepath.Join(t.TempDir(), "r.json")
	cmd := exec.Command(octostoreBin, "loadtest", "flag-eval", "-d", "10m", "--warmup", "0s", "-c", "2", "--keys", "20", "--out", out)
	cmd.Env = cliEnv(u, tokA)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	}()
	// The setup has created the 20 flags once they are all listed.
	deadline := time.Now().Add(30 * time.Second)
	for len(userFlags(t, u, tokA, "lt-")) < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("the run's flags never appeared; stderr: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(os.Interrupt)
	var err error
	select {
	case err = <-exited:
	case <-time.After(60 * time.Second):
		t.Fatal("loadtest did not stop after SIGINT")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitFailure || !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("exit %v; stderr: %s", err, stderr.String())
	}
	if left := userFlags(t, u, tokA, "lt-"); len(left) != 0 {
		t.Fatalf("left after SIGINT: %v", left)
	}
	if rep := readReport(t, out); !rep.Interrupted || rep.Cleanup == nil || rep.Cleanup.Removed["flags"] != 20 {
		t.Fatalf("report: interrupted %v cleanup %+v", rep.Interrupted, rep.Cleanup)
	}
}
