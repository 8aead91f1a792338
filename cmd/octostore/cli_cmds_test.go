package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLimitCommands(t *testing.T) {
	url := serverFor(t, "/limits")
	for i := 0; i < 2; i++ {
		octo(t, url, tokA, "limit", "check", "api", "--max", "2", "--window", "1m").mustCode(t, 0, "allowed check")
	}
	r := octo(t, url, tokA, "limit", "check", "api", "--max", "2", "--window", "1m", "--json").mustCode(t, exitHeld, "denied check")
	var res struct {
		Allowed   bool `json:"allowed"`
		Remaining int  `json:"remaining"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Allowed {
		t.Fatalf("denied --json = %q (%v)", r.stdout, err)
	}
	if r = octo(t, url, tokA, "limit", "status", "api").mustCode(t, 0, "status"); !strings.Contains(r.stdout, "allowed") {
		t.Fatalf("status = %q", r.stdout)
	}
	if r = octo(t, url, tokA, "limit", "list").mustCode(t, 0, "list"); !strings.Contains(r.stdout, "api") {
		t.Fatalf("list = %q", r.stdout)
	}
	octo(t, url, tokA, "limit", "reset", "api").mustCode(t, 0, "reset")
	octo(t, url, tokA, "limit", "check", "api", "--max", "2", "--window", "1m").mustCode(t, 0, "check after reset")
	octo(t, url, tokA, "limit", "reset", "never-used").mustCode(t, exitNotFound, "reset unknown")
	octo(t, url, tokA, "limit", "check", "api", "--max", "0").mustCode(t, exitUsage, "max 0 (422)")
}

func TestFlagCommands(t *testing.T) {
	url := serverFor(t, "/flags")
	octo(t, url, tokA, "flag", "set", "new-ui", "on").mustCode(t, 0, "set on")
	if r := octo(t, url, tokA, "flag", "get", "new-ui", "--subject", "u1").mustCode(t, 0, "get"); strings.TrimSpace(r.stdout) != "true" {
		t.Fatalf("get = %q", r.stdout)
	}
	octo(t, url, tokA, "flag", "set", "new-ui", "off").mustCode(t, 0, "set off")
	r := octo(t, url, tokA, "flag", "get", "new-ui", "--json").mustCode(t, 0, "get --json")
	var ev struct {
		Enabled bool   `json:"enabled"`
		Reason  string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &ev); err != nil || ev.Enabled || ev.Reason != "DISABLED" {
		t.Fatalf("get --json = %q (%v)", r.stdout, err)
	}
	octo(t, url, tokA, "flag", "set", "beta", "on", "--percentage", "25").mustCode(t, 0, "set rollout")
	if r = octo(t, url, tokA, "flag", "list").mustCode(t, 0, "list"); !strings.Contains(r.stdout, "beta") || !strings.Contains(r.stdout, "25%") {
		t.Fatalf("list = %q", r.stdout)
	}
	octo(t, url, tokA, "flag", "set", "beta", "maybe").mustCode(t, exitUsage, "bad state")
	octo(t, url, tokA, "flag", "set", "beta", "on", "--percentage", "101").mustCode(t, exitUsage, "bad percentage")
	octo(t, url, tokA, "flag", "delete", "beta").mustCode(t, 0, "delete")
	octo(t, url, tokA, "flag", "delete", "beta").mustCode(t, exitNotFound, "delete twice")
}

func TestConfigCommands(t *testing.T) {
	url := serverFor(t, "/config")
	file := filepath.Join(t.TempDir(), "db.json")
	if err := os.WriteFile(file, []byte(`{"pool": 5, "host": "db1"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	octo(t, url, tokA, "config", "set", "app.db", "@"+file, "--description", "database", "--if-version", "0").mustCode(t, 0, "create from file")
	octo(t, url, tokA, "config", "set", "app.db", "7", "--if-version", "0").mustCode(t, exitHeld, "create-only on existing key")
	octo(t, url, tokA, "config", "set", "app.db", `{"pool": 9}`, "--if-version", "1").mustCode(t, 0, "compare-and-set")
	octo(t, url, tokA, "config", "set", "app.db", "not json").mustCode(t, exitUsage, "invalid JSON")
	octo(t, url, tokA, "config", "set", "app.db", "@"+file+".missing").mustCode(t, exitUsage, "missing file")
	r := octo(t, url, tokA, "config", "get", "app.db").mustCode(t, 0, "get")
	var v map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v["pool"] != 9.0 {
		t.Fatalf("get = %q (%v)", r.stdout, err)
	}
	if r = octo(t, url, tokA, "config", "get", "app.db", "--version", "1").mustCode(t, 0, "get v1"); !strings.Contains(r.stdout, "db1") {
		t.Fatalf("get v1 = %q", r.stdout)
	}
	if r = octo(t, url, tokA, "config", "history", "app.db").mustCode(t, 0, "history"); !strings.Contains(r.stdout, "database") || strings.Count(r.stdout, "\n") != 3 {
		t.Fatalf("history = %q", r.stdout)
	}
	if r = octo(t, url, tokA, "config", "list", "--json").mustCode(t, 0, "list"); !strings.Contains(r.stdout, `"app.db"`) {
		t.Fatalf("list = %q", r.stdout)
	}
	octo(t, url, tokA, "config", "delete", "app.db").mustCode(t, 0, "delete")
	octo(t, url, tokA, "config", "get", "app.db").mustCode(t, exitNotFound, "get deleted")
}

func TestTokenRotateCommand(t *testing.T) {
	url, db := startServerDB(t)
	r := octo(t, url, "", "token", "create", "--db", db, "--user", "carol").mustCode(t, 0, "token create")
	old := strings.TrimSpace(r.stdout)
	if old == "" {
		t.Fatal("token create printed no token")
	}
	r = octo(t, url, old, "token", "rotate").mustCode(t, 0, "rotate")
	fresh := strings.TrimSpace(r.stdout)
	if fresh == "" || fresh == old {
		t.Fatalf("rotate printed %q", r.stdout)
	}
	octo(t, url, old, "lock", "list").mustCode(t, exitAuth, "old token after rotate")
	octo(t, url, fresh, "lock", "list").mustCode(t, 0, "new token")
	octo(t, url, "nope", "token", "rotate").mustCode(t, exitAuth, "rotate with a bad token")
}

func TestSessionCommands(t *testing.T) {
	url := serverFor(t, "/sessions")
	r := octo(t, url, tokA, "session", "create", "--ttl", "1m", "--json").mustCode(t, 0, "create")
	var s struct {
		ID string `json:"session_id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || len(s.ID) != 36 {
		t.Fatalf("create --json = %q (%v)", r.stdout, err)
	}
	if r = octo(t, url, tokA, "session", "create", "--ttl", "10s", "--lock-delay", "2s").mustCode(t, 0, "create text"); !strings.Contains(r.stdout, "lock_delay  2s") {
		t.Fatalf("create = %q", r.stdout)
	}
	octo(t, url, tokA, "lock", "acquire", "deploy", "--session", s.ID).mustCode(t, 0, "acquire under the session")
	octo(t, url, tokA, "lock", "acquire", "deploy2", "--session", s.ID, "--ttl", "1m").mustCode(t, exitUsage, "--session and --ttl")
	if r = octo(t, url, tokB, "lock", "status", "deploy").mustCode(t, 0, "status"); !strings.Contains(r.stdout, "holder         alice") {
		t.Fatalf("status = %q", r.stdout)
	}
	if r = octo(t, url, tokA, "session", "list").mustCode(t, 0, "list"); !strings.Contains(r.stdout, s.ID) || !strings.Contains(r.stdout, "1: deploy") {
		t.Fatalf("list = %q", r.stdout)
	}
	octo(t, url, tokA, "session", "keepalive", s.ID).mustCode(t, 0, "keepalive")
	octo(t, url, tokB, "session", "keepalive", s.ID).mustCode(t, exitNotFound, "another user's keepalive")
	octo(t, url, tokA, "session", "keepalive", "nope").mustCode(t, exitUsage, "a malformed id (422)")
	if r = octo(t, url, tokA, "session", "close", s.ID).mustCode(t, 0, "close"); !strings.Contains(r.stdout, "released 1 lock") {
		t.Fatalf("close = %q", r.stdout)
	}
	octo(t, url, tokB, "lock", "acquire", "deploy").mustCode(t, 0, "the lock is free after the close")
	octo(t, url, tokA, "session", "close", s.ID).mustCode(t, exitNotFound, "close again")
}

// lock acquire --lock-delay: after the hold expires, nobody gets the lock
// until the delay is over; a waiting acquire waits through it.
func TestLockDelayCommand(t *testing.T) {
	t.Parallel()
	url := serverFor(t, "/locks")
	octo(t, url, tokA, "lock", "acquire", "delayed", "--ttl", "1s", "--lock-delay", "2s").mustCode(t, 0, "acquire with a lock-delay")
	start := time.Now()
	r := octo(t, url, tokB, "lock", "acquire", "delayed", "--wait", "20s", "--json").mustCode(t, 0, "bob waits through the delay")
	if d := time.Since(start); d < 2*time.Second {
		t.Fatalf("bob got the lock %s after alice's 1 s hold with a 2 s delay: %s", d, r.stdout)
	}
	if !strings.Contains(r.stderr, "waiting for lock") {
		t.Fatalf("stderr %q", r.stderr)
	}
	octo(t, url, tokA, "lock", "acquire", "delayed", "--lock-delay", "61s").mustCode(t, exitUsage, "a delay over 60s (422)")
}

func TestLockFenceCommand(t *testing.T) {
	url := serverFor(t, "/locks")
	octo(t, url, tokA, "lock", "acquire", "fenced").mustCode(t, 0, "acquire")
	if r := octo(t, url, tokB, "lock", "fence", "fenced", "1").mustCode(t, 0, "the current token"); !strings.Contains(r.stdout, "held by alice") {
		t.Fatalf("valid: %q", r.stdout)
	}
	if r := octo(t, url, tokB, "lock", "fence", "fenced", "2").mustCode(t, exitHeld, "a token never granted"); !strings.Contains(r.stderr, "stale fencing token (the last one granted is 1)") {
		t.Fatalf("stale: %q", r.stderr)
	}
	octo(t, url, tokB, "lock", "fence", "fenced", "-1").mustCode(t, exitUsage, "a negative token")
	octo(t, url, tokB, "lock", "fence", "fenced").mustCode(t, exitUsage, "no token")
}

// --metadata: shown to every user in lock status and lock list; lock run
// gives "HOST pid PID" by default.
func TestLockMetadataCommand(t *testing.T) {
	url := serverFor(t, "/locks")
	octo(t, url, tokA, "lock", "acquire", "m", "--metadata", "deploy #17").mustCode(t, 0, "acquire")
	if r := octo(t, url, tokB, "lock", "status", "m").mustCode(t, 0, "status"); !strings.Contains(r.stdout, "metadata       deploy #17") {
		t.Fatalf("status for bob: %q", r.stdout)
	}
	if r := octo(t, url, tokA, "lock", "list").mustCode(t, 0, "list"); !strings.Contains(r.stdout, "deploy") {
		t.Fatalf("list: %q", r.stdout)
	}
	octo(t, url, tokA, "lock", "acquire", "m2", "--metadata", "two\nlines").mustCode(t, exitUsage, "a control character (422)")
	r := octo(t, url, tokA, "lock", "run", "m3", "--", "sh", "-c", `OCTOSTORE_TOKEN=tokB "$0" lock status m3 --json`, octostoreBin)
	r.mustCode(t, 0, "lock run")
	host, _ := os.Hostname()
	if !strings.Contains(r.stdout, `"metadata":"`+host+` pid `) {
		t.Fatalf("lock run's metadata: %q", r.stdout)
	}
}
