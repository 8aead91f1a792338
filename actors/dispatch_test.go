package actors

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Every scheduled turn runs exactly once, whether a pooled worker takes it
// or a goroutine of its own does, with turns scheduled from many
// goroutines at once (run with -race: what a turn writes is seen by
// whoever waits for it).
func TestWorkerDispatcherRunsEveryTurnOnce(t *testing.T) {
	d := newWorkerDispatcher(4, dispatchThroughput)
	defer d.stop()
	const schedulers, turns = 8, 2000
	var ran [schedulers * turns]atomic.Int32
	var wg sync.WaitGroup
	wg.Add(schedulers * turns)
	for s := range schedulers {
		go func() {
			for i := range turns {
				d.Schedule(func() {
					ran[s*turns+i].Add(1)
					wg.Done()
				})
			}
		}()
	}
	wg.Wait()
	for i := range ran {
		if n := ran[i].Load(); n != 1 {
			t.Fatalf("turn %d ran %d times", i, n)
		}
	}
	if d.Throughput() != dispatchThroughput {
		t.Fatalf("throughput %d, want %d", d.Throughput(), dispatchThroughput)
	}
}

// Schedule never waits for a worker: with every worker held by a turn that
// blocks, further turns still start (on goroutines of their own).
func TestWorkerDispatcherNeverBlocks(t *testing.T) {
	const workers = 2
	d := newWorkerDispatcher(workers, dispatchThroughput)
	defer d.stop()
	gate := make(chan struct{})
	entered := make(chan int, 3*workers)
	scheduled := make(chan struct{})
	go func() {
		for i := range 3 * workers {
			d.Schedule(func() { entered <- i; <-gate })
		}
		close(scheduled)
	}()
	deadline := time.After(10 * time.Second) // a failure bound, not a timing assertion
	for n := 0; n < 3*workers; n++ {
		select {
		case <-entered:
		case <-deadline:
			t.Fatalf("%d of %d blocking turns started: Schedule waited for a busy worker", n, 3*workers)
		}
	}
	<-scheduled
	close(gate)
}

// stop ends the pooled workers (no goroutine of the dispatcher is left),
// and a turn scheduled after it still runs.
func TestWorkerDispatcherStop(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	d := newWorkerDispatcher(8, dispatchThroughput)
	var wg sync.WaitGroup
	wg.Add(100)
	for range 100 {
		d.Schedule(wg.Done)
	}
	wg.Wait()
	d.stop()
	done := make(chan struct{})
	d.Schedule(func() { close(done) })
	<-done
}

// slowLoader blocks the activation of every lock named slow-* until gate
// is closed, and counts the activations that are waiting.
type slowLoader struct {
	*memStore
	entered chan string
	gate    chan struct{}
}

func (l *slowLoader) LoadLock(name string) (LockRecord, bool, error) {
	if len(name) > 5 && name[:5] == "slow-" {
		l.entered <- name
		<-l.gate
	}
	return l.memStore.LoadLock(name)
}

// The runtime's mailboxes run on the pooled workers: actor turns that
// block (here: activations waiting on the database) hold their workers,
// but never the runtime. With more blocked activations than there are
// workers, every one of them has started, and another lock is acquired
// and released meanwhile.
func TestBlockedTurnsDoNotStallTheRuntime(t *testing.T) {
	st := newMemStore(false)
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	sys := NewSystem(Config{Store: st, Now: clk.Now, AfterFunc: noTimers, IdleTimeout: time.Minute})
	t.Cleanup(sys.Close)
	slow := dispatchWorkers() + 4
	ld := &slowLoader{memStore: st, entered: make(chan string, slow), gate: make(chan struct{})}
	locks := NewLocks(sys, LockConfig{Loader: ld})

	errs := make(chan error, slow)
	for i := range slow {
		go func() {
			_, err := locks.Acquire(t.Context(), fmt.Sprint("slow-", i), "alice", time.Minute)
			errs <- err
		}()
	}
	deadline := time.After(10 * time.Second) // a failure bound, not a timing assertion
	for n := 0; n < slow; n++ {
		select {
		case <-ld.entered:
		case <-deadline:
			close(ld.gate)
			t.Fatalf("%d of %d blocking activations started", n, slow)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	g, err := locks.Acquire(ctx, "fast", "bob", time.Minute)
	if err != nil {
		close(ld.gate)
		t.Fatalf("acquire while %d activations block: %v", slow, err)
	}
	if err := locks.Release(ctx, "fast", "bob", g.Lock.LeaseID); err != nil {
		close(ld.gate)
		t.Fatalf("release while %d activations block: %v", slow, err)
	}
	close(ld.gate)
	for range slow {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := sys.LiveActors(); n != int64(slow)+1 {
		t.Fatalf("%d live actors, want %d", n, slow+1)
	}
}
