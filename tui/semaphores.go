package tui

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/octostore/octostore/tools/client"
)

// semSlot is one held slot of a semaphore.
type semSlot struct {
	Holder, LeaseID, SessionID, Metadata string
	Token                                uint64
	ExpiresAt                            time.Time
}

// semRow is one semaphore the view knows of.
type semRow struct {
	Name  string
	Limit int
	Slots map[uint64]*semSlot // by fencing token
	// Waiters is the number of waiting acquires at the last status read
	// (-1: not read yet; waiting publishes no event).
	Waiters        int
	highlightUntil time.Time
}

// sorted returns the slots by fencing token (grant order).
func (r *semRow) sorted() []*semSlot {
	out := make([]*semSlot, 0, len(r.Slots))
	for _, s := range r.Slots {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Token < out[j].Token })
	return out
}

// semLogSize bounds the semaphore events kept for replay over status reads
// and for the detail pane.
const semLogSize = 2000

// semTable is the semaphores view. The API has no listing of semaphores,
// so the table learns their names from semaphore events (every user sees
// them) and from the caller's sessions, reads each one's status
// (GET /semaphores/{name}) at every (re)connect and, for the rows on
// screen, again every few seconds while the view shows (for the waiters,
// which publish nothing), and applies the events in between.
//
// Convergence: a status read replaces the semaphore's slots, then the
// events received since the read was sent are applied again on top. Events
// merge by fencing token (a grant adds its slot, a renewal moves its
// expiry, a release or expiry removes it; tokens are never reused), so
// replaying events the read already reflects changes nothing, and the
// table ends as the server is whatever order reads and events arrive in.
type semTable struct {
	namedRows[*semRow]

	// log holds the recent semaphore events, oldest first; event number
	// logBase+i is log[i] (Count is the number of the next one).
	log     []client.Event
	logBase uint64
}

func newSemTable() semTable {
	return semTable{namedRows: newNamedRows(func(r *semRow) string { return r.Name })}
}

// Total is the number of semaphores shown (before the filter).
func (t *semTable) Total() int { return len(t.rows) }

// Count is the number of semaphore events recorded so far: a status read
// sent now replays the events from this number on.
func (t *semTable) Count() uint64 { return t.logBase + uint64(len(t.log)) }

// Record keeps e for replay (Apply it too).
func (t *semTable) Record(e client.Event) {
	t.log = append(t.log, e)
	if len(t.log) > semLogSize {
		drop := len(t.log) - semLogSize/2
		t.log = append(t.log[:0:0], t.log[drop:]...)
		t.logBase += uint64(drop)
	}
}

// Names returns the known semaphore names, sorted.
func (t *semTable) Names() []string {
	out := make([]string, 0, len(t.rows))
	for n := range t.rows {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// OnScreen returns the names of the rows drawn now (the filter and the
// scroll applied).
func (t *semTable) OnScreen() []string {
	t.rebuild()
	var out []string
	for i := t.offset; i < len(t.view) && i-t.offset < t.height-1; i++ {
		out = append(out, t.view[i].Name)
	}
	return out
}

// Apply merges one semaphore event; it reports whether the table changed.
func (t *semTable) Apply(e client.Event, now time.Time) bool {
	if e.Kind != "semaphore" || e.Name == "" {
		return false
	}
	r := t.rows[e.Name]
	switch e.Type {
	case "semaphore.acquired", "semaphore.renewed":
		if r == nil {
			r = &semRow{Name: e.Name, Slots: map[uint64]*semSlot{}, Waiters: -1}
			t.rows[e.Name] = r
			t.stale = true
		}
		if e.Limit > 0 {
			r.Limit = e.Limit
		}
		s := r.Slots[e.FencingToken]
		if s == nil {
			s = &semSlot{Holder: e.Holder, Token: e.FencingToken}
			r.Slots[e.FencingToken] = s
			if e.Type == "semaphore.acquired" {
				r.highlightUntil = now.Add(highlightFor)
			}
		}
		if e.ExpiresAt.After(s.ExpiresAt) {
			s.ExpiresAt = e.ExpiresAt
		}
		if e.LeaseID != "" {
			s.LeaseID = e.LeaseID
		}
		if e.SessionID != "" {
			s.SessionID = e.SessionID
		}
		s.Metadata = oneLine(e.Metadata)
		return true
	case "semaphore.released", "semaphore.expired":
		if r == nil || r.Slots[e.FencingToken] == nil {
			return false
		}
		delete(r.Slots, e.FencingToken)
		if len(r.Slots) == 0 && r.Waiters <= 0 {
			delete(t.rows, e.Name)
			t.stale = true
		}
		return true
	}
	return false
}

// SetStatus replaces what the table shows of st.Name with a status read
// sent when Count was since, then replays the events recorded since.
// A semaphore with nothing held and nobody waiting leaves the table.
func (t *semTable) SetStatus(st client.SemaphoreState, since uint64, now time.Time) {
	r := &semRow{Name: st.Name, Limit: st.Limit, Slots: map[uint64]*semSlot{}, Waiters: st.Waiters}
	if old := t.rows[st.Name]; old != nil {
		r.highlightUntil = old.highlightUntil
	}
	for _, h := range st.Holders {
		r.Slots[h.FencingToken] = &semSlot{Holder: h.Holder, LeaseID: h.LeaseID, SessionID: h.SessionID,
			Metadata: oneLine(h.Metadata), Token: h.FencingToken, ExpiresAt: h.ExpiresAt}
	}
	t.rows[st.Name] = r
	t.stale = true
	t.replay(st.Name, since, now)
	if r := t.rows[st.Name]; r != nil && len(r.Slots) == 0 && r.Waiters <= 0 {
		delete(t.rows, st.Name)
	}
}

// Forget drops a semaphore read as never taken, then replays the events
// recorded since the read was sent.
func (t *semTable) Forget(name string, since uint64, now time.Time) {
	delete(t.rows, name)
	t.stale = true
	t.replay(name, since, now)
}

func (t *semTable) replay(name string, since uint64, now time.Time) {
	from := 0
	if since > t.logBase {
		from = int(since - t.logBase)
	}
	for i := from; i < len(t.log); i++ {
		if t.log[i].Name == name {
			t.Apply(t.log[i], now)
		}
	}
}

// Events returns the recorded events of name, newest first, at most n.
func (t *semTable) Events(name string, n int) []client.Event {
	var out []client.Event
	for i := len(t.log) - 1; i >= 0 && len(out) < n; i-- {
		if t.log[i].Name == name {
			out = append(out, t.log[i])
		}
	}
	return out
}

// semaphore table columns: marker, name (flexible), slots held of the
// limit, a usage bar, waiters, holders (flexible).
const (
	colUsed = 11
	colWait = 7
)

// View renders the table in exactly height lines of at most width cells.
func (t *semTable) View(now time.Time, st *styles, status string) string {
	t.rebuild()
	flex := t.width - 2 - (colUsed + 1) - (colBar + 1) - (colWait + 1)
	nameW := max(flex*2/5, 8)
	holdersW := max(flex-nameW-1, 8)
	var b strings.Builder
	head := "  " + pad("NAME", nameW) + " " + padLeft("HELD", colUsed) + " " + pad("SLOTS", colBar) + " " +
		padLeft("WAITING", colWait) + " " + pad("HOLDERS", holdersW)
	b.WriteString(st.tableHead.Render(clip(strings.TrimRight(head, " "), t.width)))
	lines := 1
	if status == "" && len(t.view) == 0 {
		status = "no semaphores seen yet (they show with their grants and renewals)"
		if t.filter != "" {
			status = "no semaphore matches /" + t.filter
		}
	}
	if status != "" && len(t.view) == 0 {
		b.WriteString("\n" + st.faint.Render(clip("  "+status, t.width)))
		lines++
	}
	for i := t.offset; i < len(t.view) && lines < t.height; i++ {
		r := t.view[i]
		marker := "  "
		if i == t.cursor {
			marker = "▸ "
		}
		used := len(r.Slots)
		f := 0.0
		if r.Limit > 0 {
			f = float64(used) / float64(r.Limit)
		}
		limit := "?"
		if r.Limit > 0 {
			limit = fmt.Sprint(r.Limit)
		}
		waiting := "–"
		if r.Waiters >= 0 {
			waiting = fmt.Sprint(r.Waiters)
		}
		line := marker + pad(r.Name, nameW) + " " + padLeft(fmt.Sprintf("%d/%s", used, limit), colUsed) + " " +
			st.usage(f, colBar) + " " + padLeft(waiting, colWait) + " " + pad(holderSummary(r), holdersW)
		switch {
		case now.Before(r.highlightUntil):
			line = st.fresh.Render(line)
		case i == t.cursor:
			line = st.selected.Render(line)
		}
		b.WriteString("\n" + line)
		lines++
	}
	for ; lines < t.height; lines++ {
		b.WriteString("\n")
	}
	return b.String()
}

// holderSummary lists a semaphore's holders in grant order, a holder with
// several slots once with their count: "alice ×2, bob".
func holderSummary(r *semRow) string {
	var order []string
	n := map[string]int{}
	for _, s := range r.sorted() {
		if n[s.Holder] == 0 {
			order = append(order, s.Holder)
		}
		n[s.Holder]++
	}
	parts := make([]string, len(order))
	for i, h := range order {
		parts[i] = h
		if n[h] > 1 {
			parts[i] += fmt.Sprintf(" ×%d", n[h])
		}
	}
	return strings.Join(parts, ", ")
}
