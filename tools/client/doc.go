// Package client is the Go client for the octostore HTTP API: locks with
// fencing tokens, rate limits, feature flags, versioned config, tokens and the
// server-sent event streams.
//
// Unary calls go through one fasthttp.HostClient (keep-alive, pooled
// request/response objects, hand-written JSON for the hot request bodies), so
// a single *Client can drive very high request rates. Event streams use
// net/http because they need a streaming body.
//
// Every method takes a context: its deadline bounds the request (together
// with WithTimeout) and cancelling it returns ctx.Err() at once.
//
// Errors are typed. Branch with errors.Is on the sentinels (ErrLockHeld,
// ErrNotFound, ErrUnauthorized, ErrForbidden, ErrConflict, ErrRateLimited,
// ErrUnavailable, ErrValidation) and use errors.As for details
// (*LockHeldError, *ConflictError, *ValidationError, *APIError,
// *TransportError). Each HTTP error matches exactly one sentinel.
//
// Retries: idempotent calls (GET, DELETE, PUT) are retried with jittered
// exponential backoff on connection failures, 502/503/504 and 429; POST calls
// (acquire, renew, release, check, rotate) are retried only when the request
// provably never left the client (dial failure, no free connection).
//
// Locker wraps a lock in the style of etcd's concurrency.Mutex: TryLock,
// Lock(ctx) that waits, background renewal at a third of the TTL, a Done
// channel closed when the lock is lost, and Unlock.
//
// Ownership: a Client is safe for concurrent use; its only mutable state is
// the bearer token (an atomic pointer, replaced by RotateToken). A Locker
// guards its lease with a mutex (see locker.go).
package client
