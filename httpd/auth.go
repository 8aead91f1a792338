package httpd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/valyala/fasthttp"
)

// Principal is who a request acts for.
type Principal struct {
	Login  string
	Admin  bool     // the admin key: sees every user's resources
	Hash   [32]byte // SHA-256 of the bearer token (zero for the admin key)
	Source string   // token source (static, dev, cli, oauth)
}

// adminLogin is the principal name of the admin key. Logins follow
// names.Login, which has no "*".
const adminLogin = "*admin*"

// Authenticator resolves bearer tokens. Tokens are looked up by hash; known
// tokens are cached in memory. In-process rotation and revocation invalidate
// the cache at once; out-of-process changes (octostore token …) bump the
// database's auth epoch, which a poller notices within PollInterval.
type Authenticator struct {
	store    Storage
	adminKey []byte

	// mu guards cache, epoch and gen.
	mu    sync.RWMutex
	cache map[[32]byte]Principal
	epoch int64
	// gen counts invalidations. A lookup caches its result only if gen has
	// not moved since it started: a token read from the database just before
	// a rotation or revocation committed is never put back into the cache
	// after the invalidation.
	gen uint64

	// lastFailLog rate-limits the log lines of rejected credentials (unix
	// ns of the last line); failSkipped counts the lines left out since.
	lastFailLog atomic.Int64
	failSkipped atomic.Int64

	// afterLookup, in tests, runs between a database lookup and caching.
	afterLookup func()

	stop chan struct{}
	done chan struct{}
}

// PollInterval is how often the auth epoch is checked.
const PollInterval = 500 * time.Millisecond

// NewAuthenticator reads the auth epoch from store and starts the poller
// that notices out-of-process token changes; adminKey "" disables the admin
// principal. Close stops the poller.
func NewAuthenticator(store Storage, adminKey string) (*Authenticator, error) {
	a := &Authenticator{store: store, cache: map[[32]byte]Principal{}, stop: make(chan struct{}), done: make(chan struct{})}
	if adminKey != "" {
		a.adminKey = []byte(adminKey)
	}
	ep, err := store.AuthEpoch()
	if err != nil {
		return nil, err
	}
	a.epoch = ep
	go a.poll()
	return a, nil
}

func (a *Authenticator) poll() {
	defer close(a.done)
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			ep, err := a.store.AuthEpoch()
			if err != nil {
				continue
			}
			a.mu.Lock()
			if ep != a.epoch {
				a.epoch = ep
				a.cache = map[[32]byte]Principal{}
				a.gen++
			}
			a.mu.Unlock()
		}
	}
}

// Close stops the epoch poller and waits for it.
func (a *Authenticator) Close() {
	close(a.stop)
	<-a.done
}

// Invalidate drops a token from the cache (after rotate or revoke).
func (a *Authenticator) Invalidate(hash [32]byte) {
	a.mu.Lock()
	delete(a.cache, hash)
	a.gen++
	a.mu.Unlock()
}

var bearerPrefix = []byte("bearer ")

// bearer extracts the token of an "Authorization: Bearer <token>" header.
func bearer(h []byte) []byte {
	h = bytes.TrimSpace(h)
	if len(h) < len(bearerPrefix) || !bytes.EqualFold(h[:len(bearerPrefix)], bearerPrefix) {
		return nil
	}
	return bytes.TrimSpace(h[len(bearerPrefix):])
}

// Credential errors (401).
var (
	errBadAdminKey = actors.NewError(actors.CodeUnauthorized, "Invalid admin key")
	errBadToken    = actors.NewError(actors.CodeUnauthorized, "Invalid or missing authorization header")
)

// Authenticate resolves the request's credentials: errBadAdminKey or
// errBadToken when they are missing or unknown.
func (a *Authenticator) Authenticate(ctx *fasthttp.RequestCtx) (Principal, error) {
	var p Principal
	if k := ctx.Request.Header.Peek("X-Admin-Key"); len(k) > 0 {
		if a.isAdminKey(k) {
			return Principal{Login: adminLogin, Admin: true}, nil
		}
		return p, errBadAdminKey
	}
	tok := bearer(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization))
	if len(tok) == 0 || len(tok) > 512 {
		return p, errBadToken
	}
	if a.isAdminKey(tok) {
		return Principal{Login: adminLogin, Admin: true}, nil
	}
	h := sha256.Sum256(tok)
	a.mu.RLock()
	p, ok := a.cache[h]
	gen := a.gen
	a.mu.RUnlock()
	if ok {
		return p, nil
	}
	up, found, err := a.store.LookupToken(h)
	if err != nil || !found {
		return p, errBadToken
	}
	p = Principal{Login: up.Login, Hash: h, Source: up.Source}
	if a.afterLookup != nil {
		a.afterLookup()
	}
	a.mu.Lock()
	if a.gen == gen {
		a.cache[h] = p
	}
	a.mu.Unlock()
	return p, nil
}

// isAdminKey compares in constant time (hashing first so that the length of
// the key does not leak either).
func (a *Authenticator) isAdminKey(k []byte) bool {
	if len(a.adminKey) == 0 {
		return false
	}
	x, y := sha256.Sum256(k), sha256.Sum256(a.adminKey)
	return subtle.ConstantTimeCompare(x[:], y[:]) == 1
}

// handler is an authenticated endpoint. rq gives the request's context
// (rq.ctx(): the typed calls take it, reqctx.go), p is the caller. It
// answers success itself and returns the error a request fails with, which
// errors.go answers.
type handler func(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error

// authed wraps a handler with authentication and the request's context.
func (s *Server) authed(h handler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		p, err := s.auth.Authenticate(ctx)
		if err != nil {
			s.auth.logFailure(s.log, ctx)
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="octostore"`)
			s.writeErr(ctx, err)
			return
		}
		rq := s.reqs.request(ctx.Conn())
		defer s.reqs.release(rq)
		if err := h(ctx, rq, &p); err != nil {
			s.writeErr(ctx, rq.explain(err))
		}
	}
}

// public wraps an endpoint that needs no credentials (sign-in) the same
// way: it returns the error the request fails with.
func (s *Server) public(h func(ctx *fasthttp.RequestCtx) error) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if err := h(ctx); err != nil {
			s.writeErr(ctx, err)
		}
	}
}

// logFailure logs a rejected request without its credentials: a wrong
// X-Admin-Key at warn level, a bad bearer token at debug level. At most one
// line a second; the count of lines left out goes with the next one.
func (a *Authenticator) logFailure(log *slog.Logger, ctx *fasthttp.RequestCtx) {
	admin := len(ctx.Request.Header.Peek("X-Admin-Key")) > 0
	level := slog.LevelDebug
	if admin {
		level = slog.LevelWarn
	}
	if !log.Enabled(context.Background(), level) {
		return
	}
	now := time.Now().UnixNano()
	last := a.lastFailLog.Load()
	if now-last < int64(time.Second) || !a.lastFailLog.CompareAndSwap(last, now) {
		a.failSkipped.Add(1)
		return
	}
	msg := "rejected bearer token"
	if admin {
		msg = "rejected X-Admin-Key"
	}
	log.Log(context.Background(), level, msg, "remote", ctx.RemoteIP().String(), "method", string(ctx.Method()),
		"path", string(ctx.Path()), "similar_lines_skipped", a.failSkipped.Swap(0))
}

// fasthttpLogger sends fasthttp's own error lines to the server's logger
// (with SecureErrorLogMessage set, they do not quote request bytes).
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Warn("http: " + fmt.Sprintf(format, args...))
}
