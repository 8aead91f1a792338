package httpd_test

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd"
	"github.com/octostore/octostore/httpd/apitest"
)

var relConns = flag.Int("reliability.conns", 200, "connections of TestMemoryUnreadBodies (1000 for the documented numbers)")

func fmib(b uint64) float64 { return float64(b) / (1 << 20) }

// partialPut is the start of a PUT /config/k that declares a body of
// 1,048,000 bytes and sends 170 of them (issue 13 §2, fault 2).
func partialPut(token string) string {
	var auth string
	if token != "" {
		auth = "Authorization: Bearer " + token + "\r\n"
	}
	return "PUT /config/k HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + auth +
		"Content-Length: 1048000\r\n\r\n" + `{"value":"` + strings.Repeat("x", 158) + `"`
}

// TestMemoryUnreadBodies (issue 13 §2, fault 2): connections that declare
// a 1 MB body and send 170 bytes of it cannot pin the megabyte. Without a
// token each is answered 401 from its headers, its body never read; with
// one, the server holds what arrived (a 512-byte buffer), not what was
// declared, within --max-body-memory. After the connections close, the
// memory is back. The heap is checked (after a GC, per connection while
// they are open); RSS is logged. Before, fasthttp allocated the declared
// megabyte before any handler ran, token or not, and answered nothing until
// the body or the read timeout came: with 1,000 such connections the
// server went from 24 MiB to 1,039 MiB RSS.
//
// `go test` runs it with 200 connections; the documented numbers:
//
//	go test ./httpd -run '^TestMemoryUnreadBodies$' -count=1 -v -reliability.conns=1000
func TestMemoryUnreadBodies(t *testing.T) {
	n := *relConns
	e := relStart(t, func(o *httpd.TestOptions) {
		o.Server.ReadTimeout = 2 * time.Minute // the connections stay until the test closes them
		o.Server.MaxConns = 4 * n
	})
	base := sampleMem()
	t.Logf("baseline: RSS %.1f MiB, heap %.1f MiB", fmib(base.rss), fmib(base.heap))
	for _, tc := range []struct {
		name, token string
	}{{"without a token", ""}, {"authenticated", "tokA"}} {
		conns := make([]net.Conn, n)
		for i := range conns {
			c, err := net.Dial("tcp", e.app.Addr())
			if err != nil {
				t.Fatal(err)
			}
			conns[i] = c
			if _, err := fmt.Fprint(c, partialPut(tc.token)); err != nil {
				t.Fatal(err)
			}
		}
		if tc.token == "" {
			// Each is answered 401 at once, from its headers.
			for i, c := range conns {
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatalf("connection %d: no answer to the headers (%v): the server waits for the body", i, err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
					t.Fatalf("connection %d: %d (close %v), want 401 and the connection closed", i, resp.StatusCode, resp.Close)
				}
			}
		} else {
			// The server has read what was sent of each body: wait until
			// every connection holds its buffer.
			deadline := time.Now().Add(30 * time.Second)
			for e.app.BodyBytesInFlight() < int64(n*512) {
				if time.Now().After(deadline) {
					t.Fatalf("bodies in flight %d bytes, want %d connections' 512", e.app.BodyBytesInFlight(), n)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		during := sampleMem()
		perConn := (float64(during.heap) - float64(base.heap)) / float64(n)
		t.Logf("%s: %d connections open: RSS %.1f MiB (%+.1f), heap %.1f MiB (%+.1f: %.1f KiB per connection), bodies in flight %d bytes",
			tc.name, n, fmib(during.rss), fmib(during.rss)-fmib(base.rss), fmib(during.heap), fmib(during.heap)-fmib(base.heap),
			perConn/1024, e.app.BodyBytesInFlight())
		if perConn > 64<<10 {
			t.Errorf("%s: %.1f KiB of heap per connection that sent 170 bytes, want under 64 KiB", tc.name, perConn/1024)
		}
		for _, c := range conns {
			c.Close()
		}
		deadline := time.Now().Add(30 * time.Second)
		for e.app.BodyBytesInFlight() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%d bytes of bodies still in flight after the connections closed", e.app.BodyBytesInFlight())
			}
			time.Sleep(5 * time.Millisecond)
		}
		after := sampleMem()
		t.Logf("%s: after closing: RSS %.1f MiB (%+.1f), heap %.1f MiB (%+.1f)", tc.name,
			fmib(after.rss), fmib(after.rss)-fmib(base.rss), fmib(after.heap), fmib(after.heap)-fmib(base.heap))
	}
}

// TestRequestBodyBounds: bodies are read by the server after the
// credentials are checked, within --max-body-bytes (413, declared or
// chunked) and --max-body-memory (503 + Retry-After once the bodies in
// flight fill it; a body is counted as it arrives, so a client that
// declares much and sends little holds little).
func TestRequestBodyBounds(t *testing.T) {
	e := relStart(t, func(o *httpd.TestOptions) {
		o.Server.MaxBodyBytes = 1500
		o.Server.MaxBodyMemory = 2048
	})
	chunked := func(body string) relResp {
		t.Helper()
		req, _ := http.NewRequest("PUT", e.app.URL()+"/config/k", io.MultiReader(strings.NewReader(body))) // no length: chunked
		req.Header.Set("Authorization", "Bearer tokA")
		req.Header.Set("Content-Type", "application/json")
		resp, err := apitest.Client(t, e.http).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return relResp{status: resp.StatusCode, header: resp.Header, body: b}
	}
	if r := chunked(`{"value":"` + strings.Repeat("c", 1000) + `"}`); r.status != 200 {
		t.Fatalf("chunked body: %d %s", r.status, r.body)
	}
	if r := chunked(`{"value":"` + strings.Repeat("c", 1500) + `"}`); r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked body over the limit: %d %s", r.status, r.body)
	}
	// A declared body over the limit: 413 at once, from the headers.
	c := e.rawConn()
	fmt.Fprint(c, "PUT /config/k HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tokA\r\nContent-Length: 5000\r\n\r\n{")
	if got := statusLine(closedBy(t, c, 10*time.Second)); !strings.Contains(got, " 413 ") {
		t.Fatalf("declared body over the limit: %q, want 413 without the body", got)
	}
	// One slow client that has sent 1,100 bytes of a 1,500-byte body holds
	// 1,500 bytes of the 2,048 budget (its buffer grew 512, 1,024, 1,500).
	slow := e.rawConn()
	fmt.Fprint(slow, "PUT /config/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tokA\r\nContent-Type: application/json\r\nContent-Length: 1500\r\n\r\n"+
		`{"value":"`+strings.Repeat("s", 1090))
	deadline := time.Now().Add(10 * time.Second)
	for e.app.BodyBytesInFlight() < 1500 {
		if time.Now().After(deadline) {
			t.Fatalf("the slow body holds %d bytes, want 1,500", e.app.BodyBytesInFlight())
		}
		time.Sleep(time.Millisecond)
	}
	body := `{"value":"` + strings.Repeat("v", 600) + `"}`
	r := e.do("PUT", "/config/k", "tokA", body)
	mustJSONError(t, "a body beyond the body budget", r, http.StatusServiceUnavailable)
	if !strings.Contains(r.str("error"), "bodies in flight") {
		t.Fatalf("503 for another reason: %s", r.body)
	}
	slow.Close()
	for e.app.BodyBytesInFlight() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still reserved after the slow client left", e.app.BodyBytesInFlight())
		}
		time.Sleep(time.Millisecond)
	}
	if r := e.do("PUT", "/config/k", "tokA", body); r.status != 200 {
		t.Fatalf("after the slow client left: %d %s", r.status, r.body)
	}
}
