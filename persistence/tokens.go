package persistence

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/octostore/octostore/actors"
)

// TokenPrefix starts every token octostore issues, so secret scanners can
// recognise one.
const TokenPrefix = "octo_"

// NewToken returns a fresh bearer token: the prefix and 32 random bytes.
func NewToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // the platform is broken; never hand out a weak token
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// HashToken is the only form in which a token is stored or looked up.
func HashToken(raw string) [32]byte { return sha256.Sum256([]byte(raw)) }

// Token sources.
const (
	SourceStatic = "static" // --static-tokens / --static-tokens-file
	SourceDev    = "dev"    // created by serve when no identity source is configured
	SourceCLI    = "cli"    // octostore token create
	SourceOAuth  = "oauth"  // GitHub sign-in or rotation
)

// Principal is an authenticated user.
type Principal struct {
	UserID int64  // the store's user number
	ID     string // the stable user id (identity.go) that the user's resources and locks name
	Login  string // the current login: a display name, never an owner
	Source string
}

// IssueToken creates the user (by login, or by GitHub id when set) if needed
// and stores the token's hash.
type IssueToken struct {
	Login     string
	GitHubID  int64
	AvatarURL string
	Hash      [32]byte
	Source    string
	Now       time.Time
}

// Table implements actors.Mutation.
func (IssueToken) Table() string { return "tokens" }

// ApplyTo implements actors.Mutation.
func (m IssueToken) ApplyTo(w actors.MutationWriter) error {
	b, err := sqliteTx(w)
	if err != nil {
		return err
	}
	return applyIssueToken(b.ctx, b.tx, m)
}

// RevokeToken deletes a token by hash.
type RevokeToken struct{ Hash [32]byte }

// Table implements actors.Mutation.
func (RevokeToken) Table() string { return "tokens" }

// ApplyTo implements actors.Mutation.
func (m RevokeToken) ApplyTo(w actors.MutationWriter) error {
	b, err := sqliteTx(w)
	if err != nil {
		return err
	}
	_, err = b.tx.ExecContext(b.ctx, `DELETE FROM tokens WHERE hash = ?`, m.Hash[:])
	return err
}

// RotateToken replaces the token Old by New in one transaction: New belongs
// to the same user and keeps Old's source. Static tokens are never rotated
// (their source of truth is the flag or file). If Old no longer exists (a
// concurrent revoke or rotation) nothing is inserted; the caller checks with
// LookupToken(New). The mutation never fails on that, so it cannot fail the
// writer's batch.
type RotateToken struct {
	Old, New [32]byte
	Now      time.Time
}

// Table implements actors.Mutation.
func (RotateToken) Table() string { return "tokens" }

// ApplyTo implements actors.Mutation.
func (m RotateToken) ApplyTo(w actors.MutationWriter) error {
	b, err := sqliteTx(w)
	if err != nil {
		return err
	}
	return applyRotateToken(b.ctx, b.tx, m)
}

// SyncStaticTokens makes the static tokens in the database exactly Tokens
// (hash → login), users included: a static token no longer configured is
// deleted, and one configured for another login than it had (a token moved
// to another user, or its user renamed in the configuration) now
// authenticates as the configured login. When Changes is not nil, the
// writer appends what it changed (no token: fingerprints), for the log.
type SyncStaticTokens struct {
	Tokens  map[[32]byte]string
	Now     time.Time
	Changes *[]StaticTokenChange
}

// StaticTokenChange is one change of a static-token sync.
type StaticTokenChange struct {
	Fingerprint string // of the token (Fingerprint): never the token
	Login       string // whom it authenticates as now; "" when removed
	Previous    string // whom it authenticated as before; "" when added
}

// StaticToken is one configured static token: its hash and its login.
type StaticToken struct {
	Hash  [32]byte
	Login string
}

// Ordered lists m.Tokens by login, then hash: both backends issue them in
// this order, so the users a first start creates get their ids (u:<n>) in
// login order, the same on every run, whatever the map's iteration order.
func (m SyncStaticTokens) Ordered() []StaticToken {
	ts := make([]StaticToken, 0, len(m.Tokens))
	for h, login := range m.Tokens {
		ts = append(ts, StaticToken{Hash: h, Login: login})
	}
	sort.Slice(ts, func(i, j int) bool {
		if ts[i].Login != ts[j].Login {
			return ts[i].Login < ts[j].Login
		}
		return bytes.Compare(ts[i].Hash[:], ts[j].Hash[:]) < 0
	})
	return ts
}

// Table implements actors.Mutation.
func (SyncStaticTokens) Table() string { return "tokens" }

// ApplyTo implements actors.Mutation.
func (m SyncStaticTokens) ApplyTo(w actors.MutationWriter) error {
	b, err := sqliteTx(w)
	if err != nil {
		return err
	}
	return applySyncStatic(b.ctx, b.tx, m)
}

func applyIssueToken(ctx context.Context, tx *sql.Tx, m IssueToken) error {
	now := m.Now.UnixMilli()
	var err error
	if m.GitHubID != 0 {
		_, err = tx.ExecContext(ctx, `INSERT INTO users(uid, login, github_id, avatar_url, created_at) VALUES(?, ?, ?, ?, ?)
			ON CONFLICT(github_id) DO UPDATE SET login = excluded.login, avatar_url = excluded.avatar_url`,
			GitHubUID(m.GitHubID), m.Login, m.GitHubID, m.AvatarURL, now)
	} else {
		_, err = tx.ExecContext(ctx, `INSERT INTO users(login, created_at) VALUES(?, ?) ON CONFLICT(login) DO NOTHING`, m.Login, now)
		if err == nil {
			err = nameLocalUsers(ctx, tx)
		}
	}
	if err != nil {
		return fmt.Errorf("upsert user: %w", err)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO tokens(hash, user_id, source, created_at)
		SELECT ?, id, ?, ? FROM users WHERE login = ?`, m.Hash[:], m.Source, now, m.Login)
	if err != nil {
		return fmt.Errorf("insert token: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("insert token: user %q not found", m.Login)
	}
	return nil
}

func applyRotateToken(ctx context.Context, tx *sql.Tx, m RotateToken) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO tokens(hash, user_id, source, created_at)
		SELECT ?, user_id, source, ? FROM tokens WHERE hash = ? AND source <> ?`,
		m.New[:], m.Now.UnixMilli(), m.Old[:], SourceStatic); err != nil {
		return fmt.Errorf("rotate token: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE hash = ? AND source <> ?`, m.Old[:], SourceStatic); err != nil {
		return fmt.Errorf("rotate token: %w", err)
	}
	return nil
}

func applySyncStatic(ctx context.Context, tx *sql.Tx, m SyncStaticTokens) error {
	rows, err := tx.QueryContext(ctx, `SELECT t.hash, u.login FROM tokens t JOIN users u ON u.id = t.user_id
		WHERE t.source = ?`, SourceStatic)
	if err != nil {
		return err
	}
	have := map[[32]byte]string{} // hash → login now
	for rows.Next() {
		var h []byte
		var login string
		if err := rows.Scan(&h, &login); err != nil {
			rows.Close()
			return err
		}
		var k [32]byte
		copy(k[:], h)
		have[k] = login
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var changes []StaticTokenChange
	for h, was := range have {
		if login, keep := m.Tokens[h]; !keep || login != was {
			if _, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE hash = ?`, h[:]); err != nil {
				return err
			}
			if !keep {
				changes = append(changes, StaticTokenChange{Fingerprint: Fingerprint(h), Previous: was})
			}
		}
	}
	for _, t := range m.Ordered() {
		h, login := t.Hash, t.Login
		was, had := have[h]
		if had && was == login {
			continue
		}
		if err := applyIssueToken(ctx, tx, IssueToken{Login: login, Hash: h, Source: SourceStatic, Now: m.Now}); err != nil {
			return err
		}
		changes = append(changes, StaticTokenChange{Fingerprint: Fingerprint(h), Login: login, Previous: was})
	}
	if m.Changes != nil {
		SortStaticChanges(changes)
		*m.Changes = append(*m.Changes, changes...)
	}
	return nil
}

// SortStaticChanges orders changes by login, then previous login, then
// fingerprint, so the log reads the same on every start (both backends use
// it).
func SortStaticChanges(cs []StaticTokenChange) {
	sort.Slice(cs, func(i, j int) bool {
		a, b := cs[i], cs[j]
		if a.Login != b.Login {
			return a.Login < b.Login
		}
		if a.Previous != b.Previous {
			return a.Previous < b.Previous
		}
		return a.Fingerprint < b.Fingerprint
	})
}

// ErrTokenGone answers the rotation of a token that was revoked (or
// rotated) meanwhile: nothing was issued.
var ErrTokenGone = actors.NewError(actors.CodeUnauthorized, "this token was revoked meanwhile")

// Rotate replaces the token with hash old by a new token of the same user
// and source, in one transaction, and returns the new token (shown once,
// stored hashed) and its hash. ErrTokenGone when old no longer exists.
// Static tokens are never rotated (their source of truth is the flag or
// file): rotating one is ErrTokenGone too, so callers refuse them first.
// The caller drops old from any cache.
func (s *Store) Rotate(old [32]byte) (raw string, hash [32]byte, err error) {
	raw = NewToken()
	hash = HashToken(raw)
	if err := s.Apply(RotateToken{Old: old, New: hash, Now: s.db.Now()}); err != nil {
		return "", hash, err
	}
	if _, found, err := s.LookupToken(hash); err != nil {
		return "", hash, err
	} else if !found {
		return "", hash, ErrTokenGone
	}
	return raw, hash, nil
}

// Revoke deletes the token with hash h (nothing if it is already gone).
// The caller drops it from any cache.
func (s *Store) Revoke(h [32]byte) error { return s.Apply(RevokeToken{Hash: h}) }

// LookupToken finds the user a token hash belongs to.
func (s *Store) LookupToken(hash [32]byte) (Principal, bool, error) {
	var p Principal
	err := s.db.read.QueryRow(`SELECT u.id, u.uid, u.login, t.source FROM tokens t JOIN users u ON u.id = t.user_id
		WHERE t.hash = ?`, hash[:]).Scan(&p.UserID, &p.ID, &p.Login, &p.Source)
	if errors.Is(err, sql.ErrNoRows) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("lookup token: %w", err)
	}
	return p, true, nil
}

// CountTokens counts stored tokens (all sources).
func (s *Store) CountTokens() (int, error) {
	var n int
	err := s.db.read.QueryRow(`SELECT count(*) FROM tokens`).Scan(&n)
	return n, err
}

// AuthEpoch is bumped by out-of-process token changes (octostore token
// create/revoke); the server polls it to drop its token cache.
func (s *Store) AuthEpoch() (int64, error) {
	var v string
	if err := s.db.read.QueryRow(`SELECT value FROM meta WHERE key = 'auth_epoch'`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read auth epoch: %w", err)
	}
	return strconv.ParseInt(v, 10, 64)
}

// BumpAuthEpoch is called inside out-of-process token transactions.
func BumpAuthEpoch(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'auth_epoch'`)
	return err
}
