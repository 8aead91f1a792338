package tui

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/mattn/go-runewidth"
	"github.com/octostore/octostore/tools/termtext"
)

// styles are the view's lipgloss styles. Without a color terminal (tests,
// pipes) lipgloss renders them as plain text.
type styles struct {
	title, server, faint, tableHead  lipgloss.Style
	live, waiting, down              lipgloss.Style
	tabActive, tabInactive           lipgloss.Style
	selected, fresh                  lipgloss.Style
	barFull, barMid, barLow, barRest lipgloss.Style
	rule, detailTitle, errText       lipgloss.Style
}

func defaultStyles() *styles {
	return &styles{
		title:       lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("205")),
		server:      lipgloss.NewStyle().Foreground(lipgloss.Color("252")),
		faint:       lipgloss.NewStyle().Faint(true),
		tableHead:   lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("245")),
		live:        lipgloss.NewStyle().Foreground(lipgloss.Color("42")),
		waiting:     lipgloss.NewStyle().Foreground(lipgloss.Color("214")),
		down:        lipgloss.NewStyle().Foreground(lipgloss.Color("196")),
		tabActive:   lipgloss.NewStyle().Bold(true).Underline(true).Foreground(lipgloss.Color("205")),
		tabInactive: lipgloss.NewStyle().Foreground(lipgloss.Color("245")),
		selected:    lipgloss.NewStyle().Bold(true).Background(lipgloss.Color("237")),
		fresh:       lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("16")).Background(lipgloss.Color("220")),
		barFull:     lipgloss.NewStyle().Foreground(lipgloss.Color("42")),
		barMid:      lipgloss.NewStyle().Foreground(lipgloss.Color("214")),
		barLow:      lipgloss.NewStyle().Foreground(lipgloss.Color("196")),
		barRest:     lipgloss.NewStyle().Foreground(lipgloss.Color("238")),
		rule:        lipgloss.NewStyle().Foreground(lipgloss.Color("238")),
		detailTitle: lipgloss.NewStyle().Bold(true),
		errText:     lipgloss.NewStyle().Foreground(lipgloss.Color("196")),
	}
}

// usage draws how full a semaphore is: f of width cells filled, amber from
// 80 %, red when every slot is held.
func (s *styles) usage(f float64, width int) string {
	full := min(int(f*float64(width)+0.5), width)
	if f > 0 && full == 0 {
		full = 1 // a held slot always shows
	}
	st := s.barFull
	switch {
	case f >= 1:
		st = s.barLow
	case f >= 0.8:
		st = s.barMid
	}
	return st.Render(strings.Repeat("█", full)) + s.barRest.Render(strings.Repeat("░", width-full))
}

// delayBar draws the lock-delay left: f of width cells, in the waiting
// colour (nobody may take the lock until it has drained).
func (s *styles) delayBar(f float64, width int) string {
	full := min(max(int(f*float64(width)+0.5), 0), width)
	return s.waiting.Render(strings.Repeat("▒", full)) + s.barRest.Render(strings.Repeat("░", width-full))
}

// bar draws a draining bar of width cells, f of it filled.
func (s *styles) bar(f float64, width int) string {
	full := int(f*float64(width) + 0.5)
	if full > width {
		full = width
	}
	st := s.barFull
	switch {
	case f < 0.2:
		st = s.barLow
	case f < 0.5:
		st = s.barMid
	}
	return st.Render(strings.Repeat("█", full)) + s.barRest.Render(strings.Repeat("░", width-full))
}

// pad left-aligns s in exactly w cells (truncating with "…").
func pad(s string, w int) string {
	s = clip(s, w)
	if n := runewidth.StringWidth(s); n < w {
		s += strings.Repeat(" ", w-n)
	}
	return s
}

// padLeft right-aligns s in exactly w cells.
func padLeft(s string, w int) string {
	s = clip(s, w)
	if n := runewidth.StringWidth(s); n < w {
		s = strings.Repeat(" ", w-n) + s
	}
	return s
}

// clip truncates plain text s to w cells, ending in "…" when cut (the
// CLI's tables cut the same way).
func clip(s string, w int) string { return termtext.Clip(s, w) }

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// shortDur formats d compactly: 42s, 3m05s, 2h03m, 4d02h.
func shortDur(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
}

// ago formats how long before now t was ("–" for a zero time).
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return shortDur(now.Sub(t)) + " ago"
}
