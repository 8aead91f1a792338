package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// Sentinel errors. Every error returned for an HTTP error status matches
// exactly one of them with errors.Is (statuses without a sentinel match none
// and are plain *APIError).
var (
	ErrLockHeld      = errors.New("octostore: lock held by another holder") // 409 on acquire
	ErrNotFound      = errors.New("octostore: not found")                   // 404 (locks: or not owned by caller)
	ErrUnauthorized  = errors.New("octostore: unauthorized")                // 401
	ErrForbidden     = errors.New("octostore: forbidden")                   // 403
	ErrConflict      = errors.New("octostore: conflict")                    // 409 other than a held lock (config version)
	ErrRateLimited   = errors.New("octostore: rate limited")                // 429
	ErrUnavailable   = errors.New("octostore: unavailable")                 // 503, or the server could not be reached
	ErrValidation    = errors.New("octostore: validation failed")           // 422 (and 400)
	ErrLockLost      = errors.New("octostore: lock lost")                   // Locker: renewal refused or lease expired
	ErrLagged        = errors.New("octostore: event subscriber lagged")     // event stream closed by the server after "lagged"
	ErrSemaphoreFull = errors.New("octostore: semaphore full")              // 409 on a semaphore acquire
	ErrStaleToken    = errors.New("octostore: stale fencing token")         // 409 on a fence check
	// ErrRevoked ends an event stream whose token was revoked or rotated
	// while it was open (the server's final "revoked" event). It is a case
	// of ErrUnauthorized: errors.Is(ErrRevoked, ErrUnauthorized) holds, as
	// a new request with that token would get 401.
	ErrRevoked = fmt.Errorf("octostore: token revoked while the event stream was open: %w", ErrUnauthorized)
)

// APIError is any error response from the server.
type APIError struct {
	Status     int           // HTTP status
	Message    string        // the server's "error" field (or the status text)
	RetryAfter time.Duration // from Retry-After, on 429 and 503
	kind       error         // the sentinel this error matches, nil for none
}

func (e *APIError) Error() string {
	return fmt.Sprintf("octostore: %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Is reports whether target is the sentinel for this status.
func (e *APIError) Is(target error) bool { return e.kind != nil && target == e.kind }

// LockHeldError is returned by Acquire (and Locker.TryLock) when another
// holder has the lock. errors.Is(err, ErrLockHeld) is true.
type LockHeldError struct {
	Name      string
	Holder    string
	ExpiresAt time.Time
	// AvailableAt is set when the lock is in lock-delay: its holder's hold
	// expired at ExpiresAt, and nobody is granted it before AvailableAt.
	AvailableAt time.Time
	Metadata    string    // the current hold's metadata
	Err         *APIError // the underlying 409; nil when produced by Locker for a same-identity holder
}

func (e *LockHeldError) Error() string {
	if !e.AvailableAt.IsZero() {
		return fmt.Sprintf("octostore: lock %q in lock-delay until %s (%s's hold expired at %s)", e.Name,
			e.AvailableAt.Format(time.RFC3339), e.Holder, e.ExpiresAt.Format(time.RFC3339))
	}
	return fmt.Sprintf("octostore: lock %q held by %s until %s", e.Name, e.Holder, e.ExpiresAt.Format(time.RFC3339))
}
func (e *LockHeldError) Is(target error) bool { return target == ErrLockHeld }
func (e *LockHeldError) Unwrap() error {
	if e.Err == nil {
		return nil
	}
	return e.Err
}

// SemaphoreFullError is returned by AcquireSemaphore (and Semaphore's
// TryAcquire) when limit slots are held. errors.Is(err, ErrSemaphoreFull)
// is true.
type SemaphoreFullError struct {
	Name           string
	Limit, Holders int
	Err            *APIError // the underlying 409
}

func (e *SemaphoreFullError) Error() string {
	return fmt.Sprintf("octostore: semaphore %q full: %d of %d slots held", e.Name, e.Holders, e.Limit)
}
func (e *SemaphoreFullError) Is(target error) bool { return target == ErrSemaphoreFull }
func (e *SemaphoreFullError) Unwrap() error        { return e.Err }

// StaleTokenError is a fence check's 409: the token is not the current
// grant's; Current is the last token granted (0 if never).
// errors.Is(err, ErrStaleToken) is true. CheckFence returns it with a
// Fence whose Valid is false.
type StaleTokenError struct {
	Current uint64
	Err     *APIError
}

func (e *StaleTokenError) Error() string {
	return fmt.Sprintf("octostore: stale fencing token (the last one granted is %d)", e.Current)
}
func (e *StaleTokenError) Is(target error) bool { return target == ErrStaleToken }
func (e *StaleTokenError) Unwrap() error        { return e.Err }

// ConflictError is a 409 on a config write whose expected version did not
// match. errors.Is(err, ErrConflict) is true.
type ConflictError struct {
	CurrentVersion int64 // the version the key is at now (0: key does not exist)
	HasVersion     bool  // the server sent current_version
	Err            *APIError
}

// Error is the server's message, which says the current version itself
// (CurrentVersion has it for programs).
func (e *ConflictError) Error() string { return e.Err.Error() }
func (e *ConflictError) Unwrap() error { return e.Err }

// ValidationError is a 422 (or 400) with the server's message, which names
// the offending field. errors.Is(err, ErrValidation) is true.
type ValidationError struct {
	Message string
	Err     *APIError
}

func (e *ValidationError) Error() string        { return "octostore: invalid request: " + e.Message }
func (e *ValidationError) Is(target error) bool { return target == ErrValidation }
func (e *ValidationError) Unwrap() error {
	if e.Err == nil {
		return nil
	}
	return e.Err
}

// LockLostError is why a Locker lost its lock: the renewal or release that
// was refused, or the wait for an unreachable server that outlasted the
// lease. errors.Is(err, ErrLockLost) is true, and so is errors.Is(err, X)
// for what the cause matches (ErrNotFound for a lease that is gone).
type LockLostError struct {
	Name  string // the lock
	Cause error
}

// Error says "octostore: lock NAME lost: CAUSE" with one "octostore: " in
// front, however many the cause had.
func (e *LockLostError) Error() string {
	return fmt.Sprintf("octostore: lock %q lost: %s", e.Name, strings.TrimPrefix(e.Cause.Error(), "octostore: "))
}
func (e *LockLostError) Unwrap() []error { return []error{ErrLockLost, e.Cause} }

// checkName rejects an empty resource name before it turns into another URL.
func checkName(what, name string) error {
	if name == "" {
		return &ValidationError{Message: what + " must not be empty"}
	}
	return nil
}

// TransportError is a failure to get any HTTP response: connection refused,
// reset, timeout. errors.Is(err, ErrUnavailable) is true. NotSent reports that
// the request provably never reached the server (safe to retry any call).
type TransportError struct {
	Op      string // "GET /locks/x"
	NotSent bool
	Err     error
}

func (e *TransportError) Error() string        { return "octostore: " + e.Op + ": " + e.Err.Error() }
func (e *TransportError) Unwrap() error        { return e.Err }
func (e *TransportError) Is(target error) bool { return target == ErrUnavailable }

// RetryAfter returns the server's Retry-After hint carried by err (429, 503),
// or 0.
func RetryAfter(err error) time.Duration {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.RetryAfter
	}
	return 0
}

// errorBody is the JSON shape of every error response.
type errorBody struct {
	Error string `json:"error"`
	Lock  *struct {
		Name        string    `json:"name"`
		Holder      string    `json:"holder"`
		ExpiresAt   time.Time `json:"expires_at"`
		AvailableAt time.Time `json:"available_at"`
		Metadata    string    `json:"metadata"`
	} `json:"lock"`
	CurrentVersion      *int64  `json:"current_version"`
	CurrentFencingToken *uint64 `json:"current_fencing_token"`
	Semaphore           *struct {
		Name    string `json:"name"`
		Limit   int    `json:"limit"`
		Holders int    `json:"holders"`
	} `json:"semaphore"`
}

// decodeError builds the typed error for a non-2xx response.
func decodeError(status int, body []byte, retryAfter string) error {
	var eb errorBody
	if len(body) > 0 && json.Unmarshal(body, &eb) != nil {
		eb = errorBody{}
	}
	ae := &APIError{Status: status, Message: eb.Error, RetryAfter: parseRetryAfter(retryAfter)}
	if ae.Message == "" {
		ae.Message = strings.TrimSpace(string(body))
		if ae.Message == "" || len(ae.Message) > 200 {
			ae.Message = http.StatusText(status)
		}
	}
	switch status {
	case http.StatusUnauthorized:
		ae.kind = ErrUnauthorized
	case http.StatusForbidden:
		ae.kind = ErrForbidden
	case http.StatusNotFound:
		ae.kind = ErrNotFound
	case http.StatusConflict:
		if eb.CurrentFencingToken != nil {
			return &StaleTokenError{Current: *eb.CurrentFencingToken, Err: ae}
		}
		if eb.Semaphore != nil {
			return &SemaphoreFullError{Name: eb.Semaphore.Name, Limit: eb.Semaphore.Limit, Holders: eb.Semaphore.Holders, Err: ae}
		}
		if eb.Lock != nil {
			return &LockHeldError{Name: eb.Lock.Name, Holder: eb.Lock.Holder, ExpiresAt: eb.Lock.ExpiresAt,
				AvailableAt: eb.Lock.AvailableAt, Metadata: eb.Lock.Metadata, Err: ae}
		}
		ae.kind = ErrConflict
		ce := &ConflictError{Err: ae}
		if eb.CurrentVersion != nil {
			ce.CurrentVersion, ce.HasVersion = *eb.CurrentVersion, true
		}
		return ce
	case http.StatusUnprocessableEntity, http.StatusBadRequest:
		ae.kind = ErrValidation
		return &ValidationError{Message: ae.Message, Err: ae}
	case http.StatusTooManyRequests:
		ae.kind = ErrRateLimited
	case http.StatusServiceUnavailable:
		ae.kind = ErrUnavailable
	}
	return ae
}

func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// notSent reports whether err proves the request never left the client.
func notSent(err error) bool {
	if errors.Is(err, fasthttp.ErrNoFreeConns) || errors.Is(err, fasthttp.ErrDialTimeout) {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	return false
}
