package persistence_test

import (
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/persistence"
)

// SignIn is the whole sign-in policy in one transaction: new user, repeat
// sign-in, the token cap, a rename, and a login that belongs to another
// account (refused, nothing written).
func TestSignIn(t *testing.T) {
	db, s := openTokenStore(t)
	// Each sign-in a second after the last: "oldest" is well defined.
	var mu sync.Mutex
	clock := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	db.Now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Second)
		return clock
	}
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
	// The cap of 2: the third sign-in revoked the first token.
	if len(tokens[2].Revoked) != 1 || tokens[2].Revoked[0].Hash != tokens[0].Hash || len(tokens[2].Stale) != 1 {
		t.Fatalf("third sign-in revoked %+v (stale %d), want the first token", tokens[2].Revoked, len(tokens[2].Stale))
	}
	if _, ok, _ := s.LookupToken(tokens[0].Hash); ok {
		t.Fatal("the oldest token still works")
	}

	// A rename keeps the user and its tokens; every token is stale in caches.
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

	// A login used by another account (a local user) is refused: nothing
	// is written, not even the token.
	if _, _, err := db.CreateToken(ctx, "local", persistence.SourceCLI, time.Now()); err != nil {
		t.Fatal(err)
	}
	before, _ := db.ListTokens(ctx, "")
	_, err = s.SignIn(ctx, persistence.GitHubUser{ID: 8, Login: "local"}, 2)
	if actors.ErrorCode(err) != actors.CodeConflict {
		t.Fatalf("sign-in as another account's login: %v, want a conflict", err)
	}
	// The old login of the renamed account belongs to nobody now: free.
	if _, err := s.SignIn(ctx, persistence.GitHubUser{ID: 9, Login: "octo"}, 2); err != nil {
		t.Fatalf("sign-in with a login freed by a rename: %v", err)
	}
	after, _ := db.ListTokens(ctx, "")
	if len(after) != len(before)+1 {
		t.Fatalf("tokens %d → %d: the refused sign-in wrote something", len(before), len(after))
	}
}

// Two accounts racing for one login: exactly one gets it (the check and the
// writes are one transaction on the single writer).
func TestSignInLoginRace(t *testing.T) {
	_, s := openTokenStore(t)
	ctx := t.Context()
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
