package httpd

import (
	"bytes"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/valyala/fasthttp"
)

// This file is the only place that turns errors into HTTP answers. Handlers,
// validation, the actors, persistence and sign-in return coded errors
// (actors.Error); statuses, bodies and the Retry-After header are chosen
// here and nowhere else.

// statuses maps each code to its HTTP status (benbjohnson/wtf's codes map).
// A code missing here would be a bug: 500.
var statuses = map[actors.Code]int{
	actors.CodeInvalid:          fasthttp.StatusUnprocessableEntity,
	actors.CodeMalformed:        fasthttp.StatusBadRequest,
	actors.CodeUnsupportedMedia: fasthttp.StatusUnsupportedMediaType,
	actors.CodeTooLarge:         fasthttp.StatusRequestEntityTooLarge,
	actors.CodeHeadersTooLarge:  fasthttp.StatusRequestHeaderFieldsTooLarge,
	actors.CodeReadTimeout:      fasthttp.StatusRequestTimeout,
	actors.CodeUnauthorized:     fasthttp.StatusUnauthorized,
	actors.CodeForbidden:        fasthttp.StatusForbidden,
	actors.CodeNotFound:         fasthttp.StatusNotFound,
	actors.CodeMethodNotAllowed: fasthttp.StatusMethodNotAllowed,
	actors.CodeConflict:         fasthttp.StatusConflict,
	actors.CodeTooManyRequests:  fasthttp.StatusTooManyRequests,
	actors.CodeCanceled:         statusClientClosedRequest,
	actors.CodeNotImplemented:   fasthttp.StatusNotImplemented,
	actors.CodeUpstream:         fasthttp.StatusBadGateway,
	actors.CodeUnavailable:      fasthttp.StatusServiceUnavailable,
	actors.CodeOverloaded:       fasthttp.StatusServiceUnavailable,
	actors.CodeNotLeader:        fasthttp.StatusServiceUnavailable,
	actors.CodeInternal:         fasthttp.StatusInternalServerError,
}

// statusClientClosedRequest answers a request whose client went away before
// its answer was ready (nginx's 499): nobody reads it, but the metrics and
// logs show what happened.
const statusClientClosedRequest = 499

func statusOf(c actors.Code) int {
	if st, ok := statuses[c]; ok {
		return st
	}
	return fasthttp.StatusInternalServerError
}

// retryAfter is the Retry-After of an error whose code asks for a retry
// (503: unavailable, overloaded, not_leader; 429: too_many_requests); 0 for
// the others.
func retryAfter(e *actors.Error) int64 {
	switch e.Code {
	case actors.CodeUnavailable, actors.CodeOverloaded, actors.CodeNotLeader, actors.CodeTooManyRequests:
	default:
		return 0
	}
	return max(1, int64((e.RetryAfter+time.Second-1)/time.Second))
}

// writeErr answers err: its code's status and {"error": message}, with
// Retry-After where the code asks for a retry. Six errors carry details
// that shape the body: *actors.LockHeldError (the lock, its holder and
// expiry), *actors.LockDelayError (the same and when it is available),
// *actors.SemaphoreFullError (its limit and holders),
// *actors.StaleTokenError (the last token granted),
// *actors.VersionConflictError (the current version) and *ofrepError
// (OFREP's evaluation failures: 404 FLAG_NOT_FOUND, 400 for the others, in
// OFREP's shape {"key","errorCode","errorDetails"}). An
// internal error (a bug) is logged and answered without its details.
func (s *Server) writeErr(ctx *fasthttp.RequestCtx, err error) {
	var held *actors.LockHeldError
	if errors.As(err, &held) {
		b := make([]byte, 0, 160)
		b = append(b, `{"error":"Lock already held","lock":{"name":`...)
		b = appendString(b, held.Name)
		b = append(b, `,"holder":`...)
		b = appendString(b, s.auth.Login(held.Holder))
		b = append(b, `,"expires_at":`...)
		b = appendTime(b, held.ExpiresAt)
		if held.Metadata != "" {
			b = append(b, `,"metadata":`...)
			b = appendString(b, held.Metadata)
		}
		b = append(b, `}}`...)
		writeRaw(ctx, statusOf(actors.CodeConflict), b)
		return
	}
	var delayed *actors.LockDelayError
	if errors.As(err, &delayed) {
		b := make([]byte, 0, 192)
		b = append(b, `{"error":"Lock in lock-delay","lock":{"name":`...)
		b = appendString(b, delayed.Name)
		b = append(b, `,"holder":`...)
		b = appendString(b, s.auth.Login(delayed.Holder))
		b = append(b, `,"expires_at":`...)
		b = appendTime(b, delayed.ExpiresAt)
		b = append(b, `,"available_at":`...)
		b = appendTime(b, delayed.AvailableAt)
		b = append(b, `}}`...)
		writeRaw(ctx, statusOf(actors.CodeConflict), b)
		return
	}
	var stale *actors.StaleTokenError
	if errors.As(err, &stale) {
		b := make([]byte, 0, 112)
		b = append(b, `{"error":"Fencing token is not the current grant's","valid":false,"current_fencing_token":`...)
		b = strconv.AppendUint(b, stale.Current, 10)
		writeRaw(ctx, statusOf(actors.CodeConflict), append(b, '}'))
		return
	}
	var full *actors.SemaphoreFullError
	if errors.As(err, &full) {
		b := make([]byte, 0, 128)
		b = append(b, `{"error":"Semaphore full","semaphore":{"name":`...)
		b = appendString(b, full.Name)
		b = append(b, `,"limit":`...)
		b = strconv.AppendInt(b, int64(full.Limit), 10)
		b = append(b, `,"holders":`...)
		b = strconv.AppendInt(b, int64(full.Holders), 10)
		b = append(b, `}}`...)
		writeRaw(ctx, statusOf(actors.CodeConflict), b)
		return
	}
	var oe *ofrepError
	if errors.As(err, &oe) {
		status := fasthttp.StatusBadRequest
		if oe.code == ofrepFlagNotFound {
			status = fasthttp.StatusNotFound
		}
		writeRaw(ctx, status, appendOFREPError(make([]byte, 0, 96+len(oe.details)), oe))
		return
	}
	var conflict *actors.VersionConflictError
	if errors.As(err, &conflict) {
		b := make([]byte, 0, 160)
		b = append(b, `{"error":`...)
		b = appendString(b, conflict.Error())
		b = append(b, `,"current_version":`...)
		b = strconv.AppendInt(b, conflict.Current, 10)
		b = append(b, '}')
		writeRaw(ctx, statusOf(actors.CodeConflict), b)
		return
	}
	e := actors.AsError(err)
	if e.Code == actors.CodeInternal {
		s.clog.Log(slog.LevelError, "internal error", "route", route(ctx), "err", err)
	}
	writeCoded(ctx, e)
}

// appendItemError renders the error of one item of a batch answer, which
// is not the answer's status: `"error":"message","status":N`, N the
// status the item would have had alone.
func appendItemError(b []byte, err error) []byte {
	e := actors.AsError(err)
	b = append(b, `"error":`...)
	b = appendString(b, e.Message)
	b = append(b, `,"status":`...)
	return strconv.AppendInt(b, int64(statusOf(e.Code)), 10)
}

// writeCoded answers a coded error.
func writeCoded(ctx *fasthttp.RequestCtx, e *actors.Error) {
	if e.Code == actors.CodeNotLeader {
		markNotLeader(ctx) // the cluster front may send the request on (front.go)
	}
	if ra := retryAfter(e); ra > 0 {
		var nb [20]byte
		ctx.Response.Header.SetCanonical(hdrRetryAfter, strconv.AppendInt(nb[:0], ra, 10))
	}
	writeRaw(ctx, statusOf(e.Code), errorBody(e.Message))
}

func errorBody(msg string) []byte {
	b := make([]byte, 0, 32+len(msg))
	b = append(b, `{"error":`...)
	b = appendString(b, msg)
	return append(b, '}')
}

// fixedAnswer is the answer to one fixed error, rendered once: for answers
// that must cost nothing (the in-flight limit refuses requests when the
// server is busiest).
type fixedAnswer struct {
	status     int
	body       []byte
	retryAfter []byte // nil: no header
}

func newFixedAnswer(e *actors.Error) *fixedAnswer {
	a := &fixedAnswer{status: statusOf(e.Code), body: errorBody(e.Message)}
	if ra := retryAfter(e); ra > 0 {
		a.retryAfter = strconv.AppendInt(nil, ra, 10)
	}
	return a
}

func (a *fixedAnswer) write(ctx *fasthttp.RequestCtx) {
	if a.retryAfter != nil {
		ctx.Response.Header.SetCanonical(hdrRetryAfter, a.retryAfter)
	}
	writeRaw(ctx, a.status, a.body)
}

// invalid is a 422 naming what is wrong with a field, parameter or name.
func invalid(msg string) error { return actors.NewError(actors.CodeInvalid, msg) }

// dropOptionsFromAllow removes OPTIONS from the Allow header the router set
// on a 405: fasthttp/router always lists it, but this server does not answer
// OPTIONS (router.HandleOPTIONS is off: OPTIONS is a 405 like any method a
// path does not have), and Allow must name only methods that work.
func dropOptionsFromAllow(ctx *fasthttp.RequestCtx) {
	allow := ctx.Response.Header.Peek(fasthttp.HeaderAllow)
	out := make([]byte, 0, len(allow))
	for m := range bytes.SplitSeq(allow, []byte(",")) {
		m = bytes.TrimSpace(m)
		if len(m) == 0 || string(m) == fasthttp.MethodOptions {
			continue
		}
		if len(out) > 0 {
			out = append(out, ", "...)
		}
		out = append(out, m...)
	}
	ctx.Response.Header.SetBytesV(fasthttp.HeaderAllow, out)
}
