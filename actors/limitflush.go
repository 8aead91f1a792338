package actors

import (
	"sync"
	"sync/atomic"
	"time"
)

// limitFlusher writes rate-limit counters behind. A limit actor hands it an
// immutable snapshot (LimitRow) of its window whenever a check changes it;
// the flusher keeps the newest snapshot per limit and writes all it holds in
// one PutLimits mutation at most once per interval (interval <= 0: as soon
// as the previous flush has committed, so counters go out with the next
// write batch). Each limit is written once per flush however many checks it
// took, which is what keeps the cost of a check off the durable write path.
//
// Nothing is shared with the actors but the hand-over itself: an actor owns
// its window and only ever gives the flusher copies; the writer only sees
// the copies, inside PutLimits.
//
// A flush that fails puts its snapshots back (unless a newer one, or a
// reset, came meanwhile): counters are retried, never dropped, and their
// actors keep counting in memory. Close writes whatever is still held, so a
// graceful shutdown loses nothing.
type limitFlusher struct {
	store    Store
	interval time.Duration

	// mu guards the flusher's queue: pending, inflight, epoch. Limit actors
	// take it to hand a snapshot over (put) or withdraw one (forget); flush
	// takes it to take a batch and to settle it. No actor state is behind
	// it.
	mu      sync.Mutex
	pending map[ownedName]LimitRow // newest snapshot per limit, not yet taken
	// inflight is the batch being written, nil when none: forget deletes
	// from it too, so that a failed flush does not put back a snapshot of a
	// limit reset meanwhile.
	inflight map[ownedName]LimitRow
	epoch    uint64 // the flush that snapshots handed over now belong to (from 1)

	// durable is the newest epoch whose flush committed: every snapshot
	// handed over in an epoch <= durable (or a newer one of the same limit)
	// is written. Actors read it to know they may passivate.
	durable atomic.Uint64

	flushMu sync.Mutex // serialises flushes (the loop, sync, close): one in flight at a time
	closed  atomic.Bool
	wake    chan struct{} // capacity 1: "pending is not empty"
	stop    chan struct{}
	done    chan struct{}
}

// ownedName names an owner-scoped resource (map keys).
type ownedName struct{ owner, name string }

func newLimitFlusher(store Store, interval time.Duration) *limitFlusher {
	f := &limitFlusher{store: store, interval: interval, pending: map[ownedName]LimitRow{}, epoch: 1,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go f.run()
	return f
}

// put hands over the newest snapshot of a limit and returns the flush
// epoch it belongs to. Called by the limit's actor.
func (f *limitFlusher) put(row LimitRow) uint64 {
	f.mu.Lock()
	f.pending[ownedName{row.Owner, row.Name}] = row
	first := len(f.pending) == 1
	epoch := f.epoch
	f.mu.Unlock()
	if first {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
	return epoch
}

// forget withdraws a limit's snapshot: the limit is being reset, or its
// actor fell back to the durable state. Called by the limit's actor before
// it queues anything that the snapshot must not follow.
func (f *limitFlusher) forget(owner, name string) {
	k := ownedName{owner, name}
	f.mu.Lock()
	delete(f.pending, k)
	delete(f.inflight, k)
	f.mu.Unlock()
}

func (f *limitFlusher) run() {
	defer close(f.done)
	t := time.NewTimer(time.Hour)
	t.Stop()
	var due <-chan time.Time // non-nil while a flush is scheduled
	schedule := func(d time.Duration) {
		t.Reset(d)
		due = t.C
	}
	for {
		select {
		case <-f.wake:
			if due == nil {
				schedule(max(f.interval, 0))
			}
		case <-due:
			due = nil
			if err := f.flush(); err != nil {
				// The writer refused or the write failed: the snapshots are
				// back in pending; try again a little later.
				schedule(max(f.interval, 10*time.Millisecond))
			}
		case <-f.stop:
			t.Stop()
			return
		}
	}
}

// flush writes every snapshot held and returns once the write is
// resolved. Flushes run one at a time, so when one returns every flush
// before it has resolved too.
func (f *limitFlusher) flush() error {
	f.flushMu.Lock()
	defer f.flushMu.Unlock()
	f.mu.Lock()
	if len(f.pending) == 0 {
		f.mu.Unlock()
		return nil
	}
	batch, epoch := f.pending, f.epoch
	f.pending, f.inflight = make(map[ownedName]LimitRow, len(batch)), batch
	f.epoch++
	rows := make([]LimitRow, 0, len(batch))
	for _, r := range batch {
		rows = append(rows, r)
	}
	// Queued under mu: a reset withdraws its snapshot (forget, under mu)
	// before queuing its removal, so the removal is either queued after
	// this flush (and applied after it) or finds the snapshot still pending.
	// The commit callback only reports: it never takes mu.
	resolved := make(chan error, 1)
	_, err := f.store.Enqueue(PutLimits{Rows: rows}, func(err error) { resolved <- err })
	f.mu.Unlock()
	if err == nil {
		err = <-resolved
	}
	f.mu.Lock()
	if err != nil {
		for k, r := range f.inflight {
			if _, newer := f.pending[k]; !newer {
				f.pending[k] = r
			}
		}
	}
	f.inflight = nil
	f.mu.Unlock()
	if err == nil {
		f.durable.Store(epoch)
	}
	return err
}

// sync writes every snapshot held now and waits until it, and every flush
// before it, is resolved.
func (f *limitFlusher) sync() error { return f.flush() }

// close stops the flusher and writes what is still held. Call it after the
// actors have stopped and before the store closes.
func (f *limitFlusher) close() error {
	if f.closed.Swap(true) {
		return nil
	}
	close(f.stop)
	<-f.done
	return f.flush()
}
