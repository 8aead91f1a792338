package loadtest

import (
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock advances only when slept on or told to.
type fakeClock struct{ now time.Duration }

func (c *fakeClock) Now() time.Duration { return c.now }
func (c *fakeClock) Sleep(d time.Duration) bool {
	if d > 0 {
		c.now += d
	}
	return true
}

func TestScheduleMath(t *testing.T) {
	s := Schedule{Start: time.Second, End: 3 * time.Second, Rate: 1000}
	if got := s.Due(0); got != time.Second {
		t.Fatalf("Due(0) = %v", got)
	}
	if got := s.Due(1500); got != 2500*time.Millisecond {
		t.Fatalf("Due(1500) = %v", got)
	}
	if got := s.Slots(); got != 2000 {
		t.Fatalf("Slots = %d, want 2000", got)
	}
	// A rate that does not divide a second: 3/s over 1s gives slots at 0, 1/3, 2/3.
	if got := (Schedule{End: time.Second, Rate: 3}).Slots(); got != 3 {
		t.Fatalf("Slots at 3/s = %d", got)
	}
	if got := (Schedule{End: time.Second, Rate: 0}).Slots(); got != 0 {
		t.Fatalf("Slots at rate 0 = %d", got)
	}
	due, wait, ok := s.Next(10, 900*time.Millisecond)
	if !ok || due != 1010*time.Millisecond || wait != 110*time.Millisecond {
		t.Fatalf("Next early: %v %v %v", due, wait, ok)
	}
	due, wait, ok = s.Next(10, 2*time.Second) // late: no wait, due stays
	if !ok || due != 1010*time.Millisecond || wait != 0 {
		t.Fatalf("Next late: %v %v %v", due, wait, ok)
	}
	if _, _, ok := s.Next(2000, 0); ok {
		t.Fatal("slot 2000 is past the end")
	}
}

// A server that stalls for one second in the middle of an open-loop run at
// 100 requests/s: every request that should have been sent during the stall
// is charged with its wait, as wrk2 does. A closed loop only sees one slow
// request, which is the coordinated omission the open loop avoids.
func TestOpenLoopChargesStalls(t *testing.T) {
	const rate = 100
	clk := &fakeClock{}
	s := Schedule{Start: 0, End: 10 * time.Second, Rate: rate}
	var tickets atomic.Int64
	var lat []time.Duration
	var sent []time.Duration
	service := func() time.Duration {
		if len(lat) == 300 { // the request due at 3s stalls
			return time.Second
		}
		return time.Millisecond
	}
	n := runOpenLoop(clk, s, &tickets, 1<<40, func() bool { return false }, func(due time.Duration) {
		sent = append(sent, clk.Now())
		clk.now += service()
		lat = append(lat, clk.Now()-due)
	})
	if n != 1000 || len(lat) != 1000 {
		t.Fatalf("ran %d iterations, want exactly rate*duration = 1000", n)
	}
	// Nothing is sent before it is due.
	for k, at := range sent {
		if at < s.Due(int64(k)) {
			t.Fatalf("slot %d sent at %v before due %v", k, at, s.Due(int64(k)))
		}
	}
	var slow int
	for _, l := range lat {
		if l > 100*time.Millisecond {
			slow++
		}
	}
	// The stall delays the slots due in [3s, 4s) and the backlog drains at
	// 9ms per request: about 100 + 100/9 requests see more than 100ms.
	if slow < 100 || slow > 115 {
		t.Fatalf("%d slow requests, want about 110", slow)
	}
	if lat[300] < time.Second || lat[301] < 990*time.Millisecond {
		t.Fatalf("stall not charged: %v %v", lat[300], lat[301])
	}
	if lat[999] != time.Millisecond {
		t.Fatalf("backlog never drained: last latency %v", lat[999])
	}

	// The same server in a closed loop: one slow request.
	clk = &fakeClock{}
	lat = lat[:0]
	runClosedLoop(clk, 10*time.Second, 1<<40, func() bool { return false }, func(start time.Duration) {
		clk.now += service()
		lat = append(lat, clk.Now()-start)
	})
	slow = 0
	for _, l := range lat {
		if l > 100*time.Millisecond {
			slow++
		}
	}
	if slow != 1 {
		t.Fatalf("closed loop: %d slow requests, want 1", slow)
	}
}

func TestLoopsAreBounded(t *testing.T) {
	clk := &fakeClock{}
	var tickets atomic.Int64
	n := runOpenLoop(clk, Schedule{End: time.Hour, Rate: 1e6}, &tickets, 50, func() bool { return false }, func(time.Duration) {})
	if n != 50 {
		t.Fatalf("open loop ran %d, want maxIter 50", n)
	}
	stops := 0
	n = runClosedLoop(clk, time.Hour, 1<<40, func() bool { stops++; return stops > 7 }, func(time.Duration) { clk.now++ })
	if n != 7 {
		t.Fatalf("closed loop ran %d after stop, want 7", n)
	}
}
