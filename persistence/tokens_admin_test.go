package persistence_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/octostore/octostore/persistence"
)

func openTokenStore(t *testing.T) (*persistence.DB, *persistence.Store) {
	t.Helper()
	db, err := persistence.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := persistence.NewWriter(db, persistence.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := persistence.NewStore(db, w)
	t.Cleanup(func() { s.Close(); db.Close() })
	return db, s
}

func TestRotateToken(t *testing.T) {
	_, s := openTokenStore(t)
	now := time.Now()
	old, static := persistence.HashToken("old"), persistence.HashToken("static")
	for _, m := range []persistence.IssueToken{
		{Login: "carol", Hash: old, Source: persistence.SourceCLI, Now: now},
		{Login: "alice", Hash: static, Source: persistence.SourceStatic, Now: now},
	} {
		if err := s.Apply(m); err != nil {
			t.Fatal(err)
		}
	}
	nw := persistence.HashToken("new")
	if err := s.Apply(persistence.RotateToken{Old: old, New: nw, Now: now}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.LookupToken(old); ok {
		t.Fatal("old token survives rotation")
	}
	if p, ok, _ := s.LookupToken(nw); !ok || p.Login != "carol" || p.Source != persistence.SourceCLI {
		t.Fatalf("new token: %+v %v (same user, same source)", p, ok)
	}
	// Old gone (rotated or revoked concurrently): nothing is issued, no error.
	again := persistence.HashToken("again")
	if err := s.Apply(persistence.RotateToken{Old: old, New: again, Now: now}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.LookupToken(again); ok {
		t.Fatal("rotating a missing token issued one")
	}
	// Static tokens are never rotated.
	st2 := persistence.HashToken("static2")
	if err := s.Apply(persistence.RotateToken{Old: static, New: st2, Now: now}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.LookupToken(static); !ok {
		t.Fatal("a static token was rotated away")
	}
	if _, ok, _ := s.LookupToken(st2); ok {
		t.Fatal("rotating a static token issued one")
	}
}

func TestOfflineTokenAdmin(t *testing.T) {
	db, s := openTokenStore(t)
	ctx := context.Background()
	ep0, _ := s.AuthEpoch()
	raw1, ti1, err := db.CreateToken(ctx, "carol", persistence.SourceCLI, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if ep, _ := s.AuthEpoch(); ep != ep0+1 {
		t.Fatalf("create did not bump the auth epoch: %d → %d", ep0, ep)
	}
	if p, ok, _ := s.LookupToken(persistence.HashToken(raw1)); !ok || p.Login != "carol" {
		t.Fatal("created token not found")
	}
	_, ti2, _ := db.CreateToken(ctx, "carol", persistence.SourceCLI, time.Now())
	if _, err := db.RevokeTokens(ctx, persistence.RevokeSelector{Login: "carol"}); !errors.Is(err, persistence.ErrTokenAmbiguous) {
		t.Fatalf("revoke one of two by login: %v, want ErrTokenAmbiguous", err)
	}
	if toks, _ := db.ListTokens(ctx, "carol"); len(toks) != 2 {
		t.Fatal("an ambiguous revoke deleted something")
	}
	if _, err := db.RevokeTokens(ctx, persistence.RevokeSelector{Fingerprint: "abc"}); !errors.Is(err, persistence.ErrBadSelector) {
		t.Fatalf("short fingerprint: %v", err)
	}
	gone, err := db.RevokeTokens(ctx, persistence.RevokeSelector{Fingerprint: ti1.Fingerprint()})
	if err != nil || len(gone) != 1 || gone[0].Hash != ti1.Hash {
		t.Fatalf("revoke by fingerprint: %v %v", gone, err)
	}
	ep, _ := s.AuthEpoch()
	if ep != ep0+3 {
		t.Fatalf("auth epoch %d, want %d (two creates, one revoke)", ep, ep0+3)
	}
	gone, err = db.RevokeTokens(ctx, persistence.RevokeSelector{Login: "carol", All: true})
	if err != nil || len(gone) != 1 || gone[0].Hash != ti2.Hash {
		t.Fatalf("revoke all: %v %v", gone, err)
	}
	if _, err := db.RevokeTokens(ctx, persistence.RevokeSelector{Login: "carol", All: true}); !errors.Is(err, persistence.ErrTokenNotFound) {
		t.Fatalf("revoke with nothing left: %v", err)
	}
	if ep2, _ := s.AuthEpoch(); ep2 != ep+1 {
		t.Fatalf("auth epoch %d, want %d: one more revoke, and none for the revoke that found nothing", ep2, ep+1)
	}
}
