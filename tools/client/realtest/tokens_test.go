package realtest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/tools/client"
)

// ListTokens, CreateToken and RevokeTokens against the real server (the
// fake has no token administration), every exchange through the contract
// checker: a created token works at once and is listed without its
// secret; a revocation deletes exactly what its selector names (or nothing,
// with the error that says why), the revoked token is refused at once and
// its open stream ends with the revoked event; a user token may do none
// of it.
func TestClientTokenAdmin(t *testing.T) {
	url := implementations[0].start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, alice := newClient(t, url, adminKey), newClient(t, url, tokA)

	first, err := admin.CreateToken(ctx, "carol")
	if err != nil || first.User != "carol" || first.Source != "cli" || len(first.Fingerprint) != 8 || first.Token == "" ||
		time.Since(first.CreatedAt) > time.Minute {
		t.Fatalf("CreateToken = %+v, %v", first, err)
	}
	carol := newClient(t, url, first.Token)
	if _, err := carol.Acquire(ctx, "carol-lock", 30*time.Second); err != nil {
		t.Fatalf("the created token: %v", err)
	}
	stream, err := carol.Events(ctx, client.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	listed, err := admin.ListTokens(ctx, "carol")
	if err != nil || len(listed) != 1 || listed[0].Fingerprint != first.Fingerprint || listed[0].Token != "" ||
		!listed[0].CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("ListTokens(carol) = %+v, %v", listed, err)
	}
	all, err := admin.ListTokens(ctx, "")
	if err != nil || len(all) != 3 { // alice's and bob's static tokens, carol's
		t.Fatalf("ListTokens() = %+v, %v", all, err)
	}
	var walked []string // the same listing a token a page
	o := client.ListOptions{Limit: 1}
	for pages := 0; ; pages++ {
		pg, err := admin.ListTokensPage(ctx, "", o)
		if err != nil || len(pg.Items) != 1 || pg.Total != 3 || pages > 3 {
			t.Fatalf("token page %d: %+v, %v", pages, pg, err)
		}
		walked = append(walked, pg.Items[0].Fingerprint)
		if pg.NextCursor == "" {
			break
		}
		o.Cursor = pg.NextCursor
	}
	if len(walked) != 3 || walked[0] != all[0].Fingerprint || walked[1] != all[1].Fingerprint || walked[2] != all[2].Fingerprint {
		t.Fatalf("token pages %v, ListTokens %+v", walked, all)
	}
	if _, err := alice.ListTokens(ctx, ""); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("a user lists tokens: %v", err)
	}
	if _, err := alice.CreateToken(ctx, "mallory"); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("a user creates a token: %v", err)
	}
	if _, err := admin.CreateToken(ctx, "no way"); !errors.Is(err, client.ErrValidation) {
		t.Fatalf("a token for an invalid login: %v", err)
	}

	second, err := admin.CreateToken(ctx, "carol")
	if err != nil {
		t.Fatal(err)
	}
	_, err = admin.RevokeTokens(ctx, client.TokenSelector{User: "carol"})
	if !errors.Is(err, client.ErrConflict) || !strings.Contains(err.Error(), first.Fingerprint) || !strings.Contains(err.Error(), second.Fingerprint) {
		t.Fatalf("revoking one of carol's two tokens: %v, want a conflict naming both", err)
	}
	gone, err := admin.RevokeTokens(ctx, client.TokenSelector{Fingerprint: first.Fingerprint})
	if err != nil || len(gone) != 1 || gone[0].Fingerprint != first.Fingerprint || gone[0].User != "carol" {
		t.Fatalf("RevokeTokens(fingerprint) = %+v, %v", gone, err)
	}
	for ev := range stream.C { // the revoked event ends it
		_ = ev
	}
	if !errors.Is(stream.Err(), client.ErrRevoked) {
		t.Fatalf("carol's stream ended with %v, want ErrRevoked", stream.Err())
	}
	if _, err := carol.LockStatus(ctx, "carol-lock"); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("the revoked token: %v", err)
	}
	if _, err := newClient(t, url, second.Token).LockStatus(ctx, "carol-lock"); err != nil {
		t.Fatalf("carol's other token: %v", err)
	}
	for _, c := range []struct {
		sel  client.TokenSelector
		want error
	}{
		{client.TokenSelector{User: "nobody"}, client.ErrNotFound},
		{client.TokenSelector{Fingerprint: "zz"}, client.ErrValidation},
		{client.TokenSelector{Fingerprint: second.Fingerprint, User: "carol"}, client.ErrValidation},
		{client.TokenSelector{}, client.ErrValidation},
	} {
		if _, err := admin.RevokeTokens(ctx, c.sel); !errors.Is(err, c.want) {
			t.Fatalf("RevokeTokens(%+v): %v, want %v", c.sel, err, c.want)
		}
	}
	if gone, err := admin.RevokeTokens(ctx, client.TokenSelector{User: "carol", AllForUser: true}); err != nil || len(gone) != 1 {
		t.Fatalf("RevokeTokens(carol, all) = %+v, %v", gone, err)
	}
}
