package actors

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/actors/internal/manualtime"
)

// manualTimers is an injected Config.AfterFunc whose timers run when the
// test calls fire, once the fake clock has reached them (manualtime).
type manualTimers struct{ *manualtime.Timers }

func newManualTimers(clk *fakeClock) *manualTimers { return &manualTimers{manualtime.New(clk.Now)} }

func (ts *manualTimers) AfterFunc(d time.Duration, f func()) Timer { return ts.Timers.AfterFunc(d, f) }

// armed is the number of timers waiting to run.
func (ts *manualTimers) armed() int { return ts.Armed() }

// fire runs every timer due at the clock's time (not those a run arms).
func (ts *manualTimers) fire() { ts.Fire() }

// newTestExpiries is an expiry schedule on a fake clock and manual timers
// whose expiries are recorded (in the order sent) instead of sent.
func newTestExpiries(t *testing.T) (*expiries, *fakeClock, *manualTimers, func() []string) {
	t.Helper()
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	ts := newManualTimers(clk)
	sys := NewSystem(Config{Store: newMemStore(false), Now: clk.Now, AfterFunc: ts.AfterFunc})
	t.Cleanup(sys.Close)
	e := newExpiries(sys)
	var mu sync.Mutex
	var sent []string
	e.send = func(name string) {
		mu.Lock()
		sent = append(sent, name)
		mu.Unlock()
	}
	take := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := sent
		sent = nil
		return out
	}
	return e, clk, ts, take
}

// Entries fire in deadline order, each once, when the clock reaches them,
// with at most one runtime timer per part armed at any time.
func TestExpiryScheduleOrder(t *testing.T) {
	e, clk, ts, take := newTestExpiries(t)
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 2000
	due := map[string]time.Duration{}
	for i := 0; i < n; i++ {
		name := fmt.Sprint("l", i)
		d := time.Duration(1+rng.IntN(5000)) * time.Millisecond
		due[name] = d
		e.reset(newExpiryItem(name), d)
	}
	if got := e.scheduled(); got != n {
		t.Fatalf("scheduled = %d, want %d", got, n)
	}
	if ts.Made() > expiryParts || ts.armed() > expiryParts {
		t.Fatalf("%d timers made, %d armed for %d entries: want at most one per part (%d)", ts.Made(), ts.armed(), n, expiryParts)
	}
	var fired []string
	start := time.Duration(0)
	for step := time.Duration(0); step <= 5*time.Second; step += 7 * time.Millisecond {
		clk.Add(step - start)
		start = step
		ts.fire()
		got := take()
		for _, name := range got {
			if due[name] > step {
				t.Fatalf("%s fired at %v, due at %v", name, step, due[name])
			}
			if due[name] <= step-7*time.Millisecond {
				t.Fatalf("%s fired at %v, due at %v: a step late", name, step, due[name])
			}
		}
		fired = append(fired, got...)
	}
	clk.Add(time.Second)
	ts.fire()
	fired = append(fired, take()...)
	if len(fired) != n {
		t.Fatalf("%d fired, want %d", len(fired), n)
	}
	seen := map[string]bool{}
	for _, name := range fired {
		if seen[name] {
			t.Fatalf("%s fired twice", name)
		}
		seen[name] = true
	}
	if e.scheduled() != 0 || ts.armed() != 0 {
		t.Fatalf("after every expiry: %d scheduled, %d timers armed", e.scheduled(), ts.armed())
	}
}

// Re-arming moves an entry (later: it does not fire at its old deadline;
// earlier: it fires at the new one), stopping takes it out, and an entry
// reused after it fired is scheduled again.
func TestExpiryRearmAndStop(t *testing.T) {
	e, clk, ts, take := newTestExpiries(t)
	later, earlier, stopped := newExpiryItem("later"), newExpiryItem("earlier"), newExpiryItem("stopped")
	for _, it := range []*expiryItem{later, earlier, stopped} {
		e.reset(it, 10*time.Second)
	}
	e.reset(later, 30*time.Second)
	e.reset(earlier, 2*time.Second)
	e.stop(stopped)
	e.stop(stopped) // twice: nothing
	clk.Add(2 * time.Second)
	ts.fire()
	if got := take(); !slices.Equal(got, []string{"earlier"}) {
		t.Fatalf("at 2 s: %q, want [earlier]", got)
	}
	clk.Add(8 * time.Second)
	ts.fire()
	if got := take(); len(got) != 0 {
		t.Fatalf("at 10 s: %q, want nothing (later moved, stopped stopped)", got)
	}
	e.reset(earlier, time.Second) // reused after it fired
	clk.Add(time.Second)
	ts.fire()
	if got := take(); !slices.Equal(got, []string{"earlier"}) {
		t.Fatalf("at 11 s: %q, want [earlier] again", got)
	}
	clk.Add(19 * time.Second)
	ts.fire()
	if got := take(); !slices.Equal(got, []string{"later"}) {
		t.Fatalf("at 30 s: %q, want [later]", got)
	}
	e.reset(stopped, 0) // due now: fires at the next run of the timer
	ts.fire()
	if got := take(); !slices.Equal(got, []string{"stopped"}) {
		t.Fatalf("due now: %q, want [stopped]", got)
	}
	if e.scheduled() != 0 || ts.armed() != 0 {
		t.Fatalf("%d scheduled, %d timers armed, want none", e.scheduled(), ts.armed())
	}
}

// A timer that fires before anything is due (the earliest entry was moved
// later or stopped) sends nothing and re-arms for the earliest deadline.
func TestExpiryEarlyTimerRearms(t *testing.T) {
	e, clk, ts, take := newTestExpiries(t)
	a, b := newExpiryItem("a"), newExpiryItem("a2") // names picked below share a part
	for i := 0; e.part(b.name) != e.part(a.name); i++ {
		b = newExpiryItem(fmt.Sprint("b", i))
	}
	e.reset(a, time.Second)
	e.reset(b, 5*time.Second)
	e.reset(a, 10*time.Second) // the part's timer stays armed for 1 s
	clk.Add(time.Second)
	ts.fire()
	if got := take(); len(got) != 0 {
		t.Fatalf("at 1 s: %q, want nothing", got)
	}
	if ts.armed() != 1 {
		t.Fatalf("%d timers armed after an early run, want 1 (re-armed)", ts.armed())
	}
	clk.Add(4 * time.Second)
	ts.fire()
	if got := take(); !slices.Equal(got, []string{b.name}) {
		t.Fatalf("at 5 s: %q, want [%s]", got, b.name)
	}
	clk.Add(5 * time.Second)
	ts.fire()
	if got := take(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("at 10 s: %q, want [a]", got)
	}
}

// Many entries with one deadline all fire in one run of their parts'
// timers, and the drained heaps give their memory back.
func TestExpiryManyDeadlines(t *testing.T) {
	e, clk, ts, take := newTestExpiries(t)
	const n = 100_000
	for i := 0; i < n; i++ {
		e.reset(newExpiryItem(fmt.Sprint("l", i)), time.Minute)
	}
	clk.Add(time.Minute)
	ts.fire()
	if got := len(take()); got != n {
		t.Fatalf("%d fired, want %d", got, n)
	}
	for i := range e.parts {
		if c := cap(e.parts[i].heap); c > 1024 {
			t.Fatalf("part %d: heap capacity %d after draining", i, c)
		}
	}
}

// Closing the System stops the schedule: its timers are stopped, nothing
// is sent, and nothing can be scheduled any more.
func TestExpiryCloseStopsTheSchedule(t *testing.T) {
	e, clk, ts, take := newTestExpiries(t)
	for i := 0; i < 100; i++ {
		e.reset(newExpiryItem(fmt.Sprint("l", i)), time.Second)
	}
	e.close()
	e.reset(newExpiryItem("late"), time.Second)
	if ts.armed() != 0 || e.scheduled() != 0 {
		t.Fatalf("after close: %d timers armed, %d scheduled", ts.armed(), e.scheduled())
	}
	clk.Add(time.Second)
	ts.fire()
	if got := take(); len(got) != 0 {
		t.Fatalf("after close: %q sent", got)
	}
}
