package etcdstore

import (
	"container/heap"
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/persistence"
)

// This file reads users and tokens, as persistence's tokens.go and
// tokens_admin.go read them from SQLite. Tokens are stored only as their
// SHA-256 (the key); nothing here ever sees a raw token.

// LookupToken finds the user a token hash belongs to.
func (r *Reader) LookupToken(hash [32]byte) (persistence.Principal, bool, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	var p persistence.Principal
	key := r.ks.token(hash)
	b, err := r.get(ctx, key)
	if err == nil && b == nil && len(r.opts) > 0 {
		// A serializable read of this node's member may lag the leader by
		// the token just issued (a sign-in answered a moment ago): an
		// unknown token is looked up again, linearizably, before it is
		// refused. It needs the quorum (an error without one: 503).
		b, err = r.getLinearizable(ctx, key)
	}
	if err != nil {
		return p, false, fmt.Errorf("lookup token: %w", err)
	}
	if b == nil {
		return p, false, nil
	}
	var t tokenValue
	if err := decodeJSON("token", b, &t); err != nil {
		return p, false, fmt.Errorf("lookup token: %w", err)
	}
	u, ok, err := r.user(ctx, t.UserID)
	if err != nil || !ok {
		return p, false, err // a token of a deleted user authenticates no one
	}
	return persistence.Principal{UserID: t.UserID, ID: persistence.UserUID(t.UserID, u.GitHubID), Login: u.Login, Source: t.Source}, true, nil
}

func (r *Reader) user(ctx context.Context, id int64) (userValue, bool, error) {
	var u userValue
	b, err := r.get(ctx, r.ks.user(id))
	if err != nil {
		return u, false, fmt.Errorf("read user %d: %w", id, err)
	}
	if b == nil {
		return u, false, nil
	}
	return u, true, decodeJSON("user", b, &u)
}

// CountTokens counts stored tokens (all sources).
func (r *Reader) CountTokens() (int, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	p := r.ks.tokens()
	resp, err := r.kv.Get(ctx, p, append([]clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithCountOnly()}, r.opts...)...)
	if err != nil {
		return 0, fmt.Errorf("count tokens: %w", err)
	}
	return int(resp.Count), nil
}

// AuthEpoch is bumped by token changes made outside the leader's writer;
// servers poll it to drop their token caches. 0 until first bumped.
func (r *Reader) AuthEpoch() (int64, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	b, err := r.get(ctx, r.ks.authEpoch())
	if err != nil {
		return 0, fmt.Errorf("read auth epoch: %w", err)
	}
	if b == nil {
		return 0, nil
	}
	return strconv.ParseInt(string(b), 10, 64)
}

// ListTokens lists the stored tokens (of login, or all when login is
// empty), oldest first, as persistence.DB.ListTokens. It never returns a
// secret: tokens are stored only hashed.
func (r *Reader) ListTokens(ctx context.Context, login string) ([]persistence.TokenInfo, error) {
	logins := map[int64]string{}
	if err := r.scan(ctx, r.ks.users(), false, func(k string, v []byte) error {
		id, err := strconv.ParseInt(strings.TrimPrefix(k, r.ks.users()), 10, 64)
		if err != nil {
			return fmt.Errorf("user key %q: %w", k, err)
		}
		var u userValue
		if err := decodeJSON("user", v, &u); err != nil {
			return err
		}
		logins[id] = u.Login
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	var out []persistence.TokenInfo
	if err := r.scan(ctx, r.ks.tokens(), false, func(k string, v []byte) error {
		var t tokenValue
		if err := decodeJSON("token", v, &t); err != nil {
			return err
		}
		l, ok := logins[t.UserID]
		if !ok || login != "" && l != login {
			return nil
		}
		h, err := tokenHash(k, r.ks.tokens())
		if err != nil {
			return err
		}
		out = append(out, persistence.TokenInfo{Login: l, Source: t.Source, CreatedAt: fromMS(t.CreatedAt), Hash: h})
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	sortTokens(out)
	return out, nil
}

// sortTokens orders tokens as persistence lists them: oldest first, then
// by hash (persistence.TokenPosition).
func sortTokens(ts []persistence.TokenInfo) { persistence.SortTokens(ts) }

// ListTokensPage reads one page of the token listing, as
// persistence.Store.ListTokensPage: the tokens of q.Login (every login's
// when empty) after q.After, oldest first then by hash, at most q.Limit,
// with the count of the whole listing. Token keys are ordered by hash, not
// by age, so the page is chosen in one scan of the token keys (one
// revision, scanPage keys at a time) that keeps only the q.Limit+1 first
// positions after q.After in a bounded heap: memory is one page, never
// every token. Only the page's users are read for their logins; a token
// whose user record is gone (none should be: a user's tokens go with it)
// is left out of the page.
func (r *Reader) ListTokensPage(ctx context.Context, q persistence.TokenPageQuery) (actors.Page[persistence.TokenInfo], error) {
	var pg actors.Page[persistence.TokenInfo]
	if q.Limit < 1 {
		return pg, fmt.Errorf("list tokens: page limit %d", q.Limit)
	}
	only := int64(-1)
	if q.Login != "" {
		u, ok, err := r.UserByLogin(ctx, q.Login)
		if err != nil {
			return pg, fmt.Errorf("list tokens: %w", err)
		}
		if !ok {
			return pg, nil
		}
		only = u.ID
	}
	page := &tokenHeap{}
	base := r.ks.tokens()
	err := r.scan(ctx, base, false, func(k string, v []byte) error {
		var t tokenValue
		if err := decodeJSON("token", v, &t); err != nil {
			return err
		}
		if only >= 0 && t.UserID != only {
			return nil
		}
		h, err := tokenHash(k, base)
		if err != nil {
			return err
		}
		pg.Total++
		ti := persistence.TokenInfo{Source: t.Source, CreatedAt: fromMS(t.CreatedAt), Hash: h}
		if q.After != nil && !q.After.Before(ti.Position()) {
			return nil
		}
		page.offer(tokenEntry{ti, t.UserID}, q.Limit+1)
		return nil
	})
	if err != nil {
		return pg, fmt.Errorf("list tokens: %w", err)
	}
	items := page.sorted()
	if len(items) > q.Limit {
		items, pg.More = items[:q.Limit], true
	}
	logins := map[int64]string{}
	for _, e := range items {
		l, seen := logins[e.user]
		if !seen {
			u, ok, err := r.user(ctx, e.user)
			if err != nil {
				return pg, fmt.Errorf("list tokens: %w", err)
			}
			if ok {
				l = u.Login
			}
			logins[e.user] = l
		}
		if l == "" {
			continue
		}
		e.info.Login = l
		pg.Items = append(pg.Items, e.info)
	}
	return pg, nil
}

// tokenEntry is a token of a page being chosen, with its user id.
type tokenEntry struct {
	info persistence.TokenInfo
	user int64
}

// tokenHeap keeps the first tokens in listing order: a max-heap on the
// position, so that the last of those kept is the one a better token
// replaces.
type tokenHeap []tokenEntry

func (h tokenHeap) Len() int           { return len(h) }
func (h tokenHeap) Less(i, j int) bool { return h[j].info.Position().Before(h[i].info.Position()) }
func (h tokenHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *tokenHeap) Push(x any)        { *h = append(*h, x.(tokenEntry)) }
func (h *tokenHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// offer keeps e if it is among the first n tokens offered.
func (h *tokenHeap) offer(e tokenEntry, n int) {
	if h.Len() < n {
		heap.Push(h, e)
		return
	}
	if e.info.Position().Before((*h)[0].info.Position()) {
		(*h)[0] = e
		heap.Fix(h, 0)
	}
}

// sorted returns the tokens kept, in listing order.
func (h tokenHeap) sorted() []tokenEntry {
	out := []tokenEntry(h)
	sort.Slice(out, func(i, j int) bool { return out[i].info.Position().Before(out[j].info.Position()) })
	return out
}

// UserByLogin finds a user by login.
func (r *Reader) UserByLogin(ctx context.Context, login string) (persistence.UserInfo, bool, error) {
	return r.userBy(ctx, r.ks.userLogin(login), "user "+strconv.Quote(login))
}

// UserByGitHubID finds a user by GitHub id.
func (r *Reader) UserByGitHubID(ctx context.Context, id int64) (persistence.UserInfo, bool, error) {
	return r.userBy(ctx, r.ks.userGitHub(id), fmt.Sprint("GitHub user ", id))
}

func (r *Reader) userBy(ctx context.Context, indexKey, what string) (persistence.UserInfo, bool, error) {
	var out persistence.UserInfo
	b, err := r.get(ctx, indexKey)
	if err != nil {
		return out, false, fmt.Errorf("find %s: %w", what, err)
	}
	if b == nil {
		return out, false, nil
	}
	id, err := decodeID(what, b)
	if err != nil {
		return out, false, err
	}
	u, ok, err := r.user(ctx, id)
	if err != nil || !ok {
		return out, false, err
	}
	return persistence.UserInfo{ID: id, UID: persistence.UserUID(id, u.GitHubID), Login: u.Login, GitHubID: u.GitHubID, AvatarURL: u.AvatarURL}, true, nil
}

// UserByUID finds the account with user id uid (persistence/identity.go):
// gh:N through the GitHub index, u:N by its key. An orphan or malformed id
// finds none, and so does u:N of a GitHub account.
func (r *Reader) UserByUID(ctx context.Context, uid string) (persistence.UserInfo, bool, error) {
	gh, local, ok := persistence.ParseUID(uid)
	switch {
	case !ok:
		return persistence.UserInfo{}, false, nil
	case gh != 0:
		return r.UserByGitHubID(ctx, gh)
	}
	u, found, err := r.user(ctx, local)
	if err != nil || !found || u.GitHubID != 0 {
		return persistence.UserInfo{}, false, err
	}
	return persistence.UserInfo{ID: local, UID: uid, Login: u.Login, AvatarURL: u.AvatarURL}, true, nil
}
