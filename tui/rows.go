package tui

import (
	"sort"
	"strings"
)

// namedRows is what the lock and semaphore tables share: rows by name,
// shown sorted by name after a name-prefix filter, a cursor that stays on
// its row as rows come and go (else at the same position), and the scroll
// window that keeps the cursor visible. R is a pointer type (nil: none).
type namedRows[R comparable] struct {
	rows   map[string]R
	name   func(R) string
	view   []R // rows passing the filter, by name
	filter string
	cursor int
	offset int
	// selected is the name under the cursor, kept when rows come and go.
	selected      string
	width, height int
	stale         bool // view needs rebuilding
}

func newNamedRows[R comparable](name func(R) string) namedRows[R] {
	return namedRows[R]{rows: map[string]R{}, name: name}
}

// SetSize sets the area the table draws in (height includes its header).
func (t *namedRows[R]) SetSize(w, h int) { t.width, t.height = w, h; t.clamp() }

// Len is the number of rows shown (after the filter).
func (t *namedRows[R]) Len() int { t.rebuild(); return len(t.view) }

// Get returns the row of name (nil when none).
func (t *namedRows[R]) Get(name string) R { return t.rows[name] }

// Selected is the row under the cursor (nil when the table is empty).
func (t *namedRows[R]) Selected() R {
	t.rebuild()
	if t.cursor < 0 || t.cursor >= len(t.view) {
		var none R
		return none
	}
	return t.view[t.cursor]
}

// SetFilter shows only names with the prefix.
func (t *namedRows[R]) SetFilter(prefix string) {
	if prefix != t.filter {
		t.filter = prefix
		t.stale = true
	}
}

// Move moves the cursor by delta rows.
func (t *namedRows[R]) Move(delta int) {
	t.rebuild()
	if len(t.view) == 0 {
		return
	}
	t.cursor += delta
	t.clamp()
	t.selected = t.name(t.view[t.cursor])
}

func (t *namedRows[R]) rebuild() {
	if !t.stale && t.view != nil {
		return
	}
	t.stale = false
	t.view = t.view[:0]
	for name, r := range t.rows {
		if strings.HasPrefix(name, t.filter) {
			t.view = append(t.view, r)
		}
	}
	sort.Slice(t.view, func(i, j int) bool { return t.name(t.view[i]) < t.name(t.view[j]) })
	t.cursor, t.offset, t.selected = keepSelection(t.view, t.name, t.selected, t.cursor, t.offset, t.height-1)
}

func (t *namedRows[R]) clamp() {
	t.cursor, t.offset = clampWindow(t.cursor, t.offset, t.height-1, len(t.view))
}
