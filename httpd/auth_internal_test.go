package httpd

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/octostore/octostore/persistence"
	"github.com/valyala/fasthttp"
)

// TestAuthCacheRevokeRace: a lookup that read a token from the database just
// before it was revoked must not put it into the cache after the
// invalidation (else the revoked token would keep working).
func TestAuthCacheRevokeRace(t *testing.T) {
	db, err := persistence.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := persistence.NewWriter(db, persistence.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	store := persistence.NewStore(db, w)
	a, err := NewAuthenticator(store, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); store.Close(); db.Close() })

	tok := persistence.NewToken()
	h := persistence.HashToken(tok)
	if err := store.Apply(persistence.IssueToken{Login: "carol", Hash: h, Source: persistence.SourceCLI, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	req := func() (Principal, bool) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.Set("Authorization", "Bearer "+tok)
		p, err := a.Authenticate(&ctx)
		return p, err == nil
	}
	// The revocation commits and invalidates between the lookup and the
	// caching of a concurrent request.
	a.afterLookup = func() {
		a.afterLookup = nil
		if err := store.Apply(persistence.RevokeToken{Hash: h}); err != nil {
			t.Error(err)
		}
		a.Invalidate(h)
	}
	if p, ok := req(); !ok || p.Login != "carol" {
		t.Fatalf("the request that started before the revocation: %v %v", p, ok)
	}
	if _, ok := req(); ok {
		t.Fatal("a revoked token is accepted: the racing lookup cached it after the invalidation")
	}
}
