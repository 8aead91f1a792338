package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/octostore/octostore/httpd"
	"github.com/octostore/octostore/persistence"
	"github.com/octostore/octostore/tools/servertest"
	"go.uber.org/goleak"
)

// newTestMain is a Main on 127.0.0.1:0 with a temporary database, output
// discarded, and otherwise the defaults `octostore serve` has (a zero
// ServeConfig field takes the same default as its flag).
func newTestMain(t testing.TB) *Main {
	t.Helper()
	return &Main{
		Config: ServeConfig{Addr: "127.0.0.1:0", DBPath: filepath.Join(t.TempDir(), "octostore.db")},
		Stdout: io.Discard,
		Logger: slog.New(slog.DiscardHandler),
	}
}

// mustRunMain runs newTestMain adjusted by mod, and closes it at cleanup
// (closing it earlier is fine): the in-process server of this package's
// tests (benbjohnson/wtf's MustRunMain).
func mustRunMain(t testing.TB, mod func(m *Main)) *Main {
	t.Helper()
	m := newTestMain(t)
	if mod != nil {
		mod(m)
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

// get answers GET url with a bearer token: status and body.
func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	return getWith(t, http.DefaultClient, url, token)
}

func getWith(t *testing.T, c *http.Client, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The steps of Main.Run, in order (the names it reports to afterStep).
var runSteps = []string{
	"memory limit", "listener", "database", "writer", "identity", "events broker", "actor system", "resource kinds",
	"recovery", "authenticator", "github sign-in", "http server", "metrics listener", "pprof",
}

// fullMain is a Main with every optional part on (GitHub sign-in, metrics
// listener, pprof), so that every step opens something.
func fullMain(t *testing.T) *Main {
	m := newTestMain(t)
	m.Config.StaticTokens = map[string]string{"tokA": "alice"}
	m.Config.GitHub = httpd.GitHubOAuth{ClientID: "id", ClientSecret: "secret", RedirectURL: "http://localhost:3000/auth/github/callback"}
	m.Config.MetricsAddr = "127.0.0.1:0"
	m.Config.PprofAddr = "127.0.0.1:0"
	return m
}

// checkUnwound fails t if a goroutine started since ignore was taken is
// still running (goleak retries while goroutines wind down), if a file of
// the database is still open in this process, or if an address m listened
// on is still taken.
func checkUnwound(t *testing.T, m *Main, ignore goleak.Option) {
	t.Helper()
	// fasthttp's worker-pool cleaner notices a stopped server only when it
	// wakes up, up to 10 s later (workerpool.go: Sleep, then check stopCh).
	// A server left running is still caught: its Serve goroutine stays.
	cleaner := goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2")
	if err := goleak.Find(ignore, cleaner); err != nil {
		t.Errorf("goroutines left after Close:\n%v", err)
	}
	if open := openFiles(t, m.Config.DBPath); len(open) > 0 {
		t.Errorf("database files still open after Close: %v", open)
	}
	for _, a := range []net.Addr{addrOf(m.Listener), auxAddr(m.MetricsListener), auxAddr(m.Pprof)} {
		if a == nil {
			continue
		}
		ln, err := net.Listen("tcp", a.String())
		if err != nil {
			t.Errorf("%s still taken after Close: %v", a, err)
			continue
		}
		ln.Close()
	}
}

func addrOf(ln net.Listener) net.Addr {
	if ln == nil {
		return nil
	}
	return ln.Addr()
}

func auxAddr(s *httpd.AuxServer) net.Addr {
	if s == nil {
		return nil
	}
	return s.Addr()
}

// openFiles lists the descriptors of this process open on path or its
// -wal / -shm companions (Linux: /proc/self/fd).
func openFiles(t *testing.T, path string) []string {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot list open files: %v", err)
	}
	abs, _ := filepath.Abs(path)
	var open []string
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err != nil {
			continue
		}
		if target == abs || target == abs+"-wal" || target == abs+"-shm" {
			open = append(open, fd.Name()+" → "+target)
		}
	}
	return open
}

// TestRunUnwindsEachStep fails Run after each of its steps in turn: Run
// returns that error, and everything the earlier steps opened is closed
// again — no goroutine left (actors, writer, limit flusher, auth poller,
// servers), no file of the database open, every address free.
func TestRunUnwindsEachStep(t *testing.T) {
	errInjected := errors.New("injected")
	for _, step := range runSteps {
		t.Run(step, func(t *testing.T) {
			ignore := goleak.IgnoreCurrent()
			m := fullMain(t)
			var seen []string
			m.afterStep = func(s string) error {
				seen = append(seen, s)
				if s == "http server" {
					// A keep-alive connection the server must hang up on
					// Close (else its goroutines, and this client's, stay).
					client := &http.Client{Transport: &http.Transport{}}
					if code, _ := getWith(t, client, m.URL()+"/health", ""); code != 200 {
						t.Errorf("/health: %d", code)
					}
				}
				if s == step {
					return errInjected
				}
				return nil
			}
			err := m.Run(context.Background())
			if !errors.Is(err, errInjected) {
				t.Fatalf("Run: %v, want the error injected after %s", err, step)
			}
			if want := runSteps[:len(seen)]; strings.Join(seen, ",") != strings.Join(want, ",") {
				t.Fatalf("steps %v, want %v", seen, want)
			}
			if seen[len(seen)-1] != step {
				t.Fatalf("Run went on past %s: %v", step, seen)
			}
			checkUnwound(t, m, ignore)
			if err := m.Close(); err != nil {
				t.Fatalf("a second Close: %v", err)
			}
		})
	}
}

// TestRunFailuresUnwind: real failures at different depths of the start,
// each one unwound completely.
func TestRunFailuresUnwind(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name string
		mod  func(t *testing.T, m *Main)
		want string
	}{
		{"bad listen address", func(t *testing.T, m *Main) { m.Config.Addr = "127.0.0.1:99999" }, "listen on 127.0.0.1:99999"},
		{"address in use", func(t *testing.T, m *Main) { m.Config.Addr = busy.Addr().String() }, "address already in use"},
		{"unopenable database", func(t *testing.T, m *Main) { m.Config.DBPath = t.TempDir() }, "database"},
		{"not a database", func(t *testing.T, m *Main) {
			os.WriteFile(m.Config.DBPath, bytes.Repeat([]byte("not sqlite "), 1000), 0o600)
		}, "database"},
		{"no identity source off loopback", func(t *testing.T, m *Main) {
			m.Config = ServeConfig{Addr: "0.0.0.0:0", DBPath: m.Config.DBPath}
		}, "no identity source"},
		{"failing recovery", func(t *testing.T, m *Main) { plantUnreadableLock(t, m.Config.DBPath) }, "recover held locks"},
		{"half a GitHub configuration", func(t *testing.T, m *Main) { m.Config.GitHub.ClientSecret = "" }, "client-secret"},
		{"metrics address in use", func(t *testing.T, m *Main) { m.Config.MetricsAddr = busy.Addr().String() }, "metrics listener on"},
		{"pprof address in use", func(t *testing.T, m *Main) { m.Config.PprofAddr = busy.Addr().String() }, "pprof listener on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := fullMain(t)
			tc.mod(t, m)
			ignore := goleak.IgnoreCurrent()
			err := m.Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v, want an error containing %q", err, tc.want)
			}
			checkUnwound(t, m, ignore)
		})
	}
}

// plantUnreadableLock creates the database at path with a held lock whose
// expiry is not a number: loading it at recovery fails.
func plantUnreadableLock(t *testing.T, path string) {
	t.Helper()
	db, err := persistence.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.WriteDB().Exec(`INSERT INTO locks (name, holder, lease_id, fencing_token, expires_at, acquired_at)
		VALUES ('bad', 'alice', 'l', 1, 'not a time', 0)`); err != nil {
		t.Fatal(err)
	}
}

// TestRunStopsWhenCancelled: a signal during the start stops it after the
// step under way, and what was opened is closed.
func TestRunStopsWhenCancelled(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	ctx, cancel := context.WithCancel(context.Background())
	m := fullMain(t)
	m.afterStep = func(s string) error {
		if s == "writer" {
			cancel()
		}
		return nil
	}
	err := m.Run(ctx)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "after writer") {
		t.Fatalf("Run: %v, want it interrupted after the writer", err)
	}
	checkUnwound(t, m, ignore)
}

// TestRunAndClose: a whole start serves the API, the metrics listener and
// pprof, prints where; Close stops all of it and leaves nothing behind.
func TestRunAndClose(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	var out bytes.Buffer
	m := fullMain(t)
	m.Stdout = &out
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", m.URL()+"/locks/x/acquire", strings.NewReader(`{"ttl_seconds":30}`))
	req.Header.Set("Authorization", "Bearer tokA")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("acquire: %d", resp.StatusCode)
	}
	// The separate listener needs no credentials.
	metricsURL := fmt.Sprintf("http://%s/metrics", m.MetricsListener.Addr())
	if code, body := get(t, metricsURL, ""); code != 200 || !strings.Contains(body, `octostore_resources{kind="lock"} 1`+"\n") {
		t.Fatalf("metrics listener: %d, want one held lock in:\n%.2000s", code, body)
	}
	if code, _ := get(t, fmt.Sprintf("http://%s/debug/pprof/", m.Pprof.Addr()), ""); code != 200 {
		t.Fatalf("pprof: %d", code)
	}
	if want := "listening on " + m.URL() + "\nmetrics at " + metricsURL + "\n"; out.String() != want {
		t.Fatalf("stdout %q, want %q", out.String(), want)
	}
	http.DefaultClient.CloseIdleConnections()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	checkUnwound(t, m, ignore)
	if _, err := http.Get(metricsURL); err == nil {
		t.Fatal("metrics listener still up after Close")
	}
}

// The dev token: created once on loopback with no identity source, stored
// only hashed; on a non-loopback address serve refuses to start.
func TestDevTokenAndNonLoopbackRefusal(t *testing.T) {
	db := filepath.Join(t.TempDir(), "dev.db")
	var out bytes.Buffer
	m := mustRunMain(t, func(m *Main) { m.Config.DBPath, m.Stdout = db, &out })
	i := strings.Index(out.String(), "octo_")
	if i < 0 {
		t.Fatalf("no token printed: %q", out.String())
	}
	tok := strings.Fields(out.String()[i:])[0]
	if !strings.Contains(out.String(), "curl") || !strings.Contains(out.String(), "listening on "+m.URL()) {
		t.Fatalf("output: %q", out.String())
	}
	if code, body := get(t, m.URL()+"/locks", tok); code != 200 {
		t.Fatalf("dev token: %d %s", code, body)
	}
	m.Close()
	// restart: no new token is printed, the old one still works
	out.Reset()
	m = mustRunMain(t, func(m *Main) { m.Config.DBPath, m.Stdout = db, &out })
	if strings.Contains(out.String(), "octo_") {
		t.Fatalf("second start printed a token: %q", out.String())
	}
	if code, body := get(t, m.URL()+"/locks", tok); code != 200 {
		t.Fatalf("dev token after a restart: %d %s", code, body)
	}
	m.Close()

	m = newTestMain(t)
	m.Config.Addr = "0.0.0.0:0"
	if err := m.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "static-tokens") {
		m.Close()
		t.Fatalf("non-loopback without identity: err = %v", err)
	}
}

// TestGitHubIsIdentitySource: with GitHub configured and nothing else, no
// dev token is created and a non-loopback address is allowed.
func TestGitHubIsIdentitySource(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "0.0.0.0:0"} {
		var out bytes.Buffer
		m := mustRunMain(t, func(m *Main) {
			m.Config.Addr, m.Stdout = addr, &out
			m.Config.GitHub = httpd.GitHubOAuth{ClientID: "id", ClientSecret: "secret", RedirectURL: "http://localhost:3000/auth/github/callback"}
		})
		n, _ := m.Store.CountTokens()
		m.Close()
		if n != 0 || strings.Contains(out.String(), "octo_") {
			t.Fatalf("on %s a dev token was created: %d tokens, stdout %q", addr, n, out.String())
		}
	}
	// Without any identity source a non-loopback address is refused (so the
	// check above is not vacuous).
	m := newTestMain(t)
	m.Config.Addr = "0.0.0.0:0"
	if err := m.Run(context.Background()); err == nil {
		m.Close()
		t.Fatal("no identity source on 0.0.0.0 must be refused")
	}
}

// logSink is a goroutine-safe buffer for a Main's log.
type logSink = servertest.Buffer

// acquireAs acquires lock name with token and returns the holder the
// answer shows (the login the token authenticates as).
func acquireAs(t *testing.T, m *Main, token, name string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", m.URL()+"/locks/"+name+"/acquire", strings.NewReader(`{"ttl_seconds":60}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Holder string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("acquire %s: %d %v", name, resp.StatusCode, err)
	}
	return body.Holder
}

// TestStaticTokensFollowTheConfiguration (issue 12, item 2): a static token
// moved from u1 to u2 in the configuration authenticates as u2 after the
// restart, not as u1; a user renamed in the configuration likewise; a token
// removed stops working. The log says what changed by fingerprint, never
// with the token. Before, the token kept its first user forever.
func TestStaticTokensFollowTheConfiguration(t *testing.T) {
	db := filepath.Join(t.TempDir(), "static.db")
	tok, other := "static-"+persistence.NewToken(), "static-"+persistence.NewToken()
	logs := &logSink{}
	start := func(tokens map[string]string) *Main {
		return mustRunMain(t, func(m *Main) {
			m.Config.DBPath, m.Config.StaticTokens = db, tokens
			m.Logger = slog.New(slog.NewTextHandler(logs, nil))
		})
	}
	m := start(map[string]string{tok: "u1", other: "keep"})
	if h := acquireAs(t, m, tok, "one"); h != "u1" {
		t.Fatalf("the token acts as %q, want u1", h)
	}
	m.Close()

	m = start(map[string]string{tok: "u2", other: "keep"})
	if h := acquireAs(t, m, tok, "two"); h != "u2" {
		t.Fatalf("after moving the token to u2 it acts as %q", h)
	}
	// u2 sees its own lock only, not u1's.
	if code, body := get(t, m.URL()+"/locks", tok); code != 200 || strings.Contains(body, `"one"`) || !strings.Contains(body, `"two"`) {
		t.Fatalf("u2's locks: %d %s", code, body)
	}
	fp := persistence.Fingerprint(persistence.HashToken(tok))
	if l := logs.String(); !strings.Contains(l, "static token moved") || !strings.Contains(l, "fingerprint="+fp) ||
		!strings.Contains(l, "from=u1") || !strings.Contains(l, "to=u2") {
		t.Fatalf("the log does not say the token moved:\n%s", l)
	}
	m.Close()

	m = start(map[string]string{other: "keep"})
	if code, _ := get(t, m.URL()+"/locks", tok); code != http.StatusUnauthorized {
		t.Fatalf("a token removed from the configuration: %d, want 401", code)
	}
	if code, _ := get(t, m.URL()+"/locks", other); code != 200 {
		t.Fatalf("the unchanged token: %d", code)
	}
	m.Close()
	if l := logs.String(); !strings.Contains(l, "static token removed") || strings.Contains(l, tok) || strings.Contains(l, other) {
		t.Fatalf("log (must say the token was removed, and never quote a token):\n%s", l)
	}
}

// TestDevTokenRefusedOffLoopback (issue 12, item 3): a dev token created on
// loopback does not become valid on a public address: serve refuses to
// start there, whatever identity source is configured, with a message that
// says how to revoke it and what to configure; once revoked it starts.
// Before, the second start served the database on 0.0.0.0 with the dev
// token valid.
func TestDevTokenRefusedOffLoopback(t *testing.T) {
	db := filepath.Join(t.TempDir(), "dev.db")
	var out bytes.Buffer
	m := mustRunMain(t, func(m *Main) { m.Config.DBPath, m.Stdout = db, &out })
	m.Close()
	if !strings.Contains(out.String(), "octo_") {
		t.Fatalf("no dev token was created: %q", out.String())
	}
	for name, mod := range map[string]func(m *Main){
		"no identity source": func(m *Main) {},
		"static tokens":      func(m *Main) { m.Config.StaticTokens = map[string]string{persistence.NewToken(): "alice"} },
		"admin key":          func(m *Main) { m.Config.AdminKey = persistence.NewToken() },
	} {
		m := newTestMain(t)
		m.Config.Addr, m.Config.DBPath = "0.0.0.0:0", db
		mod(m)
		err := m.Run(context.Background())
		if err == nil {
			m.Close()
			t.Fatalf("%s: serve on 0.0.0.0 started with the dev token valid", name)
		}
		for _, want := range []string{"dev token", "octostore token revoke --db " + db + " --fingerprint", "--static-tokens"} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("%s: the refusal %q does not say %q", name, err, want)
			}
		}
	}
	ctx := context.Background()
	pdb, err := persistence.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pdb.RevokeTokens(ctx, persistence.RevokeSelector{Login: "dev", All: true}); err != nil {
		t.Fatal(err)
	}
	pdb.Close()
	mustRunMain(t, func(m *Main) {
		m.Config.Addr, m.Config.DBPath = "0.0.0.0:0", db
		m.Config.StaticTokens = map[string]string{persistence.NewToken(): "alice"}
	}).Close()
}

// TestWeakSecrets (issue 12, item 10): an admin key or static token under
// 16 bytes is refused on a non-loopback address (the message names whose,
// never the secret) unless --allow-weak-tokens, and warned about loudly on
// loopback. Before, an admin key "x" and a static token "a" were accepted
// silently anywhere.
func TestWeakSecrets(t *testing.T) {
	strong := persistence.NewToken()
	for _, tc := range []struct {
		name   string
		admin  string
		static map[string]string
		want   []string
	}{
		{"admin key", "x", nil, []string{"the admin key (1 bytes)"}},
		{"static token", strong, map[string]string{"a": "alice", strong + "b": "bob"}, []string{"the static token of alice (1 bytes)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestMain(t)
			m.Config.Addr, m.Config.AdminKey, m.Config.StaticTokens = "0.0.0.0:0", tc.admin, tc.static
			err := m.Run(context.Background())
			if err == nil {
				m.Close()
				t.Fatal("a weak secret was served on 0.0.0.0")
			}
			for _, w := range append(tc.want, "--allow-weak-tokens", "at least 16 bytes") {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("refusal %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), strong) {
				t.Fatal("the refusal quotes a secret")
			}
			// --allow-weak-tokens serves them, with the warning.
			logs := &logSink{}
			mustRunMain(t, func(m *Main) {
				m.Config.Addr, m.Config.AdminKey, m.Config.StaticTokens = "0.0.0.0:0", tc.admin, tc.static
				m.Config.AllowWeakTokens = true
				m.Logger = slog.New(slog.NewTextHandler(logs, nil))
			}).Close()
			// Loopback: served, and warned about.
			mustRunMain(t, func(m *Main) {
				m.Config.AdminKey, m.Config.StaticTokens = tc.admin, tc.static
				m.Logger = slog.New(slog.NewTextHandler(logs, nil))
			}).Close()
			l := logs.String()
			if strings.Count(l, "WEAK CREDENTIALS") != 2 || !strings.Contains(l, tc.want[0]) {
				t.Fatalf("log:\n%s", l)
			}
			if tc.admin == "x" && strings.Contains(l, `"x"`) || strings.Contains(l, strong) {
				t.Fatalf("the warning quotes a secret:\n%s", l)
			}
		})
	}
}
