package httpd_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/httpd"
	"github.com/octostore/octostore/httpd/apitest"
)

// Waiting acquires over HTTP (wait_seconds): the hand-off to the first
// waiter, the waiters count, validation, the queue bound, a client that
// leaves, the in-flight exemption and the shutdown.

func waitStart(t *testing.T, o httpd.TestOptions) *httpd.TestServer {
	t.Helper()
	o.DBPath = filepath.Join(t.TempDir(), "wait.db")
	o.StaticTokens = map[string]string{"tokA": "alice", "tokB": "bob", "tokC": "carol"}
	o.AdminKey = "admin-secret"
	return httpd.MustStartTestServer(t, o)
}

// waitersOf reads GET /locks/{name}'s waiters (-1 when not held).
func waitersOf(t *testing.T, a *httpd.TestServer, name string) int {
	t.Helper()
	r := lkDo(t, a, "GET", "/locks/"+name, "tokC", "").expect(t, 200)
	n, ok := r.body["waiters"].(float64)
	if !ok {
		return -1
	}
	return int(n)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestLockWaitHTTP(t *testing.T) {
	a := waitStart(t, httpd.TestOptions{})
	r := lkDo(t, a, "POST", "/locks/w/acquire", "tokA", `{"ttl_seconds":60}`).expect(t, 200)
	lease := r.body["lease_id"].(string)
	if n := waitersOf(t, a, "w"); n != 0 {
		t.Fatalf("waiters of a lock nobody waits for: %d", n)
	}
	bob := startWaiting(t, a, "tokB", "w", `{"ttl_seconds":60,"wait_seconds":30}`)
	waitUntil(t, "bob queued", func() bool { return waitersOf(t, a, "w") == 1 })
	// One attempt (no wait_seconds, or 0) while bob waits: 409, no barging.
	for _, body := range []string{`{"ttl_seconds":60}`, `{"ttl_seconds":60,"wait_seconds":0}`, `{"ttl_seconds":60,"wait_seconds":null}`} {
		lkDo(t, a, "POST", "/locks/w/acquire", "tokC", body).expect(t, 409)
	}
	lkDo(t, a, "POST", "/locks/w/release", "tokA", `{"lease_id":"`+lease+`"}`).expect(t, 200)
	if res := <-bob.done; res == nil || res.StatusCode != 200 || res.body["status"] != "acquired" ||
		res.body["holder"] != "bob" || res.body["fencing_token"].(float64) != 2 {
		t.Fatalf("bob after the release: %+v", res)
	}

	// A wait that runs out is today's 409, naming the holder.
	start := time.Now()
	c := lkDo(t, a, "POST", "/locks/w/acquire", "tokC", `{"ttl_seconds":60,"wait_seconds":1}`).expect(t, 409)
	if lk, _ := c.body["lock"].(map[string]any); lk["holder"] != "bob" || time.Since(start) < time.Second {
		t.Fatalf("carol after 1 s: %v after %s", c.body, time.Since(start))
	}
	if n := waitersOf(t, a, "w"); n != 0 {
		t.Fatalf("waiters after the wait ran out: %d", n)
	}
}

// wait_seconds is an integer 0..300; anything else is 422 naming it, and
// changes nothing.
func TestLockWaitValidation(t *testing.T) {
	a := waitStart(t, httpd.TestOptions{})
	r := lkDo(t, a, "POST", "/locks/v/acquire", "tokA", `{"ttl_seconds":60}`).expect(t, 200)
	for _, wait := range []string{`301`, `-1`, `1.5`, `"5"`, `true`, `[]`, `{}`, `1e9`, `99999999999999999999`} {
		body := `{"ttl_seconds":60,"wait_seconds":` + wait + `}`
		e := lkDo(t, a, "POST", "/locks/v/acquire", "tokB", body).expect(t, 422)
		if !strings.Contains(e.body["error"].(string), "wait_seconds") {
			t.Fatalf("%s: %v", body, e.body)
		}
	}
	e := lkDo(t, a, "POST", "/locks/v/acquire", "tokB", `{"ttl_seconds":60,"wait_seconds":5,"wait_seconds":6}`).expect(t, 422)
	if !strings.Contains(e.body["error"].(string), "wait_seconds is given more than once") {
		t.Fatalf("duplicate: %v", e.body)
	}
	s := lkDo(t, a, "GET", "/locks/v", "tokA", "").expect(t, 200)
	if s.body["lease_id"] != r.body["lease_id"] || s.body["waiters"].(float64) != 0 || s.body["fencing_token"].(float64) != 1 {
		t.Fatalf("after the refused requests: %v", s.body)
	}
}

// Beyond --max-waiters-per-lock a waiting acquire is 429 with Retry-After.
func TestLockWaitQueueFull(t *testing.T) {
	a := waitStart(t, httpd.TestOptions{Locks: actors.LockConfig{MaxWaiters: 1}})
	lkDo(t, a, "POST", "/locks/f/acquire", "tokA", `{"ttl_seconds":20}`).expect(t, 200)
	bob := startWaiting(t, a, "tokB", "f", `{"ttl_seconds":60,"wait_seconds":30}`)
	defer bob.leave()
	waitUntil(t, "bob queued", func() bool { return waitersOf(t, a, "f") == 1 })
	r := lkDo(t, a, "POST", "/locks/f/acquire", "tokC", `{"ttl_seconds":60,"wait_seconds":30}`).expect(t, 429)
	if ra := r.header.Get("Retry-After"); ra != "20" && ra != "19" {
		t.Fatalf("Retry-After %q, want the hold's remaining 20 s", ra)
	}
}

// waiter is a waiting acquire sent through the contract checker on a
// connection of its own: leave() cancels it, which closes the connection.
type waiter struct {
	leave context.CancelFunc
	done  chan *waitAnswer // the answer (nil after leave)
}

type waitAnswer struct {
	StatusCode int
	Header     http.Header
	body       map[string]any
}

func startWaiting(t *testing.T, a *httpd.TestServer, token, name, body string) *waiter {
	t.Helper()
	return startWaitingPath(t, a, token, "/locks/"+name+"/acquire", body)
}

// startWaitingPath is startWaiting for any POST path (a semaphore's).
func startWaitingPath(t *testing.T, a *httpd.TestServer, token, path, body string) *waiter {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, "POST", a.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	hc := apitest.Client(t, &http.Client{Transport: &http.Transport{}})
	w := &waiter{leave: cancel, done: make(chan *waitAnswer, 1)}
	go func() {
		res, err := hc.Do(req)
		if err != nil {
			w.done <- nil
			return
		}
		defer res.Body.Close()
		a := &waitAnswer{StatusCode: res.StatusCode, Header: res.Header}
		if b, err := io.ReadAll(res.Body); err == nil {
			_ = json.Unmarshal(b, &a.body)
		}
		w.done <- a
	}()
	return w
}

// A waiter whose client closes its connection leaves the queue and is
// never granted.
func TestLockWaitClientLeaves(t *testing.T) {
	a := waitStart(t, httpd.TestOptions{})
	r := lkDo(t, a, "POST", "/locks/g/acquire", "tokA", `{"ttl_seconds":60}`).expect(t, 200)
	w := startWaiting(t, a, "tokB", "g", `{"ttl_seconds":60,"wait_seconds":60}`)
	waitUntil(t, "bob queued", func() bool { return waitersOf(t, a, "g") == 1 })
	w.leave()
	waitUntil(t, "bob gone from the queue", func() bool { return waitersOf(t, a, "g") == 0 })
	lkDo(t, a, "POST", "/locks/g/release", "tokA", `{"lease_id":"`+r.body["lease_id"].(string)+`"}`).expect(t, 200)
	if s := lkDo(t, a, "GET", "/locks/g", "tokA", "").expect(t, 200); s.body["status"] != "available" {
		t.Fatalf("granted to a client that left: %v", s.body)
	}
}

// Waiting acquires do not count against --max-inflight (a server whose
// in-flight slots are all taken by waiters still answers), and are capped
// by --max-waiting (503 beyond).
func TestLockWaitNotInFlight(t *testing.T) {
	a := waitStart(t, httpd.TestOptions{Server: httpd.ServerConfig{MaxInFlight: 2, MaxWaiting: 3}})
	lkDo(t, a, "POST", "/locks/i/acquire", "tokA", `{"ttl_seconds":60}`).expect(t, 200)
	var ws []*waiter
	for i := 0; i < 3; i++ {
		ws = append(ws, startWaiting(t, a, "tokB", "i", fmt.Sprintf(`{"ttl_seconds":60,"wait_seconds":60,"holder_id":"w%d"}`, i)))
		waitUntil(t, "queued", func() bool { return waitersOf(t, a, "i") == i+1 })
	}
	r := lkDo(t, a, "POST", "/locks/i/acquire", "tokC", `{"ttl_seconds":60,"wait_seconds":60}`).expect(t, 503)
	if r.header.Get("Retry-After") == "" || !strings.Contains(r.body["error"].(string), "waiting") {
		t.Fatalf("a fourth waiter: %v %v", r.header, r.body)
	}
	// Three waiters and two in-flight slots: requests are still served.
	for i := 0; i < 5; i++ {
		lkDo(t, a, "POST", "/locks/other/acquire", "tokC", `{"ttl_seconds":60}`).expect(t, 200)
	}
	for _, w := range ws {
		w.leave()
	}
}

// A shutdown answers waiters 503 at once, without waiting for the
// shutdown grace.
func TestLockWaitShutdown(t *testing.T) {
	a := waitStart(t, httpd.TestOptions{Server: httpd.ServerConfig{ShutdownTimeout: time.Minute}})
	lkDo(t, a, "POST", "/locks/s/acquire", "tokA", `{"ttl_seconds":60}`).expect(t, 200)
	w := startWaiting(t, a, "tokB", "s", `{"ttl_seconds":60,"wait_seconds":300}`)
	waitUntil(t, "bob queued", func() bool { return waitersOf(t, a, "s") == 1 })
	closed := make(chan error, 1)
	start := time.Now()
	go func() { closed <- a.Close() }()
	res := <-w.done
	if res == nil || res.StatusCode != 503 || res.Header.Get("Retry-After") == "" {
		t.Fatalf("waiter at shutdown: %+v", res)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("shutdown with a waiter took %s: it waited for the waiter", d)
	}
}
