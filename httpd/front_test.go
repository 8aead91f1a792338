package httpd

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd/apitest"
)

// fakeLeadership is an election the test controls.
type fakeLeadership struct {
	mu      sync.Mutex // guards info, ok, changed
	info    LeaderInfo
	ok      bool
	changed chan struct{}
}

func newFakeLeadership() *fakeLeadership { return &fakeLeadership{changed: make(chan struct{})} }

func (l *fakeLeadership) set(info LeaderInfo, ok bool) {
	l.mu.Lock()
	l.info, l.ok = info, ok
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

func (l *fakeLeadership) Leader() (LeaderInfo, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.info, l.ok
}

func (l *fakeLeadership) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// nodeAuth is a node's own Authenticator over store (in cluster mode,
// over the etcd reader), closed at cleanup.
func nodeAuth(t *testing.T, store TokenStore) *Authenticator {
	t.Helper()
	a, err := NewAuthenticator(store, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

// frontPair is a leader front (serving a test server's stack) and a
// follower front that forwards to it.
type frontPair struct {
	ts                 *TestServer
	leader, follower   *Front
	lURL, fURL         string
	lLead, fLead       *fakeLeadership
	fresh              atomic.Bool
	termDone           chan struct{}
	http               *http.Client
	leaderInfo         LeaderInfo
	requestTimeoutUsed time.Duration
}

func startFront(t *testing.T, f *Front) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.Serve(ln)
	t.Cleanup(func() { f.Shutdown() })
	return "http://" + ln.Addr().String()
}

func newFrontPair(t *testing.T) *frontPair {
	t.Helper()
	p := &frontPair{termDone: make(chan struct{}), lLead: newFakeLeadership(), fLead: newFakeLeadership(), requestTimeoutUsed: 400 * time.Millisecond}
	p.ts = MustStartTestServer(t, TestOptions{StaticTokens: map[string]string{"tok-a": "alice"}})
	p.fresh.Store(true)
	status := func(context.Context) (ClusterStatus, error) {
		return ClusterStatus{Members: []ClusterMember{{Name: "n1", Healthy: true}, {Name: "n2", Healthy: true}}}, nil
	}
	cfg := func(node string) FrontConfig {
		return FrontConfig{Server: ServerConfig{RequestTimeout: p.requestTimeoutUsed}, Node: node,
			Auth: nodeAuth(t, p.ts.Store), ForwardKey: []byte("test-forward-key"), Status: status}
	}
	p.leader = NewFront(cfg("n1"), p.lLead, NewMetrics(), nil)
	p.lURL = startFront(t, p.leader)
	p.leader.Publish(&Local{Server: p.ts.server, Fresh: p.fresh.Load, Done: p.termDone})
	p.leaderInfo = LeaderInfo{Name: "n1", APIURL: p.lURL, Since: time.Now()}
	p.lLead.set(p.leaderInfo, true)
	p.follower = NewFront(cfg("n2"), p.fLead, NewMetrics(), nil)
	p.fURL = startFront(t, p.follower)
	p.fLead.set(p.leaderInfo, true)
	p.http = apitest.Client(t, &http.Client{Timeout: 10 * time.Second}) // every exchange checked against docs/openapi.yaml
	return p
}

// A follower forwards requests unchanged and returns the leader's answers
// unchanged: bodies, statuses, headers (ETag, If-Match), both ways.
func TestFrontForwards(t *testing.T) {
	p := newFrontPair(t)
	resp, b := HTTPCall(t, p.http, "POST", p.fURL+"/locks/fwd/acquire", "tok-a", `{"ttl_seconds":60}`)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"status":"acquired"`) {
		t.Fatalf("acquire through the follower: %d %s", resp.StatusCode, b)
	}
	resp, b = HTTPCall(t, p.http, "GET", p.lURL+"/locks/fwd", "tok-a", "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"holder":"alice"`) {
		t.Fatalf("the leader does not hold what the follower granted: %d %s", resp.StatusCode, b)
	}
	resp, _ = HTTPCall(t, p.http, "PUT", p.fURL+"/config/k", "tok-a", `{"value":1}`)
	if resp.StatusCode != 200 || resp.Header.Get("ETag") == "" {
		t.Fatalf("config put through the follower: %d, ETag %q", resp.StatusCode, resp.Header.Get("ETag"))
	}
	resp, b = HTTPCall(t, p.http, "PUT", p.fURL+"/config/k", "tok-a", `{"value":2}`, "If-Match", `"7"`)
	if resp.StatusCode != 409 || !strings.Contains(string(b), `"current_version":1`) {
		t.Fatalf("conditional put through the follower: %d %s", resp.StatusCode, b)
	}
	resp, _ = HTTPCall(t, p.http, "GET", p.fURL+"/locks", "", "")
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("unauthenticated through the follower: %d", resp.StatusCode)
	}
	// Each node answers /health and /cluster itself.
	resp, b = HTTPCall(t, p.http, "GET", p.fURL+"/cluster", "tok-a", "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"node":"n2","leader":"n1"`) {
		t.Fatalf("GET /cluster on the follower: %d %s", resp.StatusCode, b)
	}
	if resp, _ = HTTPCall(t, p.http, "GET", p.fURL+"/cluster", "wrong", ""); resp.StatusCode != 401 {
		t.Fatalf("GET /cluster with a wrong token: %d", resp.StatusCode)
	}
	if resp, _ = HTTPCall(t, p.http, "GET", p.fURL+"/health", "", ""); resp.StatusCode != 200 {
		t.Fatalf("follower /health: %d", resp.StatusCode)
	}
	// A request already forwarded twice is not forwarded again (loops).
	req, _ := http.NewRequest("GET", p.fURL+"/locks/fwd", nil)
	req.Header.Set("Authorization", "Bearer tok-a")
	req.Header.Add(hdrForwardedBy, "n3")
	req.Header.Add(hdrForwardedBy, "n4")
	if resp, err := p.http.Do(req); err != nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third hop: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// With no leader known, a request waits for one up to the request timeout:
// it is served as soon as a leader appears, and answered 503 + Retry-After
// if none does; /health is 503 meanwhile.
func TestFrontWaitsForALeader(t *testing.T) {
	p := newFrontPair(t)
	p.fLead.set(LeaderInfo{}, false)
	start := time.Now()
	resp, b := HTTPCall(t, p.http, "GET", p.fURL+"/locks/x", "tok-a", "")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || time.Since(start) < p.requestTimeoutUsed {
		t.Fatalf("no leader: %d %s after %s", resp.StatusCode, b, time.Since(start))
	}
	if resp, _ := HTTPCall(t, p.http, "GET", p.fURL+"/health", "", ""); resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("/health without a leader: %d", resp.StatusCode)
	}
	done := make(chan int, 1)
	go func() {
		resp, _ := HTTPCall(t, p.http, "GET", p.fURL+"/locks/x", "tok-a", "")
		done <- resp.StatusCode
	}()
	time.Sleep(50 * time.Millisecond) // the request is waiting
	p.fLead.set(p.leaderInfo, true)
	if st := <-done; st != 200 {
		t.Fatalf("request waiting for a leader: %d once it appeared", st)
	}
}

// A leader whose lease may have expired answers no read from its memory
// (the read waits for a leader instead: here, 503 at the timeout), while a
// write, fenced by the store, is still answered; once its term has ended
// it serves nothing.
func TestFrontRefusesStaleReads(t *testing.T) {
	p := newFrontPair(t)
	if resp, _ := HTTPCall(t, p.http, "POST", p.lURL+"/locks/s/acquire", "tok-a", `{"ttl_seconds":60}`); resp.StatusCode != 200 {
		t.Fatalf("acquire: %d", resp.StatusCode)
	}
	if resp, _ := HTTPCall(t, p.http, "PUT", p.lURL+"/flags/f", "tok-a", `{"enabled":true}`); resp.StatusCode != 200 {
		t.Fatalf("flag put: %d", resp.StatusCode)
	}
	// Answered from memory by POST too: checks (one, and a batch) and
	// flag evaluations (OFREP, one and in bulk).
	memoryPosts := []struct{ path, body string }{
		{"/limits/l/check", `{"max_requests":5,"window_seconds":60}`},
		{"/limits/check", `{"checks":[{"name":"l","max_requests":5,"window_seconds":60}]}`},
		{"/ofrep/v1/evaluate/flags/f", `{"context":{"targetingKey":"u1"}}`},
		{"/ofrep/v1/evaluate/flags", `{"context":{"targetingKey":"u1"}}`},
	}
	for _, r := range memoryPosts {
		if resp, b := HTTPCall(t, p.http, "POST", p.lURL+r.path, "tok-a", r.body); resp.StatusCode != 200 {
			t.Fatalf("POST %s with a fresh lease: %d %s", r.path, resp.StatusCode, b)
		}
	}
	p.fresh.Store(false)
	for _, path := range []string{"/locks/s", "/config/k"} {
		if resp, b := HTTPCall(t, p.http, "GET", p.lURL+path, "tok-a", ""); resp.StatusCode != 503 {
			t.Fatalf("read %s with a stale lease: %d %s", path, resp.StatusCode, b)
		}
		if resp, b := HTTPCall(t, p.http, "GET", p.fURL+path, "tok-a", ""); resp.StatusCode != 503 {
			t.Fatalf("read %s through the follower, stale leader: %d %s", path, resp.StatusCode, b)
		}
	}
	for _, r := range memoryPosts {
		if resp, b := HTTPCall(t, p.http, "POST", p.lURL+r.path, "tok-a", r.body); resp.StatusCode != 503 {
			t.Fatalf("POST %s with a stale lease: %d %s", r.path, resp.StatusCode, b)
		}
	}
	if resp, _ := HTTPCall(t, p.http, "POST", p.lURL+"/locks/s2/acquire", "tok-a", `{"ttl_seconds":60}`); resp.StatusCode != 200 {
		t.Fatalf("a write with a stale lease (fenced by the store): %d", resp.StatusCode)
	}
	p.fresh.Store(true)
	close(p.termDone)
	if resp, _ := HTTPCall(t, p.http, "POST", p.lURL+"/locks/s3/acquire", "tok-a", `{"ttl_seconds":60}`); resp.StatusCode != 503 {
		t.Fatalf("a write after the term ended: %d", resp.StatusCode)
	}
}

// rawStream opens GET path with tok-a on the follower, on a connection of
// its own (closed at cleanup), and returns the reader of the stream and
// readUntil, which reads lines until the stream has shown want (failing
// if it ends first, or after 10 s).
func (p *frontPair) rawStream(t *testing.T, path string) (*bufio.Reader, func(want string)) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.fURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-a\r\n\r\n", path)
	rd := bufio.NewReader(conn)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var seen strings.Builder
	return rd, func(want string) {
		t.Helper()
		for !strings.Contains(seen.String(), want) {
			line, err := rd.ReadString('\n')
			seen.WriteString(line)
			if err != nil {
				t.Fatalf("stream ended before %q: %v\n%s", want, err, seen.String())
			}
		}
	}
}

// Event streams are proxied (events arrive through the follower) and end
// when the leader changes, so that their clients reconnect to the new one.
func TestFrontProxiesEventStreams(t *testing.T) {
	p := newFrontPair(t)
	rd, readUntil := p.rawStream(t, "/locks/ev/watch")
	readUntil("event: lock.state")
	if resp, _ := HTTPCall(t, p.http, "POST", p.lURL+"/locks/ev/acquire", "tok-a", `{"ttl_seconds":60}`); resp.StatusCode != 200 {
		t.Fatal("acquire")
	}
	readUntil("event: lock.acquired")
	p.fLead.set(LeaderInfo{Name: "n3", APIURL: "http://127.0.0.1:1"}, true) // the leader moved
	if _, err := io.Copy(io.Discard, rd); err != nil {
		t.Fatalf("the stream did not end when the leader moved: %v", err) // the read deadline
	}
}

// A config key's watch is an event stream too: proxied by the follower as
// it comes (a forward that waited for the answer's end would never answer).
func TestFrontProxiesConfigWatch(t *testing.T) {
	p := newFrontPair(t)
	_, readUntil := p.rawStream(t, "/config/cw/watch")
	readUntil("event: config.state")
	if resp, _ := HTTPCall(t, p.http, "PUT", p.lURL+"/config/cw", "tok-a", `{"value":{"n":1}}`); resp.StatusCode != 200 {
		t.Fatal("config put")
	}
	readUntil("event: config.written")
	readUntil(`"value":{"n":1}`)
}

// A request forwarded to a leader that froze (accepts, never answers) does
// not wait for the request timeout once another node leads: its connection
// is cut after staleGrace and it gets 503 (outcome unknown).
func TestFrontCutsRequestsStuckAtAFrozenLeader(t *testing.T) {
	frozen, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer frozen.Close()
	go func() {
		for {
			c, err := frozen.Accept()
			if err != nil {
				return
			}
			defer c.Close() // read nothing, answer nothing
		}
	}()
	lead := newFakeLeadership()
	lead.set(LeaderInfo{Name: "n1", APIURL: "http://" + frozen.Addr().String()}, true)
	ts := MustStartTestServer(t, TestOptions{StaticTokens: map[string]string{"tok": "alice"}}) // the tokens
	f := NewFront(FrontConfig{Server: ServerConfig{RequestTimeout: 20 * time.Second}, Node: "n2", Auth: nodeAuth(t, ts.Store)}, lead, NewMetrics(), nil)
	url := startFront(t, f)
	done := make(chan int, 1)
	start := time.Now()
	go func() {
		resp, _ := HTTPCall(t, apitest.Client(t, &http.Client{Timeout: 30 * time.Second}), "POST", url+"/locks/x/acquire", "tok", `{"ttl_seconds":5}`)
		done <- resp.StatusCode
	}()
	time.Sleep(100 * time.Millisecond) // the request is at the frozen leader
	lead.set(LeaderInfo{Name: "n3", APIURL: "http://127.0.0.1:1"}, true)
	if st := <-done; st != 503 || time.Since(start) > 10*time.Second {
		t.Fatalf("request stuck at a frozen leader: %d after %s", st, time.Since(start))
	}
}

// waitersAt reads the waiters of lock name from the leader.
func (p *frontPair) waitersAt(t *testing.T, name string) int {
	t.Helper()
	resp, b := HTTPCall(t, p.http, "GET", p.lURL+"/locks/"+name, "tok-a", "")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /locks/%s: %d %s", name, resp.StatusCode, b)
	}
	var st struct {
		Waiters int `json:"waiters"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st.Waiters
}

// waitWaiters polls the leader until lock name has n waiters (a waiter
// joins or leaves the queue asynchronously to anything the test sees).
func (p *frontPair) waitWaiters(t *testing.T, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for got := p.waitersAt(t, name); got != n; got = p.waitersAt(t, name) {
		if time.Now().After(deadline) {
			t.Fatalf("lock %s: %d waiters, want %d", name, got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A waiting acquire through a follower waits at the leader as long as its
// wait_seconds says, past the follower's request timeout (400 ms here),
// and is granted when the holder releases; a client that leaves while
// it waits leaves the leader's queue too (the follower closes its
// connection to the leader), and is never granted.
func TestFrontForwardsWaitingAcquires(t *testing.T) {
	p := newFrontPair(t)
	acquire := func(name, holder string) string {
		t.Helper()
		resp, b := HTTPCall(t, p.http, "POST", p.lURL+"/locks/"+name+"/acquire", "tok-a", `{"ttl_seconds":60,"holder_id":"`+holder+`"}`)
		var l struct {
			Lease string `json:"lease_id"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(b, &l) != nil {
			t.Fatalf("acquire %s as %s: %d %s", name, holder, resp.StatusCode, b)
		}
		return l.Lease
	}
	lease := acquire("q", "h1")
	got := make(chan string, 1)
	go func() {
		resp, b := HTTPCall(t, p.http, "POST", p.fURL+"/locks/q/acquire", "tok-a", `{"ttl_seconds":60,"wait_seconds":30,"holder_id":"h2"}`)
		got <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	p.waitWaiters(t, "q", 1)
	time.Sleep(p.requestTimeoutUsed + 1500*time.Millisecond) // past the follower's bound on other requests (request timeout + 1 s)
	if resp, b := HTTPCall(t, p.http, "POST", p.lURL+"/locks/q/release", "tok-a", `{"lease_id":"`+lease+`"}`); resp.StatusCode != 200 {
		t.Fatalf("release: %d %s", resp.StatusCode, b)
	}
	select {
	case r := <-got:
		if !strings.HasPrefix(r, "200 ") || !strings.Contains(r, `"status":"acquired"`) || !strings.Contains(r, `"holder_id":"h2"`) {
			t.Fatalf("the waiting acquire through the follower: %s", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting acquire was not answered after the release")
	}

	// A client that leaves.
	lease = acquire("r", "h1")
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.fURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	body := `{"ttl_seconds":60,"wait_seconds":30,"holder_id":"h3"}`
	fmt.Fprintf(conn, "POST /locks/r/acquire HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-a\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	p.waitWaiters(t, "r", 1)
	conn.Close()
	p.waitWaiters(t, "r", 0)
	if resp, b := HTTPCall(t, p.http, "POST", p.lURL+"/locks/r/release", "tok-a", `{"lease_id":"`+lease+`"}`); resp.StatusCode != 200 {
		t.Fatalf("release: %d %s", resp.StatusCode, b)
	}
	if resp, b := HTTPCall(t, p.http, "GET", p.lURL+"/locks/r", "tok-a", ""); resp.StatusCode != 200 || !strings.Contains(string(b), `"status":"available"`) {
		t.Fatalf("after the release, the gone waiter holds it: %d %s", resp.StatusCode, b)
	}
}
