package httpd_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/httpd"
	"github.com/octostore/octostore/httpd/apitest"
	"github.com/octostore/octostore/tools/client"
)

// evOptions are the options of the event tests' servers.
func evOptions(t *testing.T, dbPath string) httpd.TestOptions {
	t.Helper()
	if dbPath == "" {
		dbPath = filepath.Join(t.TempDir(), "db")
	}
	return httpd.TestOptions{
		DBPath:       dbPath,
		StaticTokens: map[string]string{"tokA": "alice", "tokB": "bob"},
		AdminKey:     "adminkey",
	}
}

// evStart starts a server with the options, closed at cleanup.
func evStart(t *testing.T, o httpd.TestOptions) *httpd.TestServer {
	t.Helper()
	return httpd.MustStartTestServer(t, o)
}

func evClient(t testing.TB, a *httpd.TestServer, token string) *client.Client {
	t.Helper()
	c, err := client.New(a.URL(), token, client.WithRetries(0), // every exchange checked against docs/openapi.yaml
		client.WithTransport(apitest.FastTransport(t, nil)), client.WithHTTPClient(apitest.Client(t, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// subscribe opens /events for c, closed at cleanup.
func subscribe(t *testing.T, c *client.Client, f client.EventFilter) *client.EventStream {
	t.Helper()
	s, err := c.Events(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// next returns the next event of s, failing after d.
func next(t *testing.T, s *client.EventStream, d time.Duration) client.Event {
	t.Helper()
	select {
	case e, ok := <-s.C:
		if !ok {
			t.Fatalf("stream ended: %v", s.Err())
		}
		return e
	case <-time.After(d):
		t.Fatalf("no event within %s", d)
	}
	return client.Event{}
}

// waitFor polls cond (a cheap in-process read) until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestEventsInOrder(t *testing.T) {
	a := evStart(t, evOptions(t, ""))
	alice := evClient(t, a, "tokA")
	s := subscribe(t, alice, client.EventFilter{})
	ctx := context.Background()

	l, err := alice.Acquire(ctx, "build", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Renew(ctx, "build", l.LeaseID, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := alice.Release(ctx, "build", l.LeaseID); err != nil {
		t.Fatal(err)
	}
	l2, err := alice.Acquire(ctx, "build", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		typ   string
		token uint64
	}{{"lock.acquired", 1}, {"lock.renewed", 1}, {"lock.released", 1}, {"lock.acquired", 2}}
	var last uint64
	for i, w := range want {
		e := next(t, s, 5*time.Second)
		if e.Type != w.typ || e.Name != "build" || e.Kind != "lock" || e.FencingToken != w.token || e.Holder != "alice" {
			t.Fatalf("event %d = %+v, want %s token %d", i, e, w.typ, w.token)
		}
		if e.Seq != last+1 || e.ID != a.Events.ID(e.Seq) {
			t.Fatalf("event %d: seq %d (id %q) after %d", i, e.Seq, e.ID, last)
		}
		last = e.Seq
		if e.LeaseID == "" {
			t.Fatalf("holder's own event without lease id: %+v", e)
		}
		if e.Time.IsZero() {
			t.Fatalf("event without time: %+v", e)
		}
	}
	if l2.FencingToken != 2 {
		t.Fatalf("second grant token %d", l2.FencingToken)
	}
}

func TestEventsWireFormat(t *testing.T) {
	o := evOptions(t, "")
	o.Server.EventHeartbeat = 20 * time.Millisecond
	a := evStart(t, o)
	conn, r := rawStream(t, a, "/events?kind=lock", "tokA")
	defer conn.Close()
	alice := evClient(t, a, "tokA")
	if _, err := alice.Acquire(context.Background(), "wire", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	var frame []string
	sawPing := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v (frame so far %q)", err, frame)
		}
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, ":") { // ": subscribed", ": ping"
			sawPing = sawPing || line == ": ping"
			continue
		}
		if line == "" {
			if len(frame) > 0 {
				break
			}
			continue
		}
		frame = append(frame, line)
	}
	if len(frame) != 3 || !strings.HasPrefix(frame[0], "id: ") || frame[1] != "event: lock.acquired" || !strings.HasPrefix(frame[2], "data: {") {
		t.Fatalf("frame = %q", frame)
	}
	data := strings.TrimPrefix(frame[2], "data: ")
	for _, f := range []string{`"type":"lock.acquired"`, `"kind":"lock"`, `"name":"wire"`, `"holder":"alice"`, `"fencing_token":1`, `"lease_id":"`, `"expires_at":"`, `"time":"`} {
		if !strings.Contains(data, f) {
			t.Errorf("data %s lacks %s", data, f)
		}
	}
	if !strings.Contains(data, `"seq":1,`) || frame[0] != "id: "+a.Events.ID(1) {
		t.Errorf("the stream's first event is not numbered 1 with the id %s: %q", a.Events.ID(1), frame)
	}
	// Heartbeats arrive on an idle stream.
	for !sawPing {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		sawPing = strings.TrimSpace(line) == ": ping"
	}
}

// rawStream opens an event stream over a plain TCP connection and reads the
// response headers and the first (hello) frame. rcvbuf > 0 shrinks the
// socket's receive buffer.
func rawStream(t *testing.T, a *httpd.TestServer, path, token string) (net.Conn, *bufio.Reader) {
	t.Helper()
	return rawStreamBuf(t, a, path, token, 0)
}

func rawStreamBuf(t *testing.T, a *httpd.TestServer, path, token string, rcvbuf int) (net.Conn, *bufio.Reader) {
	t.Helper()
	d := net.Dialer{}
	if rcvbuf > 0 {
		d.Control = func(network, address string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	conn, err := d.Dial("tcp", a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n", path, token)
	r := bufio.NewReaderSize(conn, 512)
	status, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(status, " 200 ") {
		t.Fatalf("status line %q", status)
	}
	headers := ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
		headers += line
	}
	if !strings.Contains(headers, "text/event-stream") || !strings.Contains(headers, "chunked") {
		t.Fatalf("headers %q", headers)
	}
	return conn, bufio.NewReader(&chunkReader{r: r})
}

// chunkReader decodes a chunked body.
type chunkReader struct {
	r    *bufio.Reader
	left int
	eof  bool
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.eof {
		return 0, io.EOF
	}
	if c.left == 0 {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return 0, err
		}
		var n int
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "%x", &n); err != nil {
			return 0, fmt.Errorf("chunk size %q: %w", line, err)
		}
		if n == 0 {
			c.eof = true
			return 0, io.EOF
		}
		c.left = n
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= n
	if c.left == 0 && err == nil {
		if _, err := c.r.Discard(2); err != nil { // CRLF after the chunk
			return n, err
		}
	}
	return n, err
}

func TestEventsCrossUserFiltering(t *testing.T) {
	a := evStart(t, evOptions(t, ""))
	alice, bob, admin := evClient(t, a, "tokA"), evClient(t, a, "tokB"), evClient(t, a, "adminkey")
	sb := subscribe(t, bob, client.EventFilter{})
	sa := subscribe(t, admin, client.EventFilter{})
	sk := subscribe(t, bob, client.EventFilter{Kind: "flag"})
	sp := subscribe(t, bob, client.EventFilter{Prefix: "dep"})

	// Owner-scoped events straight into the broker (whatever publishes
	// them, the stream filters them the same way).
	// The broker sees owners by user id; streams show their logins.
	a.Events.Publish(actors.Event{Type: actors.EventFlagSet, Kind: "flag", Owner: a.UID(t, "alice"), Name: "beta", Time: time.Now()})
	a.Events.Publish(actors.Event{Type: actors.EventFlagSet, Kind: "flag", Owner: a.UID(t, "bob"), Name: "beta", Time: time.Now()})
	if _, err := alice.Acquire(context.Background(), "deploy", 30*time.Second); err != nil {
		t.Fatal(err)
	}

	// bob: his flag, alice's lock without its lease.
	if e := next(t, sb, 5*time.Second); e.Type != "flag.set" || e.Owner != "bob" {
		t.Fatalf("bob got %+v, want his own flag.set", e)
	}
	if e := next(t, sb, 5*time.Second); e.Type != "lock.acquired" || e.Holder != "alice" || e.LeaseID != "" {
		t.Fatalf("bob got %+v, want alice's lock without lease id", e)
	}
	// admin: everything, with the lease.
	if e := next(t, sa, 5*time.Second); e.Owner != "alice" {
		t.Fatalf("admin got %+v", e)
	}
	if e := next(t, sa, 5*time.Second); e.Owner != "bob" {
		t.Fatalf("admin got %+v", e)
	}
	if e := next(t, sa, 5*time.Second); e.Type != "lock.acquired" || e.LeaseID == "" {
		t.Fatalf("admin got %+v, want the lease id", e)
	}
	// kind and prefix filters.
	if e := next(t, sk, 5*time.Second); e.Type != "flag.set" || e.Owner != "bob" {
		t.Fatalf("kind=flag got %+v", e)
	}
	if e := next(t, sp, 5*time.Second); e.Name != "deploy" {
		t.Fatalf("prefix=dep got %+v", e)
	}
	// Nothing else is queued for bob: a marker event comes next.
	a.Events.Publish(actors.Event{Type: actors.EventFlagDeleted, Kind: "flag", Owner: a.UID(t, "bob"), Name: "marker"})
	if e := next(t, sb, 5*time.Second); e.Name != "marker" {
		t.Fatalf("bob got %+v before the marker", e)
	}
	if e := next(t, sk, 5*time.Second); e.Name != "marker" {
		t.Fatalf("kind=flag got %+v before the marker", e)
	}

	// Bad filters are refused.
	if _, err := bob.Events(context.Background(), client.EventFilter{Kind: "nope"}); !errors.Is(err, client.ErrValidation) {
		t.Fatalf("kind=nope: %v", err)
	}
	noauth := evClient(t, a, "")
	if _, err := noauth.Events(context.Background(), client.EventFilter{}); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("no token: %v", err)
	}
}

func TestEventsExpiryWithoutRequest(t *testing.T) {
	a := evStart(t, evOptions(t, ""))
	alice, bob := evClient(t, a, "tokA"), evClient(t, a, "tokB")
	s := subscribe(t, bob, client.EventFilter{Kind: "lock"})
	l, err := alice.Acquire(context.Background(), "short", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e := next(t, s, 5*time.Second); e.Type != "lock.acquired" {
		t.Fatalf("got %+v", e)
	}
	e := next(t, s, 5*time.Second) // nobody touches the lock meanwhile
	got := time.Now()
	if e.Type != "lock.expired" || e.Name != "short" || e.FencingToken != l.FencingToken || e.Holder != "alice" {
		t.Fatalf("got %+v, want lock.expired", e)
	}
	if late := got.Sub(l.ExpiresAt); late > time.Second || late < 0 {
		t.Fatalf("expiry event %s after expires_at %s", late, l.ExpiresAt)
	}
}

// TestEventsExpiryAfterRestart: the expiry timer of a lock recovered at
// start fires without any request.
func TestEventsExpiryAfterRestart(t *testing.T) {
	o := evOptions(t, "")
	a1, err := httpd.StartTestServer(t, o)
	if err != nil {
		t.Fatal(err)
	}
	c1 := evClient(t, a1, "tokA")
	l, err := c1.Acquire(context.Background(), "survivor", 4*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c1.CloseIdleConnections()
	if err := a1.Close(); err != nil {
		t.Fatal(err)
	}
	a2 := evStart(t, o)
	s := subscribe(t, evClient(t, a2, "adminkey"), client.EventFilter{})
	if time.Now().After(l.ExpiresAt) {
		t.Fatal("the restart took longer than the lock's TTL")
	}
	e := next(t, s, 6*time.Second)
	got := time.Now()
	if e.Type != "lock.expired" || e.Name != "survivor" || e.FencingToken != l.FencingToken {
		t.Fatalf("got %+v, want lock.expired of the recovered lock", e)
	}
	if late := got.Sub(l.ExpiresAt); late > time.Second || late < 0 {
		t.Fatalf("expiry event %s after expires_at", late)
	}
}

func TestWatchStartsWithState(t *testing.T) {
	a := evStart(t, evOptions(t, ""))
	alice, bob, admin := evClient(t, a, "tokA"), evClient(t, a, "tokB"), evClient(t, a, "adminkey")
	ctx := context.Background()

	// An available lock.
	w0, err := bob.WatchLock(ctx, "free")
	if err != nil {
		t.Fatal(err)
	}
	defer w0.Close()
	if e := next(t, w0, 5*time.Second); e.Type != "lock.state" || e.Holder != "" || e.Name != "free" {
		t.Fatalf("first event %+v, want an available lock.state", e)
	}

	l, err := alice.Acquire(ctx, "job", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Acquire(ctx, "other", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	wb, err := bob.WatchLock(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	defer wb.Close()
	wa, err := admin.WatchLock(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	defer wa.Close()
	e := next(t, wb, 5*time.Second)
	if e.Type != "lock.state" || e.Holder != "alice" || e.FencingToken != l.FencingToken || e.LeaseID != "" ||
		!e.ExpiresAt.Equal(l.ExpiresAt) {
		t.Fatalf("bob's first event %+v, want lock.state held by alice without lease", e)
	}
	if e := next(t, wa, 5*time.Second); e.Type != "lock.state" || e.LeaseID != l.LeaseID {
		t.Fatalf("admin's first event %+v, want the lease id", e)
	}
	if err := alice.Release(ctx, "other", mustLease(t, alice, "other")); err != nil {
		t.Fatal(err)
	}
	if err := alice.Release(ctx, "job", l.LeaseID); err != nil {
		t.Fatal(err)
	}
	if e := next(t, wb, 5*time.Second); e.Type != "lock.released" || e.Name != "job" {
		t.Fatalf("next event %+v, want job's release (not other's)", e)
	}
	select {
	case e := <-w0.C:
		t.Fatalf("watch of free got %+v", e)
	default:
	}
}

func mustLease(t *testing.T, c *client.Client, name string) string {
	t.Helper()
	ls, err := c.ListLocks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.Name == name {
			return l.LeaseID
		}
	}
	t.Fatalf("no lock %s", name)
	return ""
}

// TestWatchUnderChurn: whatever happens between subscribing and reading the
// state, a watcher sees a consistent history: the state, then only newer
// grants and their ends.
func TestWatchUnderChurn(t *testing.T) {
	a := evStart(t, evOptions(t, ""))
	alice, bob := evClient(t, a, "tokA"), evClient(t, a, "tokB")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil && i < 100000; i++ {
			l, err := alice.Acquire(ctx, "churn", 30*time.Second)
			if err != nil {
				continue
			}
			_ = alice.Release(ctx, "churn", l.LeaseID)
		}
	}()
	for i := 0; i < 10; i++ {
		w, err := bob.WatchLock(ctx, "churn")
		if err != nil {
			t.Fatal(err)
		}
		st := next(t, w, 5*time.Second)
		if st.Type != "lock.state" {
			t.Fatalf("first event %+v", st)
		}
		held, token := st.Holder != "", st.FencingToken
		for j := 0; j < 6; j++ {
			e := next(t, w, 5*time.Second)
			switch e.Type {
			case "lock.acquired":
				if held || e.FencingToken != token+1 {
					t.Fatalf("watch %d: %+v after state held=%v token=%d", i, e, held, token)
				}
				held, token = true, e.FencingToken
			case "lock.released", "lock.expired":
				if !held || e.FencingToken != token {
					t.Fatalf("watch %d: %+v after state held=%v token=%d", i, e, held, token)
				}
				held = false
			default:
				t.Fatalf("watch %d: unexpected %+v", i, e)
			}
		}
		w.Close()
	}
	cancel()
	wg.Wait()
}

// TestEventsSlowSubscriberIsCutOff: a subscriber that stops reading is cut
// off with a lagged event once its buffer is full, while the API and the
// other subscribers go on unaffected.
//
// Every step waits on a signal, never on time: the flood goes straight into
// the broker until the broker reports the cut, and the reading subscriber
// sees none of it (alice's flags are invisible to bob), so it cannot be cut
// too however slowly this machine runs it. The slow client keeps the
// default receive buffer: with a tiny one, Linux may leave a zero window to
// the sender's persist timer, whose backoff grows while the flood lasts.
func TestEventsSlowSubscriberIsCutOff(t *testing.T) {
	o := evOptions(t, "")
	o.Events.Buffer = 16
	o.Server.WriteTimeout = 10 * time.Minute // the blocked writer waits for the slow client to read at last
	a := evStart(t, o)
	conn, r := rawStream(t, a, "/events", "adminkey") // then reads nothing until the cut
	defer conn.Close()
	fast := subscribe(t, evClient(t, a, "tokB"), client.EventFilter{})
	alice := evClient(t, a, "tokA")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// API calls go on while the slow subscriber's buffer fills (each one
	// publishes an event for it).
	apiErr := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				apiErr <- nil
				return
			default:
			}
			if _, err := alice.SetFlag(ctx, fmt.Sprint("api-", i%8), client.FlagSpec{Enabled: i%2 == 0}); err != nil {
				apiErr <- err
				return
			}
		}
	}()
	big := strings.Repeat("x", 120)
	for i := 0; a.Events.Stats().Dropped == 0; i++ {
		if i == 10_000_000 {
			t.Fatal("10M events published and the slow subscriber was never cut off")
		}
		a.Events.Publish(actors.Event{Type: actors.EventFlagSet, Kind: "flag", Owner: "alice", Name: big, Time: time.Now()})
	}
	close(stop)
	if err := <-apiErr; err != nil {
		t.Fatalf("API call failed while a subscriber lagged: %v", err)
	}
	// The API keeps going after the cut.
	for i := 0; i < 20; i++ {
		if _, err := alice.SetFlag(ctx, "after", client.FlagSpec{Enabled: true}); err != nil {
			t.Fatalf("API call after the cut: %v", err)
		}
	}
	// The reading subscriber saw none of it and goes on: its next event is
	// the first it may see, numbered 1.
	if _, err := evClient(t, a, "tokB").Acquire(ctx, "after", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if e := next(t, fast, time.Minute); e.Type != "lock.acquired" || e.Name != "after" || e.Seq != 1 {
		t.Fatalf("the reading subscriber got %+v, want bob's lock.acquired numbered 1", e)
	}
	// The slow client, reading at last, finds its events, then lagged, then
	// the end of the stream.
	conn.SetReadDeadline(time.Now().Add(2 * time.Minute)) // a bound, not a wait: the server has everything sent
	var lastType string
	n := 0
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading the slow stream after %d events: %v", n, err)
		}
		if strings.HasPrefix(line, "event: ") {
			lastType = strings.TrimSpace(strings.TrimPrefix(line, "event: "))
			n++
		}
	}
	if lastType != "lagged" {
		t.Fatalf("slow stream's last event is %q after %d events, want lagged", lastType, n)
	}
	if st := a.Events.Stats(); st.Dropped != 1 || st.Subscribers != 1 {
		t.Fatalf("broker stats %+v, want exactly one cut and the reading subscriber open", st)
	}
}

func TestEventsDisconnectCleanup(t *testing.T) {
	o := evOptions(t, "")
	o.Server.EventHeartbeat = time.Hour // cleanup must not wait for a heartbeat
	a := evStart(t, o)
	c := evClient(t, a, "tokA")
	s1, err := c.Events(context.Background(), client.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.WatchLock(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	conn, _ := rawStream(t, a, "/events", "tokB")
	if n := a.Events.Stats().Subscribers; n != 3 {
		t.Fatalf("subscribers = %d, want 3", n)
	}
	s1.Close()
	w.Close()
	conn.Close()
	waitFor(t, 5*time.Second, "subscribers to drop to 0", func() bool { return a.Events.Stats().Subscribers == 0 })
}

func TestEventsShutdownEndsStreams(t *testing.T) {
	o := evOptions(t, "")
	o.Server.EventHeartbeat = time.Hour
	o.Server.ShutdownTimeout = time.Minute // a stream that held the shutdown up would show
	a, err := httpd.StartTestServer(t, o)
	if err != nil {
		t.Fatal(err)
	}
	c := evClient(t, a, "tokA")
	s, err := c.Events(context.Background(), client.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w, err := c.WatchLock(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	conn, _ := rawStream(t, a, "/events", "tokB") // never reads again
	defer conn.Close()

	done := make(chan error, 1)
	go func() { done <- a.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs with open event streams")
	}
	for _, st := range []*client.EventStream{s, w} {
		for range st.C {
		}
	}
	if n := a.Events.Stats().Subscribers; n != 0 {
		t.Fatalf("subscribers = %d after Close", n)
	}
}
