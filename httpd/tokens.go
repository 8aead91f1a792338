package httpd

import (
	"github.com/octostore/octostore/persistence"
	"github.com/valyala/fasthttp"
)

func (s *Server) routeAuth() {
	s.r.GET("/auth/github", s.githubStart)
	s.r.GET("/auth/github/callback", s.githubCallback)
	s.r.POST("/auth/token/rotate", s.authed(s.tokenRotate))
	s.r.DELETE("/auth/token", s.authed(s.tokenRevoke))
}

// notSelfManaged answers 409 for credentials whose source of truth is the
// server's configuration, not the database.
func notSelfManaged(ctx *fasthttp.RequestCtx, p *Principal, what string) bool {
	switch {
	case p.Admin:
		writeError(ctx, fasthttp.StatusConflict, "the admin key cannot be "+what+" through the API: it is set by --admin-key (OCTOSTORE_ADMIN_KEY); change it there and restart")
		return true
	case p.Source == persistence.SourceStatic:
		writeError(ctx, fasthttp.StatusConflict, "a static token cannot be "+what+" through the API: it is set by --static-tokens or --static-tokens-file; change it there and restart")
		return true
	}
	return false
}

// tokenRotate is POST /auth/token/rotate: the calling token is replaced by a
// new one in one transaction. When this answers, the new token works and the
// old one is refused, on this server and (through the cache invalidation
// after the commit) in every request that follows.
func (s *Server) tokenRotate(ctx *fasthttp.RequestCtx, p *Principal) {
	if notSelfManaged(ctx, p, "rotated") {
		return
	}
	raw := persistence.NewToken()
	h := persistence.HashToken(raw)
	if err := s.store.Apply(persistence.RotateToken{Old: p.Hash, New: h, Now: s.sys.Now()}); err != nil {
		s.writeErr(ctx, err)
		return
	}
	s.auth.Invalidate(p.Hash)
	if _, found, err := s.store.LookupToken(h); err != nil {
		s.writeErr(ctx, err)
		return
	} else if !found {
		// Revoked (or rotated) by a concurrent request: nothing was issued.
		writeError(ctx, fasthttp.StatusUnauthorized, "this token was revoked meanwhile")
		return
	}
	s.log.Info("token rotated", "user", p.Login, "old_fingerprint", persistence.Fingerprint(p.Hash), "fingerprint", persistence.Fingerprint(h))
	ctx.Response.Header.Set("Cache-Control", "no-store")
	writeJSON(ctx, fasthttp.StatusOK, struct {
		Token string `json:"token"`
	}{raw})
}

// tokenRevoke is DELETE /auth/token: the calling token stops working at once.
func (s *Server) tokenRevoke(ctx *fasthttp.RequestCtx, p *Principal) {
	if notSelfManaged(ctx, p, "revoked") {
		return
	}
	if err := s.store.Apply(persistence.RevokeToken{Hash: p.Hash}); err != nil {
		s.writeErr(ctx, err)
		return
	}
	s.auth.Invalidate(p.Hash)
	s.log.Info("token revoked", "user", p.Login, "fingerprint", persistence.Fingerprint(p.Hash))
	writeRaw(ctx, fasthttp.StatusOK, []byte(`{"revoked":true}`))
}
