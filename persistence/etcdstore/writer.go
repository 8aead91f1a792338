package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/persistence/commitq"
)

// Writer is the group-commit writer over etcd: the counterpart of
// persistence.Writer. Enqueue appends to an in-memory queue; the writer
// goroutine merges what is queued into one etcd transaction (txn.go),
// sends it, and runs the waiters' callbacks in sequence order once it has
// committed.
//
// Up to Options.TxnsInFlight transactions are in flight at once: while one
// commits (a Raft round trip and the members' fsyncs, milliseconds), the
// writes queued meanwhile become the next. Every transaction puts a value
// of its own at the chain key (meta/txn_chain), and one sent while an
// earlier one is unresolved also requires the chain key to hold that
// earlier one's value. So transactions commit in the order they were
// built: if etcd receives the later one first, it refuses it, and the
// writer sends it again once the earlier one has committed; and if the
// earlier one fails, the later one cannot commit and fails with it (so do
// all after it; nothing new is sent until every one in flight is answered).
// Writes are acknowledged in order, each only after its own transaction
// and every earlier one committed. A transaction is not built behind one
// holding a write that fails alone (translation, size) until that
// one resolved, so that the failure's callback precedes the later guards
// (actors.GuardedStore). Translations that read etcd see the writes of the
// transactions in flight (txnReader).
//
// Every transaction is guarded: its If requires the leader's election key
// (Fence.Key) to still have the create revision it had when this node won
// (Fence.Rev). A node that is no longer the leader — deposed, paused past
// its session, or its session revoked — therefore commits nothing, whatever
// it believes. Acknowledged means committed by the etcd majority.
//
// A transaction whose outcome is unknown (a timeout, a lost connection: it
// may still commit) or that fails its guard (a second time, if it failed
// first as a reordered chained one) ends the writer's term: it and
// every later write fail with ErrUnavailable, OnLost is called once, and the
// owner must stand down and let the next leader (maybe this node again,
// after a new Campaign) load the state from etcd. Continuing would build on
// state that may or may not be durable.
type Writer struct {
	kv       clientv3.KV
	ks       keyspace
	fence    Fence
	maxQueue int
	maxTake  int // entries considered per transaction
	timeout  time.Duration
	onLost   func(error)

	// mu guards queue, next and closed.
	mu     sync.Mutex
	queue  []entry
	next   uint64 // last sequence number handed out
	closed bool

	*commitq.Tracker               // resolution: AfterCommit, Resolved, WaitResolved
	wake             chan struct{} // capacity 1: "the queue is not empty"
	stopped          chan struct{}

	lost     atomic.Pointer[error] // set once: the term is over
	lostOnce sync.Once

	healthy   atomic.Bool
	lastErr   atomic.Pointer[string]
	txns      atomic.Uint64
	writes    atomic.Uint64
	failures  atomic.Uint64
	resent    atomic.Uint64
	commitDur atomic.Int64 // total nanoseconds spent committing

	// OnBatch, when set before the first write, is called after every
	// transaction with the number of writes it resolved, its duration and
	// its error (metrics).
	OnBatch func(size int, d time.Duration, err error)
	// fault, when set, is called before every transaction; a non-nil error
	// fails it as a refused transaction would (fault tests).
	fault atomic.Pointer[func() error]

	// writer goroutine only
	maxOps, maxBytes int           // of one transaction's builder
	inFlight         int           // transactions in flight at most
	free             []*txnBuilder // builders of resolved flights
	chainSeq         uint64        // transactions sent in this term
}

// entry is one queued write.
type entry struct {
	seq   uint64
	m     actors.Mutation
	guard actors.Guard
	done  func(error)

	// writer goroutine only
	translated bool
	skip       bool   // guard no longer valid: not applied, fails alone
	err        error  // translation failed: fails alone
	parts      []part // what applies m
	next       int    // parts[:next] are in the transaction being built or committed
}

// Fence is the condition every transaction of a writer carries: the
// election key of the term it writes for, and that key's create revision.
// Term.Fence returns it; tests may build one by hand.
type Fence struct {
	Key string
	Rev int64
	// Done, if not nil, is closed when the term is known to be over: writes
	// then fail at once instead of sending a transaction the guard refuses.
	Done <-chan struct{}
}

// Errors of the etcd store. Each is a case of actors.ErrUnavailable
// (nothing was acknowledged) so that callers need not know the backend.
var (
	// ErrNotLeader: the write's term is over (its guard failed, or the
	// session ended); nothing was written. It wraps actors.ErrNotLeader,
	// whose code lets the HTTP front send the request to the new leader.
	ErrNotLeader = fmt.Errorf("%w: %w", actors.ErrNotLeader, errors.New("this node is not the leader"))
	// ErrOutcomeUnknown: a transaction timed out or lost its connection; it
	// may or may not commit. It ends the term (see Writer).
	ErrOutcomeUnknown = fmt.Errorf("%w: %w", actors.ErrUnavailable, errors.New("outcome of an etcd transaction unknown"))
	// errSkipped fails a guarded write whose guard was no longer valid.
	errSkipped = fmt.Errorf("%w: an earlier write of this resource failed", actors.ErrUnavailable)
	// errTooLarge fails a write that cannot fit one transaction.
	errTooLarge = errors.New("write larger than one etcd transaction (max-txn-ops, max-txn-bytes)")
)

func newWriter(kv clientv3.KV, ks keyspace, fence Fence, opt Options) *Writer {
	w := &Writer{
		kv:       kv,
		ks:       ks,
		fence:    fence,
		maxQueue: opt.MaxQueue,
		maxTake:  opt.MaxBatch,
		timeout:  opt.TxnTimeout,
		onLost:   opt.OnLost,
		wake:     make(chan struct{}, 1),
		stopped:  make(chan struct{}),
		OnBatch:  opt.OnBatch,
		maxOps:   max(opt.MaxTxnOps-1, 1), // one op is the chain key's put
		maxBytes: opt.MaxTxnBytes,
		inFlight: opt.TxnsInFlight,
		Tracker:  commitq.New(),
	}
	w.healthy.Store(true)
	go w.loop()
	return w
}

// Enqueue implements actors.Store.
func (w *Writer) Enqueue(m actors.Mutation, done func(error)) (uint64, error) {
	return w.EnqueueGuarded(m, actors.Guard{}, done)
}

// EnqueueGuarded implements actors.GuardedStore.
func (w *Writer) EnqueueGuarded(m actors.Mutation, g actors.Guard, done func(error)) (uint64, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return 0, actors.ErrClosed
	}
	if len(w.queue) >= w.maxQueue {
		w.mu.Unlock()
		return 0, actors.ErrOverloaded
	}
	w.next++
	seq := w.next
	w.queue = append(w.queue, entry{seq: seq, m: m, guard: g, done: done})
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return seq, nil
}

// AfterCommit, Resolved and WaitResolved (actors.Store) are the Tracker's.

// Healthy reports whether the last transaction committed. While unhealthy
// (and the term lasts) the writer probes every second with an empty guarded
// transaction, so health recovers without traffic.
func (w *Writer) Healthy() bool { return w.healthy.Load() }

// Lost is the error that ended the writer's term (nil while it lasts).
func (w *Writer) Lost() error {
	if p := w.lost.Load(); p != nil {
		return *p
	}
	return nil
}

// LastError is the error of the most recent failed transaction ("" if none).
func (w *Writer) LastError() string {
	if p := w.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}

// WriterStats are cumulative counters.
type WriterStats struct {
	// Resent counts transactions sent a second time: etcd received them
	// before the transaction they chain to (Writer).
	Txns, Writes, Failures, Resent uint64
	CommitTime                     time.Duration
	Queued                         int
}

// Stats returns cumulative counters.
func (w *Writer) Stats() WriterStats {
	w.mu.Lock()
	q := len(w.queue)
	w.mu.Unlock()
	return WriterStats{Txns: w.txns.Load(), Writes: w.writes.Load(), Failures: w.failures.Load(), Resent: w.resent.Load(),
		CommitTime: time.Duration(w.commitDur.Load()), Queued: q}
}

// Queued is the number of writes waiting in the queue.
func (w *Writer) Queued() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

// SetFaultHook makes every transaction call f first; a non-nil error fails
// the transaction (nothing sent) as a refused one would. nil removes it.
// For fault-injection tests, as persistence.Writer.SetFaultHook.
func (w *Writer) SetFaultHook(f func() error) {
	if f == nil {
		w.fault.Store(nil)
		return
	}
	w.fault.Store(&f)
}

// Close stops accepting writes, commits (or fails) everything queued, and
// waits for the writer goroutine to finish.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.stopped
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	<-w.stopped
	return nil
}

func (w *Writer) loop() {
	defer close(w.stopped)
	probe := time.NewTicker(time.Second)
	defer probe.Stop()
	var work []entry      // taken from the queue, not in a flight yet; work[0] may be part-way through its parts
	var flights []*flight // built, in order; flights[0] resolves first
	var poison error      // a flight failed: every later one fails too, and nothing is sent until all are resolved
	for {
		w.mu.Lock()
		if n := w.maxTake - len(work); n > 0 && len(w.queue) > 0 {
			n = min(n, len(w.queue))
			work = append(work, w.queue[:n]...)
			clear(w.queue[:n])
			w.queue = w.queue[n:]
			if len(w.queue) == 0 {
				w.queue = w.queue[:0:0] // let the drained array go
			}
		}
		closed := w.closed
		w.mu.Unlock()
		if len(work) > 0 && w.mayBuild(flights, poison) {
			f := w.build(work, flights)
			n := len(f.entries)
			clear(work[:n])
			work = append(work[:0], work[n:]...)
			flights = append(flights, f)
			continue
		}
		if len(flights) > 0 {
			f := flights[0]
			var r txnResult
			if f.sent {
				select {
				case r = <-f.res:
				case <-w.wake:
					continue // more writes: maybe another transaction can go
				}
			}
			if w.retry(f, r, poison) {
				continue
			}
			err := w.outcome(f, r, &poison)
			flights[0] = nil
			flights = flights[1:]
			w.resolve(f.entries, err, time.Since(f.start))
			w.free = append(w.free, f.b)
			if len(flights) == 0 {
				flights = flights[:0:0]
				if poison != nil && len(work) > 0 && work[0].next > 0 {
					// Some of its parts were in a failed transaction.
					w.resolve(work[:1], poison, 0)
					clear(work[:1])
					work = append(work[:0], work[1:]...)
				}
				poison = nil
			}
			continue
		}
		if len(work) == 0 {
			if closed {
				w.Tracker.Close()
				return
			}
			select {
			case <-w.wake:
			case <-probe.C:
				if !w.healthy.Load() && w.Lost() == nil {
					if w.probe() == nil {
						w.healthy.Store(true)
					}
				}
			}
		}
	}
}

// flight is one transaction of the writer: built from the front of the
// work, sent (unless it has nothing to send or the term is over), and
// resolved in order.
type flight struct {
	b       *txnBuilder
	entries []entry // the writes it resolves: their last parts are in it
	alone   bool    // some of its writes fail alone (translation, size): their callbacks change guards
	start   time.Time

	sent    bool
	err     error // not sent: why, or nil (nothing to send)
	ops     []clientv3.Op
	chain   string // the value it puts at the chain key
	prev    string // the chain value it requires; "" when sent with nothing in flight
	retried bool
	res     chan txnResult // capacity 1
}

// txnResult is what etcd answered to a flight.
type txnResult struct {
	ok  bool // committed
	err error
}

// mayBuild reports whether another transaction may be built now: fewer than
// inFlight are unresolved, no earlier one failed, and none has writes that
// fail alone (their callbacks must run before later guards are read: see
// actors.GuardedStore).
func (w *Writer) mayBuild(flights []*flight, poison error) bool {
	if poison != nil || len(flights) >= w.inFlight {
		return false
	}
	for _, f := range flights {
		if f.alone || f.err != nil {
			return false
		}
	}
	return true
}

// build makes the next flight from the front of work and sends it. Its
// translations read etcd through the writes of every flight still
// unresolved (all of which commit before it, or it fails with them).
func (w *Writer) build(work []entry, flights []*flight) *flight {
	var b *txnBuilder
	if n := len(w.free); n > 0 {
		b, w.free = w.free[n-1], w.free[:n-1]
	} else {
		b = newTxnBuilder(w.maxOps, w.maxBytes)
	}
	b.reset()
	f := &flight{b: b, start: time.Now()}
	r := &txnReader{ctx: context.Background(), kv: w.kv, ks: w.ks, b: b}
	for _, g := range flights {
		r.pending = append(r.pending, g.b)
	}
	// doomed: the generations that writes failing alone in this flight
	// will mark failed (their callbacks, actors.Host) by guard.
	var doomed map[*atomic.Uint64]uint64
	fail := func(e *entry, err error) {
		e.err, f.alone = err, true
		if g := e.guard; g.Failed != nil && doomed[g.Failed] < g.Gen {
			if doomed == nil {
				doomed = map[*atomic.Uint64]uint64{}
			}
			doomed[g.Failed] = g.Gen
		}
	}
	i, cut := 0, false
	for ; i < len(work) && !cut; i++ {
		e := &work[i]
		if !e.translated {
			e.translated = true
			// Guards are read here, on the writer goroutine. Every earlier
			// write either resolved (its callback ran), or is in a flight
			// that had no write failing alone (if that flight fails, this
			// one fails with it: the chain guard), or is in this one (then
			// doomed has what its failure will mark).
			if e.m != nil && (!e.guard.Valid() || (e.guard.Failed != nil && doomed[e.guard.Failed] >= e.guard.Gen)) {
				e.skip = true // its callback marks nothing new: the guard is failed already
			} else if w.Lost() == nil {
				r.local = nil
				ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
				r.ctx = ctx
				parts, err := translate(r, e.m)
				cancel()
				if err != nil {
					fail(e, fmt.Errorf("%w: %s: %w", actors.ErrUnavailable, tableOf(e.m), err))
				}
				e.parts = parts
			}
		}
		for e.next < len(e.parts) {
			p := e.parts[e.next]
			if b.check(p) == fits {
				b.add(p)
				e.next++
				continue
			}
			if b.empty() {
				// Cannot fit even alone: fail this write, not the others.
				fail(e, fmt.Errorf("%w: %s: %w", actors.ErrUnavailable, tableOf(e.m), errTooLarge))
				e.next = len(e.parts)
				break
			}
			cut = true // e continues in the next transaction
			break
		}
		if cut {
			i-- // e is not resolved by this flight
		}
	}
	f.entries = append(f.entries, work[:i]...)
	switch {
	case b.empty():
		f.err = w.Lost()
	default:
		if err := w.admit(); err != nil {
			f.err = err
			break
		}
		w.chainSeq++
		f.chain = fmt.Sprintf("%x/%d", w.fence.Rev, w.chainSeq)
		f.ops = append(b.clientOps(), clientv3.OpPut(w.ks.txnChain(), f.chain))
		// Chain to the newest flight still unresolved, if any: this one
		// then commits only after it, and never if it does not.
		for j := len(flights) - 1; j >= 0; j-- {
			if flights[j].sent {
				f.prev = flights[j].chain
				break
			}
		}
		f.res = make(chan txnResult, 1)
		w.send(f)
	}
	return f
}

// admit is checked before every send: the term still lasts (else it ends
// the writer's), and the fault hook lets it go.
func (w *Writer) admit() error {
	if lost := w.Lost(); lost != nil {
		return lost
	}
	if w.fence.Done != nil {
		select {
		case <-w.fence.Done:
			w.endTerm(fmt.Errorf("%w: the session ended", ErrNotLeader))
			return w.Lost()
		default:
		}
	}
	if f := w.fault.Load(); f != nil {
		if err := (*f)(); err != nil {
			return fmt.Errorf("%w: %v", actors.ErrUnavailable, err)
		}
	}
	return nil
}

// send commits f in the background, guarded by the fence and, when f.prev
// is set, by the chain key holding f.prev: the effect of the transaction
// sent before it, which etcd may receive after it (then f fails and is sent
// again, once) or never apply (then f cannot apply either).
func (w *Writer) send(f *flight) {
	f.sent = true
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(w.fence.Key), "=", w.fence.Rev)}
	if f.prev != "" {
		cmps = append(cmps, clientv3.Compare(clientv3.Value(w.ks.txnChain()), "=", f.prev))
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
		defer cancel()
		resp, err := w.kv.Txn(ctx).If(cmps...).Then(f.ops...).Commit()
		f.res <- txnResult{ok: err == nil && resp.Succeeded, err: err}
	}()
}

// retry sends f, the oldest unresolved flight, again when it failed only
// its chain guard: it was sent before the flight it chains to was known
// committed, and etcd received it first. Every earlier flight has now
// committed, so the chain holds f.prev unless this node was deposed (then
// the second refusal ends the term).
func (w *Writer) retry(f *flight, r txnResult, poison error) bool {
	if poison != nil || !f.sent || r.ok || r.err != nil || f.prev == "" || f.retried {
		return false
	}
	f.retried = true
	w.resent.Add(1)
	if err := w.admit(); err != nil {
		f.sent, f.err = false, err
		return false
	}
	w.send(f)
	return true
}

// outcome is the error that resolves f, the oldest unresolved flight (nil:
// committed). poison is the error of an earlier flight of this run of
// flights; f then fails too, and a first failure becomes the poison.
func (w *Writer) outcome(f *flight, r txnResult, poison *error) error {
	var err error
	switch {
	case !f.sent:
		err = f.err
	case r.err != nil && definite(r.err):
		err = fmt.Errorf("%w: %v", actors.ErrUnavailable, r.err)
	case r.err != nil:
		w.endTerm(fmt.Errorf("%w: %v", ErrOutcomeUnknown, r.err))
		err = w.Lost()
	case !r.ok && *poison == nil:
		w.endTerm(fmt.Errorf("%w: election key %s no longer has create revision %d", ErrNotLeader, w.fence.Key, w.fence.Rev))
		err = w.Lost()
	}
	if *poison == nil {
		*poison = err
		return err
	}
	if f.sent && r.ok {
		// Committed after an earlier transaction failed: possible only when
		// that one's outcome was unknown (it committed after all). The
		// term is over; this write is not acknowledged.
		w.endTerm(fmt.Errorf("%w: a transaction committed after an earlier one failed", ErrOutcomeUnknown))
	}
	if lost := w.Lost(); lost != nil {
		return lost
	}
	return fmt.Errorf("%w: an earlier etcd transaction failed: %w", actors.ErrUnavailable, *poison)
}

// probe sends an empty guarded transaction (health while idle).
func (w *Writer) probe() error {
	if err := w.admit(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
	defer cancel()
	resp, err := w.kv.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(w.fence.Key), "=", w.fence.Rev)).
		Commit()
	switch {
	case err != nil && definite(err):
		return fmt.Errorf("%w: %v", actors.ErrUnavailable, err)
	case err != nil:
		w.endTerm(fmt.Errorf("%w: %v", ErrOutcomeUnknown, err))
		return w.Lost()
	case !resp.Succeeded:
		w.endTerm(fmt.Errorf("%w: election key %s no longer has create revision %d", ErrNotLeader, w.fence.Key, w.fence.Rev))
		return w.Lost()
	}
	return nil
}

func tableOf(m actors.Mutation) string {
	if m == nil {
		return "barrier"
	}
	return m.Table()
}

// definite reports whether err certainly means the transaction was not
// applied: etcd refused it before proposing it, or Raft dropped the
// proposal (raft.ErrProposalDropped, while etcd's leadership moves: it
// reaches the client as a message only).
func definite(err error) bool {
	if strings.Contains(err.Error(), "raft proposal dropped") {
		return true
	}
	for _, e := range []error{
		rpctypes.ErrNoSpace, rpctypes.ErrGRPCNoSpace,
		rpctypes.ErrTooManyOps, rpctypes.ErrGRPCTooManyOps,
		rpctypes.ErrRequestTooLarge, rpctypes.ErrGRPCRequestTooLarge,
		rpctypes.ErrDuplicateKey, rpctypes.ErrGRPCDuplicateKey,
		rpctypes.ErrEmptyKey, rpctypes.ErrGRPCEmptyKey,
		rpctypes.ErrKeyNotFound, rpctypes.ErrGRPCKeyNotFound,
		rpctypes.ErrPermissionDenied, rpctypes.ErrGRPCPermissionDenied,
		rpctypes.ErrUserEmpty, rpctypes.ErrGRPCUserEmpty,
		rpctypes.ErrAuthNotEnabled, rpctypes.ErrGRPCAuthNotEnabled,
		rpctypes.ErrInvalidAuthToken, rpctypes.ErrGRPCInvalidAuthToken,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// endTerm records why the term is over, once, and tells the owner.
func (w *Writer) endTerm(err error) {
	w.lostOnce.Do(func() {
		w.lost.Store(&err)
		if w.onLost != nil {
			w.onLost(err)
		}
	})
}

// resolve completes entries in order with the transaction's error err
// (nil: committed), or each entry's own error.
func (w *Writer) resolve(done []entry, err error, d time.Duration) {
	if len(done) == 0 {
		return
	}
	w.txns.Add(1)
	w.writes.Add(uint64(len(done)))
	w.commitDur.Add(int64(d))
	if err != nil {
		w.failures.Add(1)
		msg := err.Error()
		w.lastErr.Store(&msg)
		w.healthy.Store(false)
	} else {
		w.healthy.Store(true)
	}
	var failed commitq.Failures
	for i := range done {
		e := &done[i]
		eerr := err
		switch {
		case eerr != nil:
		case e.skip:
			eerr = errSkipped
		case e.err != nil:
			eerr = e.err
		}
		if eerr != nil {
			failed.Add(e.seq, eerr)
		}
		if e.done != nil {
			e.done(eerr)
		}
	}
	w.Resolve(done[len(done)-1].seq, failed)
	if w.OnBatch != nil {
		w.OnBatch(len(done), d, err)
	}
}
