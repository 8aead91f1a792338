package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/octostore/octostore/tools/termtext"
)

// mustFit fails unless every line of out is at most 80 terminal columns.
func mustFit(t *testing.T, what, out string) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if w := termtext.Width(l); w > tableWidth {
			t.Fatalf("%s: a line of %d columns:\n%s\nwhole output:\n%s", what, w, l, out)
		}
	}
}

// Tables and field lists fit 80 columns with the longest names the server
// allows (cut with "…"), while lease ids stay whole; admin listings of
// flags, limits and config name each item's owner; config history shows
// each value on one cut line (--json has them whole).
func TestTablesFit80Columns(t *testing.T) {
	longLogin := strings.Repeat("l", 64)
	m := mustRunMain(t, func(m *Main) {
		m.Config.StaticTokens = map[string]string{tokA: "alice", tokB: "bob", "tokL": longLogin}
		m.Config.AdminKey = adminKey
	})
	url := m.URL()
	lockName := strings.Repeat("n", 128)
	res := strings.Repeat("r", 100)
	key := "k." + strings.Repeat("k", 98)
	desc := strings.Repeat("déscription ", 41)[:500]
	big := map[string]string{}
	for i := 0; i < 40; i++ {
		big[strings.Repeat("field", 2)+string(rune('a'+i%26))+strings.Repeat("x", i)] = strings.Repeat("value", 3)
	}
	bigJSON, _ := json.Marshal(big)

	r := octo(t, url, "tokL", "lock", "acquire", lockName, "--json").mustCode(t, exitOK, "acquire")
	var lease struct {
		LeaseID string `json:"lease_id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &lease); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{tokA, tokB} {
		octo(t, url, tok, "flag", "set", res, "on", "--percentage", "100").mustCode(t, exitOK, "flag set")
		octo(t, url, tok, "limit", "check", res, "--max", "10000", "--window", "24h").mustCode(t, exitOK, "limit check")
		octo(t, url, tok, "config", "set", key, string(bigJSON), "--description", desc).mustCode(t, exitOK, "config set")
	}
	octo(t, url, tokA, "config", "set", key, `"v3"`, "--description", "short").mustCode(t, exitOK, "config set v2")

	for _, tc := range []struct {
		token string
		args  []string
		want  []string // in the output
	}{
		{"tokL", []string{"lock", "list"}, []string{lease.LeaseID, "nnn…", "lll…"}},
		{adminKey, []string{"lock", "list"}, []string{"nnn…"}},
		{"tokL", []string{"lock", "status", lockName}, []string{lease.LeaseID, "nnn…"}},
		{tokA, []string{"lock", "acquire", lockName, "--ttl", "1s", "--wait", "0"}, nil}, // held: nothing on stdout
		{adminKey, []string{"flag", "list"}, []string{"OWNER", "alice", "bob", "rrr…"}},
		{adminKey, []string{"limit", "list"}, []string{"OWNER", "alice", "bob", "1/10000"}},
		{adminKey, []string{"config", "list"}, []string{"OWNER", "alice", "bob", "déscription déscrip…"}},
		{tokA, []string{"config", "list"}, []string{"KEY", "short"}},
		{tokA, []string{"config", "history", key}, []string{`{"fieldfielda`, "…", `"v3"`}},
		{tokA, []string{"flag", "set", res, "on"}, []string{"rrr…"}},
		{tokB, []string{"config", "set", key, "1", "--description", desc}, []string{"déscri…"}},
	} {
		r := octo(t, url, tc.token, tc.args...)
		mustFit(t, strings.Join(tc.args, " "), r.stdout)
		for _, w := range tc.want {
			if !strings.Contains(r.stdout, w) {
				t.Fatalf("%v: output lacks %q:\n%s", tc.args, w, r.stdout)
			}
		}
		if strings.Contains(strings.Join(tc.args, " "), "list") && !strings.Contains(tc.args[0], "lock") && tc.token != adminKey &&
			strings.Contains(r.stdout, "OWNER") {
			t.Fatalf("%v: a user's listing has an OWNER column:\n%s", tc.args, r.stdout)
		}
	}
	// The owner column tells the two users' rows apart.
	r = octo(t, url, adminKey, "flag", "list")
	if !regexp.MustCompile(`(?m)^r+…\s+alice\s`).MatchString(r.stdout) || !regexp.MustCompile(`(?m)^r+…\s+bob\s`).MatchString(r.stdout) {
		t.Fatalf("admin flag list:\n%s", r.stdout)
	}
	// The whole value stays available.
	if r := octo(t, url, tokB, "config", "history", key, "--json").mustCode(t, exitOK, "history --json"); !strings.Contains(r.stdout, string(bigJSON)[:200]) {
		t.Fatalf("history --json lacks the whole value:\n%s", r.stdout)
	}
	r = octo(t, url, "", "token", "list", "--db", m.Config.DBPath)
	mustFit(t, "token list", r.stdout)
}

// hostile is a server whose answers hold terminal escapes where the real
// one refuses them (descriptions) or never has them: as from an older
// database, a proxy, or a server that is not octostore.
func hostile(t *testing.T) string {
	t.Helper()
	const esc = "clear\u001b[2J ring\u0007 osc\u001b]0;pwned\u0007 c1\u009b31m rlo\u202etxt.exe"
	answers := map[string]string{
		"/config":           `{"configs":[{"key":"k","description":"` + jsonEsc(esc) + `","version":1,"created_at":"2026-01-01T00:00:00.000Z","updated_at":"2026-01-01T00:00:00.000Z"}]}`,
		"/config/k/history": `{"versions":[{"version":1,"value":{"a":"` + jsonEsc(esc) + `"},"description":"` + jsonEsc(esc) + `","created_at":"2026-01-01T00:00:00.000Z"}]}`,
		"/config/k":         `{"key":"k","value":{"a":"` + "bidi\u202e del\u007f c1\u0085" + `","b":"` + jsonEsc(esc) + `"},"version":1}`,
		"/locks":            `{"locks":[{"name":"n","lease_id":"00000000-0000-4000-8000-000000000000","fencing_token":1,"expires_at":"2099-01-01T00:00:00.000Z","holder":"` + jsonEsc(esc) + `"}],"total":1}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if a, ok := answers[r.URL.Path]; ok {
			w.Write([]byte(a))
			return
		}
		w.WriteHeader(404)
		w.Write([]byte(`{"error":"` + jsonEsc(esc) + `"}`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// jsonEsc escapes s for a JSON string the way a JSON encoder would.
func jsonEsc(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// Text from the server reaches the terminal cleaned (ESC, BEL, C1, bidi
// overrides replaced; config get escapes them inside JSON strings, the same
// value); --json stays exact.
func TestServerTextIsCleaned(t *testing.T) {
	url := hostile(t)
	bad := regexp.MustCompile("[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]")
	for _, args := range [][]string{
		{"config", "list"}, {"config", "history", "k"}, {"config", "get", "k"}, {"lock", "list"}, {"flag", "get", "missing"},
	} {
		r := octo(t, url, tokA, args...)
		if loc := bad.FindStringIndex(r.stdout + r.stderr); loc != nil {
			t.Fatalf("%v: a control or bidi character reached the terminal at %d:\nstdout %q\nstderr %q", args, loc[0], r.stdout, r.stderr)
		}
		if r.stdout+r.stderr == "" {
			t.Fatalf("%v: no output", args)
		}
	}
	r := octo(t, url, tokA, "config", "list").mustCode(t, exitOK, "config list")
	if !strings.Contains(r.stdout, "clear\uFFFD[2J ring\uFFFD") {
		t.Fatalf("config list: the description should show with its escapes replaced:\n%s", r.stdout)
	}
	// config get: the same JSON value, its dangerous runes as \u escapes.
	r = octo(t, url, tokA, "config", "get", "k").mustCode(t, exitOK, "config get")
	var got map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got["a"] != "bidi\u202e del\u007f c1\u0085" {
		t.Fatalf("config get = %q (%v): want the value unchanged", r.stdout, err)
	}
	if !strings.Contains(r.stdout, `bidi\u202e del\u007f c1\u0085`) {
		t.Fatalf("config get = %q: want the runes written as escapes", r.stdout)
	}
	// --json is the answer as it came.
	r = octo(t, url, tokA, "lock", "list", "--json").mustCode(t, exitOK, "lock list --json")
	if !strings.Contains(r.stdout, jsonEsc("clear\u001b[2J")) {
		t.Fatalf("lock list --json changed the answer: %q", r.stdout)
	}
	// A message quoting the server is cleaned too, and is one line.
	r = octo(t, url, tokA, "flag", "delete", "x").mustCode(t, exitNotFound, "error message")
	if strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "\uFFFD[2J") {
		t.Fatalf("stderr %q", r.stderr)
	}
}

// One wording for a lock someone else holds, with its expiry, in lock
// acquire --wait and lock run --wait; a config conflict says the current
// version once.
func TestMessagesSayEachThingOnce(t *testing.T) {
	url := startServer(t)
	octo(t, url, tokA, "lock", "acquire", "m", "--ttl", "1m").mustCode(t, exitOK, "alice acquires")
	waiting := regexp.MustCompile(`^octostore: waiting for lock "m" \(held by alice until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)$`)
	for _, args := range [][]string{
		{"lock", "acquire", "m", "--wait", "200ms"},
		{"lock", "run", "m", "--wait", "200ms", "--", "true"},
	} {
		r := octo(t, url, tokB, args...).mustCode(t, exitHeld, strings.Join(args, " "))
		if first := strings.SplitN(r.stderr, "\n", 2)[0]; !waiting.MatchString(first) {
			t.Fatalf("%v: %q, want %s", args, first, waiting)
		}
	}
	octo(t, url, tokA, "config", "set", "c", "1").mustCode(t, exitOK, "config set")
	for _, v := range []string{"0", "5"} {
		r := octo(t, url, tokA, "config", "set", "c", "2", "--if-version", v).mustCode(t, exitHeld, "conflict")
		if strings.Count(r.stderr, "version 1")+strings.Count(r.stderr, "version is 1") != 1 || strings.Count(r.stderr, "octostore:") != 1 {
			t.Fatalf("conflict with --if-version %s: %q: want the current version said once", v, r.stderr)
		}
	}
}

// backup takes its flags before or after OUT.
func TestBackupFlagsAfterTheArgument(t *testing.T) {
	_, db := startServerDB(t)
	dir := t.TempDir()
	for i, args := range [][]string{
		{"backup", "--db", db, filepath.Join(dir, "a.db"), "--json"},
		{"backup", filepath.Join(dir, "b.db"), "--db", db, "--json"},
		{"backup", "--json", "--db=" + db, filepath.Join(dir, "c.db")},
	} {
		r := octo(t, "", "", args...).mustCode(t, exitOK, strings.Join(args, " "))
		var info struct {
			Path  string `json:"path"`
			Bytes int64  `json:"bytes"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &info); err != nil || info.Bytes == 0 {
			t.Fatalf("case %d: stdout %q (%v)", i, r.stdout, err)
		}
		if _, err := os.Stat(info.Path); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
	}
	octo(t, "", "", "backup", filepath.Join(dir, "d.db"), "extra", "--db", db).mustUsageError(t, "two outputs", `"extra"`)
}
