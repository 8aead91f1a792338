package actors

import (
	"sync"
	"time"
)

// limitFlusher writes rate-limit counters behind. Limit actors list a box
// the first time it changes after its last snapshot; the flusher sends
// every listed box to the writer in one PutLimits mutation, at most once per
// interval (interval <= 0: as soon as the previous flush has committed, so
// counters go out with the next write batch). Each limit is written once
// per flush however many checks it took, which is what keeps the cost of a
// check off the durable write path.
//
// A flush that fails lists its boxes again: counters are retried, never
// dropped, and their actors keep counting in memory meanwhile. Close writes
// whatever is still listed, so a graceful shutdown loses nothing.
type limitFlusher struct {
	store    Store
	interval time.Duration

	// mu guards dirty and closed. Lock order: a box's mu, then mu.
	mu     sync.Mutex
	dirty  []*limitBox
	closed bool

	wake chan struct{} // capacity 1: "dirty is not empty"
	stop chan struct{}
	done chan struct{}
}

func newLimitFlusher(store Store, interval time.Duration) *limitFlusher {
	f := &limitFlusher{store: store, interval: interval,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go f.run()
	return f
}

// add lists b (its actor holds b.mu and has just set b.listed).
func (f *limitFlusher) add(b *limitBox) {
	f.mu.Lock()
	f.dirty = append(f.dirty, b)
	first := len(f.dirty) == 1
	f.mu.Unlock()
	if first {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
}

func (f *limitFlusher) take() []*limitBox {
	f.mu.Lock()
	defer f.mu.Unlock()
	boxes := f.dirty
	f.dirty = nil
	return boxes
}

func (f *limitFlusher) run() {
	defer close(f.done)
	for {
		select {
		case <-f.wake:
		case <-f.stop:
			return
		}
		if f.interval > 0 {
			t := time.NewTimer(f.interval)
			select {
			case <-t.C:
			case <-f.stop:
				t.Stop()
				return
			}
		}
		if err := f.flush(false); err != nil {
			// The writer refused or the write failed: the boxes are listed
			// again; try again a little later.
			t := time.NewTimer(max(f.interval, 10*time.Millisecond))
			select {
			case <-t.C:
			case <-f.stop:
				t.Stop()
				return
			}
			select {
			case f.wake <- struct{}{}:
			default:
			}
		}
	}
}

// flush writes every listed box and returns once the write is resolved.
// With barrier an empty flush is queued too: when it resolves, every flush
// queued before it has.
func (f *limitFlusher) flush(barrier bool) error {
	boxes := f.take()
	if len(boxes) == 0 && !barrier {
		return nil
	}
	m := PutLimits{boxes: boxes, taken: make([]bool, len(boxes))}
	resolved := make(chan error, 1)
	_, err := f.store.Enqueue(m, func(err error) {
		f.settle(m, err)
		resolved <- err
	})
	if err != nil {
		f.relist(boxes)
		return err
	}
	return <-resolved
}

// settle runs on the writer goroutine when a flush is resolved: the
// snapshots it took are no longer in flight, and after a failure every box
// still current is listed again.
func (f *limitFlusher) settle(m PutLimits, err error) {
	var again []*limitBox
	for i, b := range m.boxes {
		b.mu.Lock()
		if m.taken[i] {
			b.flushing--
		}
		if err != nil && !b.dead {
			if m.taken[i] && !b.listed {
				b.listed = true
				again = append(again, b)
			} else if !m.taken[i] && b.listed {
				again = append(again, b) // never reached the writer: still listed, out of dirty
			}
		}
		b.mu.Unlock()
	}
	if len(again) > 0 {
		f.relist(again)
	}
}

// relist puts boxes that are marked listed back into the list.
func (f *limitFlusher) relist(boxes []*limitBox) {
	if len(boxes) == 0 {
		return
	}
	f.mu.Lock()
	f.dirty = append(f.dirty, boxes...)
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// sync writes every listed box now and waits until it, and every flush
// before it, is resolved.
func (f *limitFlusher) sync() error { return f.flush(true) }

// close stops the flusher and writes what is still listed. Call it after
// the actors have stopped and before the store closes.
func (f *limitFlusher) close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	f.mu.Unlock()
	close(f.stop)
	<-f.done
	return f.sync()
}
