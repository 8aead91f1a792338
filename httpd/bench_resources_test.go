package httpd_test

import (
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd"
	"github.com/valyala/fasthttp"
)

// Benchmarks of the hot paths through the full HTTP stack on loopback
// (fasthttp client, keep-alive, 64 concurrent requests), next to the same
// client against a no-op fasthttp handler: the ceiling of this machine.
//
//	go test -run XXX -bench 'HTTP' -benchtime 5s ./httpd/
//
// Compare the req/s metrics; docs/benchmarks.md records the figures.

const benchConcurrency = 64

// benchLoad runs b.N requests from benchConcurrency goroutines. build
// prepares request i of a goroutine (g is the goroutine's number).
func benchLoad(b *testing.B, addr string, build func(req *fasthttp.Request, g int)) {
	b.Helper()
	hc := &fasthttp.HostClient{Addr: addr, MaxConns: benchConcurrency, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	var gid atomic.Int64
	var failed atomic.Int64
	b.SetParallelism((benchConcurrency + 1) / 2) // GOMAXPROCS is 2 here: 64 goroutines
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		g := int(gid.Add(1))
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		build(req, g)
		for pb.Next() {
			if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				failed.Add(1)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d requests failed", n, b.N)
	}
}

func BenchmarkHTTPNoop(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"allowed":true,"remaining":9,"reset_at":"2026-01-01T00:00:00.000Z"}`)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBody(body)
	}, NoDefaultDate: true}
	go srv.Serve(ln)
	defer srv.Shutdown()
	benchLoad(b, ln.Addr().String(), func(req *fasthttp.Request, g int) {
		req.SetRequestURI("http://" + ln.Addr().String() + "/limits/x/check")
		req.Header.SetMethod("POST")
		req.Header.Set("Authorization", "Bearer "+rsAlice)
		req.Header.SetContentType("application/json")
		req.SetBodyString(`{"max_requests":100,"window_seconds":60}`)
	})
}

func benchApp(b *testing.B) *httpd.TestServer {
	b.Helper()
	return httpd.MustStartTestServer(b, httpd.TestOptions{StaticTokens: map[string]string{rsAlice: "alice"}})
}

// BenchmarkHTTPLimitCheck: POST /limits/{name}/check. "spread": every
// client its own limit; "hot": all clients on one limit (one actor).
func BenchmarkHTTPLimitCheck(b *testing.B) {
	for _, mode := range []string{"spread", "hot"} {
		b.Run(mode, func(b *testing.B) {
			a := benchApp(b)
			benchLoad(b, a.Addr(), func(req *fasthttp.Request, g int) {
				name := "hot"
				if mode == "spread" {
					name = fmt.Sprintf("client-%d", g)
				}
				req.SetRequestURI(a.URL() + "/limits/" + name + "/check")
				req.Header.SetMethod("POST")
				req.Header.Set("Authorization", "Bearer "+rsAlice)
				req.Header.SetContentType("application/json")
				req.SetBodyString(`{"max_requests":10000,"window_seconds":1}`)
			})
		})
	}
}

// BenchmarkHTTPLimitCheckTokenBucket: BenchmarkHTTPLimitCheck/spread with
// "algorithm":"token_bucket" (each client its own bucket).
func BenchmarkHTTPLimitCheckTokenBucket(b *testing.B) {
	a := benchApp(b)
	benchLoad(b, a.Addr(), func(req *fasthttp.Request, g int) {
		req.SetRequestURI(a.URL() + fmt.Sprintf("/limits/client-%d/check", g))
		req.Header.SetMethod("POST")
		req.Header.Set("Authorization", "Bearer "+rsAlice)
		req.Header.SetContentType("application/json")
		req.SetBodyString(`{"max_requests":10000,"window_seconds":1,"algorithm":"token_bucket"}`)
	})
}

// BenchmarkHTTPLimitBatch: 10 checks per request. "batch10": one POST
// /limits/check of 10 limits; "single10": the same 10 checks as 10 POST
// /limits/{name}/check in a row. One op is 10 checks either way: compare
// ns/op (checks/s = 10 × op/s).
func BenchmarkHTTPLimitBatch(b *testing.B) {
	const n = 10
	check := `{"max_requests":10000,"window_seconds":1}`
	b.Run("batch10", func(b *testing.B) {
		a := benchApp(b)
		benchLoad(b, a.Addr(), func(req *fasthttp.Request, g int) {
			items := make([]string, n)
			for i := range items {
				items[i] = fmt.Sprintf(`{"name":"c%d-%d","max_requests":10000,"window_seconds":1}`, g, i)
			}
			req.SetRequestURI(a.URL() + "/limits/check")
			req.Header.SetMethod("POST")
			req.Header.Set("Authorization", "Bearer "+rsAlice)
			req.Header.SetContentType("application/json")
			req.SetBodyString(`{"checks":[` + strings.Join(items, ",") + `]}`)
		})
	})
	b.Run("single10", func(b *testing.B) {
		a := benchApp(b)
		hc := &fasthttp.HostClient{Addr: a.Addr(), MaxConns: benchConcurrency, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
		var gid, failed atomic.Int64
		b.SetParallelism((benchConcurrency + 1) / 2)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			g := int(gid.Add(1))
			reqs := make([]*fasthttp.Request, n)
			for i := range reqs {
				reqs[i] = fasthttp.AcquireRequest()
				reqs[i].SetRequestURI(a.URL() + fmt.Sprintf("/limits/c%d-%d/check", g, i))
				reqs[i].Header.SetMethod("POST")
				reqs[i].Header.Set("Authorization", "Bearer "+rsAlice)
				reqs[i].Header.SetContentType("application/json")
				reqs[i].SetBodyString(check)
			}
			resp := fasthttp.AcquireResponse()
			for pb.Next() {
				for _, req := range reqs {
					if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
						failed.Add(1)
					}
				}
			}
		})
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "op/s")
		if f := failed.Load(); f > 0 {
			b.Fatalf("%d requests failed", f)
		}
	})
}

// BenchmarkHTTPFlagEval: GET /flags/{name}?subject=… on a 30% rollout.
func BenchmarkHTTPFlagEval(b *testing.B) {
	a := benchApp(b)
	for _, f := range []string{"checkout", "search"} {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI(a.URL() + "/flags/" + f)
		req.Header.SetMethod("PUT")
		req.Header.Set("Authorization", "Bearer "+rsAlice)
		req.Header.SetContentType("application/json")
		req.SetBodyString(`{"enabled":true,"percentage":30}`)
		if err := fasthttp.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			b.Fatal(err, resp.StatusCode())
		}
	}
	benchLoad(b, a.Addr(), func(req *fasthttp.Request, g int) {
		f := []string{"checkout", "search"}[g%2]
		req.SetRequestURI(a.URL() + "/flags/" + f + "?subject=user-" + strings.Repeat("7", g%5+1))
		req.Header.SetMethod("GET")
		req.Header.Set("Authorization", "Bearer "+rsAlice)
	})
}
