package tui

import (
	"context"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/octostore/octostore/httpd/apitest"
	"github.com/octostore/octostore/tools/client"
	"github.com/octostore/octostore/tools/client/clienttest"
)

// driver runs a model the way Bubble Tea does, minus the terminal: each
// command on its own goroutine, each resulting message through Update on
// the test goroutine.
type driver struct {
	t    *testing.T
	m    *Model
	msgs chan tea.Msg
	done chan struct{}
}

func newDriver(t *testing.T, m *Model) *driver {
	d := &driver{t: t, m: m, msgs: make(chan tea.Msg, 1024), done: make(chan struct{})}
	t.Cleanup(func() { close(d.done); m.Close() })
	d.run(m.Init())
	return d
}

func (d *driver) run(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	go func() {
		msg := cmd()
		select {
		case d.msgs <- msg:
		case <-d.done:
		}
	}()
}

func (d *driver) handle(msg tea.Msg) {
	switch msg := msg.(type) {
	case nil, tea.QuitMsg:
	case tea.BatchMsg:
		for _, c := range msg {
			d.run(c)
		}
	default:
		_, cmd := d.m.Update(msg)
		d.run(cmd)
	}
}

// until handles messages until cond holds (checked after each one).
func (d *driver) until(what string, cond func() bool) {
	d.t.Helper()
	timeout := time.After(10 * time.Second)
	for !cond() {
		select {
		case msg := <-d.msgs:
			d.handle(msg)
		case <-timeout:
			d.t.Fatalf("timed out waiting for %s; view:\n%s", what, d.m.View())
		}
	}
}

func (d *driver) key(k string) { d.handle(keyMsg(k)) }

// TestDriverAgainstFakeServer runs the real commands (client calls,
// stream reading, reconnects) against the in-memory fake of the API.
func TestDriverAgainstFakeServer(t *testing.T) {
	srv := clienttest.New(map[string]string{"tokA": "alice"})
	defer srv.Close()
	ctx := context.Background()
	// Every exchange, the view's included, is checked against docs/openapi.yaml.
	checked := []client.Option{client.WithTransport(apitest.FastTransport(t, nil)), client.WithHTTPClient(apitest.Client(t, nil))}
	alice, _ := client.New(srv.URL, "tokA", checked...)
	// A lock held before the view starts comes from the listing.
	if _, err := alice.Acquire(ctx, "early", time.Minute); err != nil {
		t.Fatal(err)
	}
	// A user token: the fake lists only the caller's own flags.
	api, _ := client.New(srv.URL, "tokA", append(checked, client.WithRetries(0))...)
	m := New(Config{API: api, Server: srv.URL, Tick: 20 * time.Millisecond, MetricsEvery: 50 * time.Millisecond,
		PollEvery: 20 * time.Millisecond, Backoff: func(int) time.Duration { return 10 * time.Millisecond }})
	d := newDriver(t, m)
	d.handle(tea.WindowSizeMsg{Width: 80, Height: 24})
	d.until("live", func() bool { return m.state == connLive })
	if m.locks.Get("early") == nil {
		t.Fatalf("listed lock missing:\n%s", m.View())
	}

	l, err := alice.Acquire(ctx, "job-1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	d.until("job-1 on screen", func() bool { return strings.Contains(m.View(), "job-1") })
	if r := m.locks.Get("job-1"); r.Holder != "alice" || r.Token != l.FencingToken || r.AcquiredAt.IsZero() {
		t.Fatalf("row %+v", r)
	}
	if err := alice.Release(ctx, "job-1", l.LeaseID); err != nil {
		t.Fatal(err)
	}
	d.until("job-1 gone", func() bool { return !strings.Contains(m.View(), "job-1") })

	// Flags refresh by listing when a flag event comes while they show.
	for range 4 { // semaphores, sessions, limits, flags
		d.key("tab")
	}
	d.until("flags listed", func() bool { return m.lists[viewFlags].loaded })
	if _, err := alice.SetFlag(ctx, "beta", client.FlagSpec{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	d.until("beta listed", func() bool { return strings.Contains(m.View(), "beta") })
	for range 4 {
		d.key("shift+tab")
	}

	// Sessions: listed while shown (keepalives publish nothing: polled),
	// gone when closed.
	d.key("tab")
	d.key("tab")
	sess, err := alice.CreateSession(ctx, time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.AcquireWith(ctx, "in-session", 0, client.AcquireOptions{SessionID: sess.SessionID}); err != nil {
		t.Fatal(err)
	}
	d.until("the session listed", func() bool { return strings.Contains(m.View(), shortID(sess.SessionID)) })
	if !strings.Contains(m.View(), "in-session") {
		t.Fatalf("the session's lock is not shown:\n%s", m.View())
	}
	if _, err := alice.CloseSession(ctx, sess.SessionID); err != nil {
		t.Fatal(err)
	}
	d.until("the session gone", func() bool { return !strings.Contains(m.View(), shortID(sess.SessionID)) })
	d.key("shift+tab")
	d.key("shift+tab")

	// Cut off as lagged: the view resyncs at once.
	gen := m.gen
	srv.Publish(map[string]any{"type": "lagged", "owner": "alice"})
	d.until("resynced after lagged", func() bool { return m.gen > gen && m.state == connLive })
	if m.locks.Get("early") == nil {
		t.Fatal("resync lost the table")
	}
	// Events flow on the new stream.
	if _, err := alice.Acquire(ctx, "job-2", time.Minute); err != nil {
		t.Fatal(err)
	}
	d.until("job-2 on screen", func() bool { return m.locks.Get("job-2") != nil })

	// /metrics is for the admin only: the header says n/a.
	d.until("metrics n/a", func() bool { return m.metricsNA })
	if !strings.Contains(m.View(), "ops/s n/a") {
		t.Fatalf("header:\n%s", m.View())
	}

	if cmd := func() tea.Cmd { _, c := m.Update(keyMsg("q")); return c }(); !isQuit(cmd) {
		t.Fatal("q does not quit")
	}
}

// With a token the server does not know, the real client's 401 stops the
// view on "unauthorized: check --token".
func TestDriverWrongToken(t *testing.T) {
	srv := clienttest.New(map[string]string{"tokA": "alice"})
	defer srv.Close()
	api, _ := client.New(srv.URL, "wrong", client.WithRetries(0))
	m := New(Config{API: api, Server: srv.URL, Tick: 20 * time.Millisecond,
		Backoff: func(int) time.Duration { return 10 * time.Millisecond }})
	d := newDriver(t, m)
	d.handle(tea.WindowSizeMsg{Width: 80, Height: 24})
	d.until("refused", func() bool { return m.state == connRefused })
	if v := m.View(); !strings.Contains(strings.Split(v, "\n")[0], "unauthorized: check --token") {
		t.Fatalf("view:\n%s", v)
	}
}
