package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
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

// limit check --cost --algorithm: a token bucket from the shell.
func TestLimitTokenBucketCommand(t *testing.T) {
	url := startServer(t)
	r := octo(t, url, tokA, "limit", "check", "tb", "--max", "5", "--window", "1h", "--cost", "5", "--algorithm", "token_bucket").mustCode(t, 0, "take all 5")
	if !strings.Contains(r.stdout, "token_bucket") || !strings.Contains(r.stdout, "remaining") {
		t.Fatalf("check = %q", r.stdout)
	}
	octo(t, url, tokA, "limit", "check", "tb", "--max", "5", "--window", "1h", "--algorithm", "token_bucket").mustCode(t, exitHeld, "empty bucket")
	if r = octo(t, url, tokA, "limit", "list").mustCode(t, 0, "list"); !strings.Contains(r.stdout, "bucket") || !strings.Contains(r.stdout, "5/5") {
		t.Fatalf("list = %q", r.stdout)
	}
	octo(t, url, tokA, "limit", "check", "tb", "--algorithm", "leaky").mustCode(t, exitUsage, "unknown algorithm")
	octo(t, url, tokA, "limit", "check", "tb", "--max", "2", "--cost", "3").mustCode(t, exitUsage, "cost over max")
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

// flag set --rules/--variants/--off-variant and flag get --attr: the
// targeting of issue 17 from the shell.
func TestFlagTargetingCommands(t *testing.T) {
	url := startServer(t)
	rules := filepath.Join(t.TempDir(), "rules.json")
	if err := os.WriteFile(rules, []byte(`[{"attribute":"plan","operator":"in","values":["pro"],"variant":"green"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := octo(t, url, tokA, "flag", "set", "theme", "on", "--rules", "@"+rules,
		"--variants", `[{"name":"blue","value":{"hex":"#00f"},"weight":100},{"name":"green","value":"green","weight":0}]`,
		"--off-variant", "blue").mustCode(t, 0, "set with variants")
	if !strings.Contains(r.stdout, "blue 100% green 0%") || !strings.Contains(r.stdout, "rules") {
		t.Fatalf("set = %q", r.stdout)
	}
	if r = octo(t, url, tokA, "flag", "get", "theme", "--attr", "plan=pro").mustCode(t, 0, "get by rule"); r.stdout != "\"green\"\n" {
		t.Fatalf("get by rule = %q", r.stdout)
	}
	if r = octo(t, url, tokA, "flag", "get", "theme", "--attr", "plan=free").mustCode(t, 0, "get by split"); r.stdout != `{"hex":"#00f"}`+"\n" {
		t.Fatalf("get by split = %q", r.stdout)
	}
	if r = octo(t, url, tokA, "flag", "list").mustCode(t, 0, "list"); !strings.Contains(r.stdout, "blue 100%") {
		t.Fatalf("list = %q", r.stdout)
	}
	octo(t, url, tokA, "flag", "set", "gate", "on", "--rules", `[{"attribute":"age","operator":"gt","values":[17],"enabled":true}]`,
		"--percentage", "0").mustCode(t, 0, "set a boolean flag with a rule")
	if r = octo(t, url, tokA, "flag", "get", "gate", "--attr", "age=18").mustCode(t, 0, "get gate"); r.stdout != "true\n" {
		t.Fatalf("get gate = %q", r.stdout)
	}
	octo(t, url, tokA, "flag", "get", "gate", "--attr", "age").mustCode(t, exitUsage, "--attr without =")
	octo(t, url, tokA, "flag", "get", "gate", "--attr", "a=1", "--attr", "a=2").mustCode(t, exitUsage, "--attr twice")
	octo(t, url, tokA, "flag", "set", "gate", "on", "--rules", `{}`).mustCode(t, exitUsage, "--rules not an array")
	octo(t, url, tokA, "flag", "set", "gate", "on", "--rules", `[nope`).mustCode(t, exitUsage, "--rules not JSON")
	r = octo(t, url, tokA, "flag", "set", "gate", "on", "--variants", `[{"name":"a","value":1,"weight":90}]`).mustCode(t, exitUsage, "weights not 100 (422)")
	if !strings.Contains(r.stderr, "sum to 100") {
		t.Fatalf("422 stderr = %q", r.stderr)
	}
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

// watchRun is a CLI command running in the background (config watch).
type watchRun struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr *bytes.Buffer
	done   chan error
}

// startWatch starts the binary with args and reads its stdout line by
// line; it is killed at cleanup if still running.
func startWatch(t *testing.T, url, token string, args ...string) *watchRun {
	t.Helper()
	cmd := exec.Command(octostoreBin, args...)
	cmd.Env = cliEnv(url, token)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	w := &watchRun{cmd: cmd, lines: make(chan string, 64), stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = w.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			w.lines <- sc.Text()
		}
		close(w.lines)
		w.done <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	return w
}

// line is the next line of stdout (fails after 30 s or at the end).
func (w *watchRun) line(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-w.lines:
		if !ok {
			t.Fatalf("the command ended; stderr: %s", w.stderr)
		}
		return l
	case <-time.After(30 * time.Second):
		t.Fatalf("no line within 30s; stderr: %s", w.stderr)
	}
	return ""
}

// mustExit waits for the command to end with code.
func (w *watchRun) mustExit(t *testing.T, code int) {
	t.Helper()
	for range w.lines { // drain
	}
	select {
	case err := <-w.done:
		got := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			got = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if got != code {
			t.Fatalf("exit %d, want %d; stderr: %s", got, code, w.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("did not exit within 30s; stderr: %s", w.stderr)
	}
}

// config rollback and config watch from the shell.
func TestConfigRollbackAndWatchCommands(t *testing.T) {
	url := startServer(t)
	octo(t, url, tokA, "config", "set", "app.db", `{"pool": 5}`, "--description", "five").mustCode(t, 0, "v1")
	octo(t, url, tokA, "config", "set", "app.db", `{"pool": 9}`).mustCode(t, 0, "v2")
	r := octo(t, url, tokA, "config", "rollback", "app.db", "1").mustCode(t, 0, "rollback")
	if !strings.Contains(r.stdout, "version") || !strings.Contains(r.stdout, "3") || !strings.Contains(r.stdout, "five") {
		t.Fatalf("rollback = %q", r.stdout)
	}
	if r = octo(t, url, tokA, "config", "get", "app.db").mustCode(t, 0, "get"); !strings.Contains(r.stdout, `"pool": 5`) {
		t.Fatalf("after rollback: %q", r.stdout)
	}
	octo(t, url, tokA, "config", "rollback", "app.db", "1", "--if-version", "2").mustCode(t, exitHeld, "stale --if-version")
	octo(t, url, tokA, "config", "rollback", "app.db", "7").mustCode(t, exitNotFound, "unknown version")
	octo(t, url, tokA, "config", "rollback", "app.db", "x").mustCode(t, exitUsage, "VERSION not a number")
	octo(t, url, tokA, "config", "rollback", "app.db", "0").mustCode(t, exitUsage, "VERSION 0")

	// watch: the current value, then each new one; a delete on stderr
	w := startWatch(t, url, tokA, "config", "watch", "app.db", "--changes", "3")
	if l := w.line(t); l != `{"pool":5}` {
		t.Fatalf("first line %q", l)
	}
	octo(t, url, tokA, "config", "set", "app.db", `"a\u001b[31mb"`).mustCode(t, 0, "a value with an escape character")
	if l := w.line(t); l != `"a\u001b[31mb"` {
		t.Fatalf("second line %q", l)
	}
	octo(t, url, tokA, "config", "delete", "app.db").mustCode(t, 0, "delete")
	octo(t, url, tokA, "config", "set", "app.db", `[1, 2]`).mustCode(t, 0, "re-create")
	if l := w.line(t); l != `[1,2]` {
		t.Fatalf("third line %q", l)
	}
	w.mustExit(t, 0)
	if !strings.Contains(w.stderr.String(), "app.db deleted (version 4)") {
		t.Fatalf("stderr %q", w.stderr)
	}
	// until interrupted: SIGINT ends it with 0
	w = startWatch(t, url, tokA, "config", "watch", "nothing-yet")
	octo(t, url, tokA, "config", "set", "nothing-yet", `true`).mustCode(t, 0, "create")
	if l := w.line(t); l != "true" {
		t.Fatalf("created while watched: %q", l)
	}
	w.cmd.Process.Signal(os.Interrupt)
	w.mustExit(t, 0)
	octo(t, url, tokA, "config", "watch", "a b").mustCode(t, exitUsage, "bad key (422)")
	octo(t, url, "wrong", "config", "watch", "k").mustCode(t, exitAuth, "bad token")
	octo(t, url, tokA, "config", "watch", "k", "--changes", "-1").mustCode(t, exitUsage, "negative --changes")
}
