package actors

import (
	"errors"
	"sync/atomic"
	"time"
)

// Store is what the runtime needs from persistence. Package persistence
// implements it with SQLite; tests may use an in-memory implementation.
type Store interface {
	// Enqueue queues a durable write. done (may be nil) runs on the writer's
	// goroutine once the write is committed or has failed; callbacks run in
	// enqueue order. It returns the write's sequence number, or an error
	// (ErrOverloaded, ErrClosed) without queuing anything.
	Enqueue(m Mutation, done func(error)) (uint64, error)
	// AfterCommit runs fn once the write with sequence seq is resolved, with
	// that write's error (nil when it committed). Callbacks registered in
	// order run in order, after the callbacks of the writes they follow.
	AfterCommit(seq uint64, fn func(error))
	// Resolved is the highest sequence number whose outcome (commit or
	// failure) is known; every write up to it is resolved.
	Resolved() uint64
	// WaitResolved blocks until seq is resolved.
	WaitResolved(seq uint64)
	// Loader reads durable state at activation.
	Loader
}

// Guard makes a queued write conditional. A resource actor guards its
// writes so that once one of them fails, none of the later writes it queued
// before it learnt of the failure (computed from state that never became
// durable) can commit.
type Guard struct {
	Failed *atomic.Uint64 // newest generation with a failed write
	Gen    uint64         // the generation of this write
}

// Valid reports whether the guarded write may still be applied.
func (g Guard) Valid() bool { return g.Failed == nil || g.Failed.Load() < g.Gen }

// GuardedStore is implemented by stores that honour Guards: EnqueueGuarded
// is Enqueue, except that a write whose guard is no longer Valid when the
// writer reaches it is not applied and fails (done gets an error wrapping
// ErrUnavailable) without failing the other writes of its batch. Guards are
// evaluated on the writer goroutine after the done callbacks of every
// earlier write have run.
type GuardedStore interface {
	EnqueueGuarded(m Mutation, g Guard, done func(error)) (uint64, error)
}

// Loader reads durable state. Reads see every committed write.
type Loader interface {
	LoadLock(name string) (LockRecord, bool, error)
	// ActiveLocks calls fn for every lock held at now (recovery at start).
	ActiveLocks(now time.Time, fn func(LockRecord)) error
}

// Mutation is one durable change. The persistence layer knows how to apply
// each concrete type (the ones below, and its own for users and tokens).
type Mutation interface {
	// Table names the table the mutation writes (metrics, errors).
	Table() string
}

// PutLock writes a lock's full state (a snapshot, so a later write always
// supersedes an earlier one).
type PutLock struct{ Lock LockRecord }

// Table implements Mutation.
func (PutLock) Table() string { return "locks" }

// LockRecord is the durable state of one lock. Holder == "" means free; the
// record survives a release so that the fencing token never goes backwards.
type LockRecord struct {
	Name       string
	Holder     string
	LeaseID    string
	Token      uint64
	ExpiresAt  time.Time
	AcquiredAt time.Time
}

// Errors shared by the runtime and the store.
var (
	// ErrOverloaded means a bounded queue is full; the caller should retry later.
	ErrOverloaded = errors.New("server overloaded")
	// ErrClosed means the runtime or store is shutting down.
	ErrClosed = errors.New("server shutting down")
	// ErrUnavailable means a durable write failed; nothing was acknowledged.
	ErrUnavailable = errors.New("storage unavailable")
	// ErrTimeout means the resource actor did not answer in time.
	ErrTimeout = errors.New("request timed out")
)
