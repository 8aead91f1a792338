package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

type cliLease struct {
	Status       string `json:"status"`
	LeaseID      string `json:"lease_id"`
	FencingToken int    `json:"fencing_token"`
	HolderID     string `json:"holder_id"`
}

func leaseOf(t *testing.T, r result) cliLease {
	t.Helper()
	var l cliLease
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil || l.LeaseID == "" {
		t.Fatalf("lease JSON %q: %v", r.stdout, err)
	}
	return l
}

// README pattern 2 on two hosts with one service token: the second
// `lock acquire` is refused (exit 3), or waits with --wait, instead of
// being handed the first's lease. --holder-id (or OCTOSTORE_HOLDER_ID)
// makes processes one holder on purpose.
func TestLockAcquireOneTokenTwoProcesses(t *testing.T) {
	url := startServer(t)
	first := leaseOf(t, octo(t, url, tokA, "lock", "acquire", "deploy", "--ttl", "1m", "--json").mustCode(t, 0, "host A acquires"))
	r := octo(t, url, tokA, "lock", "acquire", "deploy", "--ttl", "1m").mustCode(t, exitHeld, "host B, same token")
	if !strings.Contains(r.stderr, "alice") || strings.Contains(r.stdout+r.stderr, first.LeaseID) {
		t.Fatalf("host B: stdout %q stderr %q", r.stdout, r.stderr)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(first.HolderID) {
		t.Fatalf("default holder id %q, want 32 random hex digits", first.HolderID)
	}
	octo(t, url, tokA, "lock", "acquire", "deploy", "--holder-id", "host-b").mustCode(t, exitHeld, "host B with a holder id")
	octo(t, url, tokA, "lock", "acquire", "deploy", "--holder-id", "a b").mustCode(t, exitUsage, "invalid holder id")

	// --wait: host B gets the lock once host A releases it.
	waiting := start(t, url, tokA, "lock", "acquire", "deploy", "--ttl", "1m", "--wait", "1m", "--json")
	lineContaining(t, waiting.stderr, "waiting for lock", "host B waits")
	octo(t, url, tokA, "lock", "release", "deploy", first.LeaseID).mustCode(t, 0, "host A releases")
	if code := waiting.wait(t); code != 0 {
		t.Fatalf("waiting acquire exited %d", code)
	}
	var second cliLease
	if err := json.NewDecoder(waiting.stdout).Decode(&second); err != nil || second.FencingToken != first.FencingToken+1 {
		t.Fatalf("host B's lease %+v (%v), host A had token %d", second, err, first.FencingToken)
	}
	octo(t, url, tokA, "lock", "release", "deploy", second.LeaseID).mustCode(t, 0, "host B releases")

	// One holder on purpose: the same --holder-id, or OCTOSTORE_HOLDER_ID.
	a := leaseOf(t, octo(t, url, tokA, "lock", "acquire", "deploy", "--holder-id", "ci-7:42", "--json").mustCode(t, 0, "acquire as ci-7:42"))
	b := leaseOf(t, octoEnv(t, url, tokA, []string{"OCTOSTORE_HOLDER_ID=ci-7:42"}, "lock", "acquire", "deploy", "--json").mustCode(t, 0, "again, by env"))
	if a.Status != "acquired" || b.Status != "held" || b.LeaseID != a.LeaseID || b.HolderID != "ci-7:42" {
		t.Fatalf("shared holder: %+v then %+v", a, b)
	}
	if r := octo(t, url, tokA, "lock", "status", "deploy").mustCode(t, 0, "status"); !strings.Contains(r.stdout, "ci-7:42") {
		t.Fatalf("status does not show the holder id: %q", r.stdout)
	}
	octo(t, url, tokA, "lock", "acquire", "deploy").mustCode(t, exitHeld, "a random holder id")
}

// A "held" answer for another holder id (a server that ignores holder ids
// answers held to every request of the token) is someone else's hold:
// exit 3, nothing printed on stdout.
func TestLockAcquireHeldForAnotherHolder(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"held","name":"deploy","lease_id":"550e8400-e29b-41d4-a716-446655440000","fencing_token":1,"expires_at":"2030-01-01T00:00:00Z","holder":"alice"}`))
	}))
	t.Cleanup(srv.Close)
	r := octo(t, srv.URL, tokA, "lock", "acquire", "deploy").mustCode(t, exitHeld, "held for another holder")
	if r.stdout != "" || !strings.Contains(r.stderr, "alice") {
		t.Fatalf("stdout %q stderr %q", r.stdout, r.stderr)
	}
	octo(t, srv.URL, tokA, "lock", "acquire", "deploy", "--wait", "200ms").mustCode(t, exitHeld, "held for another holder, --wait")
}
