package actors

import (
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
	// failure) is known; every write up to it is resolved, and the done
	// callbacks of those writes have run (Host.reply relies on this).
	Resolved() uint64
	// WaitResolved blocks until seq is resolved.
	WaitResolved(seq uint64)
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
// earlier failed write have run; a write whose guard was read while earlier
// writes were still in flight (etcdstore's pipelined transactions) fails if
// any of them fails.
type GuardedStore interface {
	EnqueueGuarded(m Mutation, g Guard, done func(error)) (uint64, error)
}

// Mutation is one durable change, applied by the store's writer inside a
// write transaction: ApplyTo calls the one MutationWriter method that
// stores it, so "go to definition" leads from an actor's Write to the
// statement. Package persistence implements MutationWriter over SQLite (and
// declares its own mutations for users and tokens).
type Mutation interface {
	// Table names the table the mutation writes (metrics, errors).
	Table() string
	// ApplyTo stores the mutation through w.
	ApplyTo(w MutationWriter) error
}

// MutationWriter is what the kinds need from a write transaction, one
// method per durable change. Methods run on the writer's goroutine; an
// error fails the whole batch.
type MutationWriter interface {
	// PutLock stores a lock's full state.
	PutLock(l LockRecord) error
	// PutLimits stores rate-limit snapshots (write-behind counters).
	PutLimits(rows []LimitRow) error
	// RemoveLimit deletes a limit.
	RemoveLimit(owner, name string) error
	// PutFlag stores a flag's full state.
	PutFlag(f FlagRecord) error
	// RemoveFlag deletes a flag.
	RemoveFlag(owner, name string) error
	// PutConfig stores a new version of a config key and prunes versions
	// older than the newest keep (keep <= 0: none).
	PutConfig(c ConfigRecord, keep int) error
	// RemoveConfig deletes a key's versions and marks the key deleted at
	// version (its last one, so that a re-created key continues after it).
	RemoveConfig(owner, key string, version int64, at time.Time) error
	// PutSession stores a session's full state.
	PutSession(s SessionRecord) error
	// RemoveSession deletes a session (it ended, and every hold of it has
	// recorded its end).
	RemoveSession(id string) error
	// PutSemaphore stores a semaphore's head and the changes to its slots.
	PutSemaphore(m PutSemaphore) error
}

// PutSession writes a session's full state.
type PutSession struct{ Session SessionRecord }

// Table implements Mutation.
func (PutSession) Table() string { return "sessions" }

// ApplyTo implements Mutation.
func (m PutSession) ApplyTo(w MutationWriter) error { return w.PutSession(m.Session) }

// RemoveSession deletes a session.
type RemoveSession struct{ ID string }

// Table implements Mutation.
func (RemoveSession) Table() string { return "sessions" }

// ApplyTo implements Mutation.
func (m RemoveSession) ApplyTo(w MutationWriter) error { return w.RemoveSession(m.ID) }

// PutLock writes a lock's full state (a snapshot, so a later write always
// supersedes an earlier one).
type PutLock struct{ Lock LockRecord }

// Table implements Mutation.
func (PutLock) Table() string { return "locks" }

// ApplyTo implements Mutation.
func (m PutLock) ApplyTo(w MutationWriter) error { return w.PutLock(m.Lock) }

// LockRecord is the durable state of one lock. Holder == "" means free; the
// record survives a release so that the fencing token never goes backwards.
type LockRecord struct {
	Name   string
	Holder string // the user holding it
	// HolderID names the process or task of Holder that holds it, as the
	// acquire gave it (names.HolderID; "" when it gave none). The holder is
	// the pair (Holder, HolderID): a re-acquire is "held" only for both.
	HolderID string
	LeaseID  string
	Token    uint64
	// SessionID is the session the lock is held under ("" none): it is held
	// while the session lives, and ExpiresAt follows the session's expiry
	// (stored as last seen; the session index is the authority).
	SessionID  string
	ExpiresAt  time.Time
	AcquiredAt time.Time
	// LockDelay is the current hold's lock-delay (the acquire's, or its
	// session's): when the hold is lost by expiry, nobody is granted the
	// lock before ExpiresAt + LockDelay.
	LockDelay time.Duration
	// AvailableAt, on a lock freed by an expiry with a lock-delay, is when
	// it may be granted again; DelayHolder is who held it, and ExpiresAt is
	// kept (when the hold expired). Zero otherwise.
	AvailableAt time.Time
	DelayHolder string
	// Metadata is the holder's description of the hold (host, pid, job id:
	// at most 1,024 bytes, one line), shown to every user; "" none. Never a
	// secret.
	Metadata string
	// SlotLimit is used by the semaphores' slot index only (which keeps a
	// slot as a LockRecord named "semaphore\x00lease"): the semaphore's
	// limit when the slot was granted or renewed, the same for every slot
	// held at once (a limit changes only when none is held). 0 for locks.
	SlotLimit int
}
