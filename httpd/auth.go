package httpd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"sync"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/valyala/fasthttp"
)

// Principal is who a request acts for.
type Principal struct {
	// ID is the user's stable id (persistence/identity.go): what the user's
	// resources and locks are owned and held by. "" for the admin key.
	ID string
	// Login is the user's current login: what answers and logs show, never
	// what owns anything.
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
	store    TokenStore
	adminKey []byte

	// mu guards cache, logins, epoch and gen.
	mu    sync.RWMutex
	cache map[[32]byte]Principal
	// logins maps user ids to the login shown for them (Login): filled on
	// demand, dropped with the token cache and on renames (Renamed).
	logins map[string]string
	epoch  int64
	// gen counts invalidations. A lookup caches its result only if gen has
	// not moved since it started: a token read from the database just before
	// a rotation or revocation committed is never put back into the cache
	// after the invalidation.
	gen uint64

	// afterLookup, in tests, runs between a database lookup and caching.
	afterLookup func()

	// changed are called (outside mu) after tokens may have changed: with
	// the hash of a token rotated or revoked in this process (Invalidate),
	// with nil when the auth epoch moved. Guarded by mu; the event streams
	// use it to end the streams of revoked tokens (events.go).
	changed []func(hash *[32]byte)

	stop chan struct{}
	done chan struct{}
}

// PollInterval is how often the auth epoch is checked.
const PollInterval = 500 * time.Millisecond

// NewAuthenticator reads the auth epoch from store and starts the poller
// that notices out-of-process token changes; adminKey "" disables the admin
// principal. Close stops the poller.
func NewAuthenticator(store TokenStore, adminKey string) (*Authenticator, error) {
	a := &Authenticator{store: store, cache: map[[32]byte]Principal{}, logins: map[string]string{},
		stop: make(chan struct{}), done: make(chan struct{})}
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
			moved := ep != a.epoch
			a.epoch = ep
			a.mu.Unlock()
			if moved {
				a.Flush()
			}
		}
	}
}

// Close stops the epoch poller and waits for it.
func (a *Authenticator) Close() {
	close(a.stop)
	<-a.done
}

// Invalidate drops a token from the cache (after rotate or revoke) and
// tells the change hooks (the event streams of that token end at once).
func (a *Authenticator) Invalidate(hash [32]byte) {
	a.mu.Lock()
	delete(a.cache, hash)
	a.gen++
	a.mu.Unlock()
	a.notify(&hash)
}

// Flush drops every cached token and login and tells the change hooks that
// any token may have changed (the event streams look each of theirs up
// again), as when the auth epoch moves. In cluster mode a node calls it
// when its watch of the tokens in etcd had to start again
// (etcdstore.WatchTokens), and Invalidate for each token the watch reports.
func (a *Authenticator) Flush() {
	a.mu.Lock()
	a.cache = map[[32]byte]Principal{}
	a.logins = map[string]string{}
	a.gen++
	a.mu.Unlock()
	a.notify(nil)
}

// onChange registers fn to be called after tokens may have changed (see
// Authenticator.changed). fn runs on the goroutine of the change: the
// request that rotated or revoked, or the epoch poller.
func (a *Authenticator) onChange(fn func(hash *[32]byte)) {
	a.mu.Lock()
	a.changed = append(a.changed, fn)
	a.mu.Unlock()
}

func (a *Authenticator) notify(hash *[32]byte) {
	a.mu.RLock()
	fns := a.changed
	a.mu.RUnlock()
	for _, fn := range fns {
		fn(hash)
	}
}

// current reports whether p's credential still authenticates p: the admin
// key always does; a token if the cache or, failing it, the database still
// maps it to p's login.
func (a *Authenticator) current(p *Principal) bool {
	if p.Admin {
		return true
	}
	a.mu.RLock()
	c, ok := a.cache[p.Hash]
	a.mu.RUnlock()
	if ok {
		return c.ID == p.ID
	}
	uid, ok, err := a.resolve(p.Hash)
	return err == nil && ok && uid == p.ID
}

// resolve looks a token hash up in the database, bypassing the cache: the
// user id it authenticates, ok false if none.
func (a *Authenticator) resolve(hash [32]byte) (uid string, ok bool, err error) {
	up, found, err := a.store.LookupToken(hash)
	if err != nil || !found {
		return "", false, err
	}
	return up.ID, true, nil
}

// Renamed drops every cached login (after a sign-in renamed a user): the
// next answer that shows one of the user's locks or resources reads the new
// login.
func (a *Authenticator) Renamed() {
	a.mu.Lock()
	a.logins = map[string]string{}
	a.gen++
	a.mu.Unlock()
}

// Login is the login to show for the user id uid: the account's current
// login, so a renamed user's locks and resources show the new login at once
// (and an old login, which another account may have taken since, never
// points at them). An id no account has (an orphan of migration 0005, or a
// failed read) shows as the id itself. "" stays "".
func (a *Authenticator) Login(uid string) string {
	if uid == "" {
		return ""
	}
	a.mu.RLock()
	l, ok := a.logins[uid]
	gen := a.gen
	a.mu.RUnlock()
	if ok {
		return l
	}
	u, found, err := a.store.UserByUID(context.Background(), uid)
	if err != nil {
		return uid // not cached: the next answer tries again
	}
	l = uid
	if found {
		l = u.Login
	}
	a.mu.Lock()
	if a.gen == gen {
		a.logins[uid] = l
	}
	a.mu.Unlock()
	return l
}

// UserID finds the user id of the account that has login now (the admin
// key's ?owner=LOGIN); ok is false when no account has it.
func (a *Authenticator) UserID(ctx context.Context, login string) (uid string, ok bool, err error) {
	u, found, err := a.store.UserByLogin(ctx, login)
	if err != nil || !found {
		return "", false, err
	}
	return u.UID, true, nil
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
// errBadToken when they are missing or unknown, an unavailable error (503)
// when the token store cannot be read.
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
	if err != nil {
		// Not a verdict on the token: 503, not counted as a guess.
		return p, actors.Wrap(actors.CodeUnavailable, "cannot check the token now: its store is unavailable, retry later", err)
	}
	if !found {
		return p, errBadToken
	}
	p = Principal{ID: up.ID, Login: up.Login, Hash: h, Source: up.Source}
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

// authed wraps a handler with admission (admission.go: the throttle of
// failed authentications, the credentials, then the body) and the
// request's context.
func (s *Server) authed(h handler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		p, reserved, err := s.admit(ctx)
		if err != nil {
			s.writeErr(ctx, err)
			return
		}
		if reserved > 0 {
			defer s.bodies.release(reserved)
		}
		rq := s.reqs.request(ctx.Conn())
		defer s.reqs.release(rq)
		rq.p = p // in the pooled request: &p would put every Principal on the heap
		if err := h(ctx, rq, &rq.p); err != nil {
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
