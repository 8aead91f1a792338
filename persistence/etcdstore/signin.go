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
	done := make(chan error, 1)
	if _, err := s.Enqueue(m, func(err error) { done <- err }); err != nil {
		return persistence.SignInResult{}, err
	}
	select {
	case err := <-done:
		if err == nil {
			err = m.refused
		}
		if err != nil {
			return persistence.SignInResult{}, err
		}
		return m.result, nil
	case <-ctx.Done():
		return persistence.SignInResult{}, ctx.Err()
	}
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
