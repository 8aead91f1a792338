package persistence

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/octostore/octostore/actors"
)

// This file holds the token listing and the out-of-process token changes of
// `octostore token create|revoke`. Those run while a server may use the same database: each is one transaction on the
// write connection (SQLite serialises it with the server's writer through the
// busy timeout) that also bumps the auth epoch, so that the server drops its
// token cache within its poll interval.

// FingerprintLen is the number of hex digits of a token's hash shown as its
// fingerprint. The hash of a 256-bit random token reveals nothing about it.
const FingerprintLen = 8

// TokenInfo describes a stored token without its secret.
type TokenInfo struct {
	Login     string
	Source    string
	CreatedAt time.Time
	Hash      [32]byte
}

// Fingerprint is the short non-secret name of the token: the first hex digits
// of its SHA-256 hash.
func (t TokenInfo) Fingerprint() string { return Fingerprint(t.Hash) }

// Fingerprint returns the first FingerprintLen hex digits of a token hash.
func Fingerprint(h [32]byte) string { return hex.EncodeToString(h[:FingerprintLen/2]) }

// Errors of the token admin operations.
var (
	ErrTokenNotFound  = actors.NewError(actors.CodeNotFound, "no matching token")
	ErrTokenAmbiguous = actors.NewError(actors.CodeConflict, "more than one token matches")
	ErrBadSelector    = actors.NewError(actors.CodeInvalid, "bad token selector")
)

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// TokenPosition is a position in the token listing's order: oldest first
// (CreatedAt, milliseconds as stored), then by hash. A page starts after
// one (TokenPageQuery.After).
type TokenPosition struct {
	CreatedAt time.Time
	Hash      [32]byte
}

// Position is t's position in the token listing.
func (t TokenInfo) Position() TokenPosition { return TokenPosition{t.CreatedAt, t.Hash} }

// Before reports whether p comes before q in the token listing.
func (p TokenPosition) Before(q TokenPosition) bool {
	if a, b := p.CreatedAt.UnixMilli(), q.CreatedAt.UnixMilli(); a != b {
		return a < b
	}
	return bytes.Compare(p.Hash[:], q.Hash[:]) < 0
}

// TokenPageQuery selects one page of the token listing (issue 18, paged
// listings): the tokens of Login ("" every login's) after After (nil: from
// the start), at most Limit (at least 1) of them.
type TokenPageQuery struct {
	Login string
	After *TokenPosition
	Limit int
}

// SortTokens orders tokens as the listing does (TokenPosition.Before).
func SortTokens(ts []TokenInfo) {
	sort.Slice(ts, func(i, j int) bool { return ts[i].Position().Before(ts[j].Position()) })
}

const tokenCols = `SELECT u.login, t.source, t.created_at, t.hash FROM tokens t JOIN users u ON u.id = t.user_id`

// listTokens lists tokens, of one login when login is not empty, oldest
// first (then by hash).
func listTokens(ctx context.Context, q querier, login string) ([]TokenInfo, error) {
	query := tokenCols
	var args []any
	if login != "" {
		query += ` WHERE u.login = ?`
		args = append(args, login)
	}
	rows, err := q.QueryContext(ctx, query+` ORDER BY t.created_at, t.hash`, args...)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out, _, err := scanTokens(rows, -1)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// scanTokens reads token rows, at most limit of them (negative: all);
// more is true when a row remained after the limit.
func scanTokens(rows *sql.Rows, limit int) (out []TokenInfo, more bool, err error) {
	defer rows.Close()
	for rows.Next() {
		if len(out) == limit {
			return out, true, nil
		}
		var ti TokenInfo
		var created int64
		var h []byte
		if err := rows.Scan(&ti.Login, &ti.Source, &created, &h); err != nil {
			return nil, false, err
		}
		ti.CreatedAt = fromMS(created)
		copy(ti.Hash[:], h)
		out = append(out, ti)
	}
	return out, false, rows.Err()
}

// ListTokensPage reads one page of the token listing and the count of the
// whole listing, in one read transaction (one snapshot). The position is a
// keyset over the index tokens_created (migration 0012): a page costs its
// own rows, never every token.
func (s *Store) ListTokensPage(ctx context.Context, q TokenPageQuery) (actors.Page[TokenInfo], error) {
	var pg actors.Page[TokenInfo]
	if q.Limit < 1 {
		return pg, fmt.Errorf("list tokens: page limit %d", q.Limit)
	}
	var where []string
	var args, countArgs []any
	if q.Login != "" {
		where, args, countArgs = append(where, `u.login = ?`), append(args, q.Login), []any{q.Login}
	}
	count := `SELECT COUNT(*) FROM tokens t JOIN users u ON u.id = t.user_id`
	if len(where) > 0 {
		count += ` WHERE ` + where[0]
	}
	if q.After != nil {
		ms := q.After.CreatedAt.UnixMilli()
		where = append(where, `(t.created_at, t.hash) > (?, ?)`)
		args = append(args, ms, q.After.Hash[:])
	}
	query := tokenCols
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	tx, err := s.db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return pg, fmt.Errorf("list tokens: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, query+` ORDER BY t.created_at, t.hash LIMIT ?`, append(args, q.Limit+1)...)
	if err != nil {
		return pg, fmt.Errorf("list tokens: %w", err)
	}
	if pg.Items, pg.More, err = scanTokens(rows, q.Limit); err != nil {
		return pg, fmt.Errorf("list tokens: %w", err)
	}
	if err := tx.QueryRowContext(ctx, count, countArgs...).Scan(&pg.Total); err != nil {
		return pg, fmt.Errorf("list tokens: count: %w", err)
	}
	return pg, nil
}

// ListTokens lists the stored tokens (of login, or all when login is empty),
// oldest first. It never returns a secret: tokens are stored only hashed.
func (db *DB) ListTokens(ctx context.Context, login string) ([]TokenInfo, error) {
	return listTokens(ctx, db.read, login)
}

// ListTokens is DB.ListTokens on the store's database: the server's own
// listing (token admin, the dev-token checks), through the read pool.
func (s *Store) ListTokens(ctx context.Context, login string) ([]TokenInfo, error) {
	return s.db.ListTokens(ctx, login)
}

// UserInfo is a stored user (the etcd store's user reads return it).
type UserInfo struct {
	ID        int64  // the store's user number
	UID       string // the stable user id (identity.go)
	Login     string
	GitHubID  int64 // 0 for local users (static, dev, cli)
	AvatarURL string
}

// inTx runs fn in one write transaction that also bumps the auth epoch.
func (db *DB) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := BumpAuthEpoch(ctx, tx); err != nil {
		tx.Rollback()
		return fmt.Errorf("bump auth epoch: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// CreateToken creates a local user (if needed) and a new token for it, out of
// process (`octostore token create`). It returns the raw token, which is not
// stored anywhere: show it once.
func (db *DB) CreateToken(ctx context.Context, login, source string, now time.Time) (string, TokenInfo, error) {
	raw := NewToken()
	h := HashToken(raw)
	m := IssueToken{Login: login, Hash: h, Source: source, Now: now}
	if err := db.inTx(ctx, func(tx *sql.Tx) error { return applyIssueToken(ctx, tx, m) }); err != nil {
		return "", TokenInfo{}, fmt.Errorf("create token: %w", err)
	}
	return raw, TokenInfo{Login: login, Source: source, CreatedAt: now, Hash: h}, nil
}

// RevokeSelector chooses the tokens RevokeTokens deletes: exactly one of
// Fingerprint (a prefix of at least FingerprintLen hex digits of the hash) or
// Login. With Login, the user must have exactly one token unless All is set.
type RevokeSelector struct {
	Fingerprint string
	Login       string
	All         bool
}

// Check validates the selector's form: ErrBadSelector (CodeInvalid) names
// what is wrong.
func (sel RevokeSelector) Check() error {
	_, err := sel.fingerprint()
	return err
}

// fingerprint is the selector's fingerprint, lower case, once the
// selector's form is checked.
func (sel RevokeSelector) fingerprint() (string, error) {
	fp := strings.ToLower(strings.TrimSpace(sel.Fingerprint))
	switch {
	case (fp == "") == (sel.Login == ""):
		return "", fmt.Errorf("%w: give either a fingerprint or a login", ErrBadSelector)
	case fp != "" && (len(fp) < FingerprintLen || len(fp) > 64 || !isHex(fp)):
		return "", fmt.Errorf("%w: a fingerprint is %d to 64 hex digits", ErrBadSelector, FingerprintLen)
	case fp != "" && sel.All:
		return "", fmt.Errorf("%w: all goes with a login, not a fingerprint", ErrBadSelector)
	}
	return fp, nil
}

// Match picks from all (everyone's tokens, or at least the selected
// login's) the tokens sel selects. ErrBadSelector for a malformed
// selector; ErrTokenNotFound when nothing matches; ErrTokenAmbiguous when a
// fingerprint, or a login without All, matches several tokens. Both stores'
// revocations use it, so they select alike.
func (sel RevokeSelector) Match(all []TokenInfo) ([]TokenInfo, error) {
	fp, err := sel.fingerprint()
	if err != nil {
		return nil, err
	}
	var victims []TokenInfo
	for _, t := range all {
		if sel.Login != "" && t.Login != sel.Login {
			continue
		}
		if fp == "" || strings.HasPrefix(hex.EncodeToString(t.Hash[:]), fp) {
			victims = append(victims, t)
		}
	}
	switch {
	case len(victims) == 0:
		return nil, ErrTokenNotFound
	case len(victims) > 1 && !sel.All:
		return nil, fmt.Errorf("%w: %s", ErrTokenAmbiguous, describe(victims))
	}
	return victims, nil
}

// RevokeTokens deletes the selected tokens out of process (`octostore token
// revoke`) and returns what it deleted. ErrTokenNotFound when nothing
// matches; ErrTokenAmbiguous (nothing deleted) when a fingerprint or a login
// without All matches several tokens.
func (db *DB) RevokeTokens(ctx context.Context, sel RevokeSelector) ([]TokenInfo, error) {
	if err := sel.Check(); err != nil {
		return nil, err
	}
	var victims []TokenInfo
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		all, err := listTokens(ctx, tx, sel.Login)
		if err != nil {
			return err
		}
		if victims, err = sel.Match(all); err != nil {
			return err
		}
		return deleteTokens(ctx, tx, victims)
	})
	if err != nil {
		return nil, err
	}
	return victims, nil
}

func deleteTokens(ctx context.Context, tx *sql.Tx, ts []TokenInfo) error {
	for _, t := range ts {
		if _, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE hash = ?`, t.Hash[:]); err != nil {
			return fmt.Errorf("delete token: %w", err)
		}
	}
	return nil
}

// CreateToken creates a local user called login if no account has that
// login, and a new token of source for the account that has it, through
// the server's writer (the API's token administration: POST
// /admin/tokens); DB.CreateToken is the same beside a running server. The
// raw token is returned once and stored only hashed.
func (s *Store) CreateToken(login, source string) (string, TokenInfo, error) {
	raw := NewToken()
	h := HashToken(raw)
	now := fromMS(s.db.Now().UnixMilli()) // as stored and listed
	if err := s.Apply(IssueToken{Login: login, Hash: h, Source: source, Now: now}); err != nil {
		return "", TokenInfo{}, fmt.Errorf("create token: %w", err)
	}
	return raw, TokenInfo{Login: login, Source: source, CreatedAt: now, Hash: h}, nil
}

// RevokeTokens deletes the tokens sel selects in one transaction of the
// server's writer (the API's token administration: POST
// /admin/tokens/revoke) and returns them, with the errors of
// DB.RevokeTokens: ErrBadSelector, ErrTokenNotFound, ErrTokenAmbiguous
// (nothing deleted). ctx bounds the wait for the commit (the revocation
// may still commit after it ends). The caller drops the tokens from its
// cache.
func (s *Store) RevokeTokens(ctx context.Context, sel RevokeSelector) ([]TokenInfo, error) {
	if err := sel.Check(); err != nil {
		return nil, err
	}
	m := &revokeSelected{sel: sel}
	if err := AwaitCommit(ctx, s.Enqueue, m); err != nil {
		return nil, err
	}
	if m.refused != nil {
		return nil, m.refused
	}
	return m.victims, nil
}

// revokeSelected is the mutation of Store.RevokeTokens. The writer fills
// in refused or victims inside the transaction (each application starts
// afresh); RevokeTokens reads them after the commit callback.
type revokeSelected struct {
	sel     RevokeSelector
	refused error // nothing matched, or too much: nothing was deleted
	victims []TokenInfo
}

// Table implements actors.Mutation.
func (*revokeSelected) Table() string { return "tokens" }

// ApplyTo implements actors.Mutation. A refusal is not an error of the
// batch (it would fail every other write in it): it is recorded in m.
func (m *revokeSelected) ApplyTo(w actors.MutationWriter) error {
	m.refused, m.victims = nil, nil
	b, err := sqliteTx(w)
	if err != nil {
		return err
	}
	all, err := listTokens(b.ctx, b.tx, m.sel.Login)
	if err != nil {
		return err
	}
	victims, err := m.sel.Match(all)
	if err != nil {
		m.refused = err
		return nil
	}
	if err := deleteTokens(b.ctx, b.tx, victims); err != nil {
		return err
	}
	m.victims = victims
	return nil
}

func describe(ts []TokenInfo) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = t.Fingerprint() + " (" + t.Login + ", " + t.Source + ")"
	}
	return strings.Join(parts, ", ")
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
