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
// commits it, then runs the waiters' callbacks in sequence order. One
// transaction is in flight at a time, so transactions commit in the order
// of the writes they carry.
//
// Every transaction is guarded: its If requires the leader's election key
// (Fence.Key) to still have the create revision it had when this node won
// (Fence.Rev). A node that is no longer the leader — deposed, paused past
// its session, or its session revoked — therefore commits nothing, whatever
// it believes. Acknowledged means committed by the etcd majority.
//
// A transaction whose outcome is unknown (a timeout, a lost connection: it
// may still commit) or that fails its guard ends the writer's term: it and
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
	commitDur atomic.Int64 // total nanoseconds spent committing

	// OnBatch, when set before the first write, is called after every
	// transaction with the number of writes it resolved, its duration and
	// its error (metrics).
	OnBatch func(size int, d time.Duration, err error)
	// fault, when set, is called before every transaction; a non-nil error
	// fails it as a refused transaction would (fault tests).
	fault atomic.Pointer[func() error]

	b *txnBuilder // writer goroutine only
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
		b:        newTxnBuilder(opt.MaxTxnOps, opt.MaxTxnBytes),
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
	Txns, Writes, Failures uint64
	CommitTime             time.Duration
	Queued                 int
}

// Stats returns cumulative counters.
func (w *Writer) Stats() WriterStats {
	w.mu.Lock()
	q := len(w.queue)
	w.mu.Unlock()
	return WriterStats{Txns: w.txns.Load(), Writes: w.writes.Load(), Failures: w.failures.Load(),
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
	var work []entry // taken from the queue, not resolved; work[0] may be part-way through its parts
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
		if len(work) == 0 {
			if closed {
				w.Tracker.Close()
				return
			}
			select {
			case <-w.wake:
			case <-probe.C:
				if !w.healthy.Load() && w.Lost() == nil {
					w.b.reset()
					if w.commit(w.b) == nil {
						w.healthy.Store(true)
					}
				}
			}
			continue
		}
		n := w.run(work)
		clear(work[:n])
		work = append(work[:0], work[n:]...)
	}
}

// run builds one transaction from the front of work, commits it, and
// resolves the writes it completed, in order. It returns how many entries
// of work are resolved.
func (w *Writer) run(work []entry) int {
	b := w.b
	b.reset()
	r := &txnReader{ctx: context.Background(), kv: w.kv, ks: w.ks, b: b}
	i, cut := 0, false
	for ; i < len(work) && !cut; i++ {
		e := &work[i]
		if !e.translated {
			e.translated = true
			// Guards are read here, on the writer goroutine, after the done
			// callbacks of every earlier transaction have run.
			if e.m != nil && !e.guard.Valid() {
				e.skip = true
			} else if w.Lost() == nil {
				r.local = nil
				ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
				r.ctx = ctx
				parts, err := translate(r, e.m)
				cancel()
				if err != nil {
					e.err = fmt.Errorf("%w: %s: %w", actors.ErrUnavailable, tableOf(e.m), err)
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
				e.err = fmt.Errorf("%w: %s: %w", actors.ErrUnavailable, tableOf(e.m), errTooLarge)
				e.next = len(e.parts)
				break
			}
			cut = true // e continues in the next transaction
			break
		}
		if cut {
			break
		}
	}
	start := time.Now()
	var err error
	if !b.empty() {
		err = w.commit(b)
	} else if lost := w.Lost(); lost != nil {
		err = lost
	}
	d := time.Since(start)
	resolved := i
	if cut && err != nil {
		// The cut write's first parts were in the failed transaction, or it
		// was translated reading that transaction's writes: it fails too.
		resolved++
	}
	w.resolve(work[:resolved], err, d)
	return resolved
}

func tableOf(m actors.Mutation) string {
	if m == nil {
		return "barrier"
	}
	return m.Table()
}

// commit sends the transaction, guarded by the fence.
func (w *Writer) commit(b *txnBuilder) error {
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
	ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
	defer cancel()
	resp, err := w.kv.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(w.fence.Key), "=", w.fence.Rev)).
		Then(b.clientOps()...).
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
