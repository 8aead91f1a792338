package persistence

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/octostore/octostore/actors"
)

// Writer is the single batched (group-commit) writer. Every durable change
// goes through it: Enqueue appends to an in-memory queue; the writer
// goroutine takes everything queued, applies it in one transaction, commits
// (one fsync), then runs the waiters' callbacks in sequence order. Batches
// grow by themselves under load; at low load a lone write is committed at
// once, with no added delay.
type Writer struct {
	db       *DB
	maxQueue int
	maxBatch int

	// mu guards queue, next, closed, waiters and failed.
	mu      sync.Mutex
	queue   []entry
	spare   []entry
	next    uint64 // last sequence number handed out
	closed  bool
	waiters []waiter
	failed  []seqRange // recent failed batches, newest last, bounded

	resolved atomic.Uint64 // every seq <= resolved has committed or failed
	cond     *sync.Cond    // on mu; broadcast after each batch (WaitResolved)
	wake     chan struct{} // capacity 1: "the queue is not empty"
	stopped  chan struct{}

	healthy   atomic.Bool
	lastErr   atomic.Pointer[string]
	batches   atomic.Uint64
	writes    atomic.Uint64
	failures  atomic.Uint64
	commitDur atomic.Int64 // total nanoseconds spent committing

	// OnBatch, when set before Start, is called after every batch with its
	// size, commit duration and error (metrics).
	OnBatch func(size int, d time.Duration, err error)
	// FaultHook, when set before the first write, is called at the start of
	// every transaction; a non-nil error fails the batch as a disk error
	// would (fault tests). SetFaultHook changes it while running.
	FaultHook func() error
	fault     atomic.Pointer[func() error]

	stmts *statements
	log   *lockLog // the lock journal (locklog.go)
}

type entry struct {
	seq   uint64
	m     actors.Mutation
	guard actors.Guard
	done  func(error)
	skip  bool // guard no longer valid: not applied, fails alone
}

type waiter struct {
	seq uint64
	fn  func(error)
}

type seqRange struct {
	lo, hi uint64
	err    error
}

// WriterOptions tunes the writer. Zero values take defaults.
type WriterOptions struct {
	MaxQueue int // queued writes before Enqueue answers ErrOverloaded (default 100000)
	MaxBatch int // writes per transaction at most (default DefaultMaxBatch)
}

// DefaultMaxBatch caps the writes of one transaction. A commit's fixed cost
// (about 80 µs of CPU here: the WAL locks, the write and the fsync of the
// virtual disk) is spread over its writes, and its latency grows with them
// (BenchmarkWriterCommit, synchronous=FULL: 256 writes 1.0 ms and 3.6 µs of
// CPU each, 1,024 writes 3.2 ms and 3.1 µs, 4,096 writes 12.4 ms and 3.0
// µs). Beyond 1,024 a bigger batch saves 3% of CPU per write and makes every
// write in it wait 4 times longer; what is queued beyond the cap is the
// next batch, committed right after.
const DefaultMaxBatch = 1024

// NewWriter starts the writer goroutine.
func NewWriter(db *DB, opt WriterOptions) (*Writer, error) {
	if opt.MaxQueue <= 0 {
		opt.MaxQueue = 100000
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = DefaultMaxBatch
	}
	if err := checkStmtLayout(); err != nil {
		return nil, err
	}
	log := newLockLog()
	if err := log.foldAll(db.write); err != nil {
		return nil, err
	}
	st, err := prepare(db.write)
	if err != nil {
		return nil, err
	}
	w := &Writer{
		db:       db,
		maxQueue: opt.MaxQueue,
		maxBatch: opt.MaxBatch,
		wake:     make(chan struct{}, 1),
		stopped:  make(chan struct{}),
		stmts:    st,
		log:      log,
	}
	w.cond = sync.NewCond(&w.mu)
	w.healthy.Store(true)
	go w.loop()
	return w, nil
}

// ErrWriteFailed wraps the database error of a failed batch.
var ErrWriteFailed = actors.ErrUnavailable

// Enqueue implements actors.Store.
func (w *Writer) Enqueue(m actors.Mutation, done func(error)) (uint64, error) {
	return w.EnqueueGuarded(m, actors.Guard{}, done)
}

// AwaitCommit enqueues m with enqueue (a writer's Enqueue: this one's or
// the etcd store's) and waits for its commit: nil, the error that failed
// it, or ctx.Err() when ctx ends first (the write may still commit after).
// The mutations that carry an answer back (a sign-in, a token revocation)
// are read only after it returned nil: the commit callback runs after the
// writer filled them in.
func AwaitCommit(ctx context.Context, enqueue func(actors.Mutation, func(error)) (uint64, error), m actors.Mutation) error {
	done := make(chan error, 1)
	if _, err := enqueue(m, func(err error) { done <- err }); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errSkipped fails a guarded write whose guard was no longer valid.
var errSkipped = fmt.Errorf("%w: an earlier write of this resource failed", actors.ErrUnavailable)

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

// AfterCommit implements actors.Store.
func (w *Writer) AfterCommit(seq uint64, fn func(error)) {
	w.mu.Lock()
	if seq <= w.resolved.Load() {
		err := w.failedLocked(seq)
		w.mu.Unlock()
		fn(err)
		return
	}
	w.waiters = append(w.waiters, waiter{seq: seq, fn: fn})
	w.mu.Unlock()
}

// failedLocked reports the error of seq if it is in a recently failed batch.
// Only the last 64 failed batches are remembered; an actor whose write failed
// is told at once through its done callback, so older ranges are not needed.
func (w *Writer) failedLocked(seq uint64) error {
	for i := len(w.failed) - 1; i >= 0; i-- {
		if r := w.failed[i]; seq >= r.lo && seq <= r.hi {
			return r.err
		}
	}
	return nil
}

// Resolved implements actors.Store.
func (w *Writer) Resolved() uint64 { return w.resolved.Load() }

// WaitResolved implements actors.Store.
func (w *Writer) WaitResolved(seq uint64) {
	w.mu.Lock()
	for w.resolved.Load() < seq && !w.closed {
		w.cond.Wait()
	}
	w.mu.Unlock()
}

// Healthy reports whether the last batch committed. It turns true again as
// soon as a write succeeds (the writer probes every second while unhealthy).
func (w *Writer) Healthy() bool { return w.healthy.Load() }

// SetFaultHook replaces FaultHook while the writer runs (nil: no faults).
// For fault-injection tests.
func (w *Writer) SetFaultHook(f func() error) {
	if f == nil {
		w.fault.Store(nil)
		return
	}
	w.fault.Store(&f)
}

func (w *Writer) faultHook() func() error {
	if p := w.fault.Load(); p != nil {
		return *p
	}
	return w.FaultHook
}

// LastError is the error of the most recent failed batch ("" if none).
func (w *Writer) LastError() string {
	if p := w.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}

// WriterStats are cumulative counters.
type WriterStats struct {
	Batches, Writes, Failures uint64
	CommitTime                time.Duration
	Queued                    int
}

// Stats returns cumulative counters.
func (w *Writer) Stats() WriterStats {
	w.mu.Lock()
	q := len(w.queue)
	w.mu.Unlock()
	return WriterStats{
		Batches: w.batches.Load(), Writes: w.writes.Load(), Failures: w.failures.Load(),
		CommitTime: time.Duration(w.commitDur.Load()), Queued: q,
	}
}

// Queued is the number of writes waiting in the queue.
func (w *Writer) Queued() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

// Close stops accepting writes, commits everything queued, and waits for the
// writer goroutine to finish.
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
	w.stmts.close(w.db.write)
	return nil
}

func (w *Writer) loop() {
	defer close(w.stopped)
	probe := time.NewTicker(time.Second)
	defer probe.Stop()
	for {
		select {
		case <-w.wake:
		case <-probe.C:
			if !w.healthy.Load() {
				w.probe()
			}
			continue
		}
		for {
			// Let the goroutines that are ready to run go first. Under load
			// they are handlers about to queue a write (among them those
			// the last commit's replies just woke, with their next request
			// already read): what they queue now joins this commit instead
			// of waiting a whole commit and fsync for the next one. Fewer,
			// larger commits are what a durable write costs least in (a
			// commit's fixed cost is about 80 µs of CPU: DefaultMaxBatch).
			// When nothing else is runnable the yield returns at once, so a
			// lone write at low load is not delayed. Measured in
			// docs/benchmarks.md (issue 18, second round).
			runtime.Gosched()
			w.mu.Lock()
			batch := w.queue
			if len(batch) > w.maxBatch {
				batch = batch[:w.maxBatch]
				w.queue = append(w.spare[:0], w.queue[w.maxBatch:]...)
			} else if len(batch) > 0 {
				// Swap only a non-empty queue: swapping an empty one would
				// leave queue and spare on the same array, and the next
				// batch's entries would be overwritten by writes enqueued
				// while it commits.
				w.queue = w.spare[:0]
			}
			closed := w.closed
			w.mu.Unlock()
			if len(batch) == 0 {
				if closed {
					w.mu.Lock()
					w.cond.Broadcast()
					w.mu.Unlock()
					return
				}
				break
			}
			w.run(batch)
			for i := range batch {
				batch[i] = entry{}
			}
			w.spare = batch[:0]
		}
	}
}

// run commits one batch and completes its waiters in order.
func (w *Writer) run(batch []entry) {
	start := time.Now()
	err := w.commit(batch)
	d := time.Since(start)
	w.batches.Add(1)
	w.writes.Add(uint64(len(batch)))
	w.commitDur.Add(int64(d))
	hi := batch[len(batch)-1].seq
	if err != nil {
		w.failures.Add(1)
		msg := err.Error()
		w.lastErr.Store(&msg)
		w.healthy.Store(false)
		err = fmt.Errorf("%w: %v", actors.ErrUnavailable, err)
		w.mu.Lock()
		w.failed = append(w.failed, seqRange{lo: batch[0].seq, hi: hi, err: err})
		if len(w.failed) > 64 {
			w.failed = append(w.failed[:0], w.failed[len(w.failed)-64:]...)
		}
		w.mu.Unlock()
	} else {
		w.healthy.Store(true)
	}
	var skipped []seqRange // guarded writes not applied, as ranges
	for _, e := range batch {
		eerr := err
		if eerr == nil && e.skip {
			eerr = errSkipped
			if n := len(skipped); n > 0 && skipped[n-1].hi == e.seq-1 {
				skipped[n-1].hi = e.seq
			} else {
				skipped = append(skipped, seqRange{lo: e.seq, hi: e.seq, err: errSkipped})
			}
		}
		if e.done != nil {
			e.done(eerr)
		}
	}
	w.mu.Lock()
	if len(skipped) > 0 {
		w.failed = append(w.failed, skipped...)
		if len(w.failed) > 64 {
			w.failed = append(w.failed[:0], w.failed[len(w.failed)-64:]...)
		}
	}
	w.resolved.Store(hi)
	var ready []waiter
	keep := w.waiters[:0]
	for _, wt := range w.waiters {
		if wt.seq <= hi {
			ready = append(ready, wt)
		} else {
			keep = append(keep, wt)
		}
	}
	for i := len(keep); i < len(w.waiters); i++ {
		w.waiters[i] = waiter{}
	}
	w.waiters = keep
	// Every ready waiter's write is in this batch.
	errs := make([]error, len(ready))
	for i, wt := range ready {
		errs[i] = err
		for _, r := range skipped {
			if err == nil && wt.seq >= r.lo && wt.seq <= r.hi {
				errs[i] = r.err
			}
		}
	}
	w.cond.Broadcast()
	w.mu.Unlock()
	for i, wt := range ready {
		wt.fn(errs[i])
	}
	if w.OnBatch != nil {
		w.OnBatch(len(batch), d, err)
	}
}

func (w *Writer) commit(batch []entry) error {
	if hook := w.faultHook(); hook != nil {
		if err := hook(); err != nil {
			return err
		}
	}
	ctx := context.Background()
	// The batch runs on the write pool's one connection, held as a sql.Conn
	// so that the hot statements can run on its driver connection inside the
	// same transaction (rawstmt.go).
	conn, err := w.db.write.Conn(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := w.log.begin(ctx, tx); err != nil {
		tx.Rollback()
		w.log.rolledBack()
		return err
	}
	bt := &batchTx{ctx: ctx, tx: tx, conn: conn, stmts: w.stmts, log: w.log}
	for i := range batch {
		e := &batch[i]
		if e.m == nil {
			continue
		}
		// Guards are read here, on the writer goroutine, after the done
		// callbacks of every earlier batch have run.
		if e.skip = !e.guard.Valid(); e.skip {
			continue
		}
		// The mutation calls the one batchTx method that stores it
		// (PutLock, PutFlag, …, or a token change).
		if err := e.m.ApplyTo(bt); err != nil {
			tx.Rollback()
			w.log.rolledBack()
			return fmt.Errorf("%s: %w", e.m.Table(), err)
		}
	}
	if err := tx.Commit(); err != nil {
		tx.Rollback()
		w.log.rolledBack()
		return fmt.Errorf("commit: %w", err)
	}
	w.log.committed()
	return nil
}

// probe tries a tiny durable write so that health recovers without traffic.
func (w *Writer) probe() {
	if hook := w.faultHook(); hook != nil {
		if err := hook(); err != nil {
			return
		}
	}
	_, err := w.db.write.Exec(`INSERT INTO meta(key, value) VALUES('health_probe', ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value`, fmt.Sprint(time.Now().UnixNano()))
	if err == nil {
		w.healthy.Store(true)
	}
}

// statements are prepared once on the single write connection; tx.Stmt reuses
// them without re-preparing because the transaction runs on that connection.
// The hottest ones are raw (rawstmt.go): prepared on the driver connection
// at their first use.
type statements struct {
	putLock    *rawStmt
	putSession *sql.Stmt       // sessions.go
	sem        *semaphoreStmts // semaphores.go
	res        *resourceStmts  // limits, flags, config (resources.go)
}

func prepare(db *sql.DB) (*statements, error) {
	s := &statements{}
	var err error
	// Lock writes are journaled (locklog.go), not updated in place.
	s.putLock = newRawStmt(`INSERT INTO lock_log(` + lockColumns + `) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if s.putSession, err = db.Prepare(putSessionSQL); err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	if s.sem, err = prepareSemaphores(db); err != nil {
		s.putSession.Close()
		return nil, err
	}
	if s.res, err = prepareResources(db); err != nil {
		s.putSession.Close()
		s.sem.close()
		return nil, err
	}
	return s, nil
}

// close closes the statements (after the writer goroutine has stopped;
// the raw ones on the write connection: rawStmt.close).
func (s *statements) close(db *sql.DB) {
	s.putSession.Close()
	s.sem.close()
	if conn, err := db.Conn(context.Background()); err == nil {
		s.putLock.close(conn)
		s.res.close(conn)
		conn.Close()
	}
}

// batchTx is one batch's write transaction. It implements
// actors.MutationWriter: each durable change of the kinds is one method
// here (locks below; limits, flags and config in resources.go), and the
// token changes have theirs in tokens.go. Used on the writer goroutine
// only, for the duration of one commit.
type batchTx struct {
	ctx   context.Context
	tx    *sql.Tx
	conn  *sql.Conn // the connection tx runs on (raw statements: rawstmt.go)
	stmts *statements
	log   *lockLog
}

var _ actors.MutationWriter = (*batchTx)(nil)

// PutLock implements actors.MutationWriter: the write is appended to the
// lock journal (locklog.go), not updated in place.
func (b *batchTx) PutLock(l actors.LockRecord) error {
	st := b.stmts.putLock
	lockRow(st.row(), &l)
	seq, err := st.exec(b.conn)
	if err != nil {
		return err
	}
	b.log.append(seq, l)
	return nil
}

// sqliteTx returns the batch transaction that persistence's own mutations
// (users and tokens) are applied in: only the Writer applies mutations,
// and it always passes a *batchTx.
func sqliteTx(w actors.MutationWriter) (*batchTx, error) {
	b, ok := w.(*batchTx)
	if !ok {
		return nil, fmt.Errorf("persistence: mutation applied outside the SQLite writer (%T)", w)
	}
	return b, nil
}
