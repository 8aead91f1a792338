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
//
// A waiting acquire (wait_seconds) may wait minutes for its turn, holding no
// actor and no write: it leaves the in-flight count while it waits and is
// counted against its own bound instead (maxWaiting, serve --max-waiting),
// so that waiters cannot starve the server of in-flight slots.
type inflight struct {
	max        int64
	n          atomic.Int64
	maxWaiting int64
	waiting    atomic.Int64
}

func newInflight(max, maxWaiting int) *inflight {
	if max <= 0 {
		max = DefaultMaxInFlight
	}
	if maxWaiting <= 0 {
		maxWaiting = DefaultMaxWaiting
	}
	return &inflight{max: int64(max), maxWaiting: int64(maxWaiting)}
}

// DefaultMaxWaiting is the default bound on waiting acquires in the whole
// server (ServerConfig.MaxWaiting).
const DefaultMaxWaiting = 10000

// overloaded answers a request beyond the limit, rendered once (errors.go).
var overloaded = newFixedAnswer(actors.NewError(actors.CodeOverloaded, "server overloaded: too many requests in flight, retry later"))

// errTooManyWaiting refuses a waiting acquire beyond maxWaiting.
var errTooManyWaiting = actors.NewError(actors.CodeOverloaded, "server overloaded: too many waiting requests, retry later")

// startWaiting moves the calling request from the in-flight count to the
// waiting count; errTooManyWaiting (nothing changed) when maxWaiting
// requests wait already. stopWaiting undoes it before the request ends.
func (l *inflight) startWaiting() error {
	if l.waiting.Add(1) > l.maxWaiting {
		l.waiting.Add(-1)
		return errTooManyWaiting
	}
	l.n.Add(-1)
	return nil
}

func (l *inflight) stopWaiting() {
	l.n.Add(1) // given back by wrap when the request ends
	l.waiting.Add(-1)
}

// Waiting is the number of waiting acquires (the waiting-requests gauge).
func (l *inflight) Waiting() int64 { return l.waiting.Load() }

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
