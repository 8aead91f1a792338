package httpd

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/octostore/octostore/actors"
)

// Request contexts.
//
// Every authenticated request gets a context.Context (the typed calls into
// the actors take it) that is done when the first of these happens:
//
//   - the request timeout passes (ServerConfig.RequestTimeout): the wait
//     ends with context.DeadlineExceeded, answered 503 "request timed out";
//   - the server's graceful shutdown runs out of time (shutdown): the wait
//     ends with context.Canceled, answered 503 "server shutting down".
//     Requests in flight when shutdown starts are let finish first;
//   - the client closes the connection while the request waits (watched
//     once the request has waited watchAfter, on platforms with a socket
//     peek): the wait ends with context.Canceled, answered 499 to nobody;
//   - the handler returns (like net/http's request context).
//
// What ending the wait means for the operation is the actors' rule
// (actors.System.call): an operation the actor has not started is dropped;
// one it has applied still commits.
//
// A handler makes its request's context when it first needs one
// (request.ctx), so a request answered without waiting (a flag evaluated
// from the read view, a lock listing) makes none; the context's clock
// starts at its first use (Done, Deadline; Err starts nothing). Timeouts and watch points
// are found by one reaper goroutine, running only while requests wait,
// every tick, instead of a timer per request (a stdlib
// context.WithTimeout costs five allocations and a timer; this one costs
// two: itself and its Done channel). Contexts are not recycled: code the
// request calls may keep one (database/sql does) and must find it done,
// not reused.

// Causes of a request context's end, for the answer (explain).
var (
	errClientGone   = actors.NewError(actors.CodeCanceled, "client closed the connection")
	errRequestEnded = errors.New("request ended")
)

// DefaultRequestTimeout bounds how long a request waits for its resource
// (ServerConfig.RequestTimeout).
const DefaultRequestTimeout = 10 * time.Second

const (
	// defaultWatchAfter is how long a request waits before its connection
	// is watched for a client that goes away: long enough that almost no
	// request pays for the watch, short enough for long waits to stop
	// promptly.
	defaultWatchAfter = 100 * time.Millisecond
	// reapTick is the reaper's period: timeouts and watch points are
	// noticed within it.
	reapTick = 5 * time.Millisecond
)

// requestContexts makes request contexts and watches the waiting ones.
type requestContexts struct {
	timeout    time.Duration
	watchAfter time.Duration
	tick       time.Duration
	epoch      time.Time // monotonic base of the nanosecond times below

	// lists are the armed contexts, spread over shards so that requests
	// starting and ending at once rarely wait for each other.
	lists [listShards]contextList
	next  atomic.Uint32 // round-robin shard of the next armed context

	closing atomic.Bool   // the shutdown grace is over: contexts are born done
	noWaits atomic.Bool   // shutdown began: waiting contexts are born done (endWaits)
	waiting atomic.Int64  // armed contexts not yet ended
	wake    chan struct{} // capacity 1: "waiting went from 0 to 1"
	start   sync.Once     // the reaper starts with the first wait
	stop    chan struct{}
	done    chan struct{}
}

func newRequestContexts(timeout time.Duration) *requestContexts {
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	return &requestContexts{timeout: timeout, watchAfter: defaultWatchAfter, tick: reapTick, epoch: time.Now(),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

const listShards = 16

// contextList is one shard of the armed contexts.
type contextList struct {
	// mu guards head and the prev/next of the contexts in this list.
	mu   sync.Mutex
	head *requestContext
	_    [48]byte // a cache line of its own
}

func (l *contextList) push(rc *requestContext) {
	l.mu.Lock()
	rc.next = l.head
	if l.head != nil {
		l.head.prev = rc
	}
	l.head = rc
	l.mu.Unlock()
}

func (l *contextList) remove(rc *requestContext) {
	l.mu.Lock()
	if rc.prev != nil {
		rc.prev.next = rc.next
	} else {
		l.head = rc.next
	}
	if rc.next != nil {
		rc.next.prev = rc.prev
	}
	rc.prev, rc.next = nil, nil
	l.mu.Unlock()
}

// each calls fn for every armed context, one shard locked at a time (fn
// must not take a list lock).
func (p *requestContexts) each(fn func(rc *requestContext)) {
	for i := range p.lists {
		l := &p.lists[i]
		l.mu.Lock()
		for rc := l.head; rc != nil; rc = rc.next {
			fn(rc)
		}
		l.mu.Unlock()
	}
}

// now is the monotonic time in nanoseconds since epoch.
func (p *requestContexts) now() int64 { return int64(time.Since(p.epoch)) }

// requestContext is one request's context.Context. It is made by get and
// ended by end when the handler returns; code the request called may keep
// it longer (database/sql does), and then sees it done.
type requestContext struct {
	reqs *requestContexts
	conn net.Conn // watched for the client going away (nil: not watchable)
	arm  sync.Once

	// Set before the first use (request.waitCtx), then read-only.
	extra  time.Duration // added to the request timeout: the acquire's wait
	waiter bool          // a waiting acquire: shutdown ends it at once (endWaits)

	// Set by start (under mu), then read-only.
	deadline int64 // reqs.now() nanoseconds
	doneCh   chan struct{}
	// due is when the reaper must next look at this context (the watch
	// point, then the deadline), in reqs.now() nanoseconds; 0: never.
	due atomic.Int64

	// mu guards everything below.
	mu       sync.Mutex
	err      error // context.Canceled or context.DeadlineExceeded once done
	cause    error // why it is done
	ended    bool  // the handler returned
	listed   bool  // in reqs' list of armed contexts
	watchAt  int64 // 0: not watched
	watching bool  // a watch goroutine is peeking at conn
	watched  chan struct{}
	list     *contextList    // the shard this context is listed in
	prev     *requestContext // in list (list.mu)
	next     *requestContext
}

// request is an authenticated request as its handler sees it: the
// request's context is made when the handler first asks for it (ctx), so a
// request answered without waiting (a flag from the read view, a lock
// listing) makes none. authed owns it and recycles it; only the context it
// made may outlive the handler (code the request called may keep that).
type request struct {
	reqs *requestContexts
	conn net.Conn
	rc   *requestContext
	p    Principal // the caller (authed): handlers get &p
}

var requests = sync.Pool{New: func() any { return new(request) }}

// request starts an authenticated request on conn.
func (p *requestContexts) request(conn net.Conn) *request {
	rq := requests.Get().(*request)
	rq.reqs, rq.conn = p, conn
	return rq
}

// release ends the request when its handler has returned: its context, if
// it made one, is done (end), and rq is recycled.
func (p *requestContexts) release(rq *request) {
	if rq.rc != nil {
		p.end(rq.rc)
	}
	*rq = request{}
	requests.Put(rq)
}

// ctx is the request's context, made on the first call.
func (rq *request) ctx() context.Context {
	if rq.rc == nil {
		rq.rc = rq.reqs.get(rq.conn)
	}
	return rq.rc
}

// waitCtx is the context of a waiting acquire that may wait for its turn up
// to wait: the request timeout is counted on top of it, and a shutdown ends
// it at once (endWaits) instead of after the shutdown grace. Call it
// instead of ctx, before anything uses the request's context.
func (rq *request) waitCtx(wait time.Duration) context.Context {
	if rq.rc == nil {
		rq.rc = rq.reqs.get(rq.conn)
		rq.rc.extra, rq.rc.waiter = wait, true
	}
	return rq.rc
}

// clientGone reports whether the request's context ended because the
// client closed its connection.
func (rq *request) clientGone() bool {
	if rq.rc == nil {
		return false
	}
	rq.rc.mu.Lock()
	defer rq.rc.mu.Unlock()
	return rq.rc.cause == errClientGone
}

// explain turns an error that ended the request's wait into the answer's
// reason (requestContext.explain).
func (rq *request) explain(err error) error {
	if rq.rc == nil {
		return err
	}
	return rq.rc.explain(err)
}

// get makes the context of a request on conn (nil, or not a socket: do
// not watch). Its clock starts at its first use.
func (p *requestContexts) get(conn net.Conn) *requestContext {
	rc := &requestContext{reqs: p}
	if _, ok := conn.(syscall.Conn); ok && canWatch && p.watchAfter < p.timeout {
		rc.conn = conn
	}
	return rc
}

// start starts the clock: the timeout and the watch point, and the
// reaper's visits. After end (a late first use), the context is born done.
func (rc *requestContext) start() {
	p := rc.reqs
	now := p.now()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.doneCh = make(chan struct{})
	rc.deadline = now + int64(p.timeout+rc.extra)
	switch {
	case rc.ended:
		rc.cancelLocked(context.Canceled, errRequestEnded)
		return
	case p.closing.Load(), rc.waiter && p.noWaits.Load():
		rc.cancelLocked(context.Canceled, actors.ErrClosed)
		return
	}
	due := rc.deadline
	if rc.conn != nil {
		rc.watchAt = now + int64(p.watchAfter)
		due = rc.watchAt
	}
	rc.due.Store(due)
	p.start.Do(func() { go p.reap() })
	rc.list = &p.lists[p.next.Add(1)%listShards]
	rc.list.push(rc)
	rc.listed = true
	if rc.waiter && p.noWaits.Load() {
		// endWaits ran between the check above and the push: its walk may
		// have missed this context.
		rc.cancelLocked(context.Canceled, actors.ErrClosed)
	}
	if p.waiting.Add(1) == 1 {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// cancelLocked ends the context (once): err is what Err reports, cause why.
func (rc *requestContext) cancelLocked(err, cause error) {
	if rc.err != nil {
		return
	}
	rc.err, rc.cause = err, cause
	rc.due.Store(0)
	close(rc.doneCh)
}

// end is called when the handler returns: the context is done (cause
// errRequestEnded unless it already was), stops being watched and leaves
// the reaper's list.
func (p *requestContexts) end(rc *requestContext) {
	rc.mu.Lock()
	rc.ended = true
	armed := rc.doneCh != nil
	if armed {
		rc.cancelLocked(context.Canceled, errRequestEnded)
	}
	watching, listed := rc.watching, rc.listed
	rc.listed = false
	rc.mu.Unlock()
	if !armed {
		return
	}
	if watching {
		// Wake the peek (a deadline in the past ends a netpoller wait), wait
		// for it to end, then clear the deadline: fasthttp sets its own
		// before it reads the next request on this connection.
		_ = rc.conn.SetReadDeadline(time.Unix(1, 0))
		<-rc.watched
		_ = rc.conn.SetReadDeadline(time.Time{})
	}
	if listed {
		rc.list.remove(rc)
		p.waiting.Add(-1)
	}
}

// explain turns an error that ended the request's wait into the answer's
// reason: a cancellation by shutdown is actors.ErrClosed, by the client
// errClientGone.
func (rc *requestContext) explain(err error) error {
	if !errors.Is(err, context.Canceled) {
		return err
	}
	rc.mu.Lock()
	cause := rc.cause
	rc.mu.Unlock()
	var coded *actors.Error
	if errors.As(cause, &coded) {
		return coded
	}
	return err
}

// reap runs while requests wait: every tick it cancels the contexts whose
// timeout has passed and starts watching the connections of those that
// reached their watch point.
func (p *requestContexts) reap() {
	defer close(p.done)
	t := time.NewTicker(p.tick)
	defer t.Stop()
	var due []*requestContext
	for {
		if p.waiting.Load() == 0 {
			t.Stop()
			select {
			case <-p.wake:
			case <-p.stop:
				return
			}
			t.Reset(p.tick)
		}
		select {
		case <-t.C:
		case <-p.stop:
			return
		}
		now := p.now()
		due = due[:0]
		p.each(func(rc *requestContext) {
			if d := rc.due.Load(); d != 0 && now >= d {
				due = append(due, rc)
			}
		})
		for i, rc := range due {
			rc.visit(now)
			due[i] = nil
		}
	}
}

// visit is the reaper's visit to a context that is due; it decides again
// under the lock.
func (rc *requestContext) visit(now int64) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	switch {
	case rc.err != nil:
	case now >= rc.deadline:
		rc.cancelLocked(context.DeadlineExceeded, context.DeadlineExceeded)
	case rc.watchAt != 0 && !rc.watching && now >= rc.watchAt:
		rc.watching = true
		rc.watched = make(chan struct{})
		rc.due.Store(rc.deadline)
		go rc.watch()
	}
}

// watch waits for the client to close the connection (peerClosed) and then
// cancels the request, unless it ended meanwhile (end interrupts the wait).
func (rc *requestContext) watch() {
	gone := peerClosed(rc.conn)
	rc.mu.Lock()
	if gone {
		rc.cancelLocked(context.Canceled, errClientGone)
	}
	close(rc.watched)
	rc.mu.Unlock()
}

// endWaits cancels every waiting acquire (request.waitCtx), with cause
// actors.ErrClosed (503), and every one that starts later: called when a
// graceful shutdown begins, since they could wait minutes for their turn.
// Their waits end (actors.Locks.AcquireWith takes them out of the queues).
func (p *requestContexts) endWaits() {
	p.noWaits.Store(true)
	var waiting []*requestContext
	p.each(func(rc *requestContext) {
		if rc.waiter {
			waiting = append(waiting, rc)
		}
	})
	for _, rc := range waiting {
		rc.mu.Lock()
		rc.cancelLocked(context.Canceled, actors.ErrClosed)
		rc.mu.Unlock()
	}
}

// shutdown cancels every request still waiting, with cause
// actors.ErrClosed, and every request that starts waiting later, and stops
// the reaper. Called when the server's graceful shutdown is over or has run
// out of time.
func (p *requestContexts) shutdown() {
	if p.closing.Swap(true) {
		return
	}
	var waiting []*requestContext
	p.each(func(rc *requestContext) { waiting = append(waiting, rc) })
	for _, rc := range waiting {
		rc.mu.Lock()
		rc.cancelLocked(context.Canceled, actors.ErrClosed)
		rc.mu.Unlock()
	}
	p.start.Do(func() { close(p.done) }) // never started: nothing to stop
	close(p.stop)
	<-p.done
}

// Deadline implements context.Context: the request timeout, from the
// context's first use.
func (rc *requestContext) Deadline() (time.Time, bool) {
	rc.arm.Do(rc.start)
	return rc.reqs.epoch.Add(time.Duration(rc.deadline)), true
}

// Done implements context.Context.
func (rc *requestContext) Done() <-chan struct{} {
	rc.arm.Do(rc.start)
	return rc.doneCh
}

// Err implements context.Context: context.DeadlineExceeded once the request
// timeout passed, context.Canceled for the other causes. It does not start
// the clock (a clock that has not started has not run out): before the
// first Done or Deadline the context is done only once the handler has
// returned or the server's shutdown grace is over, as start would find.
// So a call that asks whether it may start (actors.System.call) and is
// answered without waiting arms nothing.
func (rc *requestContext) Err() error {
	rc.mu.Lock()
	if rc.doneCh == nil && !rc.ended && !rc.reqs.closing.Load() {
		rc.mu.Unlock()
		return nil
	}
	rc.mu.Unlock()
	rc.arm.Do(rc.start) // born done, with its cause (start)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.err
}

// Value implements context.Context: a request context carries no values.
func (rc *requestContext) Value(any) any { return nil }
