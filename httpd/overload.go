package httpd

import (
	"errors"
	"net"
	"sync/atomic"

	"github.com/octostore/octostore/actors"
	"github.com/valyala/fasthttp"
)

// DefaultMaxInFlight is the default bound on requests being handled at once
// (ServerConfig.MaxInFlight).
const DefaultMaxInFlight = 4096

// inflight bounds the requests being handled at once. Each one waits for an
// actor (and often for a commit); protoactor mailboxes are unbounded, so
// this counter is what bounds them: beyond the limit a request is answered
// 503 + Retry-After at once, without touching the runtime. It guards the
// routes that do work (routes.go wraps each of them); the long-lived
// streams (/events, /locks/{name}/watch, /config/{key}/watch) and the
// probes (/health, /metrics, /openapi.yaml) are registered without it: they
// do not queue work on actors (a watch reads one state when it starts). The exemption is by route, never by path text, so a
// resource named "watch" is counted like any other.
type inflight struct {
	max int64
	n   atomic.Int64
}

func newInflight(max int) *inflight {
	if max <= 0 {
		max = DefaultMaxInFlight
	}
	return &inflight{max: int64(max)}
}

// overloaded answers a request beyond the limit, rendered once (errors.go).
var overloaded = newFixedAnswer(actors.NewError(actors.CodeOverloaded, "server overloaded: too many requests in flight, retry later"))

// wrap returns next guarded by the limit.
func (l *inflight) wrap(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if l.n.Add(1) > l.max {
			l.n.Add(-1)
			overloaded.write(ctx)
			return
		}
		defer l.n.Add(-1)
		next(ctx)
	}
}

// isTimeout reports a read deadline error (a client too slow to send its
// request: 408).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
