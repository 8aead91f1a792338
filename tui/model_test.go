package tui

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/octostore/octostore/tools/client"
)

// clock is a settable fake clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

var t0 = time.Date(2030, 5, 1, 12, 0, 0, 0, time.UTC)

// newTestModel returns a model at 80×24 with a fake clock, connected (a
// dummy stream) and in sync with the given locks.
func newTestModel(t *testing.T, locks ...client.LockInfo) (*Model, *clock) {
	t.Helper()
	clk := &clock{t: t0}
	m := New(Config{Server: "http://test:3000", Now: clk.now, Backoff: func(n int) time.Duration { return time.Duration(n) * time.Second }})
	t.Cleanup(m.cancel)
	update(t, m, tea.WindowSizeMsg{Width: 80, Height: 24})
	update(t, m, connectedMsg{gen: 1, stream: &client.EventStream{}})
	update(t, m, locksListedMsg{gen: 1, locks: locks})
	if m.state != connLive {
		t.Fatalf("state %v after the listing", m.state)
	}
	return m, clk
}

func update(t *testing.T, m *Model, msg tea.Msg) tea.Cmd {
	t.Helper()
	mm, cmd := m.Update(msg)
	if mm != m {
		t.Fatal("Update returned another model")
	}
	return cmd
}

func keyMsg(s string) tea.KeyMsg {
	switch s {
	case "enter":
		return tea.KeyMsg{Type: tea.KeyEnter}
	case "esc":
		return tea.KeyMsg{Type: tea.KeyEsc}
	case "tab":
		return tea.KeyMsg{Type: tea.KeyTab}
	case "shift+tab":
		return tea.KeyMsg{Type: tea.KeyShiftTab}
	case "up":
		return tea.KeyMsg{Type: tea.KeyUp}
	case "down":
		return tea.KeyMsg{Type: tea.KeyDown}
	case "pgup":
		return tea.KeyMsg{Type: tea.KeyPgUp}
	case "pgdown":
		return tea.KeyMsg{Type: tea.KeyPgDown}
	case "ctrl+c":
		return tea.KeyMsg{Type: tea.KeyCtrlC}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)}
}

func press(t *testing.T, m *Model, keys ...string) tea.Cmd {
	t.Helper()
	var cmds []tea.Cmd
	for _, k := range keys {
		cmds = append(cmds, update(t, m, keyMsg(k)))
	}
	return tea.Batch(cmds...)
}

func lockInfo(name, holder string, token uint64, exp time.Time) client.LockInfo {
	return client.LockInfo{Name: name, Holder: holder, FencingToken: token, ExpiresAt: exp}
}

func lockEvent(typ, name, holder string, token uint64, at, exp time.Time) client.Event {
	return client.Event{Type: typ, Kind: "lock", Name: name, Holder: holder, FencingToken: token, Time: at, ExpiresAt: exp}
}

// rowNames are the lock names in the table, in display order.
func rowNames(m *Model) []string {
	m.locks.rebuild()
	var out []string
	for _, r := range m.locks.view {
		out = append(out, r.Name)
	}
	return out
}

func mustContain(t *testing.T, view string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(view, s) {
			t.Fatalf("view lacks %q:\n%s", s, view)
		}
	}
}

func mustNotContain(t *testing.T, view string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if strings.Contains(view, s) {
			t.Fatalf("view has %q:\n%s", s, view)
		}
	}
}

// isQuit reports whether cmd (possibly a batch) quits the program.
func isQuit(cmd tea.Cmd) bool {
	if cmd == nil {
		return false
	}
	switch msg := cmd().(type) {
	case tea.QuitMsg:
		return true
	case tea.BatchMsg:
		for _, c := range msg {
			if isQuit(c) {
				return true
			}
		}
	}
	return false
}

func threeLocks() []client.LockInfo {
	exp := t0.Add(30 * time.Second)
	return []client.LockInfo{lockInfo("build", "alice", 3, exp), lockInfo("deploy", "bob", 7, exp), lockInfo("job", "alice", 1, exp)}
}

// --- keys ---

func TestKeyQuit(t *testing.T) {
	for _, k := range []string{"q", "ctrl+c"} {
		m, _ := newTestModel(t)
		if !isQuit(press(t, m, k)) || !m.quitting {
			t.Fatalf("%s does not quit", k)
		}
		if m.ctx.Err() == nil {
			t.Fatalf("%s leaves requests running", k)
		}
		if m.View() != "" {
			t.Fatal("view not cleared on quit")
		}
	}
	// ctrl+c quits while typing a filter; q is typed.
	m, _ := newTestModel(t)
	press(t, m, "/", "q")
	if m.quitting || m.input.Value() != "q" {
		t.Fatalf("q in the filter: quitting %v, filter %q", m.quitting, m.input.Value())
	}
	if !isQuit(press(t, m, "ctrl+c")) {
		t.Fatal("ctrl+c while filtering does not quit")
	}
}

func TestKeyMove(t *testing.T) {
	m, _ := newTestModel(t, threeLocks()...)
	sel := func() string { return m.locks.Selected().Name }
	if sel() != "build" {
		t.Fatalf("initial selection %s", sel())
	}
	steps := []struct{ key, want string }{
		{"j", "deploy"}, {"down", "job"}, {"j", "job"}, {"k", "deploy"}, {"up", "build"}, {"up", "build"},
		{"pgdown", "job"}, {"pgup", "build"},
	}
	for _, s := range steps {
		press(t, m, s.key)
		if sel() != s.want {
			t.Fatalf("after %s: selected %s, want %s", s.key, sel(), s.want)
		}
	}
	// Several runes in one message (fast typing) count one by one.
	press(t, m, "jj")
	if sel() != "job" {
		t.Fatalf("after jj: %s", sel())
	}
	// The cursor stays on its lock when another appears before it.
	update(t, m, eventsMsg{gen: 1, events: []client.Event{lockEvent("lock.acquired", "aaa", "carol", 1, t0, t0.Add(time.Minute))}})
	if sel() != "job" {
		t.Fatalf("selection moved to %s when a row was added", sel())
	}
	mustContain(t, m.View(), "▸ job")
}

func TestKeyFilter(t *testing.T) {
	m, _ := newTestModel(t, threeLocks()...)
	press(t, m, "/")
	if !m.filtering {
		t.Fatal("/ does not start the filter")
	}
	press(t, m, "b", "u")
	if got := rowNames(m); fmt.Sprint(got) != "[build]" {
		t.Fatalf("filter bu: %v", got)
	}
	v := m.View()
	mustContain(t, v, "/bu", "enter keep filter")
	press(t, m, "enter")
	if m.filtering || m.input.Value() != "bu" {
		t.Fatalf("enter: filtering %v, value %q", m.filtering, m.input.Value())
	}
	mustContain(t, m.View(), "filter /bu")
	// esc outside the filter clears it.
	press(t, m, "esc")
	if got := rowNames(m); len(got) != 3 {
		t.Fatalf("after esc: %v", got)
	}
	// esc while typing clears it too.
	press(t, m, "/", "z", "esc")
	if m.filtering || m.input.Value() != "" || len(rowNames(m)) != 3 {
		t.Fatalf("esc while typing: filtering %v value %q rows %v", m.filtering, m.input.Value(), rowNames(m))
	}
	// No match says so.
	press(t, m, "/", "x", "enter")
	mustContain(t, m.View(), "no held lock matches /x")
	// Typed fast: "/de" in one message.
	press(t, m, "esc", "/de")
	if got := rowNames(m); fmt.Sprint(got) != "[deploy]" {
		t.Fatalf("filter /de typed at once: %v", got)
	}
}

func TestKeyDetail(t *testing.T) {
	m, clk := newTestModel(t, threeLocks()...)
	update(t, m, eventsMsg{gen: 1, events: []client.Event{
		lockEvent("lock.renewed", "deploy", "bob", 7, t0.Add(time.Second), t0.Add(40*time.Second)),
	}})
	press(t, m, "j", "enter")
	if !m.detailOpen || m.detailName != "deploy" {
		t.Fatalf("enter: open %v name %q", m.detailOpen, m.detailName)
	}
	v := m.View()
	mustContain(t, v, "deploy  held by bob · token 7", "lock.renewed", "token 7")
	if lines := strings.Split(v, "\n"); len(lines) != 24 {
		t.Fatalf("%d lines with the detail pane", len(lines))
	}
	// Moving moves the detail with the cursor.
	press(t, m, "j")
	mustContain(t, m.View(), "job  held by alice", "no events for this lock")
	// The lock going away keeps the pane, saying so.
	clk.advance(time.Second)
	update(t, m, eventsMsg{gen: 1, events: []client.Event{lockEvent("lock.released", "job", "alice", 1, clk.now(), time.Time{})}})
	mustContain(t, m.View(), "job  not held", "lock.released")
	press(t, m, "esc")
	if m.detailOpen {
		t.Fatal("esc does not close the detail pane")
	}
	press(t, m, "enter", "enter")
	if m.detailOpen {
		t.Fatal("enter does not toggle the pane")
	}
	// Not on the list views.
	press(t, m, "tab", "tab", "tab", "enter")
	if m.detailOpen {
		t.Fatal("detail opened on the limits view")
	}
}

func TestKeyTabSwitchesViews(t *testing.T) {
	m, _ := newTestModel(t, threeLocks()...)
	// Listings started at connect are in flight.
	for v := viewLimits; v < numViews; v++ {
		if !m.lists[v].inFlight {
			t.Fatalf("%s not listed at connect", viewNames[v])
		}
	}
	want := []view{viewSemaphores, viewSessions, viewLimits, viewFlags, viewConfig, viewLocks}
	for _, w := range want {
		press(t, m, "tab")
		if m.active != w {
			t.Fatalf("tab: %v, want %v", m.active, w)
		}
	}
	press(t, m, "shift+tab")
	if m.active != viewConfig {
		t.Fatalf("shift+tab: %v", m.active)
	}
	mustContain(t, m.View(), "KEY", "DESCRIPTION", "loading…")
	update(t, m, configListedMsg{configs: []client.ConfigEntry{
		{Key: "db.url", Version: 3, UpdatedAt: t0.Add(-time.Minute), Description: "primary\x1b[31m"},
	}})
	v := m.View()
	mustContain(t, v, "db.url", "1m00s ago", "Config 1")
	mustNotContain(t, v, "\x1b[31m")
	press(t, m, "tab", "tab", "tab", "tab") // locks, semaphores, sessions, limits
	update(t, m, limitsListedMsg{limits: []client.LimitInfo{{Name: "api", MaxRequests: 10, WindowSeconds: 60, CurrentCount: 10, Allowed: false, ResetAt: t0.Add(5 * time.Second), Owner: "alice"}}})
	update(t, m, flagsListedMsg{flags: []client.Flag{{Name: "beta", Enabled: true, Percentage: ptr(30)}}})
	mustContain(t, m.View(), "api", "alice", "10/10", "1m00s", "no", "5s", "OWNER")
	press(t, m, "tab") // flags
	mustContain(t, m.View(), "beta", "on", "30%")
	mustNotContain(t, m.View(), "OWNER")
}

func ptr(n int) *int { return &n }

func TestKeyHelp(t *testing.T) {
	m, _ := newTestModel(t, threeLocks()...)
	mustContain(t, m.View(), "? help", "q quit")
	mustNotContain(t, m.View(), "previous view")
	press(t, m, "?")
	v := m.View()
	mustContain(t, v, "previous view", "page down", "refresh")
	if lines := strings.Split(v, "\n"); len(lines) != 24 {
		t.Fatalf("%d lines with full help", len(lines))
	}
	press(t, m, "?")
	mustNotContain(t, m.View(), "previous view")
}

func TestKeyRefresh(t *testing.T) {
	m, _ := newTestModel(t, threeLocks()...)
	cmd := press(t, m, "r")
	if m.state != connSyncing || cmd == nil {
		t.Fatalf("r: state %v, cmd %v", m.state, cmd != nil)
	}
	// Events during the refresh wait for the listing.
	update(t, m, eventsMsg{gen: 1, events: []client.Event{lockEvent("lock.released", "build", "alice", 3, t0, time.Time{})}})
	if len(m.pending) != 1 || len(rowNames(m)) != 3 {
		t.Fatalf("pending %d rows %v", len(m.pending), rowNames(m))
	}
	update(t, m, locksListedMsg{gen: 1, locks: threeLocks()})
	if got := fmt.Sprint(rowNames(m)); got != "[deploy job]" {
		t.Fatalf("after resync and replay: %s", got)
	}
	// r on a list view lists it again.
	update(t, m, limitsListedMsg{})
	press(t, m, "tab", "tab", "tab")
	if cmd := press(t, m, "r"); cmd == nil || !m.lists[viewLimits].inFlight {
		t.Fatal("r does not list limits")
	}
}

// --- stream and listing messages ---

func TestLockEventsLive(t *testing.T) {
	m, clk := newTestModel(t)
	exp := t0.Add(30 * time.Second)
	update(t, m, eventsMsg{gen: 1, events: []client.Event{lockEvent("lock.acquired", "build", "alice", 1, t0, exp)}})
	v := m.View()
	mustContain(t, v, "build", "alice", "30s", "Locks 1")
	if r := m.locks.Get("build"); r == nil || !clk.now().Before(r.highlightUntil) {
		t.Fatal("a new holder is not highlighted")
	}
	// Time drains.
	clk.advance(20 * time.Second)
	update(t, m, tickMsg(clk.now()))
	mustContain(t, m.View(), "10s", "20s")
	if r := m.locks.Get("build"); clk.now().Before(r.highlightUntil) {
		t.Fatal("still highlighted")
	}
	// Renewal moves the expiry and refills the bar.
	update(t, m, eventsMsg{gen: 1, events: []client.Event{lockEvent("lock.renewed", "build", "alice", 1, clk.now(), clk.now().Add(time.Minute))}})
	if r := m.locks.Get("build"); !r.ExpiresAt.Equal(clk.now().Add(time.Minute)) || barFraction(r, clk.now()) != 1 {
		t.Fatalf("renewed row %+v", r)
	}
	// A stale release (older token) changes nothing; the real one removes.
	update(t, m, eventsMsg{gen: 1, events: []client.Event{lockEvent("lock.released", "build", "alice", 0, clk.now(), time.Time{})}})
	if m.locks.Get("build") == nil {
		t.Fatal("stale release removed the lock")
	}
	update(t, m, eventsMsg{gen: 1, events: []client.Event{
		lockEvent("lock.released", "build", "alice", 1, clk.now(), time.Time{}),
		lockEvent("lock.acquired", "build", "bob", 2, clk.now(), clk.now().Add(time.Minute)),
		lockEvent("lock.acquired", "other", "bob", 4, clk.now(), clk.now().Add(time.Second)),
	}})
	if r := m.locks.Get("build"); r == nil || r.Holder != "bob" || r.Token != 2 {
		t.Fatalf("new holder %+v", r)
	}
	clk.advance(time.Second)
	update(t, m, eventsMsg{gen: 1, events: []client.Event{lockEvent("lock.expired", "other", "bob", 4, clk.now(), clk.now())}})
	if m.locks.Get("other") != nil {
		t.Fatal("expired lock still shown")
	}
	mustNotContain(t, m.View(), "other")
	// Events of another generation are dropped.
	update(t, m, eventsMsg{gen: 0, events: []client.Event{lockEvent("lock.acquired", "ghost", "x", 1, t0, exp)}})
	if m.locks.Get("ghost") != nil {
		t.Fatal("stale generation applied")
	}
	// Non-lock events only refresh their view: the visible one at once,
	// the others when shown.
	update(t, m, limitsListedMsg{})
	update(t, m, flagsListedMsg{})
	press(t, m, "tab", "tab", "tab") // limits
	cmd := update(t, m, eventsMsg{gen: 1, events: []client.Event{
		{Type: "limit.denied", Kind: "limit", Name: "api"}, {Type: "flag.set", Kind: "flag", Name: "beta"},
	}})
	if cmd == nil || !m.lists[viewLimits].inFlight || !m.lists[viewFlags].dirty || m.lists[viewFlags].inFlight {
		t.Fatalf("lists after events: %+v", m.lists)
	}
	// A second event while the listing is in flight lists again after it.
	update(t, m, eventsMsg{gen: 1, events: []client.Event{{Type: "limit.reset", Kind: "limit", Name: "api"}}})
	if cmd := update(t, m, limitsListedMsg{}); cmd == nil {
		t.Fatal("no second listing after an event during the first")
	}
	if cmd := press(t, m, "tab"); cmd == nil || !m.lists[viewFlags].inFlight {
		t.Fatal("dirty flags not listed when shown")
	}
}

func TestResyncMergesEventsDuringListing(t *testing.T) {
	m, _ := newTestModel(t)
	update(t, m, streamEndedMsg{gen: 1, err: errors.New("boom")})
	update(t, m, reconnectMsg{gen: 2})
	update(t, m, connectedMsg{gen: 2, stream: &client.EventStream{}})
	if m.state != connSyncing {
		t.Fatalf("state %v", m.state)
	}
	exp := t0.Add(time.Minute)
	// While GET /locks is in flight: a (newer) grant of x, the release of
	// y's grant that the listing will still show, a grant of z released
	// before the listing.
	update(t, m, eventsMsg{gen: 2, events: []client.Event{
		lockEvent("lock.acquired", "x", "bob", 5, t0, exp),
		lockEvent("lock.released", "y", "alice", 2, t0, time.Time{}),
		lockEvent("lock.acquired", "z", "carol", 9, t0, exp),
		lockEvent("lock.released", "z", "carol", 9, t0, time.Time{}),
	}})
	if len(rowNames(m)) != 0 {
		t.Fatalf("applied before the listing: %v", rowNames(m))
	}
	update(t, m, locksListedMsg{gen: 2, locks: []client.LockInfo{lockInfo("x", "alice", 4, exp), lockInfo("y", "alice", 2, exp), lockInfo("w", "dan", 1, exp)}})
	if got := fmt.Sprint(rowNames(m)); got != "[w x]" || m.locks.Get("x").Holder != "bob" {
		t.Fatalf("after resync: %s, x %+v", got, m.locks.Get("x"))
	}
	if m.state != connLive || m.attempt != 0 {
		t.Fatalf("state %v attempt %d", m.state, m.attempt)
	}
	mustContain(t, m.View(), "● live")
}

func TestReconnect(t *testing.T) {
	m, clk := newTestModel(t, threeLocks()...)
	cmd := update(t, m, streamEndedMsg{gen: 1, err: errors.New("read: connection reset by peer")})
	if cmd == nil || m.state != connWaiting || m.gen != 2 || m.attempt != 1 || m.stream != nil {
		t.Fatalf("after the stream ended: state %v gen %d attempt %d", m.state, m.gen, m.attempt)
	}
	v := m.View()
	mustContain(t, v, "offline, retry in 1s: connection reset by peer")
	mustContain(t, v, "build") // the last known table stays
	// Messages of the dead connection are ignored.
	update(t, m, locksListedMsg{gen: 1})
	update(t, m, streamEndedMsg{gen: 1})
	if m.gen != 2 || m.state != connWaiting {
		t.Fatal("stale messages changed the connection")
	}
	update(t, m, reconnectMsg{gen: 1})
	if m.state != connWaiting {
		t.Fatal("stale reconnect")
	}
	if cmd := update(t, m, reconnectMsg{gen: 2}); cmd == nil || m.state != connConnecting {
		t.Fatal("reconnect did not connect")
	}
	mustContain(t, m.View(), "reconnecting (attempt 2)")
	// A failed attempt backs off longer.
	update(t, m, connectFailedMsg{gen: 2, err: errors.New("server unreachable")})
	if m.attempt != 2 || !m.retryAt.Equal(clk.now().Add(2*time.Second)) {
		t.Fatalf("attempt %d retryAt %v", m.attempt, m.retryAt)
	}
	mustContain(t, m.View(), "offline, retry in 2s: server unreachable")
	update(t, m, reconnectMsg{gen: 3})
	// A stream from an attempt that was given up is closed, not used.
	if cmd := update(t, m, connectedMsg{gen: 2, stream: nil}); m.stream != nil {
		t.Fatalf("stale stream adopted (cmd %v)", cmd != nil)
	}
	update(t, m, connectedMsg{gen: 3, stream: &client.EventStream{}})
	mustContain(t, m.View(), "syncing")
	// A failed listing counts as a failed connection.
	update(t, m, locksListedMsg{gen: 3, err: errors.New("503")})
	if m.state != connWaiting || m.gen != 4 {
		t.Fatalf("failed listing: state %v gen %d", m.state, m.gen)
	}
	update(t, m, reconnectMsg{gen: 4})
	update(t, m, connectedMsg{gen: 4, stream: &client.EventStream{}})
	update(t, m, locksListedMsg{gen: 4, locks: threeLocks()[:1]})
	if m.state != connLive || m.attempt != 0 || fmt.Sprint(rowNames(m)) != "[build]" {
		t.Fatalf("after reconnect: state %v attempt %d rows %v", m.state, m.attempt, rowNames(m))
	}
}

func TestLaggedResyncsAtOnce(t *testing.T) {
	m, _ := newTestModel(t)
	update(t, m, streamEndedMsg{gen: 1, err: client.ErrLagged})
	if !m.retryAt.Equal(m.cfg.Now()) {
		t.Fatalf("lagged waits until %v", m.retryAt)
	}
	mustContain(t, m.View(), "fell behind")
	// A clean end of stream (server shutdown) reconnects too.
	update(t, m, reconnectMsg{gen: 2})
	update(t, m, connectedMsg{gen: 2, stream: &client.EventStream{}})
	update(t, m, streamEndedMsg{gen: 2})
	mustContain(t, m.View(), "offline, retry in 2s: the server ended")
}

const exposition = `# TYPE octostore_http_requests_total counter
octostore_http_requests_total{code="200",method="POST",route="/locks/{name}/acquire"} %d
octostore_http_requests_total{code="200",method="GET",route="/metrics"} 1000
octostore_http_request_duration_seconds_bucket{method="POST",route="/locks/{name}/acquire",le="0.001"} %d
octostore_http_request_duration_seconds_bucket{method="POST",route="/locks/{name}/acquire",le="0.002"} %d
octostore_http_request_duration_seconds_bucket{method="POST",route="/locks/{name}/acquire",le="+Inf"} %d
octostore_http_request_duration_seconds_bucket{method="GET",route="/metrics",le="+Inf"} 1000
`

func TestMetricsHeader(t *testing.T) {
	m, clk := newTestModel(t)
	mustContain(t, m.View(), "ops/s …")
	cmd := update(t, m, metricsMsg{at: clk.now(), text: fmt.Sprintf(exposition, 100, 100, 100, 100)})
	if cmd == nil {
		t.Fatal("no next scrape scheduled")
	}
	clk.advance(time.Second)
	// 200 requests in 1s: 100 under 1ms, 100 between 1 and 2ms.
	update(t, m, metricsMsg{at: clk.now(), text: fmt.Sprintf(exposition, 300, 200, 300, 300)})
	v := m.View()
	mustContain(t, v, "ops/s 200", "p99 2.0ms")
	if got := m.rates.p99; math.Abs(got-0.00198) > 1e-9 {
		t.Fatalf("p99 = %v", got)
	}
	if cmd := update(t, m, metricsTickMsg{}); cmd == nil {
		t.Fatal("tick does not scrape")
	}
	// A failing scrape keeps the last figures.
	update(t, m, metricsMsg{at: clk.now(), err: errors.New("timeout")})
	mustContain(t, m.View(), "ops/s 200")
	// Without the admin key: n/a, and no more scraping.
	m2, _ := newTestModel(t)
	if cmd := update(t, m2, metricsMsg{err: &client.APIError{Status: 403, Message: "admin only"}}); cmd != nil {
		t.Fatal("scrapes again after 403")
	}
	mustContain(t, m2.View(), "ops/s n/a  p99 n/a")
	if cmd := update(t, m2, metricsTickMsg{}); cmd != nil {
		t.Fatal("metrics tick scrapes after 403")
	}
}

func TestTickAndResize(t *testing.T) {
	m, clk := newTestModel(t, threeLocks()...)
	clk.advance(time.Second)
	if cmd := update(t, m, tickMsg(clk.now())); cmd == nil || !m.now.Equal(clk.now()) {
		t.Fatal("tick does not reschedule or advance the view clock")
	}
	for _, sz := range [][2]int{{80, 24}, {120, 40}, {60, 15}, {40, 10}, {80, 24}} {
		update(t, m, tea.WindowSizeMsg{Width: sz[0], Height: sz[1]})
		for _, open := range []bool{false, true} {
			if open != m.detailOpen {
				press(t, m, "enter")
			}
			v := m.View()
			lines := strings.Split(v, "\n")
			if len(lines) != sz[1] {
				t.Fatalf("%dx%d (detail %v): %d lines", sz[0], sz[1], open, len(lines))
			}
			for _, l := range lines {
				if w := lipgloss.Width(l); w > sz[0] {
					t.Fatalf("%dx%d: line of width %d: %q", sz[0], sz[1], w, l)
				}
			}
		}
		press(t, m, "enter") // close
	}
}

// TestMainViewAt80x24 pins the layout of the main view.
func TestMainViewAt80x24(t *testing.T) {
	m, clk := newTestModel(t, threeLocks()...)
	clk.advance(10 * time.Second)
	lines := strings.Split(m.View(), "\n")
	want := []string{
		"octostore  http://test:3000  ● live",
		" Locks 3  │  Semaphores 0  │  Sessions  │  Limits  │  Flags  │  Config",
		"  NAME                           HOLDER         TOKEN TIME LEFT         HELD FOR",
		"▸ build                          alice              3 ███████░░░    20s ≥10s",
		"  deploy                         bob                7 ███████░░░    20s ≥10s",
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Fatalf("line %d = %q\nwant prefix %q", i, lines[i], w)
		}
	}
	if !strings.HasPrefix(lines[23], "↑/k up • ↓/j down • / filter") {
		t.Fatalf("help line %q", lines[23])
	}
}

// A refused token (401, or 403) stops the reconnect loop and says so in
// full at 80 columns, as the CLI exits 5; r tries again.
func TestRefusedTokenStopsRetrying(t *testing.T) {
	for _, status := range []int{401, 403} {
		clk := &clock{t: t0}
		m := New(Config{Server: "http://octostore.example.internal:3000", Now: clk.now,
			Backoff: func(n int) time.Duration { return time.Second }})
		t.Cleanup(m.cancel)
		update(t, m, tea.WindowSizeMsg{Width: 80, Height: 24})
		err := fmt.Errorf("open events: %w", &client.APIError{Status: status, Message: "Invalid or missing token"})
		if cmd := update(t, m, connectFailedMsg{gen: 1, err: err}); cmd != nil || m.state != connRefused {
			t.Fatalf("%d: state %v, a retry scheduled: %v", status, m.state, cmd != nil)
		}
		lines := strings.Split(m.View(), "\n")
		if !strings.Contains(lines[0], "unauthorized: check --token") || lipgloss.Width(lines[0]) > 80 {
			t.Fatalf("%d: header %q", status, lines[0])
		}
		mustNotContain(t, m.View(), "retry in")
		// The list views say why they are empty.
		press(t, m, "tab")
		mustContain(t, m.View(), "the server refused the token")
		// r tries again, once.
		cmd := press(t, m, "r")
		if cmd == nil || m.state != connConnecting {
			t.Fatalf("%d: r: state %v", status, m.state)
		}
		update(t, m, connectFailedMsg{gen: m.gen, err: err})
		if m.state != connRefused {
			t.Fatalf("%d: after r: state %v", status, m.state)
		}
	}
	// Any other failure keeps retrying (the test above would pass on a
	// model that never retries at all).
	m, _ := newTestModel(t)
	if cmd := update(t, m, streamEndedMsg{gen: 1, err: &client.APIError{Status: 503, Message: "unavailable"}}); cmd == nil || m.state != connWaiting {
		t.Fatalf("503: state %v", m.state)
	}
	// A listing refused after a connection (token revoked meanwhile) stops too.
	update(t, m, reconnectMsg{gen: 2})
	update(t, m, connectedMsg{gen: 2, stream: &client.EventStream{}})
	update(t, m, locksListedMsg{gen: 2, err: fmt.Errorf("list: %w", client.ErrUnauthorized)})
	if m.state != connRefused || m.stream != nil || m.attempt != 0 {
		t.Fatalf("refused listing: state %v", m.state)
	}
}

// A stream the server ended because the token was revoked or rotated stops
// the reconnect loop (the token is refused from now on) and says why.
func TestRevokedTokenStopsRetrying(t *testing.T) {
	m, _ := newTestModel(t)
	if cmd := update(t, m, streamEndedMsg{gen: 1, err: client.ErrRevoked}); m.state != connRefused || m.attempt != 0 {
		t.Fatalf("revoked: state %v attempt %d (a retry scheduled: %v)", m.state, m.attempt, cmd != nil)
	}
	lines := strings.Split(m.View(), "\n")
	if !strings.Contains(lines[0], "token revoked or rotated") || lipgloss.Width(lines[0]) > 80 {
		t.Fatalf("header %q", lines[0])
	}
	mustNotContain(t, m.View(), "retry in")
}

// The relative times of the limits, flags and config views move with the
// clock on every tick, as the lock view's do.
func TestListViewsTick(t *testing.T) {
	m, clk := newTestModel(t)
	pct := 30
	update(t, m, limitsListedMsg{limits: []client.LimitInfo{{Name: "emails", MaxRequests: 10, WindowSeconds: 60,
		CurrentCount: 3, Remaining: 7, Allowed: true, ResetAt: t0.Add(40 * time.Second)}}})
	update(t, m, flagsListedMsg{flags: []client.Flag{{Name: "new-ui", Enabled: true, Percentage: &pct, UpdatedAt: t0.Add(-5 * time.Second)}}})
	update(t, m, configListedMsg{configs: []client.ConfigEntry{{Key: "app.db", Version: 2, UpdatedAt: t0.Add(-time.Minute)}}})
	for _, step := range []struct {
		tab         int
		before, now string
	}{
		{3, "40s", "25s"}, // past the semaphores and sessions
		{1, "5s ago", "20s ago"},
		{1, "1m00s ago", "1m15s ago"},
	} {
		press(t, m, "tab")
		for i := 1; i < step.tab; i++ {
			press(t, m, "tab")
		}
		mustContain(t, m.View(), step.before)
		clk.advance(15 * time.Second)
		update(t, m, tickMsg(clk.now()))
		v := m.View()
		mustContain(t, v, step.now)
		mustNotContain(t, v, " "+step.before)
		clk.advance(-15 * time.Second)
		update(t, m, tickMsg(clk.now()))
	}
}
