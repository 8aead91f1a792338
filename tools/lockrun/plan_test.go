package lockrun

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/octostore/octostore/tools/client"
)

// TestStopPlan steps the stop schedule through its cases with explicit
// times: lease deadline D = t0+30s, Margin 700ms, Grace 10s.
func TestStopPlan(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	D := at(30 * time.Second)
	killAt := D.Add(-700 * time.Millisecond)
	termAt := killAt.Add(-10 * time.Second)
	failing := errors.New("unreachable")
	healthy := client.LeaseHealth{Deadline: D}
	atRisk := client.LeaseHealth{Deadline: D, RenewErr: failing}
	for _, c := range []struct {
		name     string
		plan     stopPlan
		now      time.Time
		h        client.LeaseHealth
		wantSig  syscall.Signal
		wantNext time.Time
	}{
		{"healthy: only the safety SIGKILL is armed", stopPlan{}, at(time.Second), healthy, 0, killAt},
		{"healthy, the deadline reached without a renewal", stopPlan{}, killAt, healthy, syscall.SIGKILL, time.Time{}},
		{"failing: SIGTERM armed at D - margin - grace", stopPlan{}, at(11 * time.Second), atRisk, 0, termAt},
		{"failing: SIGTERM due", stopPlan{}, termAt, atRisk, syscall.SIGTERM, time.Time{}},
		{"failing late: SIGTERM at once", stopPlan{}, at(25 * time.Second), atRisk, syscall.SIGTERM, time.Time{}},
		{"after SIGTERM: SIGKILL at D - margin", stopPlan{TermSent: termAt}, termAt, atRisk, 0, killAt},
		{"after a late SIGTERM: SIGKILL at D - margin, not grace later", stopPlan{TermSent: at(25 * time.Second)}, at(25 * time.Second), atRisk, 0, killAt},
		{"after SIGTERM, renewals back: SIGKILL grace after it", stopPlan{TermSent: termAt}, termAt, client.LeaseHealth{Deadline: at(60 * time.Second)}, 0, termAt.Add(10 * time.Second)},
		{"after SIGTERM: SIGKILL due", stopPlan{TermSent: termAt}, killAt, atRisk, syscall.SIGKILL, time.Time{}},
		{"after SIGKILL: nothing more", stopPlan{TermSent: termAt, KillSent: true}, at(time.Hour), atRisk, 0, time.Time{}},
		{"refused: SIGTERM at once", stopPlan{LostAt: at(5 * time.Second)}, at(5 * time.Second), client.LeaseHealth{}, syscall.SIGTERM, time.Time{}},
		{"refused, after SIGTERM: SIGKILL grace later", stopPlan{LostAt: at(5 * time.Second), TermSent: at(5 * time.Second)}, at(5 * time.Second), client.LeaseHealth{}, 0, at(15 * time.Second)},
		{"expired: SIGKILL at once", stopPlan{LostAt: D, LostExpired: true}, D, client.LeaseHealth{}, syscall.SIGKILL, time.Time{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := c.plan
			p.Grace, p.Margin = 10*time.Second, Margin(30*time.Second)
			sig, next := p.due(c.now, c.h)
			if sig != c.wantSig || !next.Equal(c.wantNext) {
				t.Fatalf("due = %v, next %v; want %v, next %v", sig, next.Sub(t0), c.wantSig, c.wantNext.Sub(t0))
			}
		})
	}
}

func TestMargin(t *testing.T) {
	for ttl, want := range map[time.Duration]time.Duration{
		time.Second: 120 * time.Millisecond, 3 * time.Second: 160 * time.Millisecond, 30 * time.Second: 700 * time.Millisecond,
	} {
		if got := Margin(ttl); got != want {
			t.Errorf("Margin(%v) = %v, want %v", ttl, got, want)
		}
	}
}

// TestSignalPolicy: what the wrapper does with each signal it catches
// (docs/client.md).
func TestSignalPolicy(t *testing.T) {
	for _, c := range []struct {
		sig                syscall.Signal
		batch, interactive syscall.Signal
		stops              bool
	}{
		{syscall.SIGINT, syscall.SIGINT, 0, true},
		{syscall.SIGTERM, syscall.SIGTERM, syscall.SIGTERM, true},
		{syscall.SIGHUP, syscall.SIGHUP, 0, true},
		{syscall.SIGQUIT, syscall.SIGQUIT, 0, true},
		{syscall.SIGUSR1, syscall.SIGUSR1, syscall.SIGUSR1, false},
		{syscall.SIGUSR2, syscall.SIGUSR2, syscall.SIGUSR2, false},
		{syscall.SIGPIPE, 0, 0, false},
		{syscall.SIGABRT, syscall.SIGTERM, syscall.SIGTERM, true},
		{syscall.SIGSEGV, syscall.SIGTERM, syscall.SIGTERM, true},
		{syscall.SIGWINCH, 0, 0, false}, // not caught
	} {
		if got := passOn(c.sig, false); got != c.batch {
			t.Errorf("%v: passed on as %v, want %v", c.sig, got, c.batch)
		}
		if got := passOn(c.sig, true); got != c.interactive {
			t.Errorf("%v, interactive: passed on as %v, want %v", c.sig, got, c.interactive)
		}
		if got := Stops(c.sig); got != c.stops {
			t.Errorf("%v: Stops = %v, want %v", c.sig, got, c.stops)
		}
	}
}
