package actors

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Code classifies an error by what the caller should do about it. Every
// error that octostore returns to a client carries one: validation, the
// actors, persistence and sign-in all return *Error values (or the typed
// errors below that have a code of their own). The HTTP API maps each code
// to one status in one place (httpd/errors.go); nothing else chooses a
// status.
type Code string

// The codes. An error without one is a bug (CodeInternal).
const (
	CodeInvalid          Code = "invalid"            // a field, parameter or name is not acceptable (422)
	CodeMalformed        Code = "malformed"          // the request cannot be read: not JSON, not UTF-8, missing parts (400)
	CodeUnsupportedMedia Code = "unsupported_media"  // the body's content type is not JSON (415)
	CodeTooLarge         Code = "too_large"          // a body or value over its limit (413)
	CodeHeadersTooLarge  Code = "headers_too_large"  // request line and headers over their limit (431)
	CodeReadTimeout      Code = "read_timeout"       // the request did not arrive in time (408)
	CodeUnauthorized     Code = "unauthorized"       // missing, unknown or refused credentials (401)
	CodeForbidden        Code = "forbidden"          // known caller, not allowed: quota, another user's resource (403)
	CodeNotFound         Code = "not_found"          // no such resource or route (404)
	CodeMethodNotAllowed Code = "method_not_allowed" // the route exists, the method does not (405)
	CodeConflict         Code = "conflict"           // the resource's state refuses the change (409)
	CodeCanceled         Code = "canceled"           // the caller went away before the answer (499)
	CodeNotImplemented   Code = "not_implemented"    // a feature this server is not configured for (501)
	CodeUpstream         Code = "upstream"           // a service octostore depends on failed (GitHub) (502)
	CodeUnavailable      Code = "unavailable"        // retry later: storage failing, shutting down, timed out (503)
	CodeOverloaded       Code = "overloaded"         // retry later: a bounded queue is full (503)
	CodeTooManyRequests  Code = "too_many_requests"  // retry later: a per-caller or per-resource bound (a full queue of waiters) is reached (429)
	CodeNotLeader        Code = "not_leader"         // cluster mode: this node stopped leading; nothing was applied (503, or forwarded)
	CodeInternal         Code = "internal"           // a bug; the details are logged, never shown (500)
)

// Error is octostore's coded error. Message is safe to show a client and
// is what the HTTP API puts in {"error": …}; a wrapped cause (Wrap) is for
// logs only and never shown.
type Error struct {
	Code    Code
	Message string
	// RetryAfter is the delay a client should wait before retrying, for
	// the codes that ask for a retry (unavailable, overloaded,
	// too_many_requests); zero means one second.
	RetryAfter time.Duration

	kind  *Error // the sentinel this error is a case of (Withf): errors.Is(e, kind)
	cause error  // what failed underneath (Wrap)
}

// NewError returns a new error with code and a message for clients.
func NewError(code Code, message string) *Error { return &Error{Code: code, Message: message} }

// Errorf returns a new error with code and a message formatted for clients.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an error with code and message whose cause is err: the
// cause is logged (Error, Unwrap) but a client sees only message.
func Wrap(code Code, message string, err error) *Error {
	return &Error{Code: code, Message: message, cause: err}
}

// Withf returns a case of e with a detail: same code, the message
// "<e's message>: <detail>", and errors.Is(result, e) holds.
func (e *Error) Withf(format string, args ...any) *Error {
	return &Error{Code: e.Code, Message: e.Message + ": " + fmt.Sprintf(format, args...), RetryAfter: e.RetryAfter, kind: e}
}

// RetryIn returns a case of e (errors.Is holds) that asks the client to
// retry after d (Retry-After).
func (e *Error) RetryIn(d time.Duration) *Error {
	return &Error{Code: e.Code, Message: e.Message, RetryAfter: d, kind: e}
}

// Error is the message, followed by the cause for logs.
func (e *Error) Error() string {
	if e.cause != nil {
		return e.Message + ": " + e.cause.Error()
	}
	return e.Message
}

// Unwrap returns the cause given to Wrap.
func (e *Error) Unwrap() error { return e.cause }

// Is reports whether e is a case of target (Withf, or a sentinel defined as
// a case of another, like ErrFlagNotFound of ErrNotFound).
func (e *Error) Is(target error) bool {
	for k := e.kind; k != nil; k = k.kind {
		if k == target {
			return true
		}
	}
	return false
}

// Sentinel errors shared by every kind and the store. Callers branch on
// them with errors.Is.
var (
	// ErrNotFound is what every not-found error is a case of.
	ErrNotFound = NewError(CodeNotFound, "not found")
	// ErrQuota is what every per-user quota error is a case of.
	ErrQuota = NewError(CodeForbidden, "quota exceeded")
	// ErrOverloaded means a bounded queue (the writer's) is full; nothing
	// was queued.
	ErrOverloaded = NewError(CodeOverloaded, "server overloaded")
	// ErrClosed means the runtime or the store is shutting down.
	ErrClosed = NewError(CodeUnavailable, "server shutting down")
	// ErrUnavailable means a durable write failed: nothing was acknowledged.
	// The storage error is wrapped for the log, never shown.
	ErrUnavailable = NewError(CodeUnavailable, "storage unavailable, retry later")
	// ErrNotLeader means this node's leadership ended (cluster mode): the
	// operation was refused before anything was applied (its write failed
	// the election guard, or a read could not be confirmed as current), so
	// it may be sent again, to the new leader. It is a case of
	// ErrUnavailable; its own code lets the HTTP front forward the request
	// instead of failing it.
	ErrNotLeader = &Error{Code: CodeNotLeader, Message: "this node is no longer the leader, retry", kind: ErrUnavailable}
	// ErrTimeout is what a call returns when its context's deadline passes
	// before the answer (context.DeadlineExceeded maps to it).
	ErrTimeout = NewError(CodeUnavailable, "request timed out")
	// ErrCanceled is what a call returns when its context is cancelled
	// before the answer (context.Canceled maps to it), unless the context
	// names a coded cause (context.WithCancelCause), which is returned
	// instead.
	ErrCanceled = NewError(CodeCanceled, "request canceled")
)

// caseOf defines a sentinel that is a case of another one.
func caseOf(kind *Error, message string) *Error {
	return &Error{Code: kind.Code, Message: message, kind: kind}
}

// AsError returns the coded error that err is, for callers that answer
// clients: the first *Error in err's chain; a conflict for *LockHeldError,
// *LockDelayError and *VersionConflictError; ErrTimeout and ErrCanceled for context
// errors; and for anything else (a bug) an internal error whose message
// hides err.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var held *LockHeldError
	var delayed *LockDelayError
	var conflict *VersionConflictError
	switch {
	case errors.As(err, &held):
		return errLockHeld
	case errors.As(err, &delayed):
		return errLockDelay
	case errors.Is(err, errSemaphoreFull):
		return errSemaphoreFull
	case errors.Is(err, errStaleToken):
		return errStaleToken
	case errors.As(err, &conflict):
		return NewError(CodeConflict, conflict.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return ErrTimeout
	case errors.Is(err, context.Canceled):
		return ErrCanceled
	}
	return Wrap(CodeInternal, "internal error", err)
}

// ErrorCode is the code of err (AsError).
func ErrorCode(err error) Code { return AsError(err).Code }

// contextError is what a call returns when ctx is done before the answer:
// ctx.Err(), joined with the context's cause when it has one of its own
// (context.WithCancelCause), so that errors.Is(err, context.Canceled) holds
// and a coded cause (ErrClosed at shutdown) decides the answer.
func contextError(ctx context.Context) error {
	err := ctx.Err()
	if cause := context.Cause(ctx); cause != nil && cause != err {
		return &causedError{err: err, cause: cause}
	}
	return err
}

type causedError struct{ err, cause error }

func (e *causedError) Error() string   { return e.err.Error() + ": " + e.cause.Error() }
func (e *causedError) Unwrap() []error { return []error{e.cause, e.err} }
