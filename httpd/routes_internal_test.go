package httpd

import (
	"strings"
	"testing"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
)

// The server's matcher (Server.dispatch) must send a request where the
// router would: for every path it takes, the router picks the same route
// with the same parameter. What it declines, the router answers as before.
func checkMatcherAgrees(t *testing.T, s *Server, method, path string) (matched bool) {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(path)
	raw := ctx.Request.URI().PathOriginal() // what dispatch and the router read
	var fast *routeInfo
	for _, ri := range s.fast[string(ctx.Method())] {
		if ri.matches(raw) {
			fast = ri
			break
		}
	}
	if fast == nil {
		return false
	}
	// A router of the same templates whose handlers say which one ran.
	r := router.New()
	r.RedirectTrailingSlash, r.RedirectFixedPath = false, false
	got := ""
	for m, ris := range s.fast {
		for _, ri := range ris {
			r.Handle(m, ri.label, func(*fasthttp.RequestCtx) { got = ri.label })
		}
	}
	r.Handler(&ctx)
	if got != fast.label {
		t.Fatalf("%s %q: matcher %q, router %q", method, path, fast.label, got)
	}
	var want string
	if fast.param >= 0 {
		for _, v := range []string{"name", "key"} {
			if p, ok := ctx.UserValue(v).(string); ok {
				want = p
			}
		}
	}
	ctx.SetUserValue(matchedRouteKey, fast)
	if p := pathParam(&ctx); p != want {
		t.Fatalf("%s %q: parameter %q, the router's %q", method, path, p, want)
	}
	return true
}

func TestMatcherAgreesWithRouter(t *testing.T) {
	a := MustStartTestServer(t, TestOptions{})
	s := a.server
	for _, c := range []struct {
		method, path string
		fast         bool
	}{
		{"POST", "/locks/a/acquire", true},
		{"POST", "/locks/a-b_c.d/release", true},
		{"GET", "/locks/a", true},
		{"GET", "/locks", true},
		{"GET", "/locks/a/watch", true},
		{"GET", "/semaphores", true},
		{"GET", "/semaphores/a", true},
		{"GET", "/semaphores/", false},
		{"POST", "/limits/x/check", true},
		{"GET", "/flags/f", true},
		{"GET", "/config/app.timeout", true},
		{"GET", "/config/app.timeout/history", true},
		{"GET", "/config/a%2Fb", true},
		{"POST", "/auth/token/rotate", true},
		{"GET", "/health", true},
		{"POST", "/limits/check", true},
		{"GET", "/limits/check", true},
		{"POST", "/ofrep/v1/evaluate/flags/f", true},
		{"POST", "/ofrep/v1/evaluate/flags", true},
		{"GET", "/config/k/watch", true},
		{"POST", "/config/k/rollback", true},
		{"POST", "/locks//acquire", false},
		{"GET", "/locks/", false},
		{"GET", "/locks/a/", false},
		{"POST", "/locks/a/acquire/", false},
		{"POST", "/locks/a/b/acquire", false},
		{"GET", "//locks/a", false},
		{"GET", "/LOCKS/a", false},
		{"PATCH", "/locks/a", false},
		{"GET", "locks/a", false},
		{"GET", "", false},
	} {
		if got := checkMatcherAgrees(t, s, c.method, c.path); got != c.fast {
			t.Errorf("%s %q: matched %v, want %v", c.method, c.path, got, c.fast)
		}
	}
}

// FuzzMatcher: any method and path.
//
//	go test ./httpd -run '^$' -fuzz '^FuzzMatcher$' -fuzztime 30s
func FuzzMatcher(f *testing.F) {
	for _, p := range []string{"/locks/a/acquire", "/config/k/history", "/locks//x", "/flags/a/b", "/", "/a%2F/b"} {
		f.Add("GET", p)
		f.Add("POST", p)
	}
	a := MustStartTestServer(f, TestOptions{})
	s := a.server
	f.Fuzz(func(t *testing.T, method, path string) {
		if strings.ContainsAny(path, "?#") || !strings.HasPrefix(path, "/") {
			return // the router sees the path only; fasthttp parses the rest
		}
		checkMatcherAgrees(t, s, method, path)
	})
}
