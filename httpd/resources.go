package httpd

import (
	"context"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/actors/names"
	"github.com/valyala/fasthttp"
)

// Shared by the owner-scoped resources (limits.go, flags.go, config.go):
// whose resource a request addresses, and name validation.

var (
	errOwnerName = invalid("owner " + names.Login.Requirement())
	errNoOwner   = invalid("owner is required: the admin key owns no resources, add ?owner=LOGIN")
	errNotOwner  = actors.NewError(actors.CodeForbidden, "only the admin key may address another user's resources")
)

// scope resolves whose resource the request addresses, as the owner's user
// id (resources are owned by ids, never by logins: persistence/identity.go).
// A user addresses their own; ?owner= may name only themselves (forbidden
// otherwise). The admin key owns nothing: it must name the owner with
// ?owner=LOGIN, the login an account has now (invalid when none has it);
// without it, writes are refused (noAdminWrites, forbidden) and reads are
// invalid.
func (s *Server) scope(ctx *fasthttp.RequestCtx, p *Principal, write bool) (string, error) {
	q := ctx.QueryArgs()
	if !q.Has("owner") {
		if !p.Admin {
			return p.ID, nil
		}
		if write {
			return "", noAdminWrites(p)
		}
		return "", errNoOwner
	}
	owner := string(q.Peek("owner"))
	if !names.Login.Valid(owner) {
		return "", errOwnerName
	}
	if !p.Admin {
		if owner != p.Login {
			return "", errNotOwner
		}
		return p.ID, nil
	}
	// Not ctx: a *fasthttp.RequestCtx is reused once the handler returns,
	// and database/sql watches the context it is given from a goroutine of
	// its own (seen as a data race under -race in TestLimitList).
	qctx, cancel := context.WithTimeout(context.Background(), s.reqs.timeout)
	defer cancel()
	uid, ok, err := s.auth.UserID(qctx, owner)
	if err != nil {
		return "", actors.Wrap(actors.CodeUnavailable, "could not read the users; retry", err)
	}
	if !ok {
		return "", invalid("owner: no user has the login " + owner + " on this server")
	}
	return uid, nil
}

// ownerLogin is the login of the owner scope resolved: ?owner= when given
// (scope has checked it), else the caller's.
func ownerLogin(ctx *fasthttp.RequestCtx, p *Principal) []byte {
	if o := ctx.QueryArgs().Peek("owner"); len(o) > 0 {
		return o
	}
	return []byte(p.Login)
}

// listScope resolves whose resources a listing shows: the caller's own; for
// the admin key every user's (owner "") unless ?owner= narrows it. all
// reports whether items carry an "owner" field (admin listings).
func (s *Server) listScope(ctx *fasthttp.RequestCtx, p *Principal) (owner string, all bool, err error) {
	if p.Admin && !ctx.QueryArgs().Has("owner") {
		return "", true, nil
	}
	owner, err = s.scope(ctx, p, false)
	return owner, p.Admin, err
}

// resourceKind names the owner-scoped kind a path addresses, for messages.
type resourceKind struct {
	what string // "rate limit name", "flag name"
	err  error  // the invalid-name error
}

func newResourceKind(what string) resourceKind {
	return resourceKind{what: what, err: invalid(what + " " + names.Resource.Requirement())}
}

var (
	limitNames = newResourceKind("rate limit name")
	flagNames  = newResourceKind("flag name")
)

// name validates the {name} path parameter (names.Resource).
func (k resourceKind) name(ctx *fasthttp.RequestCtx) (string, error) {
	name := pathParam(ctx)
	if !names.Resource.Valid(name) {
		return "", k.err
	}
	return name, nil
}

// target validates the {name} path parameter of kind k and resolves whose
// resource it is (write: the request changes it).
func (s *Server) target(k resourceKind, ctx *fasthttp.RequestCtx, p *Principal, write bool) (owner, name string, err error) {
	if name, err = k.name(ctx); err != nil {
		return "", "", err
	}
	owner, err = s.scope(ctx, p, write)
	return owner, name, err
}

// appendOwner adds `"owner":"…",` at the start of an admin listing item:
// the login of the owner with user id owner (Authenticator.Login).
func (s *Server) appendOwner(b []byte, all bool, owner string) []byte {
	if !all {
		return b
	}
	b = append(b, `"owner":`...)
	b = appendString(b, s.auth.Login(owner))
	return append(b, ',')
}
