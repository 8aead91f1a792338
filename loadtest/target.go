package loadtest

import (
	"strconv"
	"time"
)

// Status is the outcome of one request: an HTTP status (200 is success for
// every operation; the Redis driver maps its answers onto the same codes:
// 409 lock held, 404 not the holder, 500 a Redis error), or one of the
// negative codes below.
type Status int32

const (
	// StatusTransport: connection failure or timeout, outcome unknown.
	StatusTransport Status = -1
	// StatusBadReply: a success status whose body could not be understood.
	StatusBadReply Status = -2
)

func (s Status) String() string {
	switch s {
	case StatusTransport:
		return "conn"
	case StatusBadReply:
		return "bad-reply"
	}
	return strconv.Itoa(int(s))
}

// LockReply is what an acquire or renew returns.
type LockReply struct {
	Lease LeaseID
	Token int64 // 0 when the target has no fencing tokens
	Held  bool  // acquire answered "held": the caller's user already held it
}

// Conn is one worker's connection to the system under test. A Conn is used by
// one goroutine at a time; implementations keep per-request allocations to a
// minimum.
type Conn interface {
	Acquire(name string, ttl time.Duration) (LockReply, Status)
	// AcquireQueued is a waiting acquire as the holder holderID of the
	// connection's user: queued behind the current holder for up to wait
	// (whole seconds). Targets without queues answer 501.
	AcquireQueued(name, holderID string, ttl, wait time.Duration) (LockReply, Status)
	// AcquireSemaphore takes a slot of a semaphore as the holder holderID
	// of the connection's user (waiting up to wait in its queue; 0: one
	// attempt); 409 when full. Targets without semaphores answer 501.
	AcquireSemaphore(name, holderID string, limit int, ttl, wait time.Duration) (LockReply, Status)
	ReleaseSemaphore(name string, lease LeaseID) Status
	Renew(name string, lease LeaseID, ttl time.Duration) (LockReply, Status)
	Release(name string, lease LeaseID) Status
	LockStatus(name string) Status
	// CheckLimit checks a rate limit; algorithm is "" (the server's
	// default, the sliding window) or "token_bucket" (octostore only).
	CheckLimit(name string, max int, window time.Duration, algorithm string) (allowed bool, st Status)
	EvalFlag(name, subject string) (enabled bool, st Status)
	SetFlag(name string, percentage int) Status
	ReadConfig(key string) Status
	WriteConfig(key string, n int64) Status
	Close()
}

// Target is a system under test.
type Target interface {
	// Kind names the implementation: "octostore" (also used for the no-op
	// server, which speaks the same HTTP) or "redis".
	Kind() string
	// Addr is the address for reports, without credentials.
	Addr() string
	// Supports reports whether the target can run scenario.
	Supports(scenario string) bool
	// Users is the number of distinct identities workers are spread over.
	Users() int
	// Conn opens a connection acting as user (0 <= user < Users()).
	Conn(user int) (Conn, error)
	// Ping checks that the target answers (octostore: GET /health).
	Ping() error
	Close() error
}
