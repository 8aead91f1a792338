package loadtest

import (
	"math"
	"sync/atomic"
	"time"
)

// Clock is the time source of the loops: offsets from the start of the run.
// Sleep returns false when the run was stopped while it slept.
type Clock interface {
	Now() time.Duration
	Sleep(d time.Duration) bool
}

// Schedule is a constant arrival rate, the open loop: slot k is due at
// Start + k/Rate, for every slot due before End. A slot's latency is measured
// from its due time, not from when a worker got round to sending it, so a
// server that stalls is charged for every request that should have been sent
// during the stall (the coordinated-omission correction of wrk2).
type Schedule struct {
	Start, End time.Duration
	Rate       float64 // slots per second, > 0
}

// Due is when slot k should be sent.
func (s Schedule) Due(k int64) time.Duration {
	return s.Start + time.Duration(math.Round(float64(k)*float64(time.Second)/s.Rate))
}

// Slots is the number of slots due before End.
func (s Schedule) Slots() int64 {
	if s.End <= s.Start || s.Rate <= 0 {
		return 0
	}
	n := int64(math.Ceil((s.End - s.Start).Seconds() * s.Rate))
	for n > 0 && s.Due(n-1) >= s.End {
		n--
	}
	for s.Due(n) < s.End {
		n++
	}
	return n
}

// Next says what a worker that took slot k at time now does: wait, then send
// the slot as if at due. ok is false when the slot is past the schedule.
func (s Schedule) Next(k int64, now time.Duration) (due, wait time.Duration, ok bool) {
	if s.Rate <= 0 || k < 0 {
		return 0, 0, false
	}
	due = s.Due(k)
	if due >= s.End {
		return due, 0, false
	}
	if due > now {
		wait = due - now
	}
	return due, wait, true
}

// runOpenLoop takes slots from tickets (shared by all workers of the run)
// until the schedule is used up, stop reports true or maxIter iterations ran,
// and calls iterate with each slot's due time. It returns the iterations run.
func runOpenLoop(clk Clock, s Schedule, tickets *atomic.Int64, maxIter int64, stop func() bool, iterate func(due time.Duration)) int64 {
	var n int64
	for n < maxIter && !stop() {
		k := tickets.Add(1) - 1
		due, wait, ok := s.Next(k, clk.Now())
		if !ok {
			break
		}
		if wait > 0 && !clk.Sleep(wait) {
			break
		}
		iterate(due)
		n++
	}
	return n
}

// runClosedLoop runs iterations back to back until end, stop, or maxIter;
// each iteration's latency is measured from when it actually started.
func runClosedLoop(clk Clock, end time.Duration, maxIter int64, stop func() bool, iterate func(start time.Duration)) int64 {
	var n int64
	for n < maxIter && !stop() {
		now := clk.Now()
		if now >= end {
			break
		}
		iterate(now)
		n++
	}
	return n
}

// realClock is the monotonic clock from t0; Sleep wakes early when done closes.
type realClock struct {
	t0   time.Time
	done <-chan struct{}
}

func (c realClock) Now() time.Duration { return time.Since(c.t0) }

func (c realClock) Sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.done:
		return false
	}
}
