package loadtest

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// op is one kind of request, the unit of the per-operation statistics.
type op uint8

const (
	opAcquire op = iota
	opRenew
	opRelease
	opLockStatus
	opLimitCheck
	opFlagEval
	opConfigRead
	opConfigWrite
	opSemAcquire
	opSemRelease
	numOps
)

var opNames = [numOps]string{"acquire", "renew", "release", "lock-status", "ratelimit-check", "flag-eval", "config-read", "config-write",
	"sem-acquire", "sem-release"}

func (o op) String() string { return opNames[o] }

// class is how a scenario judges a request's answer.
type class uint8

const (
	classOK       class = iota // success
	classRejected              // an expected refusal: lock held by another, rate limit denied, lease gone under contention
	classError                 // anything else
)

// Histograms hold microseconds from 1µs to 10 minutes at 3 significant digits.
const (
	histMin    = 1
	histMax    = int64(10 * time.Minute / time.Microsecond)
	histDigits = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histDigits) }

func micros(d time.Duration) int64 {
	us := int64(d / time.Microsecond)
	if us < histMin {
		return histMin
	}
	if us > histMax {
		return histMax
	}
	return us
}

// opStats are one worker's numbers for one op, measured after the warmup.
// Latencies are recorded for successes and expected refusals, not for errors.
type opStats struct {
	hist                 *hdrhistogram.Histogram
	ok, rejected, errors int64
	errorsBy             map[Status]int64
}

func (s *opStats) merge(o *opStats) {
	s.hist.Merge(o.hist)
	s.ok += o.ok
	s.rejected += o.rejected
	s.errors += o.errors
	for k, v := range o.errorsBy {
		s.errorsBy[k] += v
	}
}

func newOpStats() *opStats { return &opStats{hist: newHist(), errorsBy: map[Status]int64{}} }

// workerStats belong to one worker; the progress reporter reads only the
// atomics and the mutex-guarded interval histogram.
type workerStats struct {
	ops [numOps]*opStats // allocated on first use: histograms are ~100 KB each

	done atomic.Int64 // requests answered, warmup included
	errs atomic.Int64 // of which errors

	mu       sync.Mutex              // guards interval
	interval *hdrhistogram.Histogram // latencies since the last progress tick
	_        [64]byte                // keep neighbouring workers' hot fields apart
}

// The interval histogram only feeds the progress line's p99: two significant
// digits keep it at a tenth of the size.
func newWorkerStats() *workerStats {
	return &workerStats{interval: hdrhistogram.New(histMin, histMax, 2)}
}

// record books one answered request that started (was due) at start and
// ended at end; measured says whether it counts in the final statistics.
func (w *workerStats) record(o op, start, end time.Duration, st Status, cl class, measured bool) {
	w.done.Add(1)
	us := micros(end - start)
	if cl == classError {
		w.errs.Add(1)
	} else {
		w.mu.Lock()
		w.interval.RecordValue(us)
		w.mu.Unlock()
	}
	if !measured {
		return
	}
	s := w.ops[o]
	if s == nil {
		s = newOpStats()
		w.ops[o] = s
	}
	switch cl {
	case classOK:
		s.ok++
	case classRejected:
		s.rejected++
	default:
		s.errors++
		s.errorsBy[st]++
	}
	if cl != classError {
		s.hist.RecordValue(us)
	}
}

// takeInterval moves the interval histogram's counts into dst.
func (w *workerStats) takeInterval(dst *hdrhistogram.Histogram) {
	w.mu.Lock()
	dst.Merge(w.interval)
	w.interval.Reset()
	w.mu.Unlock()
}

// eventLog collects lock events per worker. To bound memory it stops at
// about max events: the first worker to pass the limit sets the cutoff, and
// from then on only operations sent before the cutoff are kept, so that the
// history is complete up to it (see CheckOptions.Cutoff).
type eventLog struct {
	max    int64
	n      atomic.Int64
	cutoff atomic.Int64 // time.Duration; MaxInt64 while unlimited
}

func newEventLog(max int64) *eventLog {
	l := &eventLog{max: max}
	l.cutoff.Store(int64(forever))
	return l
}

// add appends e to *dst unless the log is past its cutoff.
func (l *eventLog) add(dst *[]LockEvent, e LockEvent, now time.Duration) {
	if int64(e.Invoke) >= l.cutoff.Load() {
		return
	}
	*dst = append(*dst, e)
	if l.n.Add(1) == l.max {
		l.cutoff.CompareAndSwap(int64(forever), int64(now))
	}
}

// Cutoff is zero when the log kept everything.
func (l *eventLog) Cutoff() time.Duration {
	if c := time.Duration(l.cutoff.Load()); c != forever {
		return c
	}
	return 0
}
