package httpd

import (
	"errors"
	"io"
	"sync/atomic"

	"github.com/octostore/octostore/actors"
	"github.com/valyala/fasthttp"
)

// Request bodies are read by the server, not by fasthttp (issue 13 §2,
// fault 2). fasthttp would allocate a request's whole declared body before
// any handler runs, so a client that declares Content-Length: 1048000 and
// sends 170 bytes pins a megabyte until the read timeout, token or not. The
// server instead has fasthttp stream bodies (Server.StreamRequestBody) and
// pre-read at most preReadBody bytes; authed authenticates from the headers
// alone and only then reads the body (readBody), within the body budget:
//
//   - a request without valid credentials is answered 401 with its body
//     unread, and its connection closed;
//   - a declared body over --max-body-bytes is answered 413 unread;
//   - the bytes of bodies being read or handled at once are bounded by
//     --max-body-memory, counted as they arrive: a body that no longer fits
//     is answered 503 + Retry-After (and its connection closed), never
//     queued.

// preReadBody is what fasthttp reads of a body before the handler runs
// (Server.MaxRequestBodySize with StreamRequestBody: larger bodies become a
// stream that readBody reads).
const preReadBody = 1

// DefaultMaxBodyMemory is the default bound on the bytes of request bodies
// read or being handled at once (ServerConfig.MaxBodyMemory).
const DefaultMaxBodyMemory = 64 << 20

// byteBudget bounds bytes held at once by requests in flight: request
// bodies (Server.bodies, --max-body-memory) and large answers
// (Server.answers, --max-answer-memory; config.go). It never waits: a
// reservation that does not fit fails, and the request is answered 503.
type byteBudget struct {
	max  int64
	used atomic.Int64
}

// reserve takes n bytes of the budget; false when they do not fit.
func (b *byteBudget) reserve(n int64) bool {
	for {
		used := b.used.Load()
		if used+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

func (b *byteBudget) release(n int64) { b.used.Add(-n) }

// Errors of reading a body.
var (
	errBodyTooLarge = actors.NewError(actors.CodeTooLarge, "request body too large")
	errBodyBudget   = &actors.Error{Code: actors.CodeOverloaded,
		Message: "server overloaded: too many request bodies in flight, retry later"}
	errBodyRead    = actors.NewError(actors.CodeMalformed, "request body could not be read: shorter than its Content-Length, or badly chunked")
	errBodyTimeout = actors.NewError(actors.CodeReadTimeout, "request not received within the read timeout")
)

// readBody reads the request's body from its stream within the body
// budget and sets it as the request's body (ctx.PostBody). The buffer grows
// (doubling, from 512 bytes) as bytes arrive, and the budget is taken as it
// grows, so a client that declares a megabyte and sends 170 bytes holds
// about a kilobyte, not the megabyte. It returns the bytes reserved: give
// them back (s.bodies.release) once the request is answered. On an error
// nothing stays reserved and the connection is closed (its body was not
// read to the end).
func (s *Server) readBody(ctx *fasthttp.RequestCtx) (reserved int64, err error) {
	return readBody(ctx, s.bodies, s.maxBody)
}

// readBody reads ctx's body within budget, at most maxBody bytes
// (Server.readBody; in cluster mode the Front reads the body of a request
// it forwards the same way, after authenticating it).
func readBody(ctx *fasthttp.RequestCtx, budget *byteBudget, maxBody int) (reserved int64, err error) {
	stream := ctx.RequestBodyStream()
	if stream == nil {
		return 0, nil // no body (or one fasthttp read whole: at most preReadBody bytes)
	}
	declared := ctx.Request.Header.ContentLength()
	limit := maxBody + 1 // chunked: one byte more than the limit proves it too large
	if declared >= 0 {
		if declared > maxBody {
			ctx.SetConnectionClose()
			return 0, errBodyTooLarge
		}
		limit = declared
	}
	var buf []byte
	for len(buf) < limit {
		if len(buf) == cap(buf) {
			next := min(max(2*cap(buf), 512), limit)
			if !budget.reserve(int64(next - cap(buf))) {
				return bodyFailed(ctx, budget, reserved, errBodyBudget)
			}
			reserved += int64(next - cap(buf))
			buf = append(make([]byte, 0, next), buf...)
		}
		n, err := stream.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if isTimeout(err) {
				return bodyFailed(ctx, budget, reserved, errBodyTimeout)
			}
			return bodyFailed(ctx, budget, reserved, errBodyRead)
		}
	}
	switch {
	case declared >= 0 && len(buf) != declared:
		return bodyFailed(ctx, budget, reserved, errBodyRead)
	case len(buf) > maxBody:
		return bodyFailed(ctx, budget, reserved, errBodyTooLarge)
	}
	ctx.Request.SetBodyRaw(buf)
	return reserved, nil
}

// bodyFailed gives back what readBody reserved and closes the connection
// (the rest of the body is not read).
func bodyFailed(ctx *fasthttp.RequestCtx, budget *byteBudget, reserved int64, err error) (int64, error) {
	budget.release(reserved)
	ctx.SetConnectionClose()
	return 0, err
}
