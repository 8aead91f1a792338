package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/persistence"
)

// This file translates each mutation into the etcd writes that apply it, as
// persistence's writer.go, resources.go and tokens.go apply them to SQLite.
// Most translations are pure. The token mutations read what they update
// (users, the token being rotated, the static tokens): reads go through a
// txnReader, which sees etcd as of the last committed transaction plus the
// writes of the transactions in flight and of the one being built. The writer is the only writer of
// the keyspace while its term lasts, so nothing else changes what it read
// before its transaction commits; a write it computed under a term that has
// ended fails the transaction's guard.

// txnReader reads for translations.
type txnReader struct {
	ctx context.Context
	kv  clientv3.KV
	ks  keyspace
	b   *txnBuilder
	// pending are the transactions in flight, oldest first: the one being
	// built commits only after them (or not at all), so it reads etcd
	// through their writes.
	pending []*txnBuilder
	// local holds the point writes of the parts the current translation has
	// produced so far (not in b yet): nil value = deleted.
	local map[string][]byte
}

// note makes p's point writes visible to the rest of the translation.
func (r *txnReader) note(p part) {
	if r.local == nil {
		r.local = map[string][]byte{}
	}
	for _, o := range p {
		switch o.kind {
		case opPut:
			r.local[o.key] = o.val
		case opDelete:
			r.local[o.key] = nil
		}
	}
}

// get reads key: nil when absent.
func (r *txnReader) get(key string) ([]byte, error) {
	if v, ok := r.local[key]; ok {
		return v, nil
	}
	if v, found := r.b.lookup(key); found {
		return v, nil
	}
	for i := len(r.pending) - 1; i >= 0; i-- {
		if v, found := r.pending[i].lookup(key); found {
			return v, nil
		}
	}
	resp, err := r.kv.Get(r.ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return resp.Kvs[0].Value, nil
}

// list reads every key under prefix.
func (r *txnReader) list(prefix string) (map[string][]byte, error) {
	kvs := map[string][]byte{}
	if err := scan(r.ctx, r.kv, prefix, false, func(k string, v []byte) error {
		kvs[k] = v
		return nil
	}); err != nil {
		return nil, err
	}
	for _, p := range r.pending {
		p.overlay(prefix, prefixEnd(prefix), kvs)
	}
	r.b.overlay(prefix, prefixEnd(prefix), kvs)
	return kvs, nil
}

// translate returns the parts that apply m. A PutLimits gives one part per
// row (rows are independent, and a flush may hold more rows than a Txn
// can); SyncStaticTokens one per token added or removed; every other
// mutation exactly one. The kinds' mutations translate themselves through
// the translator (their ApplyTo); persistence's token mutations are
// translated here.
func translate(r *txnReader, m actors.Mutation) ([]part, error) {
	switch m := m.(type) {
	case nil:
		return nil, nil // a barrier: resolves in order, writes nothing
	case persistence.IssueToken:
		p, err := issueToken(r, m)
		if err != nil {
			return nil, err
		}
		return []part{p}, nil
	case persistence.RevokeToken:
		return []part{{del(r.ks.token(m.Hash))}}, nil
	case persistence.RotateToken:
		return rotateToken(r, m)
	case persistence.SyncStaticTokens:
		return syncStatic(r, m)
	case *signIn:
		return signInParts(r, m)
	case *revokeTokens:
		return revokeParts(r, m)
	}
	t := &translator{ks: r.ks}
	if err := m.ApplyTo(t); err != nil {
		return nil, fmt.Errorf("%w: %T: %v", errUnknownMutation, m, err)
	}
	return t.parts, nil
}

// translator implements actors.MutationWriter: each method translates one
// durable change of the kinds into the etcd writes that apply it.
type translator struct {
	ks    keyspace
	parts []part
}

var _ actors.MutationWriter = (*translator)(nil)

func (t *translator) add(p part) error {
	t.parts = append(t.parts, p)
	return nil
}

// PutLock implements actors.MutationWriter.
func (t *translator) PutLock(l actors.LockRecord) error {
	return t.add(part{put(t.ks.lock(l.Name), encodeLock(l))})
}

// PutLimits implements actors.MutationWriter: one part per row.
func (t *translator) PutLimits(rows []actors.LimitRow) error {
	for _, row := range rows {
		t.add(part{put(t.ks.limit(row.Owner, row.Name), encodeLimit(row))})
	}
	return nil
}

// RemoveLimit implements actors.MutationWriter.
func (t *translator) RemoveLimit(owner, name string) error {
	return t.add(part{del(t.ks.limit(owner, name))})
}

// PutFlag implements actors.MutationWriter.
func (t *translator) PutFlag(f actors.FlagRecord) error {
	return t.add(part{put(t.ks.flag(f.Owner, f.Name), encodeFlag(f))})
}

// RemoveFlag implements actors.MutationWriter.
func (t *translator) RemoveFlag(owner, name string) error {
	return t.add(part{del(t.ks.flag(owner, name))})
}

// PutConfig implements actors.MutationWriter.
func (t *translator) PutConfig(c actors.ConfigRecord, keep int) error {
	ks := t.ks
	p := part{
		put(ks.configVersion(c.Owner, c.Key, c.Version), encodeConfigVersion(c)),
		put(ks.config(c.Owner, c.Key), encodeConfigHead(actors.ConfigRecord{Version: c.Version,
			Description: c.Description, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt})),
	}
	if keep > 0 && c.Version > int64(keep) {
		// Prune versions <= Version-keep: [version 0, version Version-keep+1).
		p = append(p, delRange(ks.configVersion(c.Owner, c.Key, 0),
			ks.configVersion(c.Owner, c.Key, c.Version-int64(keep)+1)))
	}
	return t.add(p)
}

// RemoveConfig implements actors.MutationWriter.
func (t *translator) RemoveConfig(owner, key string, version int64, at time.Time) error {
	vs := t.ks.configVersions(owner, key)
	return t.add(part{
		delRange(vs, prefixEnd(vs)),
		put(t.ks.config(owner, key), encodeConfigHead(actors.ConfigRecord{Version: version,
			UpdatedAt: at, Deleted: true})),
	})
}

// PutSession implements actors.MutationWriter.
func (t *translator) PutSession(r actors.SessionRecord) error {
	return t.add(part{put(t.ks.session(r.ID), encodeSession(r))})
}

// RemoveSession implements actors.MutationWriter.
func (t *translator) RemoveSession(id string) error {
	return t.add(part{del(t.ks.session(id))})
}

// PutSemaphore implements actors.MutationWriter: the head and the slot
// changes, in one part (one transaction).
func (t *translator) PutSemaphore(m actors.PutSemaphore) error {
	p := part{put(t.ks.semaphore(m.Name), mustJSON(semaphoreValue{Limit: m.Limit, Token: m.Token}))}
	for _, sl := range m.Put {
		p = append(p, put(t.ks.semSlot(m.Name, sl.LeaseID), encodeSlot(sl)))
	}
	for _, lease := range m.Remove {
		p = append(p, del(t.ks.semSlot(m.Name, lease)))
	}
	return t.add(p)
}

var errUnknownMutation = errors.New("etcdstore: unknown mutation")

// errLoginTaken refuses a GitHub user whose login belongs to another user
// (SQLite refuses it with its UNIQUE(login) constraint).
var errLoginTaken = errors.New("login belongs to another user")

// issueToken creates the user (by login, or by GitHub id when set: a GitHub
// user renamed keeps its id and tokens) if needed and stores the token.
func issueToken(r *txnReader, m persistence.IssueToken) (part, error) {
	ks := r.ks
	now := ms(m.Now)
	var p part
	id, _, found, err := userByLogin(r, m.Login)
	if err != nil {
		return nil, err
	}
	if m.GitHubID != 0 {
		gid, gu, gfound, err := userByGitHub(r, m.GitHubID)
		if err != nil {
			return nil, err
		}
		if found && (!gfound || gid != id) {
			return nil, fmt.Errorf("issue token: %w: %q", errLoginTaken, m.Login)
		}
		if gfound {
			if gu.Login != m.Login {
				p = append(p, del(ks.userLogin(gu.Login)), put(ks.userLogin(m.Login), []byte(strconv.FormatInt(gid, 10))))
			}
			gu.Login, gu.AvatarURL = m.Login, m.AvatarURL
			p = append(p, put(ks.user(gid), mustJSON(gu)))
			id, found = gid, true
		}
	}
	if !found {
		var np part
		if id, np, err = newUser(r, userValue{Login: m.Login, GitHubID: m.GitHubID, AvatarURL: m.AvatarURL, CreatedAt: now}); err != nil {
			return nil, err
		}
		p = append(p, np...)
	}
	tk := ks.token(m.Hash)
	old, err := r.get(tk)
	if err != nil {
		return nil, err
	}
	if old != nil {
		return nil, errors.New("issue token: the token exists already")
	}
	return append(p, put(tk, mustJSON(tokenValue{UserID: id, Source: m.Source, CreatedAt: now}))), nil
}

// newUser creates user u with the next id: the sequence, the record, its
// login index and (for a GitHub user) its GitHub index.
func newUser(r *txnReader, u userValue) (int64, part, error) {
	ks := r.ks
	seq, err := r.get(ks.userSeq())
	if err != nil {
		return 0, nil, err
	}
	var last int64
	if seq != nil {
		if last, err = decodeID("user sequence", seq); err != nil {
			return 0, nil, err
		}
	}
	id := last + 1
	sid := []byte(strconv.FormatInt(id, 10))
	p := part{put(ks.userSeq(), sid), put(ks.user(id), mustJSON(u)), put(ks.userLogin(u.Login), sid)}
	if u.GitHubID != 0 {
		p = append(p, put(ks.userGitHub(u.GitHubID), sid))
	}
	return id, p, nil
}

func userByLogin(r *txnReader, login string) (int64, userValue, bool, error) {
	b, err := r.get(r.ks.userLogin(login))
	if err != nil || b == nil {
		return 0, userValue{}, false, err
	}
	return userByIDBytes(r, "login "+login, b)
}

func userByGitHub(r *txnReader, gh int64) (int64, userValue, bool, error) {
	b, err := r.get(r.ks.userGitHub(gh))
	if err != nil || b == nil {
		return 0, userValue{}, false, err
	}
	return userByIDBytes(r, fmt.Sprint("GitHub id ", gh), b)
}

func userByIDBytes(r *txnReader, what string, b []byte) (int64, userValue, bool, error) {
	id, err := decodeID(what, b)
	if err != nil {
		return 0, userValue{}, false, err
	}
	ub, err := r.get(r.ks.user(id))
	if err != nil {
		return 0, userValue{}, false, err
	}
	if ub == nil {
		return 0, userValue{}, false, fmt.Errorf("%s: user %d is missing", what, id)
	}
	var u userValue
	if err := decodeJSON("user", ub, &u); err != nil {
		return 0, userValue{}, false, err
	}
	return id, u, true, nil
}

// rotateToken replaces Old by New for the same user and source; static
// tokens are never rotated, and an Old that no longer exists changes nothing.
func rotateToken(r *txnReader, m persistence.RotateToken) ([]part, error) {
	b, err := r.get(r.ks.token(m.Old))
	if err != nil || b == nil {
		return nil, err
	}
	var t tokenValue
	if err := decodeJSON("token", b, &t); err != nil {
		return nil, err
	}
	if t.Source == persistence.SourceStatic {
		return nil, nil
	}
	t.CreatedAt = ms(m.Now)
	return []part{{put(r.ks.token(m.New), mustJSON(t)), del(r.ks.token(m.Old))}}, nil
}

// syncStatic makes the static tokens exactly m.Tokens, users included: one
// part per token removed, added or moved to another login, so any number of
// them fits the transaction cap (the sync is idempotent: a partial one is
// completed at the next start). A moved token's key is overwritten by its
// new record (one Txn may not both delete and put a key).
func syncStatic(r *txnReader, m persistence.SyncStaticTokens) ([]part, error) {
	all, err := r.list(r.ks.tokens())
	if err != nil {
		return nil, err
	}
	have := map[[32]byte]string{} // hash → login now
	var parts []part
	var changes []persistence.StaticTokenChange
	for k, v := range all {
		var t tokenValue
		if err := decodeJSON("token", v, &t); err != nil {
			return nil, err
		}
		if t.Source != persistence.SourceStatic {
			continue
		}
		h, err := tokenHash(k, r.ks.tokens())
		if err != nil {
			return nil, err
		}
		ub, err := r.get(r.ks.user(t.UserID))
		if err != nil {
			return nil, err
		}
		var u userValue
		if ub != nil {
			if err := decodeJSON("user", ub, &u); err != nil {
				return nil, err
			}
		}
		have[h] = u.Login
		login, keep := m.Tokens[h]
		switch {
		case !keep:
			p := part{del(k)}
			r.note(p)
			parts = append(parts, p)
			changes = append(changes, persistence.StaticTokenChange{Fingerprint: persistence.Fingerprint(h), Previous: u.Login})
		case login != u.Login:
			r.note(part{del(k)}) // issueToken overwrites it below
		}
	}
	for _, t := range m.Ordered() {
		h, login := t.Hash, t.Login
		was, had := have[h]
		if had && was == login {
			continue
		}
		p, err := issueToken(r, persistence.IssueToken{Login: login, Hash: h, Source: persistence.SourceStatic, Now: m.Now})
		if err != nil {
			return nil, err
		}
		r.note(p) // the next token of a new login finds its user
		parts = append(parts, p)
		changes = append(changes, persistence.StaticTokenChange{Fingerprint: persistence.Fingerprint(h), Login: login, Previous: was})
	}
	if m.Changes != nil {
		persistence.SortStaticChanges(changes)
		*m.Changes = append(*m.Changes, changes...)
	}
	return parts, nil
}
