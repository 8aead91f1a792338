package httpd

import (
	"github.com/valyala/fasthttp"
)

// Shared by the owner-scoped resources (limits.go, flags.go, config.go):
// whose resource a request addresses, and name validation.

// MaxResourceName is the longest rate limit, flag or config key name.
const MaxResourceName = 100

// maxLogin bounds ?owner= (static-token logins are at most 64 characters,
// GitHub logins 39).
const maxLogin = 64

// scope resolves whose resource the request addresses. A user addresses
// their own; ?owner= may name only themselves (403 otherwise). The admin key
// owns nothing: it must name the owner with ?owner=LOGIN; without it, writes
// are refused (noAdminWrites, 403) and reads answer 422.
func (s *Server) scope(ctx *fasthttp.RequestCtx, p *Principal, write bool) (string, bool) {
	q := ctx.QueryArgs()
	if !q.Has("owner") {
		if !p.Admin {
			return p.Login, true
		}
		if write {
			return "", s.noAdminWrites(ctx, p)
		}
		writeError(ctx, fasthttp.StatusUnprocessableEntity, "owner is required: the admin key owns no resources, add ?owner=LOGIN")
		return "", false
	}
	owner := string(q.Peek("owner"))
	if !validName(owner, maxLogin) {
		writeError(ctx, fasthttp.StatusUnprocessableEntity, "owner must match ^[A-Za-z0-9_-]{1,64}$")
		return "", false
	}
	if !p.Admin && owner != p.Login {
		writeError(ctx, fasthttp.StatusForbidden, "only the admin key may address another user's resources")
		return "", false
	}
	return owner, true
}

// listScope resolves whose resources a listing shows: the caller's own; for
// the admin key every user's (owner "") unless ?owner= narrows it. all
// reports whether items carry an "owner" field (admin listings).
func (s *Server) listScope(ctx *fasthttp.RequestCtx, p *Principal) (owner string, all, ok bool) {
	if p.Admin && !ctx.QueryArgs().Has("owner") {
		return "", true, true
	}
	owner, ok = s.scope(ctx, p, false)
	return owner, p.Admin, ok
}

// pathName validates a {name} path parameter against
// ^[A-Za-z0-9_-]{1,100}$, answering 422 naming what it is.
func pathName(ctx *fasthttp.RequestCtx, what string) (string, bool) {
	name, _ := ctx.UserValue("name").(string)
	if !validName(name, MaxResourceName) {
		writeError(ctx, fasthttp.StatusUnprocessableEntity, what+" must match ^[A-Za-z0-9_-]{1,100}$")
		return "", false
	}
	return name, true
}

// validConfigKey reports whether key matches ^[a-zA-Z0-9._-]{1,100}$ and is
// not "." or ".." (path segments no client can send as a name).
func validConfigKey(key string) bool {
	if len(key) == 0 || len(key) > MaxResourceName || key == "." || key == ".." {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// appendOwner adds `"owner":"…",` at the start of an admin listing item.
func appendOwner(b []byte, all bool, owner string) []byte {
	if !all {
		return b
	}
	b = append(b, `"owner":`...)
	b = appendString(b, owner)
	return append(b, ',')
}
