package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/octostore/octostore/httpd/apitest"
)

// exchange is one answer the recording proxy passed on.
type exchange struct {
	method, path string
	status       int
	body         []byte
	stream       *streamCopy // an event stream: what passed so far
}

// streamCopy keeps the bytes of an event stream as the proxy passes them
// on (it never ends by itself: it cannot be read whole first).
type streamCopy struct {
	mu  sync.Mutex // guards b: the proxy's goroutine writes, the test reads
	b   []byte
	src io.ReadCloser
}

func (s *streamCopy) Read(p []byte) (int, error) {
	n, err := s.src.Read(p)
	s.mu.Lock()
	s.b = append(s.b, p[:n]...)
	s.mu.Unlock()
	return n, err
}

func (s *streamCopy) Close() error { return s.src.Close() }

// dataLines are the data lines of the events passed so far.
func (s *streamCopy) dataLines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range strings.Split(string(s.b), "\n") {
		if d, ok := strings.CutPrefix(l, "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

// recorder is an http.RoundTripper that keeps every answer's body.
type recorder struct {
	mu   sync.Mutex // guards got
	got  []exchange
	base http.RoundTripper
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		s := &streamCopy{src: resp.Body}
		resp.Body = s
		r.mu.Lock()
		r.got = append(r.got, exchange{method: req.Method, path: req.URL.RequestURI(), status: resp.StatusCode, stream: s})
		r.mu.Unlock()
		return resp, nil
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	r.mu.Lock()
	r.got = append(r.got, exchange{method: req.Method, path: req.URL.RequestURI(), status: resp.StatusCode, body: b})
	r.mu.Unlock()
	return resp, nil
}

// take returns the answers recorded since the last take.
func (r *recorder) take() []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

// recordingProxy starts a reverse proxy to target that checks every
// exchange against docs/openapi.yaml (apitest) and records every answer.
func recordingProxy(t *testing.T, target string) (string, *recorder) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{base: http.DefaultTransport}
	srv := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(u); r.Out.Host = r.In.Host },
		Transport: apitest.Transport(t, rec),
	})
	t.Cleanup(srv.Close)
	return srv.URL, rec
}

// jsonCase is one client command run with --json.
type jsonCase struct {
	token string
	args  []string
	code  int
}

// Every client command's --json prints exactly the body of the server's
// last answer (and a newline): fixed-millisecond timestamps, nulls, empty
// fields and the list objects as the API sends them; on an error status
// the error object, with the command's exit code.
func TestJSONIsTheServersAnswer(t *testing.T) {
	server, db := startServerDB(t)
	proxy, rec := recordingProxy(t, server)
	dir := t.TempDir()
	value := filepath.Join(dir, "v.json")
	if err := os.WriteFile(value, []byte(`{"pool": 5, "hosts": [], "note": null}`), 0o600); err != nil {
		t.Fatal(err)
	}
	// The lease id of a lock alice holds, for renew and release.
	lease := func(name string) string {
		r := octo(t, proxy, tokA, "lock", "acquire", name, "--json").mustCode(t, exitOK, "acquire for a lease")
		var l struct {
			LeaseID string `json:"lease_id"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &l); err != nil {
			t.Fatal(err)
		}
		rec.take()
		return l.LeaseID
	}
	// A session of alice's, for keepalive, close and acquire --session.
	session := func() string {
		r := octo(t, proxy, tokA, "session", "create", "--ttl", "1m", "--json").mustCode(t, exitOK, "session create")
		var s struct {
			ID string `json:"session_id"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
			t.Fatal(err)
		}
		rec.take()
		return s.ID
	}
	covered := map[string]bool{}
	run := func(tc jsonCase) {
		t.Helper()
		args := append(append([]string{}, tc.args...), "--json")
		r := octo(t, proxy, tc.token, args...).mustCode(t, tc.code, strings.Join(args, " "))
		got := rec.take()
		if len(got) == 0 {
			t.Fatalf("%v: no answer passed the proxy", args)
		}
		last := got[len(got)-1]
		if want := string(last.body) + "\n"; r.stdout != want {
			t.Fatalf("%v: stdout\n%q\nwant the body of %s %s (%d) as it came\n%q", args, r.stdout, last.method, last.path, last.status, want)
		}
		covered[tc.args[0]+" "+tc.args[1]] = true
	}

	sid := session()
	for _, tc := range []jsonCase{
		{tokA, []string{"lock", "acquire", "j1", "--ttl", "1m"}, exitOK},
		{tokB, []string{"lock", "fence", "j1", "1"}, exitOK},
		{tokB, []string{"lock", "fence", "j1", "7"}, exitHeld},
		{tokB, []string{"lock", "acquire", "j1"}, exitHeld},                 // 409 with the holder
		{tokB, []string{"lock", "acquire", "j1", "--wait", "1s"}, exitHeld}, // the last of several 409s
		{tokA, []string{"lock", "status", "j1"}, exitOK},
		{tokB, []string{"lock", "status", "j1"}, exitOK}, // without the lease id
		{tokA, []string{"lock", "status", "free"}, exitOK},
		{tokA, []string{"lock", "list"}, exitOK},
		{adminKey, []string{"lock", "list"}, exitOK},
		{tokA, []string{"lock", "renew", "j-renew", lease("j-renew"), "--ttl", "2m"}, exitOK},
		{tokA, []string{"lock", "renew", "j1", "00000000-0000-4000-8000-000000000000"}, exitNotFound},
		{tokA, []string{"lock", "release", "j-release", lease("j-release")}, exitOK},
		{tokA, []string{"lock", "release", "j1"}, exitUsage}, // a user without a lease id: 422
		{adminKey, []string{"lock", "release", "j1"}, exitOK},
		{tokA, []string{"lock", "acquire", "j2", "--ttl", "2h"}, exitUsage}, // 422
		{"wrong", []string{"lock", "list"}, exitAuth},

		{tokA, []string{"semaphore", "status", "never-taken"}, exitOK},
		{tokA, []string{"semaphore", "fence", "never-taken", "1"}, exitHeld},

		{tokA, []string{"semaphore", "status", "a.b"}, exitUsage}, // 422
		{tokA, []string{"semaphore", "list"}, exitOK},
		{adminKey, []string{"semaphore", "list"}, exitOK},
		{"wrong", []string{"semaphore", "list"}, exitAuth},

		{tokA, []string{"session", "create", "--ttl", "30s", "--lock-delay", "5s"}, exitOK},
		{tokA, []string{"session", "create", "--ttl", "2s"}, exitUsage}, // 422
		{tokA, []string{"session", "keepalive", sid}, exitOK},
		{tokB, []string{"session", "keepalive", sid}, exitNotFound},
		{tokA, []string{"lock", "acquire", "js", "--session", sid}, exitOK},
		{tokA, []string{"session", "list"}, exitOK},
		{adminKey, []string{"session", "list"}, exitOK},
		{tokA, []string{"session", "close", sid}, exitOK},
		{tokA, []string{"session", "close", sid}, exitNotFound},

		{tokA, []string{"limit", "check", "j", "--max", "1", "--window", "1h"}, exitOK},
		{tokA, []string{"limit", "check", "j", "--max", "1", "--window", "1h"}, exitHeld}, // denied: 200, allowed false
		{tokA, []string{"limit", "status", "j"}, exitOK},
		{tokA, []string{"limit", "check", "jb", "--max", "3", "--window", "1m", "--cost", "2", "--algorithm", "token_bucket"}, exitOK},
		{tokA, []string{"limit", "list"}, exitOK},
		{adminKey, []string{"limit", "list"}, exitOK}, // every user's, with owner
		{adminKey, []string{"limit", "status", "j", "--owner", "alice"}, exitOK},
		{adminKey, []string{"limit", "status", "j"}, exitUsage}, // the admin key needs --owner: 422
		{tokA, []string{"limit", "reset", "j"}, exitOK},
		{tokA, []string{"limit", "reset", "never"}, exitNotFound},

		{tokA, []string{"flag", "set", "jf", "on"}, exitOK}, // no percentage
		{tokA, []string{"flag", "set", "jr", "on", "--percentage", "0"}, exitOK},
		{adminKey, []string{"flag", "set", "jb", "off", "--owner", "bob"}, exitOK},
		{tokA, []string{"flag", "get", "jf", "--subject", "u1"}, exitOK},
		{tokA, []string{"flag", "get", "unknown"}, exitOK}, // FLAG_NOT_FOUND
		{tokA, []string{"flag", "set", "jv", "on", "--variants", `[{"name":"a","value":{"k":[1,2]},"weight":100}]`,
			"--rules", `[{"attribute":"plan","operator":"eq","values":["pro"],"variant":"a"}]`}, exitOK},
		{tokA, []string{"flag", "get", "jv", "--attr", "plan=pro", "--subject", "u1"}, exitOK}, // TARGETING_MATCH with a value
		{tokA, []string{"flag", "set", "jv", "on", "--variants", `[{"name":"a","value":1,"weight":99}]`}, exitUsage},
		{tokA, []string{"flag", "list"}, exitOK},
		{adminKey, []string{"flag", "list"}, exitOK},
		{adminKey, []string{"flag", "list", "--owner", "bob"}, exitOK},
		{tokA, []string{"flag", "delete", "jr"}, exitOK},
		{tokA, []string{"flag", "delete", "jr"}, exitNotFound},
		{tokB, []string{"flag", "get", "jf", "--owner", "alice"}, exitAuth}, // 403

		{tokA, []string{"config", "set", "j.k", "@" + value, "--description", ""}, exitOK},
		{tokA, []string{"config", "set", "j.k", `"two"`, "--if-version", "0"}, exitHeld}, // 409 with current_version
		{tokA, []string{"config", "set", "j.k", `"two"`, "--description", "second", "--if-version", "1"}, exitOK},
		{tokA, []string{"config", "get", "j.k"}, exitOK},
		{tokA, []string{"config", "get", "j.k", "--version", "1"}, exitOK},
		{adminKey, []string{"config", "get", "j.k", "--owner", "alice"}, exitOK},
		{tokA, []string{"config", "history", "j.k"}, exitOK},
		{tokA, []string{"config", "rollback", "j.k", "1", "--if-version", "2"}, exitOK},
		{tokA, []string{"config", "rollback", "j.k", "1", "--if-version", "2"}, exitHeld}, // 409: now at 3
		{tokA, []string{"config", "rollback", "j.k", "9"}, exitNotFound},
		{tokA, []string{"config", "list"}, exitOK},
		{adminKey, []string{"config", "list"}, exitOK},
		{tokA, []string{"config", "delete", "j.k"}, exitOK},
		{tokA, []string{"config", "get", "j.k"}, exitNotFound},

		// Token administration through the server (--url: here from
		// $OCTOSTORE_URL; the admin key as the token).
		{adminKey, []string{"token", "create", "--user", "jt"}, exitOK},
		{adminKey, []string{"token", "list"}, exitOK},
		{adminKey, []string{"token", "list", "--user", "jt"}, exitOK},
		{tokA, []string{"token", "list"}, exitAuth}, // 403

		{tokA, []string{"cluster", "status"}, exitNotFound}, // a single node: 404 (a cluster's: TestClusterCommands)
	} {
		run(tc)
	}
	// config watch --json prints every event's data line as the server
	// sent it: the state, then the change made once it is subscribed.
	watchJSON(t, proxy, rec)
	covered["config watch"] = true

	// token rotate last: it changes carol's token.
	carol := strings.TrimSpace(octo(t, "", "", "token", "create", "--db", db, "--user", "carol").mustCode(t, exitOK, "token create").stdout)
	run(jsonCase{carol, []string{"token", "rotate"}, exitOK})
	run(jsonCase{carol, []string{"token", "rotate"}, exitAuth}) // the old token is gone: 401

	// Every client command with --json is covered above (the load tester's
	// --json is its report, TestLoadtestJSONOutAndCleanup).
	for _, n := range commandTree() {
		if hasFlag(n.cmd, "json") && hasFlag(n.cmd, "url") && n.path[0] != "loadtest" && !covered[strings.Join(n.path, " ")] {
			t.Errorf("%s has --json but no case here", strings.Join(n.path, " "))
		}
	}
}

// watchJSON runs `config watch --json --changes 1` through the recording
// proxy, writes the key once the state arrived, and holds stdout to the
// data lines the proxy passed on.
func watchJSON(t *testing.T, proxy string, rec *recorder) {
	t.Helper()
	octo(t, proxy, tokA, "config", "set", "j.w", `{"v": 1}`).mustCode(t, exitOK, "config set before the watch")
	rec.take()
	w := startWatch(t, proxy, tokA, "config", "watch", "j.w", "--json", "--changes", "1")
	first := w.line(t)
	octo(t, proxy, tokA, "config", "set", "j.w", `[2, "two"]`).mustCode(t, exitOK, "config set during the watch")
	second := w.line(t)
	w.mustExit(t, exitOK)
	var stream *streamCopy
	for _, x := range rec.take() {
		if x.stream != nil {
			stream = x.stream
		}
	}
	if stream == nil {
		t.Fatal("config watch: no event stream passed the proxy")
	}
	data := stream.dataLines()
	if len(data) < 2 || first != data[0] || second != data[1] {
		t.Fatalf("config watch --json printed\n%q\n%q\nthe stream's data lines are %q", first, second, data)
	}
	if !strings.Contains(first, `"type":"config.state"`) || !strings.Contains(first, `"value":{"v":1}`) ||
		!strings.Contains(second, `"type":"config.written"`) || !strings.Contains(second, `"value":[2,"two"]`) {
		t.Fatalf("config watch --json: %s / %s", first, second)
	}
}
