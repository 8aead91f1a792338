package etcdstore

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/persistence"
)

// This file is what the HTTP server needs of the store besides the actors'
// interfaces (httpd.Storage): rotation, revocation and sign-in, as
// persistence.Store does them on SQLite, each one transaction of the
// leader's writer.

// Rotate replaces the token with hash old by a new token of the same user
// and source, in one transaction, and returns the new token (shown once,
// stored hashed) and its hash; persistence.ErrTokenGone when old no longer
// exists or is a static token (as persistence.Store.Rotate).
func (s *Store) Rotate(old [32]byte) (raw string, hash [32]byte, err error) {
	raw = persistence.NewToken()
	hash = persistence.HashToken(raw)
	if err := s.Apply(persistence.RotateToken{Old: old, New: hash, Now: s.now()}); err != nil {
		return "", hash, err
	}
	if _, found, err := s.LookupToken(hash); err != nil {
		return "", hash, err
	} else if !found {
		return "", hash, persistence.ErrTokenGone
	}
	return raw, hash, nil
}

// Revoke deletes the token with hash h (nothing if it is already gone).
func (s *Store) Revoke(h [32]byte) error { return s.Apply(persistence.RevokeToken{Hash: h}) }

// CreateToken creates a local user called login if no account has that
// login, and a new token of source for the account that has it, in one
// transaction of the writer (as persistence.Store.CreateToken: the API's
// token administration). The raw token is returned once; etcd holds only
// its hash.
func (s *Store) CreateToken(login, source string) (string, persistence.TokenInfo, error) {
	raw := persistence.NewToken()
	h := persistence.HashToken(raw)
	now := fromMS(ms(s.now())) // as stored and listed
	if err := s.Apply(persistence.IssueToken{Login: login, Hash: h, Source: source, Now: now}); err != nil {
		return "", persistence.TokenInfo{}, fmt.Errorf("create token: %w", err)
	}
	return raw, persistence.TokenInfo{Login: login, Source: source, CreatedAt: now, Hash: h}, nil
}

// RevokeTokens deletes the tokens sel selects in one transaction of the
// writer, which reads the users and tokens it selects from (so nothing
// changes them in between), and returns them; the errors are
// persistence.Store.RevokeTokens': ErrBadSelector, ErrTokenNotFound,
// ErrTokenAmbiguous (nothing deleted). ctx bounds the wait for the commit.
func (s *Store) RevokeTokens(ctx context.Context, sel persistence.RevokeSelector) ([]persistence.TokenInfo, error) {
	if err := sel.Check(); err != nil {
		return nil, err
	}
	m := &revokeTokens{sel: sel}
	if err := persistence.AwaitCommit(ctx, s.Enqueue, m); err != nil {
		return nil, err
	}
	if m.refused != nil {
		return nil, m.refused
	}
	return m.victims, nil
}

// revokeTokens is RevokeTokens' mutation. The writer goroutine fills in
// refused or victims while translating it (each translation starts
// afresh); RevokeTokens reads them after the commit callback.
type revokeTokens struct {
	sel     persistence.RevokeSelector
	refused error
	victims []persistence.TokenInfo
}

// Table implements actors.Mutation.
func (*revokeTokens) Table() string { return "tokens" }

// ApplyTo implements actors.Mutation: only the etcd writer applies it
// (translate).
func (*revokeTokens) ApplyTo(actors.MutationWriter) error {
	return fmt.Errorf("%w: an etcd token revocation applies only to the etcd store", errUnknownMutation)
}

// revokeParts translates m into one part: the selected tokens' deletes.
func revokeParts(r *txnReader, m *revokeTokens) ([]part, error) {
	m.refused, m.victims = nil, nil
	ks := r.ks
	users, err := r.list(ks.users())
	if err != nil {
		return nil, err
	}
	logins := make(map[int64]string, len(users))
	for k, v := range users {
		if v == nil {
			continue // deleted in this transaction
		}
		id, err := strconv.ParseInt(k[len(ks.users()):], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("user key %q: %w", k, err)
		}
		var u userValue
		if err := decodeJSON("user", v, &u); err != nil {
			return nil, err
		}
		logins[id] = u.Login
	}
	toks, err := r.list(ks.tokens())
	if err != nil {
		return nil, err
	}
	var all []persistence.TokenInfo
	for k, v := range toks {
		if v == nil {
			continue
		}
		var t tokenValue
		if err := decodeJSON("token", v, &t); err != nil {
			return nil, err
		}
		login, ok := logins[t.UserID]
		if !ok || m.sel.Login != "" && login != m.sel.Login {
			continue
		}
		h, err := tokenHash(k, ks.tokens())
		if err != nil {
			return nil, err
		}
		all = append(all, persistence.TokenInfo{Login: login, Source: t.Source, CreatedAt: fromMS(t.CreatedAt), Hash: h})
	}
	sortTokens(all)
	victims, err := m.sel.Match(all)
	if err != nil {
		m.refused = err
		return nil, nil
	}
	var p part
	for _, t := range victims {
		p = append(p, del(ks.token(t.Hash)))
	}
	m.victims = victims
	return []part{p}, nil
}

// SignIn creates or updates the user of a GitHub account and issues a new
// sign-in token, in one transaction of the writer, with the policy of
// persistence.Store.SignIn: a login that belongs to another account is
// refused (CodeConflict, nothing written); the user is found by GitHub id,
// so a renamed account keeps its user and tokens; the user keeps at most
// maxTokens (<= 0: 50) sign-in tokens, the oldest beyond it revoked. The
// reads and the writes are one transaction on the single writer, so two
// sign-ins can never both pass the login check. ctx bounds the wait.
func (s *Store) SignIn(ctx context.Context, u persistence.GitHubUser, maxTokens int) (persistence.SignInResult, error) {
	if maxTokens <= 0 {
		maxTokens = 50
	}
	m := &signIn{user: u, max: maxTokens, now: s.now()}
	m.result.Token = persistence.NewToken()
	m.result.Hash = persistence.HashToken(m.result.Token)
	if err := persistence.AwaitCommit(ctx, s.Enqueue, m); err != nil {
		return persistence.SignInResult{}, err
	}
	if m.refused != nil {
		return persistence.SignInResult{}, m.refused
	}
	return m.result, nil
}

// signIn is SignIn's mutation. The writer goroutine fills in refused or
// result while translating it; SignIn reads them after the commit callback.
type signIn struct {
	user    persistence.GitHubUser
	max     int
	now     time.Time
	refused error
	result  persistence.SignInResult
}

// Table implements actors.Mutation.
func (*signIn) Table() string { return "users" }

// ApplyTo implements actors.Mutation: only the etcd writer applies a
// sign-in (translate).
func (*signIn) ApplyTo(actors.MutationWriter) error {
	return fmt.Errorf("%w: an etcd sign-in applies only to the etcd store", errUnknownMutation)
}

// signInParts translates m into one part (one transaction).
func signInParts(r *txnReader, m *signIn) ([]part, error) {
	ks, u := r.ks, m.user
	id, lu, found, err := userByLogin(r, u.Login)
	if err != nil {
		return nil, err
	}
	if found && lu.GitHubID != u.ID {
		m.refused = actors.Errorf(actors.CodeConflict,
			"the login %q is already used by another account on this server; ask the operator", u.Login)
		return nil, nil
	}
	gid, gu, gfound, err := userByGitHub(r, u.ID)
	if err != nil {
		return nil, err
	}
	var p part
	if gfound {
		id = gid
		if gu.Login != u.Login {
			m.result.RenamedFrom = gu.Login
			p = append(p, del(ks.userLogin(gu.Login)), put(ks.userLogin(u.Login), []byte(strconv.FormatInt(id, 10))))
		}
		gu.Login, gu.AvatarURL = u.Login, u.AvatarURL
		p = append(p, put(ks.user(id), mustJSON(gu)))
	} else {
		var np part
		if id, np, err = newUser(r, userValue{Login: u.Login, GitHubID: u.ID, AvatarURL: u.AvatarURL, CreatedAt: ms(m.now)}); err != nil {
			return nil, err
		}
		p = append(p, np...)
	}
	// The user's tokens, oldest first (as persistence's listTokens).
	all, err := r.list(ks.tokens())
	if err != nil {
		return nil, err
	}
	var toks []persistence.TokenInfo
	for k, v := range all {
		if v == nil {
			continue // deleted in this transaction
		}
		var t tokenValue
		if err := decodeJSON("token", v, &t); err != nil {
			return nil, err
		}
		if t.UserID != id {
			continue
		}
		h, err := tokenHash(k, ks.tokens())
		if err != nil {
			return nil, err
		}
		toks = append(toks, persistence.TokenInfo{Login: u.Login, Source: t.Source, CreatedAt: fromMS(t.CreatedAt), Hash: h})
	}
	sort.Slice(toks, func(i, j int) bool {
		if !toks[i].CreatedAt.Equal(toks[j].CreatedAt) {
			return toks[i].CreatedAt.Before(toks[j].CreatedAt)
		}
		return bytes.Compare(toks[i].Hash[:], toks[j].Hash[:]) < 0
	})
	// Keep max-1 of the existing sign-in tokens, so that with the new one
	// there are max.
	var oauth []persistence.TokenInfo
	for _, t := range toks {
		if t.Source == persistence.SourceOAuth {
			oauth = append(oauth, t)
		}
	}
	for i := 0; i <= len(oauth)-m.max; i++ {
		p = append(p, del(ks.token(oauth[i].Hash)))
		m.result.Revoked = append(m.result.Revoked, oauth[i])
		m.result.Stale = append(m.result.Stale, oauth[i].Hash)
	}
	if m.result.RenamedFrom != "" {
		for _, t := range toks {
			m.result.Stale = append(m.result.Stale, t.Hash)
		}
	}
	p = append(p, put(ks.token(m.result.Hash), mustJSON(tokenValue{UserID: id, Source: persistence.SourceOAuth, CreatedAt: ms(m.now)})))
	return []part{p}, nil
}
