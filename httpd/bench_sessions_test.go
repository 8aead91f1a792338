package httpd_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/httpd"
	"github.com/valyala/fasthttp"
)

// BenchmarkHTTPSessionKeepAlive: POST /sessions/{id}/keepalive, round robin
// over 10,000 sessions of one user from benchConcurrency connections, the
// sessions holding no lock and then 10 locks each (100,000 locks held under
// sessions). A keepalive rewrites the session's row only: a lock under a
// session reads its expiry from the session index, so what a session holds
// should not change the cost (issue 16, "cost per session keepalive with
// 10k sessions each holding 10 locks"). The sessions and locks are made
// through the actors (the HTTP path of a keepalive is what is measured),
// and the measurement starts once the idle lock actors have passivated, as
// they do in a server whose session locks are held for longer than
// --idle-timeout (they stay in the session index and the holder index).
func BenchmarkHTTPSessionKeepAlive(b *testing.B) {
	const sessions = 10000
	for _, perSession := range []int{0, 10} {
		b.Run(fmt.Sprintf("sessions=%d/locks=%d", sessions, perSession), func(b *testing.B) {
			a := httpd.MustStartTestServer(b, httpd.TestOptions{StaticTokens: map[string]string{rsAlice: "alice"},
				Sessions: actors.SessionConfig{MaxPerUser: -1}, Locks: actors.LockConfig{MaxPerUser: -1},
				Actors: actors.Config{IdleTimeout: time.Second}})
			ids := benchSessions(b, a, sessions, perSession)
			// Wait (on the gauge, not a sleep) for the idle actors to go.
			deadline := time.Now().Add(time.Minute)
			for a.Sys.LiveActors() > int64(sessions) {
				if time.Now().After(deadline) {
					b.Fatalf("%d actors still resident a minute after the set-up", a.Sys.LiveActors())
				}
				time.Sleep(50 * time.Millisecond)
			}
			runtime.GC()
			hc := &fasthttp.HostClient{Addr: a.Addr(), MaxConns: benchConcurrency, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
			var gid, failed atomic.Int64
			b.SetParallelism((benchConcurrency + 1) / 2)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				g := int(gid.Add(1)) - 1
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				req.Header.SetMethod("POST")
				req.Header.Set("Authorization", "Bearer "+rsAlice)
				for i := g; pb.Next(); i += benchConcurrency {
					req.SetRequestURI(a.URL() + "/sessions/" + ids[i%len(ids)] + "/keepalive")
					if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
						failed.Add(1)
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d of %d keepalives failed", n, b.N)
			}
			if st, err := a.Locks.Status(context.Background(), fmt.Sprintf("s%d-l0", len(ids)-1)); perSession > 0 && (err != nil || !st.Held) {
				b.Fatalf("a session's lock after the keepalives: %+v %v", st, err)
			}
		})
	}
}

// benchSessions makes n sessions of alice (an hour's TTL), each holding
// locks locks, from benchConcurrency goroutines, and returns their ids.
func benchSessions(b *testing.B, a *httpd.TestServer, n, locks int) []string {
	b.Helper()
	ctx := context.Background()
	uid, ok, err := a.Auth.UserID(ctx, "alice")
	if err != nil || !ok {
		b.Fatalf("alice's user id: %v %v", ok, err)
	}
	ids := make([]string, n)
	var wg sync.WaitGroup
	var failed atomic.Value
	for g := range benchConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += benchConcurrency {
				s, err := a.Sessions.Create(ctx, uid, time.Hour, 0)
				if err != nil {
					failed.Store(err)
					return
				}
				ids[i] = s.ID
				for l := range locks {
					_, err := a.Locks.AcquireWith(ctx, fmt.Sprintf("s%d-l%d", i, l), actors.LockRequest{Caller: uid, SessionID: s.ID})
					if err != nil {
						failed.Store(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	return ids
}
