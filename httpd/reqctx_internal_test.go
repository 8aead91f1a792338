package httpd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/persistence"
)

// The request context: a request stops waiting when its timeout passes,
// when its client goes away, or when the server's shutdown runs out of
// time; in every case an operation already applied still commits.

func startCtxServer(t *testing.T, mod func(o *TestOptions)) *TestServer {
	t.Helper()
	o := TestOptions{StaticTokens: map[string]string{"tokA": "alice"}}
	if mod != nil {
		mod(&o)
	}
	return MustStartTestServer(t, o)
}

// stall makes the writer's next transaction wait until release is called;
// entered is closed when it has started waiting.
func stall(a *TestServer) (entered <-chan struct{}, release func()) {
	in, gate := make(chan struct{}), make(chan struct{})
	var once, closeOnce sync.Once
	a.SetFaultHook(func() error {
		once.Do(func() { close(in) })
		<-gate
		return nil
	})
	return in, func() { closeOnce.Do(func() { close(gate); a.SetFaultHook(nil) }) }
}

type ctxResp struct {
	status     int
	body       string
	retryAfter string
}

func ctxDo(t *testing.T, a *TestServer, method, path, body string) ctxResp {
	t.Helper()
	req, err := http.NewRequest(method, a.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer tokA")
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return ctxResp{resp.StatusCode, string(b), resp.Header.Get("Retry-After")}
}

// heldBy reads the lock from its actor.
func heldBy(t *testing.T, a *TestServer, name string) string {
	t.Helper()
	st, err := a.Locks.Status(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return a.Auth.Login(st.Lock.Holder)
}

func TestRequestTimeoutEndsTheWaitTheWriteCommits(t *testing.T) {
	a := startCtxServer(t, func(o *TestOptions) { o.Server.RequestTimeout = 200 * time.Millisecond })
	defer a.Close()
	_, release := stall(a)
	defer release()
	r := ctxDo(t, a, "POST", "/locks/slow/acquire", `{"ttl_seconds":60}`)
	if r.status != 503 || r.body != `{"error":"request timed out"}` || r.retryAfter != "1" {
		t.Fatalf("acquire on a stalled disk: %d %s (Retry-After %q), want 503 request timed out", r.status, r.body, r.retryAfter)
	}
	release()
	// The grant was applied before the timeout: it commits.
	if h := heldBy(t, a, "slow"); h != "alice" {
		t.Fatalf("after the stall the lock is held by %q, want alice", h)
	}
}

// requestsWithCode counts the requests answered with status code on the
// lock acquire route, from the metrics.
func acquiresWithCode(t *testing.T, a *TestServer, code string) string {
	t.Helper()
	var buf bytes.Buffer
	if err := a.Metrics.Write(&buf); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.HasPrefix(line, "octostore_http_requests_total{") && strings.Contains(line, `code="`+code+`"`) &&
			strings.Contains(line, `route="/locks/{name}/acquire"`) {
			return line[strings.LastIndexByte(line, ' ')+1:]
		}
	}
	return "0"
}

func rawRequest(method, path, body string) string {
	return fmt.Sprintf("%s %s HTTP/1.1\r\nHost: octostore\r\nAuthorization: Bearer tokA\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		method, path, len(body), body)
}

// A client that closes its connection while its request waits ends the
// wait (499, to nobody), and the grant it asked for still commits. A client
// that stays, even one that pipelines a second request, is not cancelled.
func TestClientGoneEndsTheWait(t *testing.T) {
	if !canWatch {
		t.Skip("no socket peek on this platform: a client going away is noticed by the request timeout only")
	}
	a := startCtxServer(t, nil)
	defer a.Close()
	a.server.reqs.watchAfter = 20 * time.Millisecond // before any request: nothing reads it yet
	entered, release := stall(a)
	defer release()

	stay, err := net.Dial("tcp", a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer stay.Close()
	if _, err := io.WriteString(stay, rawRequest("POST", "/locks/stay/acquire", `{"ttl_seconds":60}`)+
		rawRequest("GET", "/locks/stay", "")); err != nil {
		t.Fatal(err)
	}
	<-entered // stay's grant is in the stalled transaction

	gone, err := net.Dial("tcp", a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(gone, rawRequest("POST", "/locks/gone/acquire", `{"ttl_seconds":60}`)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "gone's grant is queued", func() bool { return a.Store.Stats().Queued >= 1 })
	gone.Close()
	waitUntil(t, "the gone client's request is answered 499", func() bool {
		return acquiresWithCode(t, a, "499") == "1"
	})
	release()

	br := bufio.NewReader(stay)
	for _, want := range []string{`"status":"acquired"`, `"status":"held"`} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Fatalf("the client that stayed: %d %s, want 200 with %s", resp.StatusCode, b, want)
		}
	}
	if h := heldBy(t, a, "gone"); h != "alice" {
		t.Fatalf("the gone client's grant: held by %q, want alice (applied before the client left)", h)
	}
	if n := acquiresWithCode(t, a, "499"); n != "1" {
		t.Fatalf("%s requests answered 499, want only the gone client's", n)
	}
}

// When the graceful shutdown runs out of time, requests still waiting are
// answered 503 "server shutting down" at once, and their writes still
// commit before the database closes.
func TestShutdownEndsTheWaitTheWriteCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	a := startCtxServer(t, func(o *TestOptions) { o.DBPath = path; o.Server.ShutdownTimeout = 200 * time.Millisecond })
	entered, release := stall(a)
	defer release()
	answered := make(chan ctxResp, 1)
	go func() { answered <- ctxDo(t, a, "POST", "/locks/late/acquire", `{"ttl_seconds":60}`) }()
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- a.Close() }()
	r := <-answered
	if r.status != 503 || r.body != `{"error":"server shutting down"}` || r.retryAfter != "1" {
		t.Fatalf("a request waiting at shutdown: %d %s (Retry-After %q), want 503 server shutting down", r.status, r.body, r.retryAfter)
	}
	release() // the store drains the stalled write on close
	if err := <-closed; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close: %v, want the shutdown's timeout reported", err)
	}
	db, err := persistence.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w, err := persistence.NewWriter(db, persistence.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := persistence.NewStore(db, w)
	defer st.Close()
	l, ok, err := st.LoadLock("late")
	alice, _, _ := st.UserByLogin(t.Context(), "alice")
	if err != nil || !ok || l.Holder != alice.UID || alice.UID == "" {
		t.Fatalf("after the shutdown: %+v %v %v, want the grant committed", l, ok, err)
	}
}

// The context itself: Err, Deadline and the causes.
func TestRequestContext(t *testing.T) {
	p := newRequestContexts(50 * time.Millisecond)
	defer p.shutdown()
	rc := p.get(nil)
	dl, ok := rc.Deadline()
	if !ok || time.Until(dl) > 50*time.Millisecond {
		t.Fatalf("deadline %v %v", dl, ok)
	}
	select {
	case <-rc.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the request timeout never ended the context")
	}
	if rc.Err() != context.DeadlineExceeded {
		t.Fatalf("Err = %v, want DeadlineExceeded", rc.Err())
	}
	if err := rc.explain(rc.Err()); actors.AsError(err) != actors.ErrTimeout {
		t.Fatalf("a timeout is answered %v", err)
	}
	p.end(rc)

	idle := p.get(nil) // never used: no clock, no cancellation
	p.end(idle)
	if idle.Err() != context.Canceled {
		t.Fatalf("a context first used after its request ended: Err = %v, want Canceled", idle.Err())
	}

	waiting := p.get(nil)
	_ = waiting.Done() // armed: waiting
	go p.shutdown()
	<-waiting.Done()
	if err := waiting.explain(waiting.Err()); err != actors.ErrClosed {
		t.Fatalf("a shutdown is answered %v", err)
	}
	p.end(waiting)
	late := p.get(nil)
	if late.Err() != context.Canceled || late.explain(late.Err()) != actors.ErrClosed {
		t.Fatalf("a context first used after shutdown: %v", late.Err())
	}
	p.end(late)
}

// Err before the first Done or Deadline starts no clock: the context is
// not armed, not listed for the reaper, and has no Done channel yet; a
// later Done starts it as usual.
func TestRequestContextErrDoesNotArm(t *testing.T) {
	p := newRequestContexts(time.Hour)
	defer p.shutdown()
	rc := p.get(nil)
	if err := rc.Err(); err != nil {
		t.Fatalf("Err of a fresh context: %v", err)
	}
	rc.mu.Lock()
	armed := rc.doneCh != nil || rc.listed
	rc.mu.Unlock()
	if armed || p.waiting.Load() != 0 {
		t.Fatalf("Err armed the context (listed %v, waiting %d)", rc.listed, p.waiting.Load())
	}
	select {
	case <-rc.Done():
		t.Fatal("done before its time")
	default:
	}
	if p.waiting.Load() != 1 {
		t.Fatalf("Done did not arm the context: waiting %d", p.waiting.Load())
	}
	p.end(rc)
	if rc.Err() != context.Canceled || p.waiting.Load() != 0 {
		t.Fatalf("after end: %v, waiting %d", rc.Err(), p.waiting.Load())
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(2 * time.Millisecond) // nothing signals these from outside the server
	}
}
