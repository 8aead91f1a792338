package actors

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// testInvoker records what a mailbox hands it and checks that turns never
// overlap.
type testInvoker struct {
	t       *testing.T
	mu      sync.Mutex
	user    []any
	system  []any
	failed  []any
	inTurn  atomic.Bool
	onUser  func(msg any) // optional, called inside the turn
	overlap atomic.Bool
}

func (in *testInvoker) enter() {
	if !in.inTurn.CompareAndSwap(false, true) {
		in.overlap.Store(true)
	}
}
func (in *testInvoker) leave() { in.inTurn.Store(false) }

func (in *testInvoker) InvokeUserMessage(msg any) {
	in.enter()
	defer in.leave()
	in.mu.Lock()
	in.user = append(in.user, msg)
	in.mu.Unlock()
	if in.onUser != nil {
		in.onUser(msg)
	}
}

func (in *testInvoker) InvokeSystemMessage(msg any) {
	in.enter()
	defer in.leave()
	in.mu.Lock()
	in.system = append(in.system, msg)
	in.mu.Unlock()
}

func (in *testInvoker) EscalateFailure(reason, msg any) {
	in.mu.Lock()
	in.failed = append(in.failed, reason)
	in.mu.Unlock()
}

func (in *testInvoker) users() []any {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]any(nil), in.user...)
}

// heldDispatcher keeps scheduled turns until the test runs them.
type heldDispatcher struct {
	mu  sync.Mutex
	fns []func()
}

func (d *heldDispatcher) Schedule(fn func()) { d.mu.Lock(); d.fns = append(d.fns, fn); d.mu.Unlock() }
func (d *heldDispatcher) Throughput() int    { return dispatchThroughput }
func (d *heldDispatcher) take() []func() {
	d.mu.Lock()
	defer d.mu.Unlock()
	fns := d.fns
	d.fns = nil
	return fns
}

func newTestMailbox(t *testing.T, d actor.Dispatcher) (*mailbox, *testInvoker) {
	in := &testInvoker{t: t}
	m := newMailbox()
	m.RegisterHandlers(in, d)
	return m, in
}

// A post schedules a turn on the dispatcher; postAndRun on an idle actor
// runs it on the caller's goroutine: the message is handled when it
// returns, and nothing was scheduled.
func TestMailboxPostAndRunRunsInline(t *testing.T) {
	d := &heldDispatcher{}
	m, in := newTestMailbox(t, d)
	m.postAndRun(1)
	if got := in.users(); len(got) != 1 || got[0] != 1 {
		t.Fatalf("after postAndRun on an idle mailbox: handled %v, want [1]", got)
	}
	if fns := d.take(); len(fns) != 0 {
		t.Fatalf("postAndRun on an idle mailbox scheduled %d turns", len(fns))
	}
	m.PostUserMessage(2)
	if got := in.users(); len(got) != 1 {
		t.Fatalf("a post ran inline: %v", got)
	}
	// While that turn is pending, postAndRun only queues.
	m.postAndRun(3)
	if got := in.users(); len(got) != 1 {
		t.Fatalf("postAndRun ran while a turn was scheduled: %v", got)
	}
	fns := d.take()
	if len(fns) != 1 {
		t.Fatalf("%d turns scheduled, want 1", len(fns))
	}
	fns[0]()
	if got := in.users(); len(got) != 3 || got[1] != 2 || got[2] != 3 {
		t.Fatalf("handled %v, want [1 2 3]", got)
	}
	if m.status.Load() != mailboxIdle || m.UserMessageCount() != 0 {
		t.Fatalf("after the turn: status %d, %d messages", m.status.Load(), m.UserMessageCount())
	}
}

// An inline turn handles at most inlineBudget messages; the rest goes to a
// worker, in order.
func TestMailboxInlineBudget(t *testing.T) {
	d := &heldDispatcher{}
	m, in := newTestMailbox(t, d)
	const more = 3 * inlineBudget
	in.onUser = func(msg any) {
		if msg == 0 { // the first message posts more while the turn runs
			for i := 1; i <= more; i++ {
				m.PostUserMessage(i)
			}
		}
	}
	m.postAndRun(0)
	if got := in.users(); len(got) != inlineBudget {
		t.Fatalf("the inline turn handled %d messages, want %d", len(got), inlineBudget)
	}
	fns := d.take()
	if len(fns) != 1 {
		t.Fatalf("%d turns scheduled for the rest, want 1", len(fns))
	}
	fns[0]()
	got := in.users()
	if len(got) != more+1 {
		t.Fatalf("handled %d messages, want %d", len(got), more+1)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("message %d was %v: out of order", i, v)
		}
	}
}

// System messages come first; a suspended mailbox handles system messages
// only, until resumed; a panic is escalated and the mailbox goes on.
func TestMailboxSystemMessagesSuspensionAndPanics(t *testing.T) {
	d := &heldDispatcher{}
	m, in := newTestMailbox(t, d)
	m.PostUserMessage("u1")
	m.PostSystemMessage(&actor.Started{})
	m.PostSystemMessage(&actor.SuspendMailbox{})
	for _, fn := range d.take() {
		fn()
	}
	if len(in.system) != 1 || len(in.users()) != 0 {
		t.Fatalf("suspended: system %v, user %v", in.system, in.users())
	}
	m.postAndRun("u2") // suspended: not even an inline turn handles it
	if len(in.users()) != 0 {
		t.Fatalf("a suspended mailbox handled %v", in.users())
	}
	m.PostSystemMessage(&actor.ResumeMailbox{})
	for _, fn := range d.take() {
		fn()
	}
	if got := in.users(); len(got) != 2 || got[0] != "u1" || got[1] != "u2" {
		t.Fatalf("after resume: %v", got)
	}
	in.onUser = func(msg any) {
		if msg == "boom" {
			panic("boom")
		}
	}
	m.postAndRun("boom")
	if len(in.failed) != 1 || in.failed[0] != "boom" {
		t.Fatalf("escalated %v, want the panic", in.failed)
	}
	m.postAndRun("after")
	if got := in.users(); got[len(got)-1] != "after" || m.status.Load() != mailboxIdle {
		t.Fatalf("after a panic: %v, status %d", got, m.status.Load())
	}
}

// Posts and inline runs from many goroutines on the pooled workers: every
// message is handled once, one turn at a time, each sender's messages in
// the order it sent them (run with -race).
func TestMailboxConcurrentPostAndRun(t *testing.T) {
	d := newWorkerDispatcher(4, dispatchThroughput)
	defer d.stop()
	m, in := newTestMailbox(t, d)
	type msg struct{ sender, seq int }
	const senders, each = 8, 2000
	var wg sync.WaitGroup
	var handled sync.WaitGroup
	handled.Add(senders * each)
	in.onUser = func(any) { handled.Done() }
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if i%2 == 0 {
					m.postAndRun(msg{s, i})
				} else {
					m.PostUserMessage(msg{s, i})
				}
			}
		}()
	}
	wg.Wait()
	all := make(chan struct{})
	go func() { handled.Wait(); close(all) }()
	select {
	case <-all:
	case <-time.After(10 * time.Second): // a failure bound, not a timing assertion
		t.Fatalf("%d of %d messages handled: some were left in the mailbox", len(in.users()), senders*each)
	}
	if in.overlap.Load() {
		t.Fatal("two turns ran at once")
	}
	next := make([]int, senders)
	for _, v := range in.users() {
		mm := v.(msg)
		if mm.seq != next[mm.sender] {
			t.Fatalf("sender %d: message %d handled after %d", mm.sender, mm.seq, next[mm.sender]-1)
		}
		next[mm.sender]++
	}
	for s, n := range next {
		if n != each {
			t.Fatalf("sender %d: %d of %d handled", s, n, each)
		}
	}
}

// The ring is a FIFO across growth and wrap-around, and gives a large
// buffer back once empty.
func TestRing(t *testing.T) {
	var q ring
	var want []int
	next := 0
	for round := range 3 {
		for i := range 200 {
			q.push(next)
			want = append(want, next)
			next++
			if i%3 == 2 { // pops interleaved with pushes: the head moves, the buffer wraps
				if v := q.pop(); v != want[0] {
					t.Fatalf("round %d: pop %v, want %d", round, v, want[0])
				}
				want = want[1:]
			}
		}
		for len(want) > 0 {
			if v := q.pop(); v != want[0] {
				t.Fatalf("round %d: pop %v, want %d", round, v, want[0])
			}
			want = want[1:]
		}
		if v := q.pop(); v != nil || q.buf != nil {
			t.Fatalf("round %d: empty ring popped %v, kept %d slots", round, v, len(q.buf))
		}
	}
}
