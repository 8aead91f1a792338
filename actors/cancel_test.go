package actors

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A cancelled context stops the wait, not the operation: the grant was
// applied and its write queued when the caller gave up; the call returns
// context.Canceled before the write commits, and the write still commits
// (the lock is held, the holder index has it).
func TestCancelStopsTheWaitTheWriteStillCommits(t *testing.T) {
	st := newMemStore(true) // writes wait for commit()
	locks, _, _ := newTestLocks(t, st, time.Minute, 0)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := locks.Acquire(ctx, "a", "alice", time.Minute)
		done <- err
	}()
	waitFor(t, func() bool { return st.pending() == 1 }) // applied, write queued, answer waits for the commit
	cancel()
	// No commit has happened: the call can only return because ctx ended.
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled acquire: err = %v, want context.Canceled", err)
	}
	if n := st.commit(); n != 1 {
		t.Fatalf("committed %d writes, want the cancelled grant's 1", n)
	}
	s, err := locks.Status(t.Context(), "a")
	if err != nil || !s.Held || s.Lock.Holder != "alice" || s.Lock.Token != 1 {
		t.Fatalf("after the commit: %+v %v, want held by alice with token 1", s, err)
	}
	if got := locks.List("alice"); len(got) != 1 {
		t.Fatalf("holder index after the commit: %+v", got)
	}
}

// blockingLoader holds the activation of one lock until released, so that
// requests queue in its actor's mailbox.
type blockingLoader struct {
	*memStore
	name    string
	entered chan struct{}
	gate    chan struct{}
}

func (l *blockingLoader) LoadLock(name string) (LockRecord, bool, error) {
	if name == l.name {
		close(l.entered)
		<-l.gate
	}
	return l.memStore.LoadLock(name)
}

// An operation whose caller gave up before the actor started it is dropped:
// nothing is applied or written. The deadline ends the wait as
// DeadlineExceeded.
func TestCancelBeforeTheActorStartsDropsTheOperation(t *testing.T) {
	st := newMemStore(false)
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	sys := NewSystem(Config{Store: st, Now: clk.Now, AfterFunc: noTimers, IdleTimeout: time.Minute})
	t.Cleanup(sys.Close)
	ld := &blockingLoader{memStore: st, name: "b", entered: make(chan struct{}), gate: make(chan struct{})}
	locks := NewLocks(sys, LockConfig{Loader: ld})

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := locks.Acquire(ctx, "b", "alice", time.Minute)
		done <- err
	}()
	<-ld.entered // the actor is stuck activating; the acquire waits in its mailbox
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled acquire: err = %v, want context.Canceled", err)
	}
	short, stop := context.WithTimeout(t.Context(), time.Millisecond)
	defer stop()
	if _, err := locks.Acquire(short, "b", "bob", time.Minute); !errors.Is(err, context.DeadlineExceeded) || ErrorCode(err) != CodeUnavailable {
		t.Fatalf("acquire past its deadline: err = %v (code %s), want DeadlineExceeded (unavailable)", err, ErrorCode(err))
	}
	close(ld.gate)
	s, err := locks.Status(t.Context(), "b")
	if err != nil || s.Held {
		t.Fatalf("after the actor started: %+v %v, want the dropped acquires unapplied", s, err)
	}
	st.mu.Lock()
	_, written := st.locks["b"]
	st.mu.Unlock()
	if written {
		t.Fatal("a dropped acquire was written")
	}
}

// A cause given with the cancellation (the server's shutdown) decides the
// coded error; errors.Is still sees context.Canceled.
func TestCancelCause(t *testing.T) {
	st := newMemStore(true)
	locks, _, _ := newTestLocks(t, st, time.Minute, 0)
	ctx, cancel := context.WithCancelCause(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := locks.Acquire(ctx, "c", "alice", time.Minute)
		done <- err
	}()
	waitFor(t, func() bool { return st.pending() == 1 })
	cancel(ErrClosed)
	err := <-done
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrClosed) || AsError(err) != ErrClosed {
		t.Fatalf("err = %v, want context.Canceled caused by ErrClosed", err)
	}
	st.commit()
}
