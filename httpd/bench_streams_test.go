package httpd_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd"
)

// BenchmarkLockCycleWithStreams measures what one user's open event streams
// cost another user: bob's acquire + release cycle (sequential, keep-alive)
// while alice holds streams open, each read by a client that discards what
// arrives. Sub-benchmarks:
//
//	streams=0             the baseline
//	events=N              alice asks for N unfiltered /events streams (the
//	                      server's default cap lets MaxStreamsPerUser of them
//	                      open; the rest are refused with 429)
//	events=N/uncapped     the same with the cap raised to N: every stream sees
//	                      bob's lock events, so each cycle fans out to N streams
//	config=N/uncapped     N streams of alice's config events only: bob's lock
//	                      events reach none of them
//
//	go test -run XXX -bench LockCycleWithStreams -benchtime 400x ./httpd/
//
// OCTOSTORE_BENCH_STREAMS sets N (default 4000). Reported: the cycle's
// median and 90th percentile (ms), and the streams the server accepted.
func BenchmarkLockCycleWithStreams(b *testing.B) {
	n := 4000
	if v := os.Getenv("OCTOSTORE_BENCH_STREAMS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	cases := []struct {
		name    string
		path    string
		streams int
		cap     int // 0: the server's default
	}{
		{"streams=0", "/events", 0, 0},
		{fmt.Sprintf("events=%d", n), "/events", n, 0},
		{fmt.Sprintf("events=%d/uncapped", n), "/events", n, n},
		{fmt.Sprintf("config=%d/uncapped", n), "/events?kind=config", n, n},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			o := httpd.TestOptions{StaticTokens: map[string]string{"tokA": "alice", "tokB": "bob"}}
			o.Server.MaxConns = 2*tc.streams + 256
			o.Server.MaxStreamsPerUser = tc.cap
			a := httpd.MustStartTestServer(b, o)
			open := openStreams(b, a.Addr(), tc.path, "tokA", tc.streams)
			bob := evClient(b, a, "tokB")
			ctx := context.Background()
			cycle := func() {
				l, err := bob.Acquire(ctx, "bench-cycle", 30*time.Second)
				if err != nil {
					b.Fatal(err)
				}
				if err := bob.Release(ctx, "bench-cycle", l.LeaseID); err != nil {
					b.Fatal(err)
				}
			}
			for range 20 { // warm up: connections, the lock's actor
				cycle()
			}
			ds := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				cycle()
				ds = append(ds, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(ds)
			ms := func(q float64) float64 { return float64(ds[int(q*float64(len(ds)-1))]) / 1e6 }
			b.ReportMetric(ms(0.5), "p50-ms")
			b.ReportMetric(ms(0.9), "p90-ms")
			b.ReportMetric(float64(open), "streams-open")
		})
	}
}

// openStreams opens n streams of path with token, each read (and discarded)
// by its own goroutine until the test ends, and returns how many the server
// accepted (200); the connections of the others are closed.
func openStreams(b testing.TB, addr, path, token string, n int) int {
	b.Helper()
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	b.Cleanup(func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	open := 0
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatalf("stream %d: %v", i, err)
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n", path, token)
		r := bufio.NewReader(c)
		status, err := r.ReadString('\n')
		if err != nil {
			b.Fatalf("stream %d: %v", i, err)
		}
		if !strings.Contains(status, " 200 ") {
			c.Close()
			continue
		}
		open++
		wg.Add(1)
		go func() {
			defer wg.Done()
			io.Copy(io.Discard, r)
		}()
	}
	return open
}
