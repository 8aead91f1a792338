package httpd

import (
	"bytes"
	"errors"
	"strconv"

	"github.com/octostore/octostore/actors"
	"github.com/valyala/fasthttp"
)

// codes maps the runtime's sentinel errors to HTTP status codes. Errors not
// found here (and not handled by a typed case in writeErr) are bugs: 500.
var codes = []struct {
	err    error
	status int
}{
	{actors.ErrLockNotOwned, fasthttp.StatusNotFound},
	{actors.ErrNotFound, fasthttp.StatusNotFound}, // limits, flags, config
	{actors.ErrQuota, fasthttp.StatusForbidden},
	{actors.ErrOverloaded, fasthttp.StatusServiceUnavailable},
	{actors.ErrUnavailable, fasthttp.StatusServiceUnavailable},
	{actors.ErrTimeout, fasthttp.StatusServiceUnavailable},
	{actors.ErrClosed, fasthttp.StatusServiceUnavailable},
}

// writeErr answers err with its status and a JSON body.
func (s *Server) writeErr(ctx *fasthttp.RequestCtx, err error) {
	var held *actors.LockHeldError
	if errors.As(err, &held) {
		b := make([]byte, 0, 160)
		b = append(b, `{"error":"Lock already held","lock":{"name":`...)
		b = appendString(b, held.Name)
		b = append(b, `,"holder":`...)
		b = appendString(b, held.Holder)
		b = append(b, `,"expires_at":`...)
		b = appendTime(b, held.ExpiresAt)
		b = append(b, `}}`...)
		writeRaw(ctx, fasthttp.StatusConflict, b)
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
		writeRaw(ctx, fasthttp.StatusConflict, b)
		return
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			if c.status == fasthttp.StatusServiceUnavailable {
				ctx.Response.Header.Set("Retry-After", "1")
			}
			msg := err.Error()
			if errors.Is(err, actors.ErrUnavailable) {
				msg = "storage unavailable, retry later" // do not leak file paths or SQL
			}
			writeError(ctx, c.status, msg)
			return
		}
	}
	s.log.Error("internal error", "path", string(ctx.Path()), "err", err)
	writeError(ctx, fasthttp.StatusInternalServerError, "internal error")
}

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
