package persistence

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/octostore/octostore/actors"
)

// GitHubUser is the GitHub account that signs in.
type GitHubUser struct {
	ID        int64
	Login     string
	AvatarURL string
}

// SignInResult is what SignIn did.
type SignInResult struct {
	Token string   // the new bearer token: shown once, stored only hashed
	Hash  [32]byte // its hash
	// Revoked are the user's oldest sign-in tokens revoked to keep within
	// the cap.
	Revoked []TokenInfo
	// RenamedFrom is the user's previous login when the GitHub account was
	// renamed since its last sign-in ("" otherwise).
	RenamedFrom string
	// Stale are the hashes of tokens a token cache must drop: the revoked
	// ones and, after a rename, every other token of the user (a cached
	// principal carries the old login).
	Stale [][32]byte
}

// SignIn creates or updates the user of a GitHub account and issues a new
// sign-in token, in one transaction of the writer. The account policy of
// sign-in lives here, next to the data it guards:
//
//   - a login used by another account (a local user, or another GitHub
//     account that has since been renamed) is refused, never merged: that
//     would hand one person's resources to another. The error is coded
//     CodeConflict and nothing is written;
//   - the user is found by GitHub id: a renamed account keeps its user (and
//     its resources and tokens) under the new login;
//   - the user keeps at most maxTokens sign-in tokens (<= 0: 50): the
//     oldest beyond it are revoked.
//
// Because the check and the writes are one transaction on the single
// writer, two sign-ins can never both pass the login check. ctx bounds the
// wait for the commit (the sign-in may still commit after it ends).
func (s *Store) SignIn(ctx context.Context, u GitHubUser, maxTokens int) (SignInResult, error) {
	if maxTokens <= 0 {
		maxTokens = 50
	}
	m := &signIn{user: u, max: maxTokens, now: s.db.Now()}
	m.result.Token = NewToken()
	m.result.Hash = HashToken(m.result.Token)
	if err := AwaitCommit(ctx, s.Enqueue, m); err != nil {
		return SignInResult{}, err
	}
	if m.refused != nil {
		return SignInResult{}, m.refused
	}
	return m.result, nil
}

// signIn is the mutation of SignIn. The writer fills in refused or result
// inside the transaction; SignIn reads them after the commit callback.
type signIn struct {
	user    GitHubUser
	max     int
	now     time.Time
	refused error // the policy refused the sign-in: nothing was written
	result  SignInResult
}

// Table implements actors.Mutation.
func (*signIn) Table() string { return "users" }

// ApplyTo implements actors.Mutation. A refusal is not an error of the
// batch (it would fail every other write in it): it is recorded in m.
func (m *signIn) ApplyTo(w actors.MutationWriter) error {
	b, err := sqliteTx(w)
	if err != nil {
		return err
	}
	ctx, tx, u := b.ctx, b.tx, m.user
	var owner sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT github_id FROM users WHERE login = ?`, u.Login).Scan(&owner)
	switch {
	case err == nil && owner.Int64 != u.ID:
		m.refused = actors.Errorf(actors.CodeConflict,
			"the login %q is already used by another account on this server; ask the operator", u.Login)
		return nil
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sign-in: find user %q: %w", u.Login, err)
	}
	var prev string
	err = tx.QueryRowContext(ctx, `SELECT login FROM users WHERE github_id = ?`, u.ID).Scan(&prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sign-in: find GitHub user %d: %w", u.ID, err)
	}
	if prev != "" && prev != u.Login {
		m.result.RenamedFrom = prev
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO users(uid, login, github_id, avatar_url, created_at) VALUES(?, ?, ?, ?, ?)
		ON CONFLICT(github_id) DO UPDATE SET login = excluded.login, avatar_url = excluded.avatar_url`,
		GitHubUID(u.ID), u.Login, u.ID, u.AvatarURL, m.now.UnixMilli()); err != nil {
		return fmt.Errorf("sign-in: upsert user: %w", err)
	}
	toks, err := listTokens(ctx, tx, u.Login)
	if err != nil {
		return err
	}
	// Keep max-1 of the existing sign-in tokens (oldest first), so that with
	// the new one there are max.
	var oauth []TokenInfo
	for _, t := range toks {
		if t.Source == SourceOAuth {
			oauth = append(oauth, t)
		}
	}
	for i := 0; i <= len(oauth)-m.max; i++ {
		if _, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE hash = ?`, oauth[i].Hash[:]); err != nil {
			return fmt.Errorf("sign-in: revoke oldest token: %w", err)
		}
		m.result.Revoked = append(m.result.Revoked, oauth[i])
		m.result.Stale = append(m.result.Stale, oauth[i].Hash)
	}
	if m.result.RenamedFrom != "" {
		for _, t := range toks {
			m.result.Stale = append(m.result.Stale, t.Hash)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO tokens(hash, user_id, source, created_at)
		SELECT ?, id, ?, ? FROM users WHERE github_id = ?`, m.result.Hash[:], SourceOAuth, m.now.UnixMilli(), u.ID); err != nil {
		return fmt.Errorf("sign-in: insert token: %w", err)
	}
	return nil
}
