package tui

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/octostore/octostore/tools/client"
)

// The views of issue 16: semaphores, sessions, locks in lock-delay, the
// lock detail pane's waiters and metadata.

// lineOf returns the first line of view containing every sub ("" if none).
func lineOf(view string, subs ...string) string {
	for _, l := range strings.Split(view, "\n") {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			return l
		}
	}
	return ""
}

// fits fails unless the view has exactly h lines of at most w cells.
func fits(t *testing.T, what, view string, w, h int) {
	t.Helper()
	lines := strings.Split(view, "\n")
	if len(lines) != h {
		t.Fatalf("%s: %d lines, want %d:\n%s", what, len(lines), h, view)
	}
	for _, l := range lines {
		if lw := lipgloss.Width(l); lw > w {
			t.Fatalf("%s: a line of %d cells (max %d): %q", what, lw, w, l)
		}
	}
}

func TestSemaphoreView(t *testing.T) {
	m, clk := newTestModel(t)
	exp := t0.Add(30 * time.Second)
	pool := func(typ, holder string, token uint64, meta string) client.Event {
		e := semEvent(typ, "pool", holder, 3, token, exp)
		e.Metadata = meta
		return e
	}
	update(t, m, eventsMsg{gen: 1, events: []client.Event{
		pool("semaphore.acquired", "alice", 1, "host-1 pid 42"),
		pool("semaphore.acquired", "bob", 2, ""),
		pool("semaphore.acquired", "alice", 3, "host-2 pid 7"),
		semEvent("semaphore.acquired", "reports", "carol", 1, 9, exp),
	}})
	mustContain(t, m.View(), "Semaphores 2")
	// Showing the view reads the semaphores on screen (their waiters).
	if cmd := press(t, m, "tab"); cmd == nil || !m.semReading || m.active != viewSemaphores {
		t.Fatalf("tab to semaphores: cmd %v, reading %v", cmd != nil, m.semReading)
	}
	v := m.View()
	fits(t, "semaphores", v, 80, 24)
	if l := lineOf(v, "pool"); !strings.Contains(l, "3/3") || !strings.Contains(l, "alice ×2, bob") || !strings.Contains(l, "–") {
		t.Fatalf("pool row %q", l)
	}
	if l := lineOf(v, "reports"); !strings.Contains(l, "1/1") || !strings.Contains(l, "carol") {
		t.Fatalf("reports row %q", l)
	}
	// The read's answer: waiters, and bob's slot released meanwhile
	// (its event arrived after the read was sent).
	since := m.sems.Count()
	update(t, m, eventsMsg{gen: 1, events: []client.Event{pool("semaphore.released", "bob", 2, "")}})
	st := semState("pool", 3, 2, slot("alice", 1, exp), slot("bob", 2, exp), slot("alice", 3, exp))
	st.Holders[0].Metadata = "host-1 pid 42"
	update(t, m, semaphoresReadMsg{since: since, states: []client.SemaphoreState{st, semState("reports", 1, 0, slot("carol", 9, exp))}})
	if m.semReading {
		t.Fatal("still reading")
	}
	v = m.View()
	if l := lineOf(v, "pool"); !strings.Contains(l, "2/3") || !strings.Contains(l, "alice ×2") || strings.Contains(l, "bob") ||
		!strings.Contains(l, " 2 ") {
		t.Fatalf("pool row after the read %q", l)
	}
	// The detail pane: slots in grant order with their metadata, events.
	press(t, m, "enter")
	if !m.detailOpen || m.detailName != "pool" {
		t.Fatalf("enter: open %v name %q", m.detailOpen, m.detailName)
	}
	v = m.View()
	fits(t, "semaphore detail", v, 80, 24)
	mustContain(t, v, "pool  limit 3 · 2 held · 2 waiting", "semaphore.released")
	if l := lineOf(v, "token 1 "); !strings.Contains(l, "alice") || !strings.Contains(l, "host-1 pid 42") || !strings.Contains(l, "30s") {
		t.Fatalf("slot line %q", l)
	}
	// Time drains; an expiry removes the slot.
	clk.advance(10 * time.Second)
	update(t, m, tickMsg(clk.now()))
	mustContain(t, lineOf(m.View(), "token 1 "), "20s")
	update(t, m, eventsMsg{gen: 1, events: []client.Event{pool("semaphore.expired", "alice", 1, "")}})
	mustNotContain(t, m.View(), "token 1 ")
	// The cursor moves the pane.
	press(t, m, "j")
	mustContain(t, m.View(), "reports  limit 1 · 1 held")
	// Polling: a tick of the screen shown reads again; one of a screen
	// left since is dropped.
	if cmd := update(t, m, pollTickMsg{poll: m.poll}); cmd == nil || !m.semReading {
		t.Fatal("the poll does not read the semaphores shown")
	}
	old := m.poll
	press(t, m, "tab")
	if cmd := update(t, m, pollTickMsg{poll: old}); cmd != nil {
		t.Fatal("a poll of the semaphores view runs on the sessions view")
	}
	if m.detailOpen {
		t.Fatal("the detail pane stays open on another view")
	}
}

func TestSessionsView(t *testing.T) {
	m, clk := newTestModel(t)
	if !m.lists[viewSessions].inFlight {
		t.Fatal("sessions not listed at connect")
	}
	press(t, m, "tab", "tab")
	if m.active != viewSessions {
		t.Fatalf("view %v", m.active)
	}
	mustContain(t, m.View(), "loading…")
	sessions := []client.SessionInfo{
		{SessionID: "0b5a1f7e-1d2c-4e8a-9f00-0123456789ab", TTLSeconds: 60, LockDelaySeconds: 5, ExpiresAt: t0.Add(45 * time.Second),
			Locks: []string{"deploy", "shard-1"}, Semaphores: []string{"pool"}, Owner: "alice"},
		{SessionID: "9c3e7d10-0000-4000-8000-000000000001", TTLSeconds: 15, ExpiresAt: t0.Add(10 * time.Second), Owner: "bob"},
	}
	// A slot held under a session is read at once (it may predate the view).
	cmd := update(t, m, sessionsListedMsg{sessions: sessions})
	if cmd == nil || !m.semReading {
		t.Fatal("the session's semaphore is not read")
	}
	v := m.View()
	fits(t, "sessions", v, 80, 24)
	mustContain(t, v, "Sessions 2", "SESSION", "OWNER", "EXPIRES", "HOLDS")
	if l := lineOf(v, "0b5a1f7e…"); !strings.Contains(l, "alice") || !strings.Contains(l, "45s") || !strings.Contains(l, "1m00s") ||
		!strings.Contains(l, "5s") || !strings.Contains(l, "deploy, shard-1, sem:pool") {
		t.Fatalf("alice's session %q", l)
	}
	if l := lineOf(v, "9c3e7d10…"); !strings.Contains(l, "bob") || !strings.Contains(l, "10s") || !strings.Contains(l, "–") {
		t.Fatalf("bob's session %q", l)
	}
	// Expiries count down with the clock.
	clk.advance(5 * time.Second)
	update(t, m, tickMsg(clk.now()))
	mustContain(t, lineOf(m.View(), "0b5a1f7e…"), "40s")
	// A session event, or a hold under a session, lists them again.
	if cmd := update(t, m, eventsMsg{gen: 1, events: []client.Event{{Type: "session.created", Kind: "session", Name: "x", Owner: "alice"}}}); cmd == nil ||
		!m.lists[viewSessions].inFlight {
		t.Fatal("a session event does not list the sessions")
	}
	update(t, m, sessionsListedMsg{sessions: sessions})
	ev := lockEvent("lock.acquired", "deploy-2", "alice", 1, clk.now(), clk.now().Add(time.Minute))
	ev.SessionID = sessions[0].SessionID
	if cmd := update(t, m, eventsMsg{gen: 1, events: []client.Event{ev}}); cmd == nil || !m.lists[viewSessions].inFlight {
		t.Fatal("a lock taken under a session does not list the sessions")
	}
	update(t, m, sessionsListedMsg{sessions: sessions})
	// Keepalives publish nothing: the view polls while it shows.
	if cmd := update(t, m, pollTickMsg{poll: m.poll}); cmd == nil || !m.lists[viewSessions].inFlight {
		t.Fatal("the poll does not list the sessions")
	}
	// Filter by id prefix.
	update(t, m, sessionsListedMsg{sessions: sessions})
	press(t, m, "/", "9", "c", "enter")
	v = m.View()
	mustContain(t, v, "9c3e7d10…")
	mustNotContain(t, v, "0b5a1f7e…")
}

func TestLockDelayRows(t *testing.T) {
	m, clk := newTestModel(t, lockInfo("db", "alice", 4, t0.Add(10*time.Second)), lockInfo("job", "bob", 1, t0.Add(time.Minute)))
	clk.advance(10 * time.Second)
	e := lockEvent("lock.expired", "db", "alice", 4, clk.now(), t0.Add(10*time.Second))
	e.AvailableAt = t0.Add(15 * time.Second)
	update(t, m, eventsMsg{gen: 1, events: []client.Event{e}})
	v := m.View()
	fits(t, "delayed", v, 80, 24)
	if l := lineOf(v, "db"); !strings.Contains(l, "alice") || !strings.Contains(l, "delayed") || !strings.Contains(l, " 5s ") ||
		!strings.Contains(l, "▒") {
		t.Fatalf("delayed row %q", l)
	}
	mustContain(t, v, "Locks 1 ") // held ones only
	// Its detail says when it is free.
	press(t, m, "enter")
	mustContain(t, m.View(), "db  in lock-delay: alice's hold expired", "(in 5s)", "free at")
	press(t, m, "esc")
	// A resync does not list it (it is not held): it stays until its end.
	press(t, m, "r")
	update(t, m, locksListedMsg{gen: 1, locks: []client.LockInfo{lockInfo("job", "bob", 1, t0.Add(time.Minute))}})
	if r := m.locks.Get("db"); r == nil || !r.Delayed {
		t.Fatalf("the resync dropped the lock in delay: %+v", r)
	}
	// Over at available_at.
	clk.advance(5 * time.Second)
	update(t, m, tickMsg(clk.now()))
	if m.locks.Get("db") != nil {
		t.Fatal("still shown after its lock-delay")
	}
	// A grant after the delay replaces a delayed row at once; an expiry
	// without a delay removes the row as before.
	e2 := lockEvent("lock.expired", "job", "bob", 1, clk.now(), clk.now())
	e2.AvailableAt = clk.now().Add(time.Minute)
	update(t, m, eventsMsg{gen: 1, events: []client.Event{e2, lockEvent("lock.acquired", "job", "carol", 2, clk.now(), clk.now().Add(time.Minute))}})
	if r := m.locks.Get("job"); r == nil || r.Delayed || r.Holder != "carol" {
		t.Fatalf("the grant after the delay: %+v", r)
	}
	update(t, m, eventsMsg{gen: 1, events: []client.Event{lockEvent("lock.expired", "job", "carol", 2, clk.now(), clk.now())}})
	if m.locks.Get("job") != nil {
		t.Fatal("an expiry without lock-delay kept the row")
	}
}

func TestLockDetailWaitersAndMetadata(t *testing.T) {
	locks := threeLocks()
	locks[1].Metadata = "deploy #17 on build-3"
	locks[1].SessionID = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"
	m, _ := newTestModel(t, locks...)
	// Opening the pane reads the lock (the waiters publish no event).
	cmd := press(t, m, "j", "enter")
	if cmd == nil || !m.lockReading || m.detailName != "deploy" {
		t.Fatalf("enter: cmd %v reading %v name %q", cmd != nil, m.lockReading, m.detailName)
	}
	v := m.View()
	fits(t, "lock detail", v, 80, 24)
	mustContain(t, v, "waiters … · session 1b4e28ba… · metadata: deploy #17 on build-3")
	update(t, m, lockStatusMsg{name: "deploy", state: &client.LockState{Status: "held", Name: "deploy", Waiters: 2}})
	mustContain(t, m.View(), "waiters 2 · session")
	// A grant or release of the lock reads it again (the queue moved).
	renewed := lockEvent("lock.renewed", "deploy", "bob", 7, t0, t0.Add(time.Minute))
	renewed.Metadata = locks[1].Metadata // events carry the hold's metadata
	if cmd := update(t, m, eventsMsg{gen: 1, events: []client.Event{renewed}}); cmd == nil || !m.lockReading {
		t.Fatal("an event of the lock shown does not read it")
	}
	// Moving on: the answer for the old lock is dropped and the new one read.
	press(t, m, "j")
	if m.detailName != "job" {
		t.Fatalf("detail %q", m.detailName)
	}
	if cmd := update(t, m, lockStatusMsg{name: "deploy", state: &client.LockState{Status: "held", Waiters: 9}}); cmd == nil || !m.lockReading {
		t.Fatal("the moved pane is not read")
	}
	mustContain(t, m.View(), "job  held by alice", "waiters …")
	mustNotContain(t, m.View(), "waiters 9")
	// The metadata of an event replaces the hold's.
	ev := lockEvent("lock.renewed", "job", "alice", 1, t0, t0.Add(time.Minute))
	ev.Metadata = "nightly\x1b[31m run"
	update(t, m, eventsMsg{gen: 1, events: []client.Event{ev}})
	update(t, m, lockStatusMsg{name: "job", state: &client.LockState{Status: "held", Waiters: 0}})
	v = m.View()
	mustContain(t, v, "waiters 0 · metadata: nightly")
	mustNotContain(t, v, "\x1b[31m")
	// Closing the pane stops the polling.
	press(t, m, "esc")
	if cmd := update(t, m, pollTickMsg{poll: m.poll}); cmd != nil {
		t.Fatal("polls with the pane closed")
	}
	// Wide terminals have a metadata column; 80 columns do not.
	mustNotContain(t, m.View(), "METADATA")
	update(t, m, tea.WindowSizeMsg{Width: 120, Height: 30})
	v = m.View()
	fits(t, "120 columns", v, 120, 30)
	if !strings.Contains(v, "METADATA") || !strings.Contains(lineOf(v, "deploy", "bob"), "deploy #17 on build-3") {
		t.Fatalf("no metadata column at 120:\n%s", v)
	}
}

// Every view, with its detail pane where it has one, fits the terminal at
// every size, 80×24 included.
func TestEveryViewFits(t *testing.T) {
	m, _ := newTestModel(t, threeLocks()...)
	exp := t0.Add(time.Minute)
	e := semEvent("semaphore.acquired", "a-semaphore-with-a-rather-long-name-indeed", "someone-with-a-long-login", 10000, 12345678, exp)
	e.Metadata = strings.Repeat("m", 300)
	update(t, m, eventsMsg{gen: 1, events: []client.Event{e}})
	update(t, m, sessionsListedMsg{sessions: []client.SessionInfo{{SessionID: "0b5a1f7e-1d2c-4e8a-9f00-0123456789ab", TTLSeconds: 3600,
		ExpiresAt: exp, Locks: []string{strings.Repeat("l", 128)}, Owner: "alice"}}})
	update(t, m, limitsListedMsg{})
	update(t, m, flagsListedMsg{})
	update(t, m, configListedMsg{})
	for _, sz := range [][2]int{{80, 24}, {120, 40}, {60, 15}, {40, 10}, {20, 6}} {
		update(t, m, tea.WindowSizeMsg{Width: sz[0], Height: sz[1]})
		for v := view(0); v < numViews; v++ {
			for _, open := range []bool{false, true} {
				if open {
					press(t, m, "enter")
				}
				fits(t, fmt.Sprintf("%s at %dx%d (detail %v)", viewNames[v], sz[0], sz[1], m.detailOpen), m.View(), max(sz[0], 20), max(sz[1], 6))
				if open && m.detailOpen {
					press(t, m, "esc")
				}
			}
			press(t, m, "tab")
		}
	}
}

// Six tabs with their counts and a filter fit 80 columns: the separators
// narrow, then the long names shorten, before anything is cut.
func TestTabsFitWithAFilter(t *testing.T) {
	m, _ := newTestModel(t, threeLocks()...)
	update(t, m, sessionsListedMsg{sessions: []client.SessionInfo{{SessionID: "s1"}}})
	update(t, m, limitsListedMsg{limits: make([]client.LimitInfo, 12)})
	update(t, m, flagsListedMsg{})
	update(t, m, configListedMsg{})
	if l := strings.Split(m.View(), "\n")[1]; !strings.HasPrefix(l, " Locks 3  │  Semaphores 0  │  Sessions 1  │  Limits 12") {
		t.Fatalf("tabs %q", l)
	}
	press(t, m, "/", "b", "enter")
	l := strings.Split(m.View(), "\n")[1]
	if !strings.Contains(l, "Semaphores 0 │ Sessions 1") || !strings.HasSuffix(strings.TrimRight(l, " "), "filter /b") {
		t.Fatalf("tabs with a filter %q", l)
	}
	press(t, m, "esc", "/a-long-name", "enter")
	l = strings.Split(m.View(), "\n")[1]
	if !strings.Contains(l, "Sems 0 │ Sess 1") || !strings.HasSuffix(strings.TrimRight(l, " "), "filter /a-long-name") || lipgloss.Width(l) > 80 {
		t.Fatalf("tabs with a long filter %q", l)
	}
}

// slotLister is an API whose only call is ListSemaphores.
type slotLister struct {
	API
	slots []client.HeldSemaphore
	err   error
}

func (s slotLister) ListSemaphores(context.Context) ([]client.HeldSemaphore, error) {
	return s.slots, s.err
}

// A semaphore whose slots were held before the view opened (no event yet)
// shows from the connect: GET /semaphores gives the names, each unknown one
// is read for all its slots. A 404 (a server without the listing) is no
// error; another error shows while the view has no rows; an answer of an
// older connection is dropped.
func TestSemaphoresListedAtConnect(t *testing.T) {
	exp := t0.Add(time.Minute)
	// The command: one name per semaphore, in order.
	m := New(Config{API: slotLister{slots: []client.HeldSemaphore{{Name: "db", LeaseID: "a"}, {Name: "pool", LeaseID: "b"},
		{Name: "pool", LeaseID: "c"}}}})
	t.Cleanup(m.cancel)
	if msg := m.listSemaphores(7)().(semaphoresListedMsg); msg.gen != 7 || fmt.Sprint(msg.names) != "[db pool]" || msg.err != nil {
		t.Fatalf("listSemaphores: %+v", msg)
	}

	m, _ = newTestModel(t)
	press(t, m, "tab")
	mustNotContain(t, m.View(), "pool")
	update(t, m, eventsMsg{gen: 1, events: []client.Event{semEvent("semaphore.acquired", "seen", "bob", 2, 1, exp)}})
	if cmd := update(t, m, semaphoresListedMsg{gen: 0, names: []string{"pool"}}); cmd != nil || m.semWant["pool"] {
		t.Fatal("an older connection's listing is used")
	}
	m.semReading = false // the tab's read of "seen" is answered below
	cmd := update(t, m, semaphoresListedMsg{gen: 1, names: []string{"pool", "seen"}})
	if cmd == nil || !m.semReading {
		t.Fatal("the listed semaphore is not read")
	}
	since := m.sems.Count()
	update(t, m, semaphoresReadMsg{since: since, states: []client.SemaphoreState{
		semState("pool", 4, 1, slot("alice", 3, exp), slot("carol", 5, exp))}})
	v := m.View()
	if l := lineOf(v, "pool"); !strings.Contains(l, "2/4") || !strings.Contains(l, "alice, carol") {
		t.Fatalf("pool row %q in\n%s", l, v)
	}
	mustContain(t, v, "Semaphores 2")

	// Errors: a 404 is a server without the listing; others show.
	update(t, m, semaphoresListedMsg{gen: 1, err: fmt.Errorf("GET /semaphores: %w", client.ErrNotFound)})
	if m.semErr != nil {
		t.Fatalf("a 404 is an error: %v", m.semErr)
	}
	update(t, m, semaphoresListedMsg{gen: 1, err: fmt.Errorf("boom: %w", client.ErrUnavailable)})
	if m.semErr == nil || !strings.Contains(m.semErr.Error(), "list semaphores") {
		t.Fatalf("semErr %v", m.semErr)
	}
}
