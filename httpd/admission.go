package httpd

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/valyala/fasthttp"
)

// Admission: what a request goes through before anything acts on it (and
// before its body is read), the same on a single node's Server and, in
// cluster mode, on the Front of a node that forwards it to the leader:
//
//  1. a request that carries a credential from an address that failed too
//     often is answered 429 without looking the credential up (throttle.go);
//  2. its credentials are checked from the headers alone (Authenticator); a
//     failure counts against its address, is logged through the client log
//     without the credential, and is answered 401 with its body unread (and
//     its connection closed if it has one);
//  3. only then is its body read, within the body budget (body.go).
//
// The address is the client's: the connection's peer, or, for a request a
// node of the cluster forwarded, the address that node vouches for
// (clientIP), so that one client behind a follower is throttled, limited in
// pending sign-ins and logged as itself, never as the follower all its
// clients share.

// admission is the state admit uses. Server and Front embed one.
type admission struct {
	auth     *Authenticator
	throttle *authThrottle // failed authentications per address (throttle.go); nil: off
	clog     *clientLog    // every line a client can cause goes through it (clientlog.go)
	bodies   *byteBudget   // bytes of request bodies in flight (body.go)
	maxBody  int           // ServerConfig.MaxBodyBytes
	// fwdKey is the SHA-256 of the cluster's forwarding key (ForwardKey);
	// zero on a single node, which believes no forwarded address.
	fwdKey [32]byte
	hasKey bool
}

// newAdmission is the admission of a server configured by cfg (its
// defaults filled in): auth checks the credentials, log gets the client
// log's lines, now is the clock of the log's rate limits and the throttle.
func newAdmission(cfg ServerConfig, auth *Authenticator, log *slog.Logger, now func() time.Time) admission {
	a := admission{auth: auth, clog: newClientLog(log, now),
		bodies: &byteBudget{max: cfg.MaxBodyMemory}, maxBody: cfg.MaxBodyBytes}
	if cfg.AuthFailureBurst > 0 {
		a.throttle = newAuthThrottle(cfg.AuthFailureBurst, cfg.AuthFailureInterval, now)
	}
	return a
}

// Headers a node adds to a request it forwards (forward.go): the client's
// address, and the cluster's forwarding key that vouches for it. A request
// that carries the address without the right key is treated as the
// connection's peer's.
const (
	hdrClientAddr = "X-Octostore-Client-Addr"
	hdrForwardKey = "X-Octostore-Forward-Key"
)

// trustForwardKey makes a believe the client address of requests that
// carry key (nil or empty: believe none).
func (a *admission) trustForwardKey(key []byte) {
	a.hasKey = len(key) > 0
	if a.hasKey {
		a.fwdKey = sha256.Sum256(key)
	}
}

// clientIP is the address of the client of ctx: the one a forwarding node
// vouched for with the cluster's key, else the connection's peer.
func (a *admission) clientIP(ctx *fasthttp.RequestCtx) net.IP {
	if a.hasKey {
		h := &ctx.Request.Header
		if addr := h.Peek(hdrClientAddr); len(addr) > 0 {
			k := sha256.Sum256(h.Peek(hdrForwardKey))
			if subtle.ConstantTimeCompare(k[:], a.fwdKey[:]) == 1 {
				if ip := net.ParseIP(string(addr)); ip != nil {
					return ip
				}
			}
		}
	}
	return ctx.RemoteIP()
}

// admit throttles, authenticates and reads the body of ctx (the steps at
// the top of this file). It returns the caller and the bytes of the body
// budget reserved (give them back with a.bodies.release once the request
// is answered), or the error to answer: errThrottled (429), errBadToken or
// errBadAdminKey (401, with WWW-Authenticate set), an unavailable error
// when the token store cannot be read (503), or a body error (413, 503,
// 400, 408).
func (a *admission) admit(ctx *fasthttp.RequestCtx) (p Principal, reserved int64, err error) {
	cred := carriesCredential(ctx)
	var ip net.IP
	if cred && a.throttle != nil {
		ip = a.clientIP(ctx)
		if wait := a.throttle.wait(ip); wait > 0 {
			a.clog.Log(slog.LevelWarn, "authentication throttled: too many failures from this address",
				"remote", ip.String(), "route", route(ctx))
			closeIfBodyUnread(ctx)
			return p, 0, errThrottled(wait)
		}
	}
	p, err = a.auth.Authenticate(ctx)
	if err != nil {
		closeIfBodyUnread(ctx)
		if actors.AsError(err).Code != actors.CodeUnauthorized {
			return p, 0, err // the token store failed: no verdict, no guess
		}
		if ip == nil {
			ip = a.clientIP(ctx)
		}
		if cred && a.throttle != nil {
			a.throttle.failed(ip)
		}
		a.logAuthFailure(ctx, ip)
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="octostore"`)
		return p, 0, err
	}
	reserved, err = readBody(ctx, a.bodies, a.maxBody) // only now: an unauthenticated body is never read
	return p, reserved, err
}

// closeIfBodyUnread closes the connection of a request answered without
// reading its body (the rest of it would be taken for the next request).
func closeIfBodyUnread(ctx *fasthttp.RequestCtx) {
	if hasUnreadBody(ctx) {
		ctx.SetConnectionClose()
	}
}

// hasUnreadBody reports whether ctx has a body fasthttp left for the
// handler to read (StreamRequestBody).
func hasUnreadBody(ctx *fasthttp.RequestCtx) bool {
	return ctx.RequestBodyStream() != nil && ctx.Request.Header.ContentLength() != 0
}

// carriesCredential reports whether the request presents a credential
// (which a failure then counts as a guess): an X-Admin-Key or an
// Authorization header.
func carriesCredential(ctx *fasthttp.RequestCtx) bool {
	h := &ctx.Request.Header
	return len(h.Peek("X-Admin-Key")) > 0 || len(h.Peek(fasthttp.HeaderAuthorization)) > 0
}

// logAuthFailure logs a rejected request without its credentials: a wrong
// X-Admin-Key at warn level, a bad bearer token at debug level, through the
// client log (at most one line a second of each; the count of lines left
// out goes with the next one).
func (a *admission) logAuthFailure(ctx *fasthttp.RequestCtx, ip net.IP) {
	level, msg := slog.LevelDebug, "rejected bearer token"
	if len(ctx.Request.Header.Peek("X-Admin-Key")) > 0 {
		level, msg = slog.LevelWarn, "rejected X-Admin-Key"
	}
	a.clog.Log(level, msg, "remote", ip.String(), "method", string(ctx.Method()), "route", route(ctx))
}
