// Package commitq is the bookkeeping a group-commit writer shares with its
// callers: which sequence-numbered writes are resolved, which of the recent
// ones failed and why, and the callbacks waiting for them (the
// AfterCommit, Resolved and WaitResolved half of actors.Store). The etcd
// writer (persistence/etcdstore) uses it; persistence.Writer keeps its own
// copy of the same logic until the issue-11 refactor of that file lands.
package commitq

import (
	"sync"
	"sync/atomic"
)

// Range is a run of sequence numbers that failed with one error.
type Range struct {
	Lo, Hi uint64
	Err    error
}

// keepFailed is how many failed ranges are remembered. A write's own
// callback learns of its failure at once; the ranges only answer
// AfterCommit calls made after the write resolved, which come soon.
const keepFailed = 64

// Tracker tracks resolution. The writer calls Resolve after it has run
// the done callbacks of a batch, in sequence order; anyone may call
// AfterCommit, Resolved and WaitResolved.
type Tracker struct {
	resolved atomic.Uint64 // every seq <= resolved has committed or failed

	// mu guards waiters, failed and closed; cond (on mu) is broadcast at
	// every Resolve and at Close.
	mu      sync.Mutex
	cond    *sync.Cond
	waiters []waiter
	failed  []Range // newest last, at most keepFailed
	closed  bool
}

type waiter struct {
	seq uint64
	fn  func(error)
}

// New returns a Tracker with nothing resolved.
func New() *Tracker {
	t := &Tracker{}
	t.cond = sync.NewCond(&t.mu)
	return t
}

// AfterCommit runs fn with the error of write seq (nil: committed) once it
// is resolved: at once if it is already, otherwise on the writer's
// goroutine after the batch that resolves it. Callbacks registered in order
// run in order.
func (t *Tracker) AfterCommit(seq uint64, fn func(error)) {
	t.mu.Lock()
	if seq <= t.resolved.Load() {
		err := t.failedLocked(seq)
		t.mu.Unlock()
		fn(err)
		return
	}
	t.waiters = append(t.waiters, waiter{seq: seq, fn: fn})
	t.mu.Unlock()
}

func (t *Tracker) failedLocked(seq uint64) error {
	for i := len(t.failed) - 1; i >= 0; i-- {
		if r := t.failed[i]; seq >= r.Lo && seq <= r.Hi {
			return r.Err
		}
	}
	return nil
}

// Resolved is the highest sequence number whose outcome is known; every
// write up to it is resolved.
func (t *Tracker) Resolved() uint64 { return t.resolved.Load() }

// WaitResolved blocks until seq is resolved or the tracker is closed.
func (t *Tracker) WaitResolved(seq uint64) {
	t.mu.Lock()
	for t.resolved.Load() < seq && !t.closed {
		t.cond.Wait()
	}
	t.mu.Unlock()
}

// Resolve records that every write up to hi is resolved, the ones in
// failed (ascending, within the batch) with their errors, and runs the
// waiters of the batch in order.
func (t *Tracker) Resolve(hi uint64, failed []Range) {
	t.mu.Lock()
	if len(failed) > 0 {
		t.failed = append(t.failed, failed...)
		if len(t.failed) > keepFailed {
			t.failed = append(t.failed[:0], t.failed[len(t.failed)-keepFailed:]...)
		}
	}
	t.resolved.Store(hi)
	var ready []waiter
	keep := t.waiters[:0]
	for _, w := range t.waiters {
		if w.seq <= hi {
			ready = append(ready, w)
		} else {
			keep = append(keep, w)
		}
	}
	clear(t.waiters[len(keep):])
	t.waiters = keep
	errs := make([]error, len(ready))
	for i, w := range ready {
		for _, r := range failed {
			if w.seq >= r.Lo && w.seq <= r.Hi {
				errs[i] = r.Err
			}
		}
	}
	t.cond.Broadcast()
	t.mu.Unlock()
	for i, w := range ready {
		w.fn(errs[i])
	}
}

// Close wakes every WaitResolved (the writer has stopped).
func (t *Tracker) Close() {
	t.mu.Lock()
	t.closed = true
	t.cond.Broadcast()
	t.mu.Unlock()
}

// Failures collects the failed writes of a batch as ranges, in order.
type Failures []Range

// Add records that seq failed with err, extending the last range when seq
// follows it with the same error.
func (f *Failures) Add(seq uint64, err error) {
	if n := len(*f); n > 0 && (*f)[n-1].Hi == seq-1 && (*f)[n-1].Err == err {
		(*f)[n-1].Hi = seq
		return
	}
	*f = append(*f, Range{Lo: seq, Hi: seq, Err: err})
}
