package tui

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/octostore/octostore/tools/client"
)

func TestParseScrapeAndQuantile(t *testing.T) {
	s, ok := parseScrape(fmt.Sprintf(exposition, 5, 1, 2, 5), t0)
	if !ok || s.requests != 5 {
		t.Fatalf("requests %v ok %v (the /metrics route must be left out)", s.requests, ok)
	}
	if s.buckets[0.001] != 1 || s.buckets[0.002] != 2 || s.buckets[math.Inf(1)] != 5 {
		t.Fatalf("buckets %v", s.buckets)
	}
	if _, ok := parseScrape("# nothing here\nfoo 1\n", t0); ok {
		t.Fatal("found series in an unrelated exposition")
	}
	cases := []struct {
		name          string
		before, after map[float64]float64
		want          float64
	}{
		{"all in the first bucket", nil, map[float64]float64{0.001: 100, math.Inf(1): 100}, 0.00099},
		{"interpolated", map[float64]float64{0.001: 0, 0.002: 0, math.Inf(1): 0},
			map[float64]float64{0.001: 50, 0.002: 100, math.Inf(1): 100}, 0.001 + 0.001*(99-50)/50},
		{"beyond the last bound", nil, map[float64]float64{0.001: 1, math.Inf(1): 100}, 0.001},
	}
	for _, tc := range cases {
		if got := quantile(0.99, tc.before, tc.after); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if !math.IsNaN(quantile(0.99, map[float64]float64{math.Inf(1): 3}, map[float64]float64{math.Inf(1): 3})) {
		t.Error("no observations must give NaN")
	}
}

func TestRatesWindowAndRestart(t *testing.T) {
	var r rates
	at := t0
	for i := 0; i <= 20; i++ {
		r.add(scrape{at: at, requests: float64(i * 10), buckets: map[float64]float64{0.001: float64(i * 10), math.Inf(1): float64(i * 10)}})
		at = at.Add(time.Second)
	}
	if len(r.ops) != sparkLen || r.ops[len(r.ops)-1] != 10 || len(r.window) != p99Window+1 {
		t.Fatalf("ops %v window %d", r.ops, len(r.window))
	}
	// A restarted server (counters back to 0) starts a new series rather
	// than a negative rate.
	r.add(scrape{at: at, requests: 3, buckets: map[float64]float64{math.Inf(1): 3}})
	if r.ops[len(r.ops)-1] < 0 || len(r.window) != 1 {
		t.Fatalf("after restart: ops %v window %d", r.ops, len(r.window))
	}
	if got := sparkline([]float64{0, 1, 2, 4, 8}); got != "▁▁▂▄█" {
		t.Fatalf("sparkline %q", got)
	}
	if got := sparkline([]float64{0, 0}); got != "▁▁" {
		t.Fatalf("flat sparkline %q", got)
	}
}

// TestLockTableConverges: whatever the order in which a listing and the
// events around it are merged (as long as events keep their order), the
// table ends up showing the final state.
func TestLockTableConverges(t *testing.T) {
	exp := t0.Add(time.Minute)
	// History of lock "a": grants 1..3, the last one held; "b": granted and
	// expired; "c": held throughout by token 5.
	events := []client.Event{
		lockEvent("lock.acquired", "a", "u1", 1, t0, exp),
		lockEvent("lock.acquired", "b", "u2", 1, t0, exp),
		lockEvent("lock.released", "a", "u1", 1, t0, exp),
		lockEvent("lock.acquired", "a", "u2", 2, t0, exp),
		lockEvent("lock.renewed", "c", "u3", 5, t0, exp),
		lockEvent("lock.expired", "a", "u2", 2, t0, exp),
		lockEvent("lock.expired", "b", "u2", 1, t0, exp),
		lockEvent("lock.acquired", "a", "u3", 3, t0, exp),
		lockEvent("lock.renewed", "a", "u3", 3, t0, exp.Add(time.Minute)),
	}
	// Listings as they could have been taken before each event.
	states := [][]client.LockInfo{
		{lockInfo("c", "u3", 5, exp)},
		{lockInfo("a", "u1", 1, exp), lockInfo("c", "u3", 5, exp)},
		{lockInfo("a", "u1", 1, exp), lockInfo("b", "u2", 1, exp), lockInfo("c", "u3", 5, exp)},
		{lockInfo("b", "u2", 1, exp), lockInfo("c", "u3", 5, exp)},
		{lockInfo("a", "u2", 2, exp), lockInfo("b", "u2", 1, exp), lockInfo("c", "u3", 5, exp)},
		{lockInfo("a", "u2", 2, exp), lockInfo("b", "u2", 1, exp), lockInfo("c", "u3", 5, exp)},
		{lockInfo("b", "u2", 1, exp), lockInfo("c", "u3", 5, exp)},
		{lockInfo("c", "u3", 5, exp)},
		{lockInfo("a", "u3", 3, exp), lockInfo("c", "u3", 5, exp)},
		{lockInfo("a", "u3", 3, exp.Add(time.Minute)), lockInfo("c", "u3", 5, exp)},
	}
	for k, list := range states {
		// The listing reflects events[:k]; the subscription started
		// before it, at some s <= k: events[s:] are pending at the reset.
		for s := 0; s <= k; s++ {
			tb := newLockTable()
			tb.SetSize(80, 10)
			tb.Reset(list, t0)
			for _, e := range events[s:] {
				tb.Apply(e, t0)
			}
			got := fmt.Sprint(rowsOf(&tb))
			if want := "[a:u3:3 c:u3:5]"; got != want {
				t.Fatalf("listing %d, events from %d: %s, want %s", k, s, got, want)
			}
			if r := tb.Get("a"); !r.ExpiresAt.Equal(exp.Add(time.Minute)) {
				t.Fatalf("listing %d, events from %d: expiry %v", k, s, r.ExpiresAt)
			}
		}
	}
}

func rowsOf(t *lockTable) []string {
	t.rebuild()
	var out []string
	for _, r := range t.view {
		out = append(out, fmt.Sprintf("%s:%s:%d", r.Name, r.Holder, r.Token))
	}
	return out
}

func TestLockTableScrolls(t *testing.T) {
	tb := newLockTable()
	tb.SetSize(80, 5) // header + 4 rows
	var ls []client.LockInfo
	for i := 0; i < 20; i++ {
		ls = append(ls, lockInfo(fmt.Sprintf("l%02d", i), "u", 1, t0.Add(time.Minute)))
	}
	tb.Reset(ls, t0)
	tb.Move(10)
	if tb.Selected().Name != "l10" || tb.offset != 7 {
		t.Fatalf("selected %s offset %d", tb.Selected().Name, tb.offset)
	}
	v := tb.View(t0, defaultStyles())
	mustContain(t, v, "l07", "▸ l10")
	mustNotContain(t, v, "l06", "l11")
	tb.Move(-100)
	if tb.Selected().Name != "l00" || tb.offset != 0 {
		t.Fatalf("selected %s offset %d", tb.Selected().Name, tb.offset)
	}
	// Rows vanishing under the cursor keep it in range.
	tb.Move(19)
	tb.Reset(ls[:3], t0)
	if tb.Selected().Name != "l02" {
		t.Fatalf("selected %s after shrinking", tb.Selected().Name)
	}
}

func TestFormatting(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 42 * time.Second: "42s", 185 * time.Second: "3m05s", 2*time.Hour + 3*time.Minute: "2h03m",
		50 * time.Hour: "2d02h", -time.Second: "0s",
	} {
		if got := shortDur(d); got != want {
			t.Errorf("shortDur(%v) = %q, want %q", d, got, want)
		}
	}
	for s, want := range map[float64]string{0.00042: "420µs", 0.0123: "12.3ms", 1.5: "1.50s", math.NaN(): "–"} {
		if got := fmtLatency(s); got != want {
			t.Errorf("fmtLatency(%v) = %q, want %q", s, got, want)
		}
	}
	if got := pad("abcdefgh", 5); got != "abcd…" {
		t.Errorf("pad = %q", got)
	}
	if got := padLeft("7", 3); got != "  7" {
		t.Errorf("padLeft = %q", got)
	}
	if got := oneLine("a\nb\x1b[2Jc\u0085\u202e"); got != "a b\uFFFD[2Jc\uFFFD\uFFFD" {
		t.Errorf("oneLine = %q", got)
	}
	for i := 1; i < 10; i++ {
		if d := defaultBackoff(i); d <= 0 || d > 5*time.Second {
			t.Errorf("backoff(%d) = %v", i, d)
		}
	}
}

func semEvent(typ, name, holder string, limit int, token uint64, exp time.Time) client.Event {
	return client.Event{Type: typ, Kind: "semaphore", Name: name, Holder: holder, Limit: limit, FencingToken: token, Time: t0, ExpiresAt: exp}
}

func semState(name string, limit, waiters int, slots ...client.SemaphoreSlot) client.SemaphoreState {
	return client.SemaphoreState{Name: name, Limit: limit, Holders: slots, Available: limit - len(slots), Waiters: waiters}
}

func slot(holder string, token uint64, exp time.Time) client.SemaphoreSlot {
	return client.SemaphoreSlot{Holder: holder, FencingToken: token, ExpiresAt: exp}
}

func semRowsOf(t *semTable) []string {
	t.rebuild()
	var out []string
	for _, r := range t.view {
		var slots []string
		for _, s := range r.sorted() {
			slots = append(slots, fmt.Sprintf("%s:%d", s.Holder, s.Token))
		}
		out = append(out, fmt.Sprintf("%s/%d%v", r.Name, r.Limit, slots))
	}
	return out
}

// TestSemTableConverges: a status read of a semaphore merged with the
// events around it (the read sent at any point of the event history, its
// answer reflecting any later point, the events recorded before and after
// it in order) always ends as the final state.
func TestSemTableConverges(t *testing.T) {
	exp := t0.Add(time.Minute)
	events := []client.Event{
		semEvent("semaphore.acquired", "p", "u1", 2, 1, exp),
		semEvent("semaphore.acquired", "p", "u2", 2, 2, exp),
		semEvent("semaphore.released", "p", "u1", 2, 1, exp),
		semEvent("semaphore.acquired", "p", "u3", 2, 3, exp),
		semEvent("semaphore.renewed", "p", "u2", 2, 2, exp.Add(time.Minute)),
		semEvent("semaphore.expired", "p", "u3", 2, 3, exp),
		semEvent("semaphore.acquired", "p", "u1", 2, 4, exp),
	}
	// The semaphore as a read answers after events[:k].
	states := []client.SemaphoreState{
		semState("p", 0, 0),
		semState("p", 2, 0, slot("u1", 1, exp)),
		semState("p", 2, 0, slot("u1", 1, exp), slot("u2", 2, exp)),
		semState("p", 2, 0, slot("u2", 2, exp)),
		semState("p", 2, 1, slot("u2", 2, exp), slot("u3", 3, exp)),
		semState("p", 2, 1, slot("u2", 2, exp.Add(time.Minute)), slot("u3", 3, exp)),
		semState("p", 2, 0, slot("u2", 2, exp.Add(time.Minute))),
		semState("p", 2, 0, slot("u2", 2, exp.Add(time.Minute)), slot("u1", 4, exp)),
	}
	want := "[p/2[u2:2 u1:4]]"
	for sent := 0; sent <= len(events); sent++ {
		for k := sent; k < len(states); k++ {
			// Every event is received in order; the read is sent after
			// `sent` of them and answered after `got` of them, reflecting
			// events[:k] (k >= sent: the server is ahead of the stream).
			for got := sent; got <= len(events); got++ {
				tb := newSemTable()
				tb.SetSize(80, 10)
				var since uint64
				for i, e := range events {
					if i == sent {
						since = tb.Count()
					}
					if i == got {
						tb.SetStatus(states[k], since, t0)
					}
					tb.Record(e)
					tb.Apply(e, t0)
				}
				if got == len(events) {
					if sent == len(events) {
						since = tb.Count()
					}
					tb.SetStatus(states[k], since, t0)
				}
				if g := fmt.Sprint(semRowsOf(&tb)); g != want {
					t.Fatalf("read sent after %d events, reflecting %d, answered after %d: %s, want %s", sent, k, got, g, want)
				}
				if r := tb.Get("p"); !r.Slots[2].ExpiresAt.Equal(exp.Add(time.Minute)) {
					t.Fatalf("read %d/%d/%d: u2's expiry %v", sent, k, got, r.Slots[2].ExpiresAt)
				}
			}
		}
	}
	// Nothing held and nobody waiting: the semaphore leaves the table.
	tb := newSemTable()
	tb.Record(events[0])
	tb.Apply(events[0], t0)
	tb.SetStatus(semState("p", 0, 0), tb.Count(), t0)
	if tb.Total() != 0 {
		t.Fatalf("an empty semaphore stays: %v", semRowsOf(&tb))
	}
	// Waiters keep an empty semaphore on screen.
	tb.SetStatus(semState("p", 1, 3), tb.Count(), t0)
	if r := tb.Get("p"); r == nil || r.Waiters != 3 {
		t.Fatalf("a semaphore with waiters: %+v", r)
	}
}
