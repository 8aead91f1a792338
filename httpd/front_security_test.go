package httpd

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd/apitest"
)

// Cluster mode keeps the single node's security promises on every node
// (docs/guarantees.md "Cluster mode", security): a follower admits what it
// forwards as the leader would (admission.go), and the leader believes a
// client address only from a node that has the cluster's forwarding key.

// clientFrom is an HTTP client whose connections come from the loopback
// address ip (127.0.0.2, …: another client on this machine), checked
// against the contract.
func clientFrom(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return apitest.Client(t, &http.Client{Transport: tr, Timeout: 10 * time.Second})
}

// A follower answers a request without valid credentials 401 from its
// headers, its body unread and its connection closed, as a single node
// does; an admitted request's body is read within the follower's body
// budget, a buffer that grows with what arrived (not with what was
// declared), given back once it is answered.
func TestFrontReadsNoUnauthenticatedBody(t *testing.T) {
	p := newFrontPair(t)
	addr := strings.TrimPrefix(p.fURL, "http://")
	partial := func(token string) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		auth := ""
		if token != "" {
			auth = "Authorization: Bearer " + token + "\r\n"
		}
		fmt.Fprint(c, "PUT /config/k HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+auth+
			"Content-Length: 1048000\r\n\r\n"+`{"value":"`+strings.Repeat("x", 158)+`"`)
		return c
	}
	for _, tok := range []string{"", "wrong"} {
		c := partial(tok)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("token %q: no answer to the headers (%v): the follower waits for the body", tok, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || !resp.Close || resp.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("token %q: %d (close %v), want 401 from the headers and the connection closed", tok, resp.StatusCode, resp.Close)
		}
	}
	if used := p.follower.bodies.used.Load(); used != 0 {
		t.Fatalf("unauthenticated bodies hold %d bytes of the follower's budget", used)
	}
	// Admitted: what arrived is held (a small buffer), not the megabyte.
	c := partial("tok-a")
	deadline := time.Now().Add(10 * time.Second)
	for p.follower.bodies.used.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // the follower reads the body
	}
	if used := p.follower.bodies.used.Load(); used == 0 || used > 4096 {
		t.Fatalf("an admitted partial body holds %d bytes of the budget, want a small buffer", used)
	}
	c.Close()
	for p.follower.bodies.used.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if used := p.follower.bodies.used.Load(); used != 0 {
		t.Fatalf("after the client left, %d bytes of the budget are still held", used)
	}
	// A whole body is forwarded as it came.
	if resp, b := HTTPCall(t, p.http, "PUT", p.fURL+"/config/k", "tok-a", `{"value":{"n":1}}`); resp.StatusCode != 200 {
		t.Fatalf("put through the follower: %d %s", resp.StatusCode, b)
	}
	if resp, b := HTTPCall(t, p.http, "GET", p.lURL+"/config/k", "tok-a", ""); resp.StatusCode != 200 || !strings.Contains(string(b), `"value":{"n":1}`) {
		t.Fatalf("the leader has %d %s", resp.StatusCode, b)
	}
}

// Guessing through a follower is throttled per client address, by the
// follower, before anything reaches the leader: the guesser gets 429, and
// another client of the same follower is not slowed down (before, the
// leader saw every client of a follower as the follower's address, so one
// guesser would have throttled them all). GET /cluster, which the follower
// answers itself, is throttled the same way.
func TestFrontThrottlesGuessesPerClient(t *testing.T) {
	p := newFrontPair(t)
	guesser, other := clientFrom(t, "127.0.0.2"), clientFrom(t, "127.0.0.1")
	var throttled bool
	for i := 0; i <= DefaultAuthFailureBurst; i++ {
		resp, _ := HTTPCall(t, guesser, "GET", p.fURL+"/locks/x", fmt.Sprintf("guess-%d", i), "")
		if resp.StatusCode == 429 {
			throttled = resp.Header.Get("Retry-After") != ""
			break
		}
		if resp.StatusCode != 401 {
			t.Fatalf("guess %d: %d", i, resp.StatusCode)
		}
	}
	if !throttled {
		t.Fatalf("%d guesses through the follower were not throttled", DefaultAuthFailureBurst+1)
	}
	if resp, _ := HTTPCall(t, guesser, "GET", p.fURL+"/cluster", "guess-x", ""); resp.StatusCode != 429 {
		t.Fatalf("GET /cluster from the guesser: %d, want 429", resp.StatusCode)
	}
	if resp, b := HTTPCall(t, other, "GET", p.fURL+"/locks/x", "tok-a", ""); resp.StatusCode != 200 {
		t.Fatalf("another client of the follower: %d %s", resp.StatusCode, b)
	}
	if resp, _ := HTTPCall(t, other, "GET", p.fURL+"/locks/x", "wrong", ""); resp.StatusCode != 401 {
		t.Fatalf("another client's mistake: %d, want 401 (not throttled)", resp.StatusCode)
	}
	if n := p.ts.server.throttle.remembered(); n != 0 {
		t.Fatalf("the leader counted %d addresses: the follower's refusals reached it", n)
	}
}

// The leader believes the client address a forwarded request carries only
// with the cluster's forwarding key: guesses vouched for as 10.9.9.9 are
// throttled as 10.9.9.9 (not as the node that sent them), and a client that
// sends the address header itself, without the key, is counted as itself.
func TestLeaderBelievesForwardedAddressesOnlyWithTheKey(t *testing.T) {
	p := newFrontPair(t)
	guess := func(i int, hdr ...string) int {
		resp, _ := HTTPCall(t, p.http, "GET", p.lURL+"/locks/x", fmt.Sprintf("guess-%d", i), "", hdr...)
		return resp.StatusCode
	}
	vouched := []string{hdrClientAddr, "10.9.9.9", hdrForwardKey, "test-forward-key"}
	var st int
	for i := 0; i <= DefaultAuthFailureBurst; i++ {
		if st = guess(i, vouched...); st != 401 {
			break
		}
	}
	if st != 429 {
		t.Fatalf("guesses vouched for as 10.9.9.9: %d, want 429 once past the burst", st)
	}
	if st := guess(100); st != 401 {
		t.Fatalf("a guess of this client (127.0.0.1): %d, want 401: it is not 10.9.9.9", st)
	}
	if st := guess(101, hdrClientAddr, "10.9.9.9", hdrForwardKey, "wrong-key"); st != 401 {
		t.Fatalf("claiming 10.9.9.9 without the key: %d, want 401 (counted as 127.0.0.1)", st)
	}
	if st := guess(102, hdrClientAddr, "10.9.9.9"); st != 401 {
		t.Fatalf("claiming 10.9.9.9 with no key: %d, want 401", st)
	}
}

// Revocation reaches a stream proxied by a follower: the leader ends the
// revoked token's stream with a final revoked event, and the follower
// passes it on and ends its client's stream (issue 12, item 4, in cluster
// mode).
func TestFrontRevocationEndsProxiedStreams(t *testing.T) {
	p := newFrontPair(t)
	raw, _, err := p.ts.DB.CreateToken(context.Background(), "carol", "cli", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.fURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", raw)
	rd := bufio.NewReader(conn)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var seen strings.Builder
	for !strings.Contains(seen.String(), "\r\n\r\n") { // the headers
		line, err := rd.ReadString('\n')
		seen.WriteString(line)
		if err != nil {
			t.Fatalf("no stream: %v\n%s", err, seen.String())
		}
	}
	if !strings.HasPrefix(seen.String(), "HTTP/1.1 200") {
		t.Fatalf("stream through the follower: %s", seen.String())
	}
	if resp, b := HTTPCall(t, p.http, "DELETE", p.fURL+"/auth/token", raw, ""); resp.StatusCode != 204 && resp.StatusCode != 200 {
		t.Fatalf("revoke through the follower: %d %s", resp.StatusCode, b)
	}
	seen.Reset()
	for {
		line, err := rd.ReadString('\n')
		seen.WriteString(line)
		if err != nil {
			break // the follower ended the stream
		}
	}
	if !strings.Contains(seen.String(), "event: revoked") {
		t.Fatalf("the proxied stream ended without a revoked event:\n%s", seen.String())
	}
}
