package tui

import (
	"strings"
	"time"

	"github.com/octostore/octostore/tools/client"
)

// highlightFor is how long a new holder stays highlighted.
const highlightFor = 3 * time.Second

// lockRow is one held lock, or one in lock-delay (Delayed).
type lockRow struct {
	Name, Holder, LeaseID string
	Token                 uint64
	ExpiresAt             time.Time
	// Metadata is the hold's description (shown to everybody); SessionID
	// the session it is held under (only the holder and the admin key see
	// it).
	Metadata, SessionID string
	// Delayed: the hold expired at ExpiresAt with a lock-delay, and nobody
	// is granted the lock before AvailableAt (lock.expired says so). The
	// row goes at AvailableAt (Prune) or with the next grant.
	Delayed     bool
	AvailableAt time.Time
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
type lockTable struct{ namedRows[*lockRow] }

func newLockTable() lockTable {
	return lockTable{newNamedRows(func(r *lockRow) string { return r.Name })}
}

// Total is the number of held locks known (locks in lock-delay are not
// held).
func (t *lockTable) Total() int {
	n := 0
	for _, r := range t.rows {
		if !r.Delayed {
			n++
		}
	}
	return n
}

// Prune drops the rows whose lock-delay is over at now; it reports whether
// any went.
func (t *lockTable) Prune(now time.Time) bool {
	gone := false
	for name, r := range t.rows {
		if r.Delayed && !now.Before(r.AvailableAt) {
			delete(t.rows, name)
			gone = true
		}
	}
	if gone {
		t.stale = true
	}
	return gone
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
		if r != nil && r.Token == e.FencingToken && !r.Delayed {
			if e.ExpiresAt.Before(r.ExpiresAt) {
				return false
			}
			r.ExpiresAt, r.barStart = e.ExpiresAt, eventTime(e, now)
			if e.LeaseID != "" {
				r.LeaseID = e.LeaseID
			}
			if e.SessionID != "" {
				r.SessionID = e.SessionID
			}
			r.Metadata = oneLine(e.Metadata) // a re-acquire may change it
			return true
		}
		if r != nil && r.Token == e.FencingToken {
			return false // its end (a lock-delay) is known already
		}
		nr := &lockRow{Name: e.Name, Holder: e.Holder, LeaseID: e.LeaseID, Token: e.FencingToken,
			ExpiresAt: e.ExpiresAt, barStart: eventTime(e, now), seenAt: now,
			Metadata: oneLine(e.Metadata), SessionID: e.SessionID}
		if e.Type == client.EventLockAcquired {
			nr.AcquiredAt = eventTime(e, now)
			nr.highlightUntil = now.Add(highlightFor)
		} else if r != nil {
			nr.seenAt = r.seenAt
		}
		t.rows[e.Name] = nr
		t.stale = true
		return true
	case client.EventLockExpired:
		if e.AvailableAt.After(now) && (r == nil || r.Token <= e.FencingToken) {
			// Lost by expiry with a lock-delay: shown until it is over.
			nr := &lockRow{Name: e.Name, Holder: e.Holder, Token: e.FencingToken, ExpiresAt: e.ExpiresAt,
				Delayed: true, AvailableAt: e.AvailableAt, barStart: e.ExpiresAt, seenAt: now}
			if nr.barStart.IsZero() || nr.barStart.After(now) {
				nr.barStart = now
			}
			if r != nil && r.Token == e.FencingToken {
				nr.Metadata, nr.AcquiredAt, nr.seenAt = r.Metadata, r.AcquiredAt, r.seenAt
			}
			t.rows[e.Name] = nr
			t.stale = true
			return true
		}
		return t.remove(e.Name, e.FencingToken)
	case client.EventLockReleased:
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
// the same grants (acquisition time, highlight). Locks in lock-delay are
// not listed: those the table knows stay until their delay is over.
func (t *lockTable) Reset(locks []client.LockInfo, now time.Time) {
	rows := make(map[string]*lockRow, len(locks))
	for _, l := range locks {
		r := &lockRow{Name: l.Name, Holder: l.Holder, LeaseID: l.LeaseID, Token: l.FencingToken,
			ExpiresAt: l.ExpiresAt, barStart: now, seenAt: now, Metadata: oneLine(l.Metadata), SessionID: l.SessionID}
		if old := t.rows[l.Name]; old != nil && old.Token == l.FencingToken && !old.Delayed {
			r.AcquiredAt, r.seenAt, r.highlightUntil = old.AcquiredAt, old.seenAt, old.highlightUntil
			r.barStart = old.barStart
			if r.LeaseID == "" {
				r.LeaseID = old.LeaseID
			}
		}
		rows[l.Name] = r
	}
	for name, r := range t.rows {
		if _, listed := rows[name]; !listed && r.Delayed && now.Before(r.AvailableAt) {
			rows[name] = r
		}
	}
	t.rows = rows
	t.stale = true
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

// metaFrom is the table width from which a METADATA column shows (the
// name column keeps metaName cells, the metadata takes the rest); below it
// the metadata is in the detail pane only.
const (
	metaFrom = 100
	metaName = 30
)

// View renders the table in exactly height lines of at most width cells.
func (t *lockTable) View(now time.Time, st *styles) string {
	t.rebuild()
	nameW := t.width - 2 - (colHolder + 1) - (colToken + 1) - (colBar + 1 + colLeft + 1) - colHeld - 1
	if nameW < 8 {
		nameW = 8
	}
	metaW := 0
	if t.width >= metaFrom && nameW > metaName+8 {
		metaW = nameW - metaName - 1
		nameW = metaName
	}
	var b strings.Builder
	head := "  " + pad("NAME", nameW) + " " + pad("HOLDER", colHolder) + " " + padLeft("TOKEN", colToken) + " " +
		pad("TIME LEFT", colBar+1+colLeft) + " " + pad("HELD FOR", colHeld)
	if metaW > 0 {
		head += " " + pad("METADATA", metaW)
	}
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
		bar := st.bar(barFraction(r, now), colBar)
		if r.Delayed {
			// Lock-delay: the time left until anybody may take it.
			left, held = max(r.AvailableAt.Sub(now), 0), "delayed"
			bar = st.delayBar(delayFraction(r, now), colBar)
		}
		line := marker + pad(r.Name, nameW) + " " + pad(r.Holder, colHolder) + " " +
			padLeft(itoa(r.Token), colToken) + " " + bar + " " +
			padLeft(shortDur(left), colLeft) + " " + pad(held, colHeld)
		if metaW > 0 {
			line += " " + pad(r.Metadata, metaW)
		}
		switch {
		case r.Delayed && i != t.cursor:
			line = st.faint.Render(line)
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

// delayFraction is the share of a lock-delay still to run.
func delayFraction(r *lockRow, now time.Time) float64 {
	total := r.AvailableAt.Sub(r.barStart)
	if total <= 0 {
		return 0
	}
	return min(max(float64(r.AvailableAt.Sub(now))/float64(total), 0), 1)
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
