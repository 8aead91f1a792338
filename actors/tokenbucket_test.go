package actors

import (
	"math/big"
	"math/rand/v2"
	"testing"
	"time"
)

func tbParams(max int, window time.Duration, cost int) LimitParams {
	return LimitParams{Max: max, Window: window, Cost: cost, Algorithm: AlgTokenBucket}
}

func at(ms int64) time.Time { return limitT0.Add(time.Duration(ms) * time.Millisecond) }

// A bucket of 3 tokens a 3 s: a burst of 3, then one a second; denied
// checks take nothing and say when enough is back; refill is continuous.
func TestTokenBucketSteps(t *testing.T) {
	var s LimitState
	p := tbParams(3, 3*time.Second, 1)
	for _, step := range []struct {
		ms        int64
		cost      int
		allowed   bool
		remaining int
		retry     time.Duration
		resetIn   time.Duration
	}{
		{0, 1, true, 2, 0, time.Second},
		{0, 1, true, 1, 0, 2 * time.Second},
		{0, 1, true, 0, 0, 3 * time.Second},
		{0, 1, false, 0, time.Second, 3 * time.Second},
		{500, 1, false, 0, 500 * time.Millisecond, 2500 * time.Millisecond}, // half a token is back
		{999, 1, false, 0, time.Millisecond, 2001 * time.Millisecond},
		{1000, 1, true, 0, 0, 3 * time.Second},
		{1000, 2, false, 0, 2 * time.Second, 3 * time.Second}, // a denied check takes nothing
		{3000, 2, true, 0, 0, 3 * time.Second},                // 2 tokens back
		{3000, 1, false, 0, time.Second, 3 * time.Second},
		{60000, 3, true, 0, 0, 3 * time.Second},            // full again, never above capacity
		{59000, 1, false, 0, time.Second, 3 * time.Second}, // the clock went back: no refill, no harm
	} {
		p.Cost = step.cost
		d := s.Check(at(step.ms), p)
		if d.Allowed != step.allowed || d.Remaining != step.remaining || d.RetryAfter != step.retry || d.ResetIn != step.resetIn {
			t.Fatalf("at %d ms cost %d: %+v, want allowed %v remaining %d retry %v reset in %v",
				step.ms, step.cost, d, step.allowed, step.remaining, step.retry, step.resetIn)
		}
		if d.Count != 3-d.Remaining {
			t.Fatalf("count %d with %d remaining", d.Count, d.Remaining)
		}
	}
}

// refBucket is an independent model: tokens as exact rationals, refilled
// by elapsed seconds × max / window.
type refBucket struct {
	tokens *big.Rat
	last   int64
	init   bool
}

func (r *refBucket) check(ms int64, max, windowMS int64, cost int) (bool, int) {
	capacity := big.NewRat(max, 1)
	if !r.init {
		r.tokens, r.last, r.init = new(big.Rat).Set(capacity), ms, true
	}
	if ms > r.last {
		refill := big.NewRat((ms-r.last)*max, windowMS)
		r.tokens.Add(r.tokens, refill)
		if r.tokens.Cmp(capacity) > 0 {
			r.tokens.Set(capacity)
		}
		r.last = ms
	}
	need := big.NewRat(int64(cost), 1)
	ok := r.tokens.Cmp(need) >= 0
	if ok {
		r.tokens.Sub(r.tokens, need)
	}
	whole := new(big.Int).Quo(r.tokens.Num(), r.tokens.Denom())
	return ok, int(whole.Int64())
}

// The bucket agrees with the rational model on every decision and every
// remaining count, over 50,000 random checks of random cost and spacing,
// for several capacities and windows.
func TestTokenBucketAgreesWithModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 4))
	for _, tc := range []struct {
		max    int
		window time.Duration
	}{{1, time.Second}, {3, 7 * time.Second}, {10, time.Minute}, {1000, time.Hour}, {10000, 24 * time.Hour}, {7, 86400 * time.Second}} {
		var s LimitState
		var ref refBucket
		ms := int64(0)
		for i := 0; i < 10000; i++ {
			ms += rng.Int64N(tc.window.Milliseconds()/int64(tc.max)*3 + 2)
			cost := 1 + rng.IntN(min(tc.max, 5))
			d := s.Check(at(ms), tbParams(tc.max, tc.window, cost))
			ok, whole := ref.check(ms, int64(tc.max), tc.window.Milliseconds(), cost)
			if d.Allowed != ok || d.Remaining != whole {
				t.Fatalf("%d/%v check %d at %d ms cost %d: %+v, model allowed %v remaining %d", tc.max, tc.window, i, ms, cost, d, ok, whole)
			}
			if !d.Allowed {
				// RetryAfter is exact: one ms earlier it is still denied.
				probe := s
				if later := probe.Check(at(ms+d.RetryAfter.Milliseconds()), tbParams(tc.max, tc.window, cost)); !later.Allowed {
					t.Fatalf("retry after %v still denied", d.RetryAfter)
				}
				if d.RetryAfter > time.Millisecond {
					probe = s
					if early := probe.Check(at(ms+d.RetryAfter.Milliseconds()-1), tbParams(tc.max, tc.window, cost)); early.Allowed {
						t.Fatalf("allowed 1 ms before retry after %v", d.RetryAfter)
					}
				}
			}
		}
	}
}

// Cost in the sliding window: a check takes cost units if they fit, and
// nothing otherwise; retry_after waits for enough units to leave.
func TestSlidingWindowCost(t *testing.T) {
	var w SlidingWindow
	win := 10 * time.Second
	for _, step := range []struct {
		ms        int64
		cost      int
		allowed   bool
		remaining int
		retry     time.Duration
	}{
		{0, 3, true, 2, 0},
		{1000, 3, false, 2, 9 * time.Second}, // 3 + 3 > 5: wait for the first check to leave
		{1000, 2, true, 0, 0},
		{2000, 1, false, 0, 8 * time.Second},
		{10000, 4, false, 3, time.Second}, // at 10 s the first 3 left; the 2 of 1 s leave at 11 s
		{10000, 3, true, 0, 0},
	} {
		d := w.CheckCost(at(step.ms), 5, win, step.cost)
		if d.Allowed != step.allowed || d.Remaining != step.remaining || d.RetryAfter != step.retry {
			t.Fatalf("at %d ms cost %d: %+v, want %v %d %v", step.ms, step.cost, d, step.allowed, step.remaining, step.retry)
		}
	}
	if w.Count(at(10000)) != 5 {
		t.Fatalf("count %d", w.Count(at(10000)))
	}
}

// Denied checks change nothing, in either algorithm: Changes says so, and
// the state is the same after.
func TestDeniedChecksChangeNothing(t *testing.T) {
	for _, p := range []LimitParams{
		{Max: 2, Window: time.Minute, Cost: 2},
		{Max: 2, Window: time.Minute, Cost: 2, Algorithm: AlgTokenBucket},
	} {
		var s LimitState
		s.Check(at(0), p)
		for ms := int64(0); ms < 30000; ms += 997 {
			before := s.Row("o", "n")
			if s.Changes(at(ms), p) {
				t.Fatalf("%v: a denied check at %d would change the state", p.Algorithm, ms)
			}
			if d := s.Check(at(ms), p); d.Allowed {
				t.Fatalf("%v: allowed at %d", p.Algorithm, ms)
			}
			if after := s.Row("o", "n"); string(after.Log) != string(before.Log) {
				t.Fatalf("%v: a denied check changed the state", p.Algorithm)
			}
		}
	}
}

// Changing parameters or the algorithm carries the usage over: what was
// used stays used, only how it comes back changes.
func TestLimitParameterChanges(t *testing.T) {
	sw := func(max int) LimitParams { return LimitParams{Max: max, Window: time.Minute, Cost: 1} }
	tb := func(max int, w time.Duration) LimitParams { return tbParams(max, w, 1) }
	use := func(s *LimitState, p LimitParams, n int, ms int64) {
		t.Helper()
		for i := 0; i < n; i++ {
			if d := s.Check(at(ms), p); !d.Allowed {
				t.Fatalf("setup check %d denied", i)
			}
		}
	}
	admitted := func(s *LimitState, p LimitParams, ms int64) int {
		n := 0
		for ; n < 100 && s.Check(at(ms), p).Allowed; n++ {
		}
		return n
	}
	for _, tc := range []struct {
		name      string
		from      LimitParams
		used      int
		to        LimitParams
		now       int64 // ms after the use
		admitted  int   // checks admitted at once after the change
		thenAt    int64 // ms after the use
		thenCount int   // units in use then (before any further check)
	}{
		{"bucket: larger capacity admits the difference", tb(10, time.Minute), 10, tb(20, time.Minute), 0, 10, 0, 20},
		{"bucket: smaller capacity denies until refilled", tb(10, time.Minute), 4, tb(2, time.Minute), 0, 0, 30000, 1},
		{"bucket: a faster refill", tb(10, time.Minute), 10, tb(10, 10*time.Second), 0, 0, 0, 10},
		{"window to bucket: counted checks are tokens in use", sw(5), 3, tb(5, time.Minute), 0, 2, 0, 5},
		{"bucket to window: tokens in use count from the change", tb(5, time.Minute), 3, sw(5), 0, 2, 59999, 5},
		{"bucket to window, later: they leave one window after", tb(5, time.Minute), 3, sw(5), 0, 2, 60000, 0},
		{"window: raising max admits at once", sw(3), 3, sw(6), 0, 3, 0, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s LimitState
			use(&s, tc.from, tc.used, 0)
			if got := admitted(&s, tc.to, tc.now); got != tc.admitted {
				t.Fatalf("admitted %d after the change, want %d", got, tc.admitted)
			}
			if got := s.Count(at(tc.thenAt)); got != tc.thenCount {
				t.Fatalf("count at %d ms: %d, want %d", tc.thenAt, got, tc.thenCount)
			}
			if max, win := s.Params(); s.Algorithm != tc.to.Algorithm || max != tc.to.Max || win != tc.to.Window {
				t.Fatalf("params %v %d %v", s.Algorithm, max, win)
			}
		})
	}
	// No round trip through other parameters hands out a fresh burst.
	var s LimitState
	use(&s, tb(5, time.Minute), 5, 0)
	for _, p := range []LimitParams{sw(5), tb(5, time.Hour), sw(5), tb(5, time.Minute)} {
		if d := s.Check(at(1), p); d.Allowed {
			t.Fatalf("after switching to %+v a check was admitted", p)
		}
	}
}

// The stored form round-trips; an older snapshot never has fewer tokens
// than a newer one at any later time (so a kill -9 that loses the newest
// can only allow more, never less).
func TestTokenBucketSnapshots(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 9))
	p := tbParams(20, 10*time.Second, 1)
	var s LimitState
	var snaps []LimitRow
	ms := int64(0)
	for i := 0; i < 2000; i++ {
		ms += rng.Int64N(800)
		p.Cost = 1 + rng.IntN(4)
		s.Check(at(ms), p)
		row := s.Row("o", "n")
		if row.Algorithm != TokenBucketName || row.MaxRequests != 20 || row.WindowSeconds != 10 {
			t.Fatalf("row %+v", row)
		}
		back, err := DecodeLimitState(row.Algorithm, row.MaxRequests, time.Duration(row.WindowSeconds)*time.Second, row.Log)
		if err != nil || back.Algorithm != s.Algorithm || back.Bucket != s.Bucket {
			t.Fatalf("round trip: %+v %v, want %+v", back, err, s)
		}
		snaps = append(snaps, row)
	}
	for i := 0; i+1 < len(snaps); i += 7 {
		older, _ := DecodeLimitState(TokenBucketName, 20, 10*time.Second, snaps[i].Log)
		newer, _ := DecodeLimitState(TokenBucketName, 20, 10*time.Second, snaps[i+1].Log)
		for _, later := range []int64{0, 1, 500, 5000, 20000} {
			when := at(ms + later)
			if older.Bucket.levelAt(when.UnixMilli()) < newer.Bucket.levelAt(when.UnixMilli()) {
				t.Fatalf("snapshot %d has fewer tokens than %d at +%d ms", i, i+1, later)
			}
		}
	}
	for _, bad := range [][]byte{nil, {1, 0}, {2}, {2, 0xff}, append([]byte{2}, make([]byte, 3)...)} {
		if _, err := DecodeLimitState(TokenBucketName, 20, 10*time.Second, bad); err == nil {
			t.Errorf("decoded %v", bad)
		}
	}
	if _, err := DecodeLimitState("leaky", 1, time.Second, nil); err == nil {
		t.Error("decoded an unknown algorithm")
	}
	over := append([]byte{2}, 0xff, 0xff, 0xff, 0xff, 0x0f, 0) // a level over the capacity
	if _, err := DecodeLimitState(TokenBucketName, 1, time.Second, over); err == nil {
		t.Error("decoded a level over the capacity")
	}
}

func BenchmarkTokenBucketCheck(b *testing.B) {
	var s LimitState
	p := tbParams(10000, time.Second, 1)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s.Check(at(int64(i)), p)
	}
}
