package tui

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/octostore/octostore/tools/client"
	"github.com/octostore/octostore/tools/termtext"
)

// column of a listTable. A flexible column takes the width left over.
type column struct {
	title string
	width int
	right bool
	flex  bool
}

// listRow is one resource: its name (for the filter and the cursor) and
// its cells, one per column.
type listRow struct {
	name  string
	cells []string
}

// listTable is the table of the limits, flags and config views: rows from
// the last listing, a name filter and a cursor.
type listTable struct {
	what     string // "rate limits", "flags", "config keys"
	cols     []column
	rows     []listRow
	view     []listRow
	filter   string
	cursor   int
	offset   int
	selected string
	width    int
	height   int
}

// SetSize sets the area the table draws in (height includes its header).
func (t *listTable) SetSize(w, h int) { t.width, t.height = w, h; t.rebuild() }

// SetRows replaces the rows.
func (t *listTable) SetRows(cols []column, rows []listRow) {
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].name != rows[j].name {
			return rows[i].name < rows[j].name
		}
		return strings.Join(rows[i].cells, "\x00") < strings.Join(rows[j].cells, "\x00")
	})
	t.cols, t.rows = cols, rows
	t.rebuild()
}

// SetFilter shows only names with the prefix.
func (t *listTable) SetFilter(prefix string) { t.filter = prefix; t.rebuild() }

// Len is the number of rows shown.
func (t *listTable) Len() int { return len(t.view) }

// Move moves the cursor by delta rows.
func (t *listTable) Move(delta int) {
	if len(t.view) == 0 {
		return
	}
	t.cursor += delta
	t.clamp()
	t.selected = t.view[t.cursor].name
}

func (t *listTable) rebuild() {
	t.view = t.view[:0]
	for _, r := range t.rows {
		if strings.HasPrefix(r.name, t.filter) {
			t.view = append(t.view, r)
		}
	}
	t.cursor, t.offset, t.selected = keepSelection(t.view, func(r listRow) string { return r.name }, t.selected, t.cursor, t.offset, t.height-1)
}

func (t *listTable) clamp() {
	t.cursor, t.offset = clampWindow(t.cursor, t.offset, t.height-1, len(t.view))
}

// widths resolves the column widths for the table width.
func (t *listTable) widths() []int {
	ws := make([]int, len(t.cols))
	used, flex := 2, 0
	for i, c := range t.cols {
		ws[i] = c.width
		used += c.width + 1
		if c.flex {
			flex++
		}
	}
	if flex > 0 && t.width > used {
		extra := (t.width - used) / flex
		for i, c := range t.cols {
			if c.flex {
				ws[i] += extra
			}
		}
	}
	return ws
}

// View renders the table in exactly height lines; status replaces the rows
// while there is nothing to show (loading, error, empty).
func (t *listTable) View(st *styles, status string) string {
	ws := t.widths()
	var b strings.Builder
	head := "  "
	for i, c := range t.cols {
		if c.right {
			head += padLeft(c.title, ws[i]) + " "
		} else {
			head += pad(c.title, ws[i]) + " "
		}
	}
	b.WriteString(st.tableHead.Render(clip(strings.TrimRight(head, " "), t.width)))
	lines := 1
	if status == "" && len(t.view) == 0 {
		status = "no " + t.what
		if t.filter != "" {
			status += " match /" + t.filter
		}
	}
	if status != "" {
		b.WriteString("\n" + st.faint.Render(clip("  "+status, t.width)))
		lines++
	}
	for i := t.offset; status == "" && i < len(t.view) && lines < t.height; i++ {
		r := t.view[i]
		line := "  "
		if i == t.cursor {
			line = "▸ "
		}
		for j, c := range t.cols {
			cell := ""
			if j < len(r.cells) {
				cell = r.cells[j]
			}
			if c.right {
				line += padLeft(cell, ws[j]) + " "
			} else {
				line += pad(cell, ws[j]) + " "
			}
		}
		line = strings.TrimRight(line, " ")
		if i == t.cursor {
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

// ownerColumn reports whether any owner is set (admin listings).
func ownerColumn(owners []string) bool {
	for _, o := range owners {
		if o != "" {
			return true
		}
	}
	return false
}

func limitRows(ls []client.LimitInfo, now time.Time) ([]column, []listRow) {
	owners := make([]string, len(ls))
	for i, l := range ls {
		owners[i] = l.Owner
	}
	withOwner := ownerColumn(owners)
	cols := []column{{title: "NAME", width: 16, flex: true}}
	if withOwner {
		cols = append(cols, column{title: "OWNER", width: 12})
	}
	cols = append(cols, column{title: "USED", width: 11, right: true}, column{title: "WINDOW", width: 7, right: true},
		column{title: "LEFT", width: 6, right: true}, column{title: "ALLOWED", width: 7}, column{title: "RESETS IN", width: 9, right: true})
	rows := make([]listRow, len(ls))
	for i, l := range ls {
		cells := []string{l.Name}
		if withOwner {
			cells = append(cells, l.Owner)
		}
		allowed := "yes"
		if !l.Allowed {
			allowed = "no"
		}
		cells = append(cells, fmt.Sprintf("%d/%d", l.CurrentCount, l.MaxRequests), shortDur(time.Duration(l.WindowSeconds)*time.Second),
			fmt.Sprint(l.Remaining), allowed, shortDur(l.ResetAt.Sub(now)))
		rows[i] = listRow{name: l.Name, cells: cells}
	}
	return cols, rows
}

func flagRows(fs []client.Flag, now time.Time) ([]column, []listRow) {
	owners := make([]string, len(fs))
	for i, f := range fs {
		owners[i] = f.Owner
	}
	withOwner := ownerColumn(owners)
	cols := []column{{title: "NAME", width: 16, flex: true}}
	if withOwner {
		cols = append(cols, column{title: "OWNER", width: 12})
	}
	cols = append(cols, column{title: "ENABLED", width: 7}, column{title: "ROLLOUT", width: 10, right: true},
		column{title: "RULES", width: 5, right: true}, column{title: "UPDATED", width: 12, right: true})
	rows := make([]listRow, len(fs))
	for i, f := range fs {
		cells := []string{f.Name}
		if withOwner {
			cells = append(cells, f.Owner)
		}
		enabled, rollout := "off", "–"
		if f.Enabled {
			enabled = "on"
		}
		switch {
		case f.Percentage != nil:
			rollout = fmt.Sprintf("%d%%", *f.Percentage)
		case len(f.Variants) > 0:
			rollout = fmt.Sprintf("%d variants", len(f.Variants))
		}
		rules := "–"
		if len(f.Rules) > 0 {
			rules = fmt.Sprint(len(f.Rules))
		}
		cells = append(cells, enabled, rollout, rules, ago(f.UpdatedAt, now))
		rows[i] = listRow{name: f.Name, cells: cells}
	}
	return cols, rows
}

func configRows(cs []client.ConfigEntry, now time.Time) ([]column, []listRow) {
	owners := make([]string, len(cs))
	for i, c := range cs {
		owners[i] = c.Owner
	}
	withOwner := ownerColumn(owners)
	cols := []column{{title: "KEY", width: 20}}
	if withOwner {
		cols = append(cols, column{title: "OWNER", width: 12})
	}
	cols = append(cols, column{title: "VERSION", width: 7, right: true}, column{title: "UPDATED", width: 12, right: true},
		column{title: "DESCRIPTION", width: 11, flex: true})
	rows := make([]listRow, len(cs))
	for i, c := range cs {
		cells := []string{c.Key}
		if withOwner {
			cells = append(cells, c.Owner)
		}
		cells = append(cells, fmt.Sprint(c.Version), ago(c.UpdatedAt, now), oneLine(c.Description))
		rows[i] = listRow{name: c.Key, cells: cells}
	}
	return cols, rows
}

// oneLine keeps text from the server on one line and unable to drive the
// terminal (termtext.Clean, the rule the CLI uses too).
func oneLine(s string) string { return termtext.Clean(s) }

// sessionRows are the sessions view's rows: each session's id (its first
// eight characters), owner (admin listings), time to expiry, TTL,
// lock-delay, and what it holds (locks, then semaphore slots).
func sessionRows(ss []client.SessionInfo, now time.Time) ([]column, []listRow) {
	owners := make([]string, len(ss))
	for i, s := range ss {
		owners[i] = s.Owner
	}
	withOwner := ownerColumn(owners)
	cols := []column{{title: "SESSION", width: 9}}
	if withOwner {
		cols = append(cols, column{title: "OWNER", width: 12})
	}
	cols = append(cols, column{title: "EXPIRES", width: 7, right: true}, column{title: "TTL", width: 5, right: true},
		column{title: "DELAY", width: 5, right: true}, column{title: "HOLDS", width: 10, flex: true})
	rows := make([]listRow, len(ss))
	for i, s := range ss {
		cells := []string{shortID(s.SessionID)}
		if withOwner {
			cells = append(cells, s.Owner)
		}
		delay := "–"
		if s.LockDelaySeconds > 0 {
			delay = shortDur(time.Duration(s.LockDelaySeconds) * time.Second)
		}
		cells = append(cells, shortDur(s.ExpiresAt.Sub(now)), shortDur(time.Duration(s.TTLSeconds)*time.Second), delay,
			holdsSummary(s))
		rows[i] = listRow{name: s.SessionID, cells: cells}
	}
	return cols, rows
}

// shortID is the first eight characters of a session id, enough to tell
// a user's sessions apart (the detail is in `octostore session list`).
func shortID(id string) string {
	if len(id) > 8 {
		return id[:8] + "…"
	}
	return id
}

// holdsSummary names a session's locks, then its semaphore slots:
// "deploy, shard-1, sem:pool".
func holdsSummary(s client.SessionInfo) string {
	parts := append([]string(nil), s.Locks...)
	for _, n := range s.Semaphores {
		parts = append(parts, "sem:"+n)
	}
	if len(parts) == 0 {
		return "–"
	}
	return oneLine(strings.Join(parts, ", "))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
