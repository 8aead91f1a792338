package docs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd/apitest"
	"github.com/octostore/octostore/tools/servertest"
)

// The README's shell examples, run against the real binary, built once for
// this package by TestMain (as cmd/octostore's tests do).

var octostoreBin string // the binary TestMain builds

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(servertest.BuildAndRun(m, false, &octostoreBin))
}

// startServer runs `octostore serve` on 127.0.0.1:0 with a temporary
// database (alice: tokA, bob: tokB) and returns the URL of a proxy in front
// of it that holds every exchange to the published contract
// (httpd/apitest.Proxy); SIGTERM at cleanup.
func startServer(t *testing.T) string {
	t.Helper()
	px := apitest.Proxy(t, servertest.Serve(t, octostoreBin, "--static-tokens", "alice:tokA,bob:tokB").URL)
	t.Cleanup(px.Close)
	return px.URL
}

// shellBlock returns the first ```sh block after heading in the Markdown file.
func shellBlock(t *testing.T, path, heading string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("%s has no %q", path, heading)
	}
	_, rest, ok = strings.Cut(rest, "\n```sh\n")
	if !ok {
		t.Fatalf("%s: no sh block after %q", path, heading)
	}
	block, _, ok := strings.Cut(rest, "\n```")
	if !ok {
		t.Fatalf("%s: unterminated sh block after %q", path, heading)
	}
	return strings.Split(block, "\n")
}

// command is a line of a shell example without its trailing comment (two
// spaces or more, then #), the key of its expectations.
func command(line string) string {
	if i := strings.Index(line, "  #"); i >= 0 {
		line = line[:i]
	}
	return strings.TrimSpace(line)
}

// shellRun is one run of example lines by /bin/sh.
type shellRun struct {
	rc     map[string]int // exit status of each command
	stdout string
	stderr string
}

// runLines runs the lines in one /bin/sh in dir with octostore first on
// PATH, recording each command's exit status (the status of a line is $?
// read on the next one: comments and && chains are left as they are).
func runLines(t *testing.T, dir string, env []string, lines []string) shellRun {
	t.Helper()
	rcFile := filepath.Join(dir, ".rc")
	os.Remove(rcFile)
	var script strings.Builder
	var cmds []string
	for _, l := range lines {
		c := command(l)
		script.WriteString(l + "\n")
		if c == "" || strings.HasPrefix(c, "#") {
			continue
		}
		if strings.HasSuffix(c, "\\") {
			t.Fatalf("continued lines are not supported: %q", l)
		}
		fmt.Fprintf(&script, "echo \"%d $?\" >> %q\n", len(cmds), rcFile)
		cmds = append(cmds, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sh := exec.CommandContext(ctx, "/bin/sh", "-c", script.String())
	sh.Dir = dir
	sh.Env = env
	var stdout, stderr bytes.Buffer
	sh.Stdout, sh.Stderr = &stdout, &stderr
	if err := sh.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("sh: %v", err)
		}
	}
	r := shellRun{rc: map[string]int{}, stdout: stdout.String(), stderr: stderr.String()}
	rcs, _ := os.ReadFile(rcFile)
	for _, l := range strings.Split(strings.TrimSpace(string(rcs)), "\n") {
		var i, rc int
		if _, err := fmt.Sscan(l, &i, &rc); err == nil && i < len(cmds) {
			r.rc[cmds[i]] = rc
		}
	}
	return r
}

// writeScript writes an executable shell script.
func writeScript(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// lockHolder is the holder of a lock as `octostore lock status --json` says ("" when free).
func lockHolder(t *testing.T, env []string, dir, name string) string {
	t.Helper()
	cmd := exec.Command(octostoreBin, "lock", "status", name, "--json")
	cmd.Env, cmd.Dir = env, dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("lock status %s: %v", name, err)
	}
	var st struct{ Status, Holder string }
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("lock status %s: %v: %s", name, err, out)
	}
	return st.Holder
}

// TestReadmeShellExamples runs README.md's "Use from the shell" block as
// written (only the server URL is the test server's) with stand-ins for the
// user's scripts, and checks every command's exit status and output and what
// the comments promise.
func TestReadmeShellExamples(t *testing.T) {
	lines := shellBlock(t, filepath.Join(repoRoot, "README.md"), "## Use from the shell")
	url := startServer(t)
	const docURL = "http://127.0.0.1:3000"
	joined := strings.Join(lines, "\n")
	if !strings.Contains(joined, "export OCTOSTORE_URL="+docURL+" OCTOSTORE_TOKEN=tokA") {
		t.Fatalf("the block no longer exports OCTOSTORE_URL=%s and OCTOSTORE_TOKEN=tokA:\n%s", docURL, joined)
	}
	for i := range lines {
		lines[i] = strings.ReplaceAll(lines[i], docURL, url)
	}

	dir := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OCTOSTORE_") && !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "USER=") {
			env = append(env, kv)
		}
	}
	env = append(env, "PATH="+filepath.Dir(octostoreBin)+string(os.PathListSeparator)+os.Getenv("PATH"), "USER=carol")
	alice := append(env[:len(env):len(env)], "OCTOSTORE_URL="+url, "OCTOSTORE_TOKEN=tokA")
	bob := append(env[:len(env):len(env)], "OCTOSTORE_URL="+url, "OCTOSTORE_TOKEN=tokB")

	// The user's scripts: each says it ran and what it saw.
	// lock run gives the job no credential: it asks as bob, who may see the holder.
	writeScript(t, filepath.Join(dir, "backup.sh"), `echo "backup ran: lock=$OCTOSTORE_LOCK_NAME token=$OCTOSTORE_FENCING_TOKEN lease=$OCTOSTORE_LEASE_ID"
echo "${OCTOSTORE_TOKEN:-no token}" > token-during-backup.txt
OCTOSTORE_TOKEN=tokB octostore lock status "$OCTOSTORE_LOCK_NAME" --json > held-during-backup.json
exit "${BACKUP_STATUS:-0}"`)
	writeScript(t, filepath.Join(dir, "migrate.sh"), `echo "migrate ran"
octostore lock status deploy --json > held-during-migrate.json`)
	writeScript(t, filepath.Join(dir, "rollout.sh"), `echo "rollout ran"`)
	writeScript(t, filepath.Join(dir, "send-digest.sh"), `echo "digest sent"`)
	writeScript(t, filepath.Join(dir, "report.sh"), `echo "report ran: semaphore=$OCTOSTORE_SEMAPHORE_NAME token=$OCTOSTORE_FENCING_TOKEN"
OCTOSTORE_TOKEN=tokB octostore semaphore status reports --json > held-during-report.json`)
	if err := os.WriteFile(filepath.Join(dir, "db.json"), []byte(`{"pool": 5}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The state the examples expect: the flag exists, app.db is at version 3.
	setup := []string{
		"octostore flag set new-ui on",
		`octostore config set app.db '{"pool": 1}'`,
		`octostore config set app.db '{"pool": 2}'`,
		`octostore config set app.db '{"pool": 3}'`,
	}
	if r := runLines(t, dir, alice, setup); len(r.rc) != len(setup) {
		t.Fatalf("setup: %v\n%s", r.rc, r.stderr)
	} else {
		for c, rc := range r.rc {
			if rc != 0 {
				t.Fatalf("setup %q exited %d: %s", c, rc, r.stderr)
			}
		}
	}

	r := runLines(t, dir, env, lines)
	want := map[string]int{
		"export OCTOSTORE_URL=" + url + " OCTOSTORE_TOKEN=tokA":                        0,
		"octostore lock run nightly-backup --ttl 30s --wait 2m -- ./backup.sh":         0,
		"lease=$(octostore lock acquire deploy --ttl 10m --wait 5m -q)":                0,
		`trap 'octostore lock release deploy "$lease"' EXIT`:                           0,
		"./migrate.sh && ./rollout.sh":                                                 0,
		"octostore limit check emails --max 100 --window 1h && ./send-digest.sh":       0,
		`[ "$(octostore flag get new-ui --subject "$USER")" = true ] && echo "new UI"`: 0,
		"octostore config set app.db @db.json --if-version 3":                          0,
		"octostore semaphore run reports --limit 3 --wait 1m -- ./report.sh":           0,
		"octostore config watch app.db --changes 1 > app-db.log 2>&1 &":                0,
	}
	for c, rc := range r.rc {
		w, ok := want[c]
		switch {
		case !ok:
			t.Errorf("README command %q has no expectation here: add one", c)
		case rc != w:
			t.Errorf("%q exited %d, want %d\nstderr:\n%s", c, rc, w, r.stderr)
		}
	}
	for c := range want {
		if _, ok := r.rc[c]; !ok {
			t.Errorf("expected command %q is not in the README block (or did not run)", c)
		}
	}
	// Their output, in order.
	leaseRE := `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`
	order := regexp.MustCompile(`(?s)backup ran: lock=nightly-backup token=1 lease=` + leaseRE + `\n.*` +
		`migrate ran\nrollout ran\n.*digest sent\nnew UI\n.*version +4\n.*report ran: semaphore=reports token=1\n.*released deploy\n$`)
	if !order.MatchString(r.stdout) {
		t.Fatalf("output:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	if r.stderr != "" {
		t.Errorf("stderr: %s", r.stderr)
	}

	// 1. lock run held the lock while the job ran (as alice), released it
	// when the job exited, and exits with the job's status.
	if h := holderIn(t, filepath.Join(dir, "held-during-backup.json")); h != "alice" {
		t.Errorf("during the job the holder was %q", h)
	}
	if tok, _ := os.ReadFile(filepath.Join(dir, "token-during-backup.txt")); string(tok) != "no token\n" {
		t.Errorf("the job got OCTOSTORE_TOKEN=%q: lock run must not hand it the caller's token", tok)
	}
	// 4. semaphore run held a slot of "reports" (limit 3) while the job
	// ran, and freed it when the job exited.
	if b, err := os.ReadFile(filepath.Join(dir, "held-during-report.json")); err != nil ||
		!strings.Contains(string(b), `"limit":3`) || !strings.Contains(string(b), `"holder":"alice"`) {
		t.Errorf("during the report job: %s %v", b, err)
	}
	if h := lockHolder(t, alice, dir, "nightly-backup"); h != "" {
		t.Errorf("nightly-backup still held by %q after the job", h)
	}
	lockRun := lines[indexOf(t, lines, "octostore lock run nightly-backup")]
	if r := runLines(t, dir, append(alice, "BACKUP_STATUS=5"), []string{lockRun}); r.rc[command(lockRun)] != 5 {
		t.Errorf("a job exiting 5: lock run exited %v; stderr %s", r.rc, r.stderr)
	}
	// ... and waits for the lock while someone else holds it (bob, for 1s).
	if r := runLines(t, dir, bob, []string{"octostore lock acquire nightly-backup --ttl 1s -q"}); r.rc["octostore lock acquire nightly-backup --ttl 1s -q"] != 0 {
		t.Fatalf("bob's acquire: %v %s", r.rc, r.stderr)
	}
	if r := runLines(t, dir, alice, []string{lockRun}); r.rc[command(lockRun)] != 0 || !strings.Contains(r.stdout, "backup ran: lock=nightly-backup token=4") {
		t.Errorf("waiting for bob's lock: %v\n%s\n%s", r.rc, r.stdout, r.stderr)
	}

	// 2. the deploy lock was held by alice during the steps and released on exit.
	if h := holderIn(t, filepath.Join(dir, "held-during-migrate.json")); h != "alice" {
		t.Errorf("during migrate.sh the holder was %q", h)
	}
	if h := lockHolder(t, alice, dir, "deploy"); h != "" {
		t.Errorf("deploy still held by %q after the script", h)
	}

	// 3. config watch printed app.db's value, then the next one written: the
	// script's write if it subscribed first ({"pool": 3} then 5), else
	// (it subscribed after that write) 5, then the write made here.
	watchLog := filepath.Join(dir, "app-db.log")
	lines1 := logLines(t, watchLog, 1)
	switch lines1[0] {
	case `{"pool":3}`:
	case `{"pool":5}`:
		if r := runLines(t, dir, alice, []string{`octostore config set app.db '{"pool": 6}'`}); len(r.rc) != 1 {
			t.Fatalf("a write for the watch: %v %s", r.rc, r.stderr)
		}
	default:
		t.Fatalf("config watch's first line %q", lines1[0])
	}
	if got := logLines(t, watchLog, 2); got[1] != `{"pool":5}` && got[1] != `{"pool":6}` || got[0] == got[1] {
		t.Fatalf("config watch printed %q", got)
	}

	// 3. "exit 3 when denied" (one check is counted: a limit of 1 denies),
	// "exit 3 if someone wrote first" (app.db is at version 4 now).
	check := "octostore limit check emails --max 1 --window 1h"
	configLine := command(lines[indexOf(t, lines, "octostore config set app.db")])
	r = runLines(t, dir, alice, []string{check, configLine})
	if r.rc[check] != 3 || r.rc[configLine] != 3 {
		t.Errorf("denied / conflict: %v\n%s", r.rc, r.stderr)
	}
}

// logLines waits (up to a minute) until the file has n lines, written by a
// background command, and returns them.
func logLines(t *testing.T, path string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		b, _ := os.ReadFile(path)
		if lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"); len(b) > 0 && strings.HasSuffix(string(b), "\n") && len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %q, want %d lines", path, b, n)
		}
		time.Sleep(20 * time.Millisecond) // another process writes the file: no signal to wait on
	}
}

// holderIn is the holder in a file of `octostore lock status --json`.
func holderIn(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ Holder string }
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("%s: %v: %s", path, err, b)
	}
	return st.Holder
}

func indexOf(t *testing.T, lines []string, prefix string) int {
	t.Helper()
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			return i
		}
	}
	t.Fatalf("no line starts with %q", prefix)
	return -1
}
