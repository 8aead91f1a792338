package apitest_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd/apitest"
	"github.com/octostore/octostore/tools/keepreading"
	"github.com/valyala/fasthttp"
)

// TestDocumentIsSupersetOfSeed: docs/openapi.yaml loads and validates, and
// keeps every operation, parameter, response status, schema name and
// security scheme of the 0.2.2 contract the project started from
// (testdata/openapi-0.2.2.yaml, a copy of the seed).
func TestDocumentIsSupersetOfSeed(t *testing.T) {
	if _, err := apitest.Default(); err != nil {
		t.Fatal(err)
	}
	seedBytes, err := os.ReadFile("testdata/openapi-0.2.2.yaml")
	if err != nil {
		t.Fatal(err)
	}
	seed, err := apitest.Parse(seedBytes)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := apitest.Parse(docsOpenAPI(t))
	if err != nil {
		t.Fatal(err)
	}
	ops := 0
	for path, item := range seed.Paths.Map() {
		have := doc.Paths.Value(path)
		if have == nil {
			t.Errorf("seed path %s is missing", path)
			continue
		}
		for method, op := range item.Operations() {
			got := have.GetOperation(method)
			if got == nil {
				t.Errorf("seed operation %s %s is missing", method, path)
				continue
			}
			ops++
			for code := range op.Responses.Map() {
				if got.Responses.Value(code) == nil {
					t.Errorf("%s %s: seed response %s is missing", method, path, code)
				}
			}
			for _, p := range op.Parameters {
				if got.Parameters.GetByInAndName(p.Value.In, p.Value.Name) == nil {
					t.Errorf("%s %s: seed parameter %s in %s is missing", method, path, p.Value.Name, p.Value.In)
				}
			}
			if (op.RequestBody == nil) != (got.RequestBody == nil) {
				t.Errorf("%s %s: request body declared %v in the seed, %v here", method, path, op.RequestBody != nil, got.RequestBody != nil)
			}
		}
	}
	for name := range seed.Components.Schemas {
		if doc.Components.Schemas[name] == nil {
			t.Errorf("seed schema %s is missing", name)
		}
	}
	for name := range seed.Components.SecuritySchemes {
		if doc.Components.SecuritySchemes[name] == nil {
			t.Errorf("seed security scheme %s is missing", name)
		}
	}
	if ops < 20 {
		t.Fatalf("only %d seed operations compared", ops)
	}
}

// docsOpenAPI is the document as the repository has it (not the embedded
// copy: they are the same file, this checks the path too).
func docsOpenAPI(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// recorder is an apitest.T that keeps what it is told.
type recorder struct {
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}
func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...) }

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.errs
	r.errs = nil
	return e
}

// planted is a fake server whose answers are right or wrong on purpose.
func planted() http.Handler {
	const lock = `{"status":"held","name":"x","lease_id":"550e8400-e29b-41d4-a716-446655440000","fencing_token":7,"expires_at":"2030-01-01T00:00:00.000Z","holder":"alice"}`
	answer := func(status int, ct, body string, hdr ...string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i+1 < len(hdr); i += 2 {
				w.Header().Set(hdr[i], hdr[i+1])
			}
			w.Header().Set("Content-Type", ct)
			w.WriteHeader(status)
			w.Write([]byte(body))
		}
	}
	m := http.NewServeMux()
	m.Handle("GET /locks/good", answer(200, "application/json", lock))
	m.Handle("GET /locks/teapot", answer(418, "application/json", `{"error":"short and stout"}`))
	m.Handle("GET /locks/stringtoken", answer(200, "application/json", strings.Replace(lock, `"fencing_token":7`, `"fencing_token":"7"`, 1)))
	m.Handle("GET /flags/good", answer(200, "application/json", `{"name":"good","enabled":true,"reason":"STATIC"}`))
	m.Handle("GET /flags/noreason", answer(200, "application/json", `{"name":"noreason","enabled":true}`))
	m.Handle("GET /flags/extra", answer(200, "application/json", `{"name":"extra","enabled":true,"reason":"STATIC","debug":1}`))
	m.Handle("GET /flags/html", answer(200, "text/html", `<p>enabled</p>`))
	m.Handle("PUT /flags/lenient", answer(200, "application/json", `{"name":"lenient","enabled":true,"created_at":"2030-01-01T00:00:00.000Z","updated_at":"2030-01-01T00:00:00.000Z"}`))
	m.Handle("PUT /flags/strict", answer(422, "application/json", `{"error":"enabled must be a boolean"}`))
	m.Handle("DELETE /locks/options", answer(405, "application/json", `{"error":"method not allowed"}`, "Allow", "GET, OPTIONS"))
	m.Handle("DELETE /locks/right", answer(405, "application/json", `{"error":"method not allowed"}`, "Allow", "GET"))
	m.Handle("GET /nowhere", answer(200, "application/json", `{}`))
	m.Handle("GET /gone", answer(404, "application/json", `{"error":"no such route: /gone"}`))

	m.Handle("GET /events", answer(200, "text/event-stream", ": subscribed\n\n", "Cache-Control", "no-cache"))
	m.Handle("GET /locks/x/watch", answer(200, "application/json", `{}`, "Cache-Control", "no-cache"))
	m.Handle("GET /config/k", answer(200, "application/json", `{"key":"k","value":1,"description":"","version":1,"created_at":"2030-01-01T00:00:00.000Z","updated_at":"2030-01-01T00:00:00.000Z"}`, "ETag", `"1"`))
	// Paths ServeMux would clean or redirect, answered as they are.
	raw := map[string]http.Handler{
		"GET /locks/": answer(404, "application/json", `{"error":"no such route: /locks/"}`),
		"POST /limits//check": answer(200, "application/json", `{"allowed":true,"remaining":0,"reset_at":"2030-01-01T00:00:00.000Z","algorithm":"sliding_window"}`,
			"RateLimit-Limit", "1", "RateLimit-Remaining", "0", "RateLimit-Reset", "1", "RateLimit-Policy", "1;w=1"),
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := raw[r.Method+" "+r.URL.EscapedPath()]; h != nil {
			h.ServeHTTP(w, r)
			return
		}
		m.ServeHTTP(w, r)
	})
}

// TestCheckerCatchesMismatches plants each kind of mismatch in a fake
// server and shows that both checking clients (net/http and fasthttp) report
// it with the method, path, status and reason, and that right answers pass.
func TestCheckerCatchesMismatches(t *testing.T) {
	srv := httptest.NewServer(planted())
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	cases := []struct {
		name, method, path, body string
		hdr                      []string
		want                     []string // fragments of the one report; none: must pass
	}{
		{"right answer", "GET", "/locks/good", "", nil, nil},
		{"undeclared status", "GET", "/locks/teapot", "", nil, []string{"GET /locks/teapot → 418", "status is not supported"}},
		{"wrong type", "GET", "/locks/stringtoken", "", nil, []string{"GET /locks/stringtoken → 200", "doesn't match"}},
		{"right evaluation", "GET", "/flags/good", "", nil, nil},
		{"missing required field", "GET", "/flags/noreason", "", nil, []string{"GET /flags/noreason → 200", `property "reason" is missing`}},
		{"undeclared field", "GET", "/flags/extra", "", nil, []string{"GET /flags/extra → 200", `property "debug" is unsupported`}},
		{"undeclared content type", "GET", "/flags/html", "", nil, []string{"GET /flags/html → 200", "text/html"}},
		{"invalid request accepted", "PUT", "/flags/lenient", `{"enabled":"yes"}`, nil, []string{"PUT /flags/lenient → 200", "accepted a request the contract refuses", "enabled"}},
		{"invalid request refused", "PUT", "/flags/strict", `{"enabled":"yes"}`, nil, nil},
		{"no credentials accepted", "GET", "/config/k", "", []string{"Authorization", ""}, []string{"GET /config/k → 200", "accepted a request the contract refuses", "authorization"}},
		{"Allow lists OPTIONS", "DELETE", "/locks/options", "", nil, []string{"DELETE /locks/options → 405", `Allow is "GET, OPTIONS"`}},
		{"Allow right", "DELETE", "/locks/right", "", nil, nil},
		{"unknown path answered", "GET", "/nowhere", "", nil, []string{"GET /nowhere → 200", "no path /nowhere"}},
		{"unknown path refused", "GET", "/gone", "", nil, nil},
		{"empty last segment refused", "GET", "/locks/", "", nil, nil},
		{"empty name accepted", "POST", "/limits//check", `{"max_requests":1,"window_seconds":1}`, nil, []string{"POST /limits//check → 200", "accepted a request the contract refuses", "name"}},
		{"event stream without the optional header", "GET", "/events", "", nil, nil},
		{"event stream as JSON", "GET", "/locks/x/watch", "", nil, []string{"GET /locks/x/watch → 200", "application/json"}},
	}

	rec := &recorder{}
	hc := apitest.Client(rec, nil)
	fc := &fasthttp.HostClient{Addr: u.Host, Transport: apitest.FastTransport(rec, nil), DisablePathNormalizing: true,
		DialTimeout: keepreading.DialTimeout(fasthttp.DialTimeout)} // an early answer is read, not lost to EPIPE
	senders := map[string]func(method, path, body string, hdr []string) (int, error){
		"net/http": func(method, path, body string, hdr []string) (int, error) {
			req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer tok")
			if body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			for i := 0; i+1 < len(hdr); i += 2 {
				req.Header.Del(hdr[i])
			}
			resp, err := hc.Do(req)
			if err != nil {
				return 0, err
			}
			resp.Body.Close()
			return resp.StatusCode, nil
		},
		"fasthttp": func(method, path, body string, hdr []string) (int, error) {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(srv.URL + path)
			req.Header.SetMethod(method)
			req.Header.Set("Authorization", "Bearer tok")
			if body != "" {
				req.Header.SetContentType("application/json")
				req.SetBodyString(body)
			}
			for i := 0; i+1 < len(hdr); i += 2 {
				req.Header.Del(hdr[i])
			}
			err := fc.DoTimeout(req, resp, 10*time.Second)
			return resp.StatusCode(), err
		},
	}
	for sender, send := range senders {
		for _, tc := range cases {
			t.Run(sender+"/"+tc.name, func(t *testing.T) {
				if _, err := send(tc.method, tc.path, tc.body, tc.hdr); err != nil {
					t.Fatal(err)
				}
				errs := rec.take()
				if tc.want == nil {
					if len(errs) != 0 {
						t.Fatalf("a right exchange was reported: %q", errs)
					}
					return
				}
				if len(errs) != 1 {
					t.Fatalf("want one report, got %q", errs)
				}
				for _, f := range tc.want {
					if !strings.Contains(errs[0], f) {
						t.Errorf("report %q does not mention %q", errs[0], f)
					}
				}
			})
		}
	}
}

// TestProxyChecksWhatPassesThrough: a client that knows nothing of apitest
// (a subprocess, in real use) talks to the proxy; mismatches are reported,
// right answers and event streams pass through untouched.
func TestProxyChecksWhatPassesThrough(t *testing.T) {
	srv := httptest.NewServer(planted())
	defer srv.Close()
	rec := &recorder{}
	proxy := apitest.Proxy(rec, srv.URL)
	defer proxy.Close()
	get := func(path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", proxy.URL+path, nil)
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		buf := make([]byte, 4096)
		n, _ := io.ReadAtLeast(resp.Body, buf, 1)
		return resp.StatusCode, string(buf[:n])
	}
	if st, body := get("/locks/good"); st != 200 || !strings.Contains(body, `"holder":"alice"`) {
		t.Fatalf("through the proxy: %d %q", st, body)
	}
	if st, body := get("/events"); st != 200 || body != ": subscribed\n\n" {
		t.Fatalf("stream through the proxy: %d %q", st, body)
	}
	if errs := rec.take(); len(errs) != 0 {
		t.Fatalf("right exchanges reported: %q", errs)
	}
	if st, _ := get("/locks/teapot"); st != 418 {
		t.Fatalf("teapot: %d", st)
	}
	if errs := rec.take(); len(errs) != 1 || !strings.Contains(errs[0], "GET /locks/teapot → 418") {
		t.Fatalf("want the 418 reported, got %q", errs)
	}
}
