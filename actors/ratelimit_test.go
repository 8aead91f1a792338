package actors

import (
	"math/rand"
	"testing"
	"time"
)

var limitT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestSlidingWindow(t *testing.T) {
	const ms = time.Millisecond
	sec := time.Second
	type step struct {
		at      time.Duration // offset from limitT0
		max     int           // 0: a status read (no check)
		window  time.Duration
		allowed bool
		remain  int
		count   int
		resetAt time.Duration // offset from limitT0
		retry   time.Duration // only when denied
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"first check: reset_at is now+window", []step{
			{at: 0, max: 3, window: 10 * sec, allowed: true, remain: 2, count: 1, resetAt: 10 * sec},
		}},
		{"exactly at window end the oldest check has left", []step{
			{at: 0, max: 2, window: 10 * sec, allowed: true, remain: 1, count: 1, resetAt: 10 * sec},
			{at: 1 * sec, max: 2, window: 10 * sec, allowed: true, remain: 0, count: 2, resetAt: 10 * sec},
			{at: 10*sec - ms, max: 2, window: 10 * sec, allowed: false, remain: 0, count: 2, resetAt: 10 * sec, retry: ms},
			{at: 10 * sec, max: 2, window: 10 * sec, allowed: true, remain: 0, count: 2, resetAt: 11 * sec},
			{at: 10*sec + 500*ms, max: 2, window: 10 * sec, allowed: false, remain: 0, count: 2, resetAt: 11 * sec, retry: 500 * ms},
			{at: 11 * sec, max: 2, window: 10 * sec, allowed: true, remain: 0, count: 2, resetAt: 20 * sec},
		}},
		{"denied checks are not counted", []step{
			{at: 0, max: 1, window: 10 * sec, allowed: true, remain: 0, count: 1, resetAt: 10 * sec},
			{at: 5 * sec, max: 1, window: 10 * sec, allowed: false, count: 1, resetAt: 10 * sec, retry: 5 * sec},
			{at: 9 * sec, max: 1, window: 10 * sec, allowed: false, count: 1, resetAt: 10 * sec, retry: 1 * sec},
			// a fixed window or a counted denial would refuse this one
			{at: 10 * sec, max: 1, window: 10 * sec, allowed: true, remain: 0, count: 1, resetAt: 20 * sec},
		}},
		{"checks in the same millisecond", []step{
			{at: 0, max: 3, window: sec, allowed: true, remain: 2, count: 1, resetAt: sec},
			{at: 0, max: 3, window: sec, allowed: true, remain: 1, count: 2, resetAt: sec},
			{at: 0, max: 3, window: sec, allowed: true, remain: 0, count: 3, resetAt: sec},
			{at: 0, max: 3, window: sec, allowed: false, count: 3, resetAt: sec, retry: sec},
			{at: sec, max: 3, window: sec, allowed: true, remain: 2, count: 1, resetAt: 2 * sec},
		}},
		{"raising max_requests applies from that check on", []step{
			{at: 0, max: 1, window: 10 * sec, allowed: true, remain: 0, count: 1, resetAt: 10 * sec},
			{at: 1 * sec, max: 1, window: 10 * sec, allowed: false, count: 1, resetAt: 10 * sec, retry: 9 * sec},
			{at: 2 * sec, max: 3, window: 10 * sec, allowed: true, remain: 1, count: 2, resetAt: 10 * sec},
			{at: 3 * sec, max: 3, window: 10 * sec, allowed: true, remain: 0, count: 3, resetAt: 10 * sec},
			{at: 4 * sec, max: 3, window: 10 * sec, allowed: false, count: 3, resetAt: 10 * sec, retry: 6 * sec},
		}},
		{"lowering max_requests: denied until enough checks leave", []step{
			{at: 0, max: 5, window: 10 * sec, allowed: true, remain: 4, count: 1, resetAt: 10 * sec},
			{at: 1 * sec, max: 5, window: 10 * sec, allowed: true, remain: 3, count: 2, resetAt: 10 * sec},
			{at: 2 * sec, max: 5, window: 10 * sec, allowed: true, remain: 2, count: 3, resetAt: 10 * sec},
			{at: 3 * sec, max: 5, window: 10 * sec, allowed: true, remain: 1, count: 4, resetAt: 10 * sec},
			// count 4, max 2: a slot frees when only 1 is left, at 2s+10s
			{at: 5 * sec, max: 2, window: 10 * sec, allowed: false, count: 4, resetAt: 10 * sec, retry: 7 * sec},
			{at: 11 * sec, max: 2, window: 10 * sec, allowed: false, count: 2, resetAt: 12 * sec, retry: 1 * sec},
			{at: 12 * sec, max: 2, window: 10 * sec, allowed: true, remain: 0, count: 2, resetAt: 13 * sec},
		}},
		{"shortening the window applies at once", []step{
			{at: 0, max: 2, window: 10 * sec, allowed: true, remain: 1, count: 1, resetAt: 10 * sec},
			{at: 1 * sec, max: 2, window: 10 * sec, allowed: true, remain: 0, count: 2, resetAt: 10 * sec},
			{at: 3 * sec, max: 2, window: 10 * sec, allowed: false, count: 2, resetAt: 10 * sec, retry: 7 * sec},
			// with a 2s window the check at 0 has left, the one at 1s too (1+2 <= 3)
			{at: 3 * sec, max: 2, window: 2 * sec, allowed: true, remain: 1, count: 1, resetAt: 5 * sec},
		}},
		{"lengthening the window counts the checks still remembered", []step{
			{at: 0, max: 2, window: 2 * sec, allowed: true, remain: 1, count: 1, resetAt: 2 * sec},
			{at: 1 * sec, max: 2, window: 2 * sec, allowed: true, remain: 0, count: 2, resetAt: 2 * sec},
			{at: 1500 * ms, max: 2, window: 10 * sec, allowed: false, count: 2, resetAt: 10 * sec, retry: 8500 * ms},
		}},
		{"status reads do not consume", []step{
			{at: 0, max: 2, window: 10 * sec, allowed: true, remain: 1, count: 1, resetAt: 10 * sec},
			{at: 1 * sec, allowed: true, remain: 1, count: 1, resetAt: 10 * sec},
			{at: 1 * sec, allowed: true, remain: 1, count: 1, resetAt: 10 * sec},
			{at: 2 * sec, max: 2, window: 10 * sec, allowed: true, remain: 0, count: 2, resetAt: 10 * sec},
			{at: 3 * sec, allowed: false, remain: 0, count: 2, resetAt: 10 * sec, retry: 7 * sec},
			{at: 10 * sec, allowed: true, remain: 1, count: 1, resetAt: 12 * sec},
			{at: 12 * sec, allowed: true, remain: 2, count: 0, resetAt: 22 * sec},
		}},
		{"clock going back counts at the later time", []step{
			{at: 5 * sec, max: 2, window: 10 * sec, allowed: true, remain: 1, count: 1, resetAt: 15 * sec},
			{at: 4 * sec, max: 2, window: 10 * sec, allowed: true, remain: 0, count: 2, resetAt: 15 * sec},
			{at: 15 * sec, max: 2, window: 10 * sec, allowed: true, remain: 1, count: 1, resetAt: 25 * sec},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w SlidingWindow
			for i, s := range tt.steps {
				now := limitT0.Add(s.at)
				var d LimitDecision
				if s.max == 0 {
					before := w.AppendBinary(nil)
					d = w.Status(now)
					if string(w.AppendBinary(nil)) != string(before) {
						t.Fatalf("step %d: Status changed the window", i)
					}
				} else {
					changes := w.Changes(now, s.max, s.window)
					before, _ := DecodeSlidingWindow(w.Max, time.Duration(w.Window)*time.Millisecond, w.AppendBinary(nil))
					d = w.Check(now, s.max, s.window)
					if !changes {
						// nothing but expiry may differ: every later status is the same
						for _, later := range []time.Duration{0, time.Millisecond, time.Second, 7 * time.Second, time.Minute} {
							if a, b := before.Status(now.Add(later)), w.Status(now.Add(later)); a != b {
								t.Fatalf("step %d: Changes said no change, but at +%v %+v became %+v", i, later, a, b)
							}
						}
					}
				}
				if d.Allowed != s.allowed || d.Remaining != s.remain || d.Count != s.count {
					t.Fatalf("step %d: allowed=%v remaining=%d count=%d, want %v %d %d", i, d.Allowed, d.Remaining, d.Count, s.allowed, s.remain, s.count)
				}
				if want := limitT0.Add(s.resetAt); !d.ResetAt.Equal(want) || d.ResetIn != want.Sub(now) {
					t.Fatalf("step %d: reset_at %v (in %v), want %v", i, d.ResetAt, d.ResetIn, want)
				}
				if d.RetryAfter != s.retry {
					t.Fatalf("step %d: retry after %v, want %v", i, d.RetryAfter, s.retry)
				}
			}
		})
	}
}

// exactLog is the reference: every allowed check's time.
type exactLog []int64

// count is the number of checks in (now-window, now].
func (l exactLog) count(now, window int64) int {
	n := 0
	for _, t := range l {
		if t+window > now {
			n++
		}
	}
	return n
}

// With max_requests <= WindowBuckets the window is exact: it decides every
// check as a full log of timestamps does, retry_after included.
func TestSlidingWindowExactForSmallMax(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, max := range []int{1, 2, 7, 64} {
		const window = 5000
		var w SlidingWindow
		var ref exactLog
		now := int64(0)
		for i := 0; i < 20000; i++ {
			now += int64(rng.Intn(3 * window / max))
			at := limitT0.Add(time.Duration(now) * time.Millisecond)
			d := w.Check(at, max, window*time.Millisecond)
			base := limitT0.UnixMilli()
			allowed := ref.count(now+base, window) < max
			if d.Allowed != allowed {
				t.Fatalf("max %d, check %d at %d: allowed=%v, exact log says %v", max, i, now, d.Allowed, allowed)
			}
			if allowed {
				ref = append(ref, now+base)
			} else {
				// a slot frees when the (count-max+1)-th newest... i.e. the
				// oldest check whose departure brings the count below max
				live := ref[len(ref)-ref.count(now+base, window):]
				free := live[len(live)-max] + window
				if want := time.Duration(free-now-base) * time.Millisecond; d.RetryAfter != want {
					t.Fatalf("max %d, check %d: retry after %v, want %v", max, i, d.RetryAfter, want)
				}
			}
			if w.Buckets() > max {
				t.Fatalf("max %d: %d buckets", max, w.Buckets())
			}
		}
	}
}

// Above WindowBuckets the window is approximate with a proven bound: it
// never admits a check the exact log would refuse (it never lets more than
// max_requests through in any window), and it refuses a check only if the
// exact log over a window one grain longer would refuse it too.
func TestSlidingWindowApproximationBound(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for _, tc := range []struct {
		max    int
		window int64 // ms
	}{{65, 1000}, {100, 10000}, {1000, 60000}, {10000, 60000}} {
		var w SlidingWindow
		var ref exactLog
		base := limitT0.UnixMilli()
		grain := (tc.window + WindowBuckets - 1) / WindowBuckets
		now := int64(0)
		denied, allowedN := 0, 0
		for i := 0; i < 60000; i++ {
			// bursts and gaps, so that both branches are exercised
			if rng.Intn(3*tc.max) == 0 {
				now += int64(rng.Intn(int(tc.window)))
			} else {
				// on average 1.5 times the allowed rate
				now += int64(rng.Intn(int(4*tc.window/(3*int64(tc.max))) + 1))
			}
			d := w.Check(limitT0.Add(time.Duration(now)*time.Millisecond), tc.max, time.Duration(tc.window)*time.Millisecond)
			exact := ref.count(now+base, tc.window)
			if d.Allowed {
				allowedN++
				if exact >= tc.max {
					t.Fatalf("%+v check %d: admitted with %d exact checks in the window", tc, i, exact)
				}
				ref = append(ref, now+base)
			} else {
				denied++
				if ext := ref.count(now+base, tc.window+grain); ext < tc.max {
					t.Fatalf("%+v check %d: refused with only %d checks in window+grain", tc, i, ext)
				}
				// a slot frees at most one grain after the exact log's
				live := ref[len(ref)-exact:]
				exactFree := int64(0)
				if exact >= tc.max {
					exactFree = live[len(live)-tc.max] + tc.window - now - base
				}
				got := int64(d.RetryAfter / time.Millisecond)
				if got < exactFree || got > exactFree+grain {
					t.Fatalf("%+v check %d: retry after %dms, exact %dms, grain %d", tc, i, got, exactFree, grain)
				}
			}
			if w.Count(limitT0.Add(time.Duration(now)*time.Millisecond)) < exact {
				t.Fatalf("%+v: counts fewer checks than the exact log", tc)
			}
			if w.Buckets() > maxBuckets {
				t.Fatalf("%+v: %d buckets", tc, w.Buckets())
			}
			if len(ref) > 4*tc.max {
				ref = append(ref[:0], ref[len(ref)-2*tc.max:]...)
			}
		}
		if denied == 0 || allowedN == 0 {
			t.Fatalf("%+v: degenerate run (allowed %d, denied %d)", tc, allowedN, denied)
		}
	}
}

// Memory stays bounded whatever max_requests is: a limit of 10,000 per
// minute checked every 7 ms (all admitted, so checks cover the whole
// window) for five minutes keeps at most WindowBuckets+1 buckets.
func TestSlidingWindowBoundedMemory(t *testing.T) {
	var w SlidingWindow
	most := 0
	for ms := 0; ms < 5*60*1000; ms += 7 {
		w.Check(limitT0.Add(time.Duration(ms)*time.Millisecond), 10000, time.Minute)
		if w.Buckets() > most {
			most = w.Buckets()
		}
	}
	if most > maxBuckets || cap(w.ring) > maxBuckets {
		t.Fatalf("%d buckets in use at most, ring capacity %d; bound %d", most, cap(w.ring), maxBuckets)
	}
	if most < WindowBuckets {
		t.Fatalf("only %d buckets used: the test does not exercise the bound", most)
	}
	if enc := w.AppendBinary(nil); len(enc) > 1024 {
		t.Fatalf("encoded log is %d bytes", len(enc))
	}
}

// Parameter changes: random max_requests and windows, the log never holds
// more than maxBuckets buckets (after a longer window, the finer buckets of
// the shorter one are merged), never admits a check that a log of every
// check would refuse (with the same forgetting: checks older than the
// window in force when they were pruned are gone), and refuses only if that
// log counts max_requests within the window plus twice the largest grain.
func TestSlidingWindowParameterChanges(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	maxes := []int{3, 50, 64, 65, 200, 1000}
	windows := []int64{1000, 2000, 6400, 10000, 64000}
	var w SlidingWindow
	type check struct {
		at     int64
		forgot bool // left the window in force at some check: forgotten for good
	}
	var ref []check // allowed checks
	now := int64(0)
	max, window := 100, int64(6400)
	merged := false
	for i := 0; i < 60000; i++ {
		if rng.Intn(2000) == 0 {
			max, window = maxes[rng.Intn(len(maxes))], windows[rng.Intn(len(windows))]
		}
		now += int64(rng.Intn(int(2*window/int64(max))) + 1)
		before := w.Buckets()
		d := w.Check(limitT0.Add(time.Duration(now)*time.Millisecond), max, time.Duration(window)*time.Millisecond)
		if before == maxBuckets && d.Allowed && w.Buckets() == maxBuckets {
			merged = true
		}
		// an exact log with the same forgetting rule (a check is forgotten
		// once now >= at + the window in force), and for the other bound
		// every check, forgotten or not
		live, all := 0, 0
		grain := int64(0)
		for _, wv := range windows {
			if g := (wv + WindowBuckets - 1) / WindowBuckets; g > grain {
				grain = g
			}
		}
		keep := ref[:0]
		for _, c := range ref {
			if c.at+window <= now {
				c.forgot = true
			}
			if !c.forgot {
				live++
			}
			if c.at+window+2*grain > now {
				all++
			}
			if c.at+maxWindow(windows)+2*grain > now {
				keep = append(keep, c)
			}
		}
		ref = keep
		if d.Allowed {
			if live >= max {
				t.Fatalf("check %d (max %d, window %d): admitted with %d checks in the window", i, max, window, live)
			}
			ref = append(ref, check{at: now})
		} else if all < max {
			t.Fatalf("check %d (max %d, window %d): refused with %d checks in window+2 grains", i, max, window, all)
		}
		if w.Buckets() > maxBuckets {
			t.Fatalf("%d buckets", w.Buckets())
		}
	}
	if !merged {
		t.Fatal("no merge happened: the test does not exercise mergeClosest")
	}
}

func maxWindow(ws []int64) int64 {
	m := int64(0)
	for _, w := range ws {
		m = max(m, w)
	}
	return m
}

func TestSlidingWindowEncoding(t *testing.T) {
	var w SlidingWindow
	for i := 0; i < 500; i++ {
		w.Check(limitT0.Add(time.Duration(i*37)*time.Millisecond), 300, 10*time.Second)
	}
	enc := w.AppendBinary(nil)
	got, err := DecodeSlidingWindow(300, 10*time.Second, enc)
	if err != nil {
		t.Fatal(err)
	}
	now := limitT0.Add(20 * time.Second)
	if got.Buckets() != w.Buckets() || string(got.AppendBinary(nil)) != string(enc) {
		t.Fatalf("round trip: %d buckets, want %d", got.Buckets(), w.Buckets())
	}
	for _, at := range []time.Duration{0, 15 * time.Second, 18 * time.Second, 25 * time.Second} {
		if a, b := got.Status(limitT0.Add(at)), w.Status(limitT0.Add(at)); a != b {
			t.Fatalf("at %v: decoded %+v, original %+v", at, a, b)
		}
	}
	// the decoded window keeps working
	if d := got.Check(now, 300, 10*time.Second); !d.Allowed {
		t.Fatalf("decoded window refuses: %+v", d)
	}
	empty, err := DecodeSlidingWindow(5, time.Second, (&SlidingWindow{}).AppendBinary(nil))
	if err != nil || empty.Buckets() != 0 {
		t.Fatalf("empty: %v %d", err, empty.Buckets())
	}
	for _, bad := range [][]byte{{2, 0}, {1}, {1, 1, 2}, {1, 1, 2, 0, 0}, append(append([]byte{}, enc...), 0), enc[:len(enc)-1]} {
		if _, err := DecodeSlidingWindow(5, time.Second, bad); err == nil {
			t.Fatalf("decoded corrupt log %v", bad)
		}
	}
}

func BenchmarkSlidingWindowCheck(b *testing.B) {
	for _, tc := range []struct {
		name string
		max  int
	}{{"max=50", 50}, {"max=10000", 10000}} {
		b.Run(tc.name, func(b *testing.B) {
			var w SlidingWindow
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				// one check every 2 ms; windows of one minute stay full
				w.Check(limitT0.Add(time.Duration(i)*2*time.Millisecond), tc.max, time.Minute)
			}
		})
	}
}
