package main

import (
	"strings"
	"testing"

	"github.com/octostore/octostore/loadtest"
)

// startNoopServer runs `octostore loadtest noop-server` and returns its URL.
func startNoopServer(t *testing.T) string {
	t.Helper()
	return startListening(t, "noop-server", "loadtest", "noop-server", "--addr", "127.0.0.1:0")
}

func readReport(t *testing.T, path string) *loadtest.Report {
	t.Helper()
	r, err := loadtest.ReadReport(path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A lock service that grants everything (the no-op server) fails the safety
// check: exit 1 with the evidence on stdout.
func TestLoadtestSafetyViolationExitCode(t *testing.T) {
	noop := startNoopServer(t)
	r := octo(t, noop, tokA, "loadtest", "lock-contended", "--keys", "2", "-c", "4", "--duration", "300ms", "--warmup", "0s", "-q")
	r.mustCode(t, exitFailure, "loadtest lock-contended against the no-op server")
	if !strings.Contains(r.stdout, "SAFETY VIOLATION") || !strings.Contains(r.stderr, "lock safety violations") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
}

func TestLoadtestUsageErrors(t *testing.T) {
	noop := startNoopServer(t)
	octo(t, noop, tokA, "loadtest", "nope").mustCode(t, exitUsage, "unknown scenario")
	octo(t, noop, tokA, "loadtest", "mixed", "--mix", "nope=1").mustCode(t, exitUsage, "bad mix")
	octo(t, noop, tokA, "loadtest", "--compare", "only-one.json").mustCode(t, exitUsage, "compare with one file")
	octo(t, noop, tokA, "loadtest", "lock-cycle", "--target", "ftp://x").mustCode(t, exitUsage, "bad target")
	octo(t, "http://127.0.0.1:1", tokA, "loadtest", "lock-cycle", "-d", "100ms").mustCode(t, exitUnavailable, "unreachable server")
}
