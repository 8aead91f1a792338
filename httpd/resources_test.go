package httpd_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd"
	"github.com/octostore/octostore/httpd/apitest"
)

// Helpers of the limits/flags/config tests (prefix rs).

var rsT0 = time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)

type rsEnv struct {
	app   *httpd.TestServer
	url   string
	opts  httpd.TestOptions
	clock *httpd.TestClock
}

// Tokens of the test users.
const (
	rsAlice = "tokA"
	rsBob   = "tokB"
	rsAdmin = "adminkey"
)

func rsOptions(t *testing.T) httpd.TestOptions {
	t.Helper()
	return httpd.TestOptions{
		DBPath:       filepath.Join(t.TempDir(), "db"),
		StaticTokens: map[string]string{rsAlice: "alice", rsBob: "bob"},
		AdminKey:     rsAdmin,
	}
}

// rsStart starts a server on a fresh database with a fake clock at rsT0.
func rsStart(t *testing.T, mod func(o *httpd.TestOptions)) *rsEnv {
	t.Helper()
	e := &rsEnv{opts: rsOptions(t), clock: httpd.NewTestClock(rsT0)}
	e.opts.Now = e.clock.Now
	if mod != nil {
		mod(&e.opts)
	}
	e.start(t)
	return e
}

func (e *rsEnv) start(t *testing.T) {
	t.Helper()
	e.app = httpd.MustStartTestServer(t, e.opts)
	e.url = e.app.URL()
}

// restart closes the server gracefully and starts a new one on the same
// database.
func (e *rsEnv) restart(t *testing.T) {
	t.Helper()
	if err := e.app.Close(); err != nil {
		t.Fatal(err)
	}
	e.start(t)
}

type rsReply struct {
	status int
	header http.Header
	body   []byte
}

func (r rsReply) String() string { return string(r.body) }

// obj decodes the body as a JSON object (numbers as json.Number).
func (r rsReply) obj(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("status %d, body %q: %v", r.status, r.body, err)
	}
	return m
}

// list decodes {"<key>":[...]}.
func (r rsReply) list(t *testing.T, key string) []map[string]any {
	t.Helper()
	m := r.obj(t)
	raw, ok := m[key].([]any)
	if !ok {
		t.Fatalf("no %q array in %s", key, r.body)
	}
	out := make([]map[string]any, len(raw))
	for i, v := range raw {
		out[i] = v.(map[string]any)
	}
	return out
}

// errMsg is the "error" of a JSON error body.
func (r rsReply) errMsg(t *testing.T) string {
	t.Helper()
	s, _ := r.obj(t)["error"].(string)
	if s == "" {
		t.Fatalf("no error message in %s", r.body)
	}
	return s
}

var rsHTTP = &http.Client{Timeout: 30 * time.Second}

// do sends a request; hdr are header name/value pairs. A body is sent as
// application/json.
func (e *rsEnv) do(t *testing.T, method, path, token, body string, hdr ...string) rsReply {
	t.Helper()
	resp, b := httpd.HTTPCall(t, apitest.Client(t, rsHTTP), method, e.url+path, token, body, hdr...) // checked against docs/openapi.yaml
	return rsReply{status: resp.StatusCode, header: resp.Header, body: b}
}

// want fails unless the reply has the status (and, for an error, a message
// containing every fragment).
func (r rsReply) want(t *testing.T, status int, fragments ...string) rsReply {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	for _, f := range fragments {
		if !strings.Contains(r.errMsg(t), f) {
			t.Fatalf("error %q does not mention %q", r.errMsg(t), f)
		}
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("content type %q", ct)
	}
	return r
}

func num(t *testing.T, v any) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v (%T) is not a number", v, v)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func rsTime(t *testing.T, v any) time.Time {
	t.Helper()
	s, _ := v.(string)
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time %v: %v", v, err)
	}
	return tm
}
