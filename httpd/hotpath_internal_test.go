package httpd

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

// The hot paths inside the server, without the network: the whole handler
// chain (metrics, in-flight limit, router, auth, handler, actor round trip
// for a check) on a reused RequestCtx. allocs/op is what the server
// allocates per request.
//
//	go test -run XXX -bench Handler -benchmem ./httpd/
func benchHandler(b *testing.B, method, uri, body string, setup func(a *TestServer)) {
	a := MustStartTestServer(b, TestOptions{StaticTokens: map[string]string{"tokA": "alice"}})
	if setup != nil {
		setup(a)
	}
	h := a.Handler()
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	req.Header.Set("Authorization", "Bearer tokA")
	if body != "" {
		req.Header.SetContentType("application/json")
		req.SetBodyString(body)
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, nil)
	h(&ctx)
	if ctx.Response.StatusCode() != 200 {
		b.Fatalf("%s %s: %d %s", method, uri, ctx.Response.StatusCode(), ctx.Response.Body())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ctx.Response.Reset()
		h(&ctx)
	}
}

func BenchmarkHandlerLimitCheck(b *testing.B) {
	benchHandler(b, "POST", "/limits/api/check", `{"max_requests":10000,"window_seconds":1}`, nil)
}

func BenchmarkHandlerFlagGet(b *testing.B) {
	benchHandler(b, "GET", "/flags/beta?subject=user-42", "", func(a *TestServer) {
		var req fasthttp.Request
		req.Header.SetMethod("PUT")
		req.SetRequestURI("/flags/beta")
		req.Header.Set("Authorization", "Bearer tokA")
		req.Header.SetContentType("application/json")
		req.SetBodyString(`{"enabled":true,"percentage":30}`)
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, nil)
		a.Handler()(&ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("set flag: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	})
}
