package tui

import (
	"sort"
	"strings"
	"time"

	"github.com/octostore/octostore/tools/client"
)

// highlightFor is how long a new holder stays highlighted.
const highlightFor = 3 * time.Second

// lockRow is one held lock.
type lockRow struct {
	Name, Holder, LeaseID string
	Token                 uint64
	ExpiresAt             time.Time
	// barStart is when the current expiry was set: the time-left bar is
	// full then and empty at ExpiresAt.
	barStart time.Time
	// AcquiredAt is when the grant happened; zero when the lock came from a
	// listing (the API does not say), then HeldFor counts from seenAt.
	AcquiredAt     time.Time
	seenAt         time.Time
	highlightUntil time.Time
}

// lockTable is the live table of held locks. Events and listings are merged
// by fencing token, so that it converges whatever order they arrive in: a
// grant replaces an older one, a release or expiry removes the grant it
// names (or an older one), stale events are ignored.
type lockTable struct {
	rows   map[string]*lockRow
	view   []*lockRow // rows passing the filter, by name
	filter string
	cursor int
	offset int
	// selected is the name under the cursor, kept when rows come and go.
	selected      string
	width, height int
	stale         bool // view needs rebuilding
}

func newLockTable() lockTable { return lockTable{rows: map[string]*lockRow{}} }

// SetSize sets the area the table draws in (height includes its header).
func (t *lockTable) SetSize(w, h int) { t.width, t.height = w, h; t.clamp() }

// Len is the number of locks shown (after the filter).
func (t *lockTable) Len() int { t.rebuild(); return len(t.view) }

// Total is the number of held locks known.
func (t *lockTable) Total() int { return len(t.rows) }

// Selected is the lock under the cursor (nil when the table is empty).
func (t *lockTable) Selected() *lockRow {
	t.rebuild()
	if t.cursor < 0 || t.cursor >= len(t.view) {
		return nil
	}
	return t.view[t.cursor]
}

// Get returns the row of a lock.
func (t *lockTable) Get(name string) *lockRow { return t.rows[name] }

// SetFilter shows only names with the prefix.
func (t *lockTable) SetFilter(prefix string) {
	if prefix != t.filter {
		t.filter = prefix
		t.stale = true
	}
}

// Move moves the cursor by delta rows.
func (t *lockTable) Move(delta int) {
	t.rebuild()
	if len(t.view) == 0 {
		return
	}
	t.cursor += delta
	t.clamp()
	t.selected = t.view[t.cursor].Name
}

// Apply merges one event; it reports whether the table changed.
func (t *lockTable) Apply(e client.Event, now time.Time) bool {
	if e.Kind != "lock" || e.Name == "" {
		return false
	}
	r := t.rows[e.Name]
	switch e.Type {
	case client.EventLockAcquired, client.EventLockRenewed, client.EventLockState:
		if e.Type == client.EventLockState && e.Holder == "" {
			return t.remove(e.Name, e.FencingToken)
		}
		if r != nil && r.Token > e.FencingToken {
			return false // older than what we show
		}
		if r != nil && r.Token == e.FencingToken {
			if e.ExpiresAt.Before(r.ExpiresAt) {
				return false
			}
			r.ExpiresAt, r.barStart = e.ExpiresAt, eventTime(e, now)
			if e.LeaseID != "" {
				r.LeaseID = e.LeaseID
			}
			return true
		}
		nr := &lockRow{Name: e.Name, Holder: e.Holder, LeaseID: e.LeaseID, Token: e.FencingToken,
			ExpiresAt: e.ExpiresAt, barStart: eventTime(e, now), seenAt: now}
		if e.Type == client.EventLockAcquired {
			nr.AcquiredAt = eventTime(e, now)
			nr.highlightUntil = now.Add(highlightFor)
		} else if r != nil {
			nr.seenAt = r.seenAt
		}
		t.rows[e.Name] = nr
		t.stale = true
		return true
	case client.EventLockReleased, client.EventLockExpired:
		return t.remove(e.Name, e.FencingToken)
	}
	return false
}

// remove drops name if what it shows is the grant token or an older one.
func (t *lockTable) remove(name string, token uint64) bool {
	r := t.rows[name]
	if r == nil || r.Token > token {
		return false
	}
	delete(t.rows, name)
	t.stale = true
	return true
}

func eventTime(e client.Event, now time.Time) time.Time {
	if e.Time.IsZero() {
		return now
	}
	return e.Time
}

// Reset replaces the table with a fresh listing, keeping what it knew of
// the same grants (acquisition time, highlight).
func (t *lockTable) Reset(locks []client.LockInfo, now time.Time) {
	rows := make(map[string]*lockRow, len(locks))
	for _, l := range locks {
		r := &lockRow{Name: l.Name, Holder: l.Holder, LeaseID: l.LeaseID, Token: l.FencingToken,
			ExpiresAt: l.ExpiresAt, barStart: now, seenAt: now}
		if old := t.rows[l.Name]; old != nil && old.Token == l.FencingToken {
			r.AcquiredAt, r.seenAt, r.highlightUntil = old.AcquiredAt, old.seenAt, old.highlightUntil
			r.barStart = old.barStart
			if r.LeaseID == "" {
				r.LeaseID = old.LeaseID
			}
		}
		rows[l.Name] = r
	}
	t.rows = rows
	t.stale = true
}

func (t *lockTable) rebuild() {
	if !t.stale && t.view != nil {
		return
	}
	t.stale = false
	t.view = t.view[:0]
	for _, r := range t.rows {
		if strings.HasPrefix(r.Name, t.filter) {
			t.view = append(t.view, r)
		}
	}
	sort.Slice(t.view, func(i, j int) bool { return t.view[i].Name < t.view[j].Name })
	// Keep the cursor on the same lock; if it is gone, stay at the same
	// position.
	t.cursor, t.offset, t.selected = keepSelection(t.view, func(r *lockRow) string { return r.Name }, t.selected, t.cursor, t.offset, t.height-1)
}

func (t *lockTable) clamp() {
	t.cursor, t.offset = clampWindow(t.cursor, t.offset, t.height-1, len(t.view))
}

// lock table columns: marker, name (flexible), holder, token, time left
// (bar and duration), held for.
const (
	colHolder = 12
	colToken  = 7
	colBar    = 10
	colLeft   = 6
	colHeld   = 8
)

// View renders the table in exactly height lines of at most width cells.
func (t *lockTable) View(now time.Time, st *styles) string {
	t.rebuild()
	nameW := t.width - 2 - (colHolder + 1) - (colToken + 1) - (colBar + 1 + colLeft + 1) - colHeld - 1
	if nameW < 8 {
		nameW = 8
	}
	var b strings.Builder
	head := "  " + pad("NAME", nameW) + " " + pad("HOLDER", colHolder) + " " + padLeft("TOKEN", colToken) + " " +
		pad("TIME LEFT", colBar+1+colLeft) + " " + pad("HELD FOR", colHeld)
	b.WriteString(st.tableHead.Render(clip(head, t.width)))
	lines := 1
	if len(t.view) == 0 {
		msg := "  no locks held"
		if t.filter != "" {
			msg = "  no held lock matches /" + t.filter
		}
		b.WriteString("\n" + st.faint.Render(clip(msg, t.width)))
		lines++
	}
	for i := t.offset; i < len(t.view) && lines < t.height; i++ {
		r := t.view[i]
		left := r.ExpiresAt.Sub(now)
		if left < 0 {
			left = 0
		}
		marker := "  "
		if i == t.cursor {
			marker = "▸ "
		}
		held := "≥" + shortDur(now.Sub(r.seenAt))
		if !r.AcquiredAt.IsZero() {
			held = shortDur(now.Sub(r.AcquiredAt))
		}
		line := marker + pad(r.Name, nameW) + " " + pad(r.Holder, colHolder) + " " +
			padLeft(itoa(r.Token), colToken) + " " + st.bar(barFraction(r, now), colBar) + " " +
			padLeft(shortDur(left), colLeft) + " " + pad(held, colHeld)
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

// barFraction is the share of the hold's time still left.
func barFraction(r *lockRow, now time.Time) float64 {
	total := r.ExpiresAt.Sub(r.barStart)
	if total <= 0 {
		return 0
	}
	f := float64(r.ExpiresAt.Sub(now)) / float64(total)
	switch {
	case f < 0:
		return 0
	case f > 1:
		return 1
	}
	return f
}

// clampWindow keeps a cursor inside n rows and the scroll offset such that
// the cursor is visible in a window of rows lines (the header excluded).
func clampWindow(cursor, offset, rows, n int) (int, int) {
	if cursor >= n {
		cursor = n - 1
	}
	if cursor < 0 {
		cursor = 0
	}
	if rows < 1 {
		rows = 1
	}
	if cursor < offset {
		offset = cursor
	}
	if cursor >= offset+rows {
		offset = cursor - rows + 1
	}
	if offset > n-rows {
		offset = n - rows
	}
	if offset < 0 {
		offset = 0
	}
	return cursor, offset
}

// keepSelection puts the cursor back on the row named selected if it is
// still in view (else it stays at the same position), clamps the window, and
// returns the name now under the cursor.
func keepSelection[T any](view []T, name func(T) string, selected string, cursor, offset, rows int) (int, int, string) {
	for i, r := range view {
		if name(r) == selected {
			cursor = i
			break
		}
	}
	cursor, offset = clampWindow(cursor, offset, rows, len(view))
	if len(view) > 0 {
		selected = name(view[cursor])
	}
	return cursor, offset, selected
}
