package etcdstore

import (
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/persistence"
)

// SignIn on etcd has persistence.Store.SignIn's policy (persistence's
// TestSignIn): new user, repeat sign-in, the token cap, a rename, a login
// that belongs to another account (refused, nothing written); and two
// accounts racing for one login never both get it.
func TestSignIn(t *testing.T) {
	c := startCluster(t, 1, nil)[0].Client()
	var mu sync.Mutex
	clock := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	s, _ := openTestStore(t, c, Options{Prefix: "/signin/", Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Second) // "oldest" is well defined
		return clock
	}})
	ctx := t.Context()
	octo := persistence.GitHubUser{ID: 7, Login: "octo", AvatarURL: "https://avatars.example/7"}
	var tokens []persistence.SignInResult
	for i := 0; i < 3; i++ {
		r, err := s.SignIn(ctx, octo, 2)
		if err != nil {
			t.Fatal(err)
		}
		if p, ok, err := s.LookupToken(persistence.HashToken(r.Token)); err != nil || !ok || p.Login != "octo" || p.Source != persistence.SourceOAuth {
			t.Fatalf("sign-in %d: token resolves to %+v %v %v", i, p, ok, err)
		}
		tokens = append(tokens, r)
	}
	if len(tokens[2].Revoked) != 1 || tokens[2].Revoked[0].Hash != tokens[0].Hash || len(tokens[2].Stale) != 1 {
		t.Fatalf("third sign-in revoked %+v (stale %d), want the first token", tokens[2].Revoked, len(tokens[2].Stale))
	}
	if _, ok, _ := s.LookupToken(tokens[0].Hash); ok {
		t.Fatal("the oldest token still works")
	}
	renamed, err := s.SignIn(ctx, persistence.GitHubUser{ID: 7, Login: "octo2"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if renamed.RenamedFrom != "octo" || len(renamed.Stale) < 2 {
		t.Fatalf("rename: %+v", renamed)
	}
	if p, ok, _ := s.LookupToken(tokens[2].Hash); !ok || p.Login != "octo2" {
		t.Fatalf("a token issued before the rename: %+v %v", p, ok)
	}
	if err := s.Apply(persistence.IssueToken{Login: "local", Hash: persistence.HashToken("local-tok"), Source: persistence.SourceCLI, Now: clock}); err != nil {
		t.Fatal(err)
	}
	before, _ := s.CountTokens()
	if _, err := s.SignIn(ctx, persistence.GitHubUser{ID: 8, Login: "local"}, 2); actors.ErrorCode(err) != actors.CodeConflict {
		t.Fatalf("sign-in as another account's login: %v, want a conflict", err)
	}
	if _, err := s.SignIn(ctx, persistence.GitHubUser{ID: 9, Login: "octo"}, 2); err != nil {
		t.Fatalf("sign-in with a login freed by a rename: %v", err)
	}
	if after, _ := s.CountTokens(); after != before+1 {
		t.Fatalf("tokens %d → %d: the refused sign-in wrote something", before, after)
	}

	// Rotate and Revoke (httpd.Storage).
	raw, h, err := s.Rotate(tokens[2].Hash)
	if err != nil || raw == "" {
		t.Fatalf("rotate: %v", err)
	}
	if _, ok, _ := s.LookupToken(tokens[2].Hash); ok {
		t.Fatal("the rotated token still works")
	}
	if err := s.Revoke(h); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Rotate(h); err != persistence.ErrTokenGone {
		t.Fatalf("rotating a revoked token: %v, want ErrTokenGone", err)
	}

	// Two accounts racing for one login: exactly one gets it.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.SignIn(ctx, persistence.GitHubUser{ID: int64(100 + i), Login: "contested"}, 5)
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case actors.ErrorCode(err) != actors.CodeConflict:
			t.Fatalf("unexpected error %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d accounts got the login, want exactly 1", won)
	}
}
