// Package manualtime is a timer source for tests of package actors: an
// injectable AfterFunc (actors.Config.AfterFunc) whose timers run only when
// the test calls Fire, once the test's clock has reached them. It gives
// tests of expiries, lock-delay and sessions a clock they move themselves,
// with no sleeps. It does not import actors, so that the package's
// internal tests can use it too.
package manualtime

import (
	"slices"
	"sync"
	"time"
)

// Timers makes and fires manual timers. Now is the test's clock.
type Timers struct {
	Now     func() time.Time
	mu      sync.Mutex
	pending []*Timer
	made    int
}

// New returns Timers on the clock now.
func New(now func() time.Time) *Timers { return &Timers{Now: now} }

// Timer is one manual timer; its Stop and Reset report, as time.Timer's,
// whether it was waiting to run.
type Timer struct {
	ts      *Timers
	due     time.Time
	f       func()
	stopped bool
}

// AfterFunc arms a timer that runs f at the first Fire at or after now+d.
func (ts *Timers) AfterFunc(d time.Duration, f func()) *Timer {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.made++
	tm := &Timer{ts: ts, due: ts.Now().Add(d), f: f}
	ts.pending = append(ts.pending, tm)
	return tm
}

// Stop keeps the timer from running; it reports whether it was waiting.
func (tm *Timer) Stop() bool {
	tm.ts.mu.Lock()
	defer tm.ts.mu.Unlock()
	was := !tm.stopped && slices.Contains(tm.ts.pending, tm)
	tm.stopped = true
	return was
}

// Reset arms the timer again for now+d; it reports whether it was waiting.
func (tm *Timer) Reset(d time.Duration) bool {
	tm.ts.mu.Lock()
	defer tm.ts.mu.Unlock()
	was := !tm.stopped && slices.Contains(tm.ts.pending, tm)
	tm.stopped = false
	tm.due = tm.ts.Now().Add(d)
	if !slices.Contains(tm.ts.pending, tm) {
		tm.ts.pending = append(tm.ts.pending, tm)
	}
	return was
}

// Made is the number of timers made (AfterFunc calls).
func (ts *Timers) Made() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.made
}

// Armed is the number of timers waiting to run.
func (ts *Timers) Armed() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	n := 0
	for _, tm := range ts.pending {
		if !tm.stopped {
			n++
		}
	}
	return n
}

// Fire runs every timer due at the clock's time (not those a run arms) and
// returns how many ran.
func (ts *Timers) Fire() int {
	ts.mu.Lock()
	now := ts.Now()
	var due []func()
	keep := ts.pending[:0]
	for _, tm := range ts.pending {
		switch {
		case tm.stopped:
		case !tm.due.After(now):
			due = append(due, tm.f)
		default:
			keep = append(keep, tm)
		}
	}
	ts.pending = keep
	ts.mu.Unlock()
	for _, f := range due {
		f()
	}
	return len(due)
}
