package actors

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// mailbox is the mailbox of every actor of the runtime: protoactor's
// default unbounded mailbox (system messages first, suspension, a turn
// that processes messages until none is left, panics escalated to the
// supervisor) with one addition, postAndRun, for callers that are about to
// wait for the actor's answer (System.call).
//
// With protoactor's mailbox every call is two goroutine hand-offs: the
// caller's post schedules the actor's turn on another goroutine (a pooled
// worker: dispatch.go) and parks on its reply channel, and the actor's
// reply wakes it again. On two cores shared with the clients, those
// hand-offs and the thread wake-ups behind them were a third of what a
// rate-limit check cost beyond a no-op HTTP handler (docs/benchmarks.md).
// postAndRun lets the caller run the turn itself when the actor is idle:
// the caller would only wait meanwhile, and the answer of an operation that
// needs no commit (a check, a status) is then ready when postAndRun
// returns. The actor is still one turn at a time (the scheduling status
// below is what serialises turns, whoever runs them), and its messages are
// still processed in the order they were posted.
//
// An inline turn processes at most inlineBudget messages (a caller must
// not serve an unbounded queue of other callers' requests before looking
// at its own answer); what is left is handed to a worker, as a post would.
// Everything else (the shard's forwards, timers, the writer's callbacks)
// posts as before: a turn never runs on the writer's goroutine or a
// timer's.
type mailbox struct {
	// mu guards user and sys (the queues); the counts and the status are
	// atomics read without it.
	mu        sync.Mutex
	user, sys ring
	userCount atomic.Int32
	sysCount  atomic.Int32
	status    atomic.Int32 // mailboxIdle or mailboxRunning: one turn at a time
	suspended atomic.Bool
	invoker   actor.MessageInvoker
	disp      actor.Dispatcher
	turn      func() // m.process, bound once: a method value per post would allocate
}

const (
	mailboxIdle int32 = iota
	mailboxRunning
)

// inlineBudget is the most messages a caller processes in an actor's turn
// it runs itself (postAndRun) before handing the rest to a worker.
const inlineBudget = 16

var _ actor.Mailbox = (*mailbox)(nil)

func newMailbox() *mailbox {
	m := &mailbox{}
	m.turn = m.process
	return m
}

// PostUserMessage implements actor.Mailbox.
func (m *mailbox) PostUserMessage(msg any) {
	m.push(&m.user, msg)
	m.userCount.Add(1)
	m.schedule()
}

// PostSystemMessage implements actor.Mailbox.
func (m *mailbox) PostSystemMessage(msg any) {
	m.push(&m.sys, msg)
	m.sysCount.Add(1)
	m.schedule()
}

// RegisterHandlers implements actor.Mailbox.
func (m *mailbox) RegisterHandlers(invoker actor.MessageInvoker, disp actor.Dispatcher) {
	m.invoker, m.disp = invoker, disp
}

// Start implements actor.Mailbox.
func (m *mailbox) Start() {}

// UserMessageCount implements actor.Mailbox.
func (m *mailbox) UserMessageCount() int { return int(m.userCount.Load()) }

func (m *mailbox) push(q *ring, msg any) {
	m.mu.Lock()
	q.push(msg)
	m.mu.Unlock()
}

func (m *mailbox) pop(q *ring) any {
	m.mu.Lock()
	msg := q.pop()
	m.mu.Unlock()
	return msg
}

// schedule starts a turn on the dispatcher unless one is running.
func (m *mailbox) schedule() {
	if m.status.CompareAndSwap(mailboxIdle, mailboxRunning) {
		m.disp.Schedule(m.turn)
	}
}

// postAndRun posts msg and, if the actor is idle, runs the turn on the
// calling goroutine (at most inlineBudget messages, the rest on a worker).
func (m *mailbox) postAndRun(msg any) {
	m.push(&m.user, msg)
	m.userCount.Add(1)
	if !m.status.CompareAndSwap(mailboxIdle, mailboxRunning) {
		return // a turn is running: it will get to msg
	}
	budget := inlineBudget
	for {
		var done bool
		budget, done = m.run(budget)
		if !done {
			m.disp.Schedule(m.turn) // still running: a worker goes on
			return
		}
		if !m.idle() {
			return
		}
	}
}

// process is a turn on a worker: until nothing is left.
func (m *mailbox) process() {
	for {
		m.run(-1)
		if !m.idle() {
			return
		}
	}
}

// idle ends a turn: the mailbox goes idle, unless messages posted after the
// turn's last look are there and this goroutine gets the turn back (true:
// go on running).
func (m *mailbox) idle() bool {
	m.status.Store(mailboxIdle)
	if m.sysCount.Load() > 0 || (!m.suspended.Load() && m.userCount.Load() > 0) {
		return m.status.CompareAndSwap(mailboxIdle, mailboxRunning)
	}
	return false
}

// run processes messages, system ones first, until none is left or the
// mailbox is suspended (done), or budget user messages were processed
// (budget < 0: no limit). A panic is escalated to the supervisor and ends
// the run (done). Every throughput messages it yields the processor.
func (m *mailbox) run(budget int) (left int, done bool) {
	var msg any
	defer func() {
		if r := recover(); r != nil {
			m.invoker.EscalateFailure(r, msg)
			left, done = budget, true
		}
	}()
	n, t := 0, m.disp.Throughput()
	for {
		if n > t {
			n = 0
			runtime.Gosched()
		}
		n++
		if m.sysCount.Load() > 0 {
			if msg = m.pop(&m.sys); msg != nil {
				m.sysCount.Add(-1)
				switch msg.(type) {
				case *actor.SuspendMailbox:
					m.suspended.Store(true)
				case *actor.ResumeMailbox:
					m.suspended.Store(false)
				default:
					m.invoker.InvokeSystemMessage(msg)
				}
				continue
			}
		}
		if m.suspended.Load() {
			return budget, true
		}
		if budget == 0 {
			return 0, m.userCount.Load() == 0
		}
		if msg = m.pop(&m.user); msg == nil {
			return budget, true
		}
		m.userCount.Add(-1)
		m.invoker.InvokeUserMessage(msg)
		if budget > 0 {
			budget--
		}
	}
}

// ring is a growable FIFO of messages.
type ring struct {
	buf        []any
	head, size int
}

func (q *ring) push(v any) {
	if q.size == len(q.buf) {
		n := max(4, 2*len(q.buf))
		buf := make([]any, n)
		k := copy(buf, q.buf[q.head:])
		copy(buf[k:], q.buf[:q.head])
		q.buf, q.head = buf, 0
	}
	q.buf[(q.head+q.size)%len(q.buf)] = v
	q.size++
}

// pop removes the oldest message (nil: none). A ring that grew beyond 64
// slots is given back once it is empty.
func (q *ring) pop() any {
	if q.size == 0 {
		if len(q.buf) > 64 {
			q.buf, q.head = nil, 0
		}
		return nil
	}
	v := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) % len(q.buf)
	q.size--
	return v
}
