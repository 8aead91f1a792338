package httpd_test

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd"
	"github.com/octostore/octostore/httpd/apitest"
)

// Helpers of the reliability tests (fault_test.go, overload_test.go,
// badinput_test.go, quota_test.go, memory_test.go): a real server on
// 127.0.0.1:0 with a temporary database, and a plain net/http client.

type relEnv struct {
	t    *testing.T
	app  *httpd.TestServer
	opts httpd.TestOptions
	http *http.Client
}

var relTokens = map[string]string{"tokA": "alice", "tokB": "bob", "tokC": "carol"}

func relOptions(t *testing.T) httpd.TestOptions {
	return httpd.TestOptions{
		DBPath:       filepath.Join(t.TempDir(), "octostore.db"),
		StaticTokens: relTokens,
		AdminKey:     "adminkey",
	}
}

func relStart(t *testing.T, mod func(o *httpd.TestOptions)) *relEnv {
	t.Helper()
	o := relOptions(t)
	if mod != nil {
		mod(&o)
	}
	e := &relEnv{t: t, opts: o, http: &http.Client{Timeout: 20 * time.Second}}
	e.start()
	return e
}

func (e *relEnv) start() {
	e.t.Helper()
	e.app = httpd.MustStartTestServer(e.t, e.opts)
}

// restart closes the server and starts it again on the same database.
func (e *relEnv) restart() {
	e.t.Helper()
	if err := e.app.Close(); err != nil {
		e.t.Fatalf("close: %v", err)
	}
	e.start()
}

type relResp struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func (r relResp) str(k string) string {
	s, _ := r.json[k].(string)
	return s
}

func (r relResp) num(k string) int64 {
	f, _ := r.json[k].(float64)
	return int64(f)
}

// do sends one request; hdr is name, value pairs. A body is sent as JSON
// unless hdr sets Content-Type.
func (e *relEnv) do(method, path, token, body string, hdr ...string) relResp {
	e.t.Helper()
	resp, b := httpd.HTTPCall(e.t, apitest.Client(e.t, e.http), method, e.app.URL()+path, token, body, hdr...) // checked against docs/openapi.yaml
	r := relResp{status: resp.StatusCode, header: resp.Header, body: b}
	_ = json.Unmarshal(b, &r.json)
	return r
}

func (e *relEnv) acquire(token, name string, ttl int) relResp {
	e.t.Helper()
	return e.do("POST", "/locks/"+name+"/acquire", token, `{"ttl_seconds":`+itoa(ttl)+`}`)
}

func (e *relEnv) release(token, name, lease string) relResp {
	e.t.Helper()
	return e.do("POST", "/locks/"+name+"/release", token, `{"lease_id":"`+lease+`"}`)
}

func (e *relEnv) status(token, name string) relResp {
	e.t.Helper()
	return e.do("GET", "/locks/"+name, token, "")
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// mustJSONError checks that r is status with a JSON {"error": "..."} body.
func mustJSONError(t *testing.T, what string, r relResp, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.status, status, r.body)
	}
	if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") || r.str("error") == "" {
		t.Fatalf("%s: want a JSON {error} body, got %q (%s)", what, r.body, r.header.Get("Content-Type"))
	}
	if status == http.StatusServiceUnavailable && r.header.Get("Retry-After") == "" {
		t.Fatalf("%s: 503 without Retry-After", what)
	}
}
