package httpd

import (
	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/persistence"
	"github.com/valyala/fasthttp"
)

// notSelfManaged refuses (conflict) credentials whose source of truth is
// the server's configuration, not the database.
func notSelfManaged(p *Principal, what string) error {
	switch {
	case p.Admin:
		return actors.NewError(actors.CodeConflict, "the admin key cannot be "+what+" through the API: it is set by --admin-key (OCTOSTORE_ADMIN_KEY); change it there and restart")
	case p.Source == persistence.SourceStatic:
		return actors.NewError(actors.CodeConflict, "a static token cannot be "+what+" through the API: it is set by --static-tokens or --static-tokens-file; change it there and restart")
	}
	return nil
}

// tokenRotate is POST /auth/token/rotate: the calling token is replaced by a
// new one in one transaction. When this answers, the new token works and the
// old one is refused, on this server and (through the cache invalidation
// after the commit) in every request that follows.
func (s *Server) tokenRotate(ctx *fasthttp.RequestCtx, _ *request, p *Principal) error {
	if err := notSelfManaged(p, "rotated"); err != nil {
		return err
	}
	raw, h, err := s.store.Rotate(p.Hash)
	s.auth.Invalidate(p.Hash)
	if err != nil {
		return err // persistence.ErrTokenGone: revoked (or rotated) by a concurrent request
	}
	s.log.Info("token rotated", "user", p.Login, "old_fingerprint", persistence.Fingerprint(p.Hash), "fingerprint", persistence.Fingerprint(h))
	ctx.Response.Header.Set("Cache-Control", "no-store")
	return writeJSON(ctx, struct {
		Token string `json:"token"`
	}{raw})
}

var revokedBody = []byte(`{"revoked":true}`)

// tokenRevoke is DELETE /auth/token: the calling token stops working at once.
func (s *Server) tokenRevoke(ctx *fasthttp.RequestCtx, _ *request, p *Principal) error {
	if err := notSelfManaged(p, "revoked"); err != nil {
		return err
	}
	if err := s.store.Revoke(p.Hash); err != nil {
		return err
	}
	s.auth.Invalidate(p.Hash)
	s.log.Info("token revoked", "user", p.Login, "fingerprint", persistence.Fingerprint(p.Hash))
	return writeOK(ctx, revokedBody)
}
