package httpd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

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

// handlerCall runs one request through the whole handler chain on a reused
// RequestCtx (allocations are the server's alone).
type handlerCall struct {
	h   fasthttp.RequestHandler
	req fasthttp.Request
	ctx fasthttp.RequestCtx
}

func newHandlerCall(a *TestServer, method, uri, body string) *handlerCall {
	c := &handlerCall{h: a.Handler()}
	c.req.Header.SetMethod(method)
	c.req.SetRequestURI(uri)
	c.req.Header.Set("Authorization", "Bearer tokA")
	if body != "" {
		c.req.Header.SetContentType("application/json")
		c.req.SetBodyString(body)
	}
	c.ctx.Init(&c.req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, nil)
	return c
}

// do answers the request (ctx.Request: Init copied req into it); the
// status must be 200.
func (c *handlerCall) do(tb testing.TB) []byte {
	c.ctx.Response.Reset()
	c.h(&c.ctx)
	if st := c.ctx.Response.StatusCode(); st != 200 {
		tb.Fatalf("%s %s: %d %s", c.req.Header.Method(), c.req.URI().Path(), st, c.ctx.Response.Body())
	}
	return c.ctx.Response.Body()
}

func mustLease(tb testing.TB, body []byte) string {
	var g struct {
		LeaseID string `json:"lease_id"`
	}
	if err := json.Unmarshal(body, &g); err != nil || g.LeaseID == "" {
		tb.Fatalf("no lease in %s: %v", body, err)
	}
	return g.LeaseID
}

// BenchmarkHandlerLockCycle: POST /locks/{name}/acquire then release with
// the lease (two requests per op: a new grant and its release, both durable
// writes; allocs/op is for the pair).
func BenchmarkHandlerLockCycle(b *testing.B) {
	a := MustStartTestServer(b, TestOptions{StaticTokens: map[string]string{"tokA": "alice"}})
	acq := newHandlerCall(a, "POST", "/locks/bench/acquire", `{"ttl_seconds":30}`)
	rel := newHandlerCall(a, "POST", "/locks/bench/release", `{"lease_id":"00000000-0000-0000-0000-000000000000"}`)
	body := []byte(`{"lease_id":"00000000-0000-0000-0000-000000000000"}`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lease := acq.do(b)
		// the lease is at a fixed place in the answer: copy it into the body
		j := bytes.Index(lease, []byte(`"lease_id":"`))
		copy(body[13:49], lease[j+12:j+48])
		rel.ctx.Request.SetBodyRaw(body)
		rel.do(b)
	}
}

// BenchmarkHandlerLockRenew: POST /locks/{name}/renew of a held lease (a
// durable write each).
func BenchmarkHandlerLockRenew(b *testing.B) {
	a := MustStartTestServer(b, TestOptions{StaticTokens: map[string]string{"tokA": "alice"}})
	lease := mustLease(b, newHandlerCall(a, "POST", "/locks/bench/acquire", `{"ttl_seconds":30}`).do(b))
	c := newHandlerCall(a, "POST", "/locks/bench/renew", `{"lease_id":"`+lease+`","ttl_seconds":30}`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.do(b)
	}
}

// BenchmarkHandlerLockStatus: GET /locks/{name} of a held lock.
func BenchmarkHandlerLockStatus(b *testing.B) {
	a := MustStartTestServer(b, TestOptions{StaticTokens: map[string]string{"tokA": "alice"}})
	newHandlerCall(a, "POST", "/locks/bench/acquire", `{"ttl_seconds":300}`).do(b)
	c := newHandlerCall(a, "GET", "/locks/bench", "")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.do(b)
	}
}

// BenchmarkHandlerConfigGet: GET /config/{key}.
func BenchmarkHandlerConfigGet(b *testing.B) {
	a := MustStartTestServer(b, TestOptions{StaticTokens: map[string]string{"tokA": "alice"}})
	newHandlerCall(a, "PUT", "/config/app", `{"value":{"replicas":3}}`).do(b)
	c := newHandlerCall(a, "GET", "/config/app", "")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.do(b)
	}
}

// BenchmarkHandlerLockCycleParallel: the lock cycle from 64 goroutines at
// once, straight into the handler chain (no network): group commits of
// realistic size, and the server's CPU per request (cpu-µs/req, getrusage:
// handler, actors, writer, SQLite, the fsync's kernel side, GC) without a
// load generator or sockets sharing the measurement.
func BenchmarkHandlerLockCycleParallel(b *testing.B) {
	a := MustStartTestServer(b, TestOptions{StaticTokens: map[string]string{"tokA": "alice"}})
	var gid atomic.Int64
	b.SetParallelism(32) // GOMAXPROCS 2: 64 goroutines
	b.ReportAllocs()
	cpu0 := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		name := fmt.Sprint("bench-", gid.Add(1))
		acq := newHandlerCall(a, "POST", "/locks/"+name+"/acquire", `{"ttl_seconds":30}`)
		rel := newHandlerCall(a, "POST", "/locks/"+name+"/release", `{"lease_id":"00000000-0000-0000-0000-000000000000"}`)
		body := []byte(`{"lease_id":"00000000-0000-0000-0000-000000000000"}`)
		for pb.Next() {
			lease := acq.do(b)
			j := bytes.Index(lease, []byte(`"lease_id":"`))
			copy(body[13:49], lease[j+12:j+48])
			rel.ctx.Request.SetBodyRaw(body)
			rel.do(b)
		}
	})
	b.StopTimer()
	reportCPU(b, cpu0, 2)
}

// BenchmarkHandlerLimitCheckParallel: rate-limit checks from 64 goroutines,
// each on a limit of its own, straight into the handler chain.
func BenchmarkHandlerLimitCheckParallel(b *testing.B) {
	a := MustStartTestServer(b, TestOptions{StaticTokens: map[string]string{"tokA": "alice"}})
	var gid atomic.Int64
	b.SetParallelism(32)
	b.ReportAllocs()
	cpu0 := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := newHandlerCall(a, "POST", fmt.Sprint("/limits/bench-", gid.Add(1), "/check"), `{"max_requests":10000,"window_seconds":1}`)
		for pb.Next() {
			c.do(b)
		}
	})
	b.StopTimer()
	reportCPU(b, cpu0, 1)
}

// processCPU is the CPU this process has used (user + system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process's CPU per request since cpu0 (perOp
// requests per benchmark op) and the request rate.
func reportCPU(b *testing.B, cpu0 time.Duration, perOp int) {
	reqs := float64(b.N * perOp)
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/reqs, "cpu-µs/req")
	b.ReportMetric(reqs/b.Elapsed().Seconds(), "req/s")
}
