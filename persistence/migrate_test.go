package persistence

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
)

// openAtVersion makes a database at path with the schema of the first n
// migrations only (as an octostore of that schema left it).
func openAtVersion(t *testing.T, path string, n int) *sql.DB {
	t.Helper()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	for _, m := range ms[:n] {
		if _, err := db.Exec(m.sql); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
	}
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", n)); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestMigrateToUserIDs: a database of schema 3 (owners and holders named by
// login) with rows in every table is migrated by 0004 (holder ids) and 0005 to stable user ids
// (issue 12, item 1): a GitHub user's resources to gh:<id>, a local user's
// to u:<n>, rows of a login that no account has any more (a GitHub user
// renamed before the upgrade) to orphan:<login>, never to whoever holds that
// login next. Tokens keep authenticating their users, and the loaders find
// each resource under its owner's id.
func TestMigrateToUserIDs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v3.db")
	old := openAtVersion(t, path, 3)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	t0, later := now.UnixMilli(), now.Add(time.Hour).UnixMilli()
	tokAlice, tokOcto := HashToken("alice-token"), HashToken("octo-token")
	for _, q := range []struct {
		sql  string
		args []any
	}{
		// users: a local user (alice, id 1) and a GitHub user renamed from
		// gh1 to gh1-renamed (id 2, GitHub id 3001); nobody has gh1 now.
		{`INSERT INTO users(id, login, github_id, avatar_url, created_at) VALUES(1, 'alice', NULL, '', ?)`, []any{t0}},
		{`INSERT INTO users(id, login, github_id, avatar_url, created_at) VALUES(2, 'gh1-renamed', 3001, 'https://a/1', ?)`, []any{t0}},
		{`INSERT INTO tokens(hash, user_id, source, created_at) VALUES(?, 1, 'static', ?)`, []any{tokAlice[:], t0}},
		{`INSERT INTO tokens(hash, user_id, source, created_at) VALUES(?, 2, 'oauth', ?)`, []any{tokOcto[:], t0}},
		{`UPDATE meta SET value = '5' WHERE key = 'auth_epoch'`, nil},
		// locks: held by alice, held under the old login gh1, free.
		{`INSERT INTO locks VALUES('a-lock', 'alice', 'lease-a', 3, ?, ?)`, []any{later, t0}},
		{`INSERT INTO locks VALUES('old-lock', 'gh1', 'lease-o', 9, ?, ?)`, []any{later, t0}},
		{`INSERT INTO locks VALUES('free-lock', '', '', 4, 0, 0)`, nil},
		// the lock journal, not folded yet: a newer grant to gh1-renamed.
		{`INSERT INTO lock_log(name, holder, lease_id, fencing_token, expires_at, acquired_at) VALUES('j-lock', 'gh1-renamed', 'lease-j', 2, ?, ?)`, []any{later, t0}},
		{`INSERT INTO lock_log(name, holder, lease_id, fencing_token, expires_at, acquired_at) VALUES('free-lock', '', '', 4, 0, 0)`, nil},
		// resources of alice, of the renamed user under its new login, and
		// of the old login gh1.
		{`INSERT INTO limits VALUES('alice', 'api', 10, 60, x'', ?)`, []any{t0}},
		{`INSERT INTO limits VALUES('gh1', 'api', 5, 1, x'', ?)`, []any{t0}},
		{`INSERT INTO flags VALUES('alice', 'beta', 1, 30, ?, ?)`, []any{t0, t0}},
		{`INSERT INTO flags VALUES('gh1-renamed', 'beta', 0, NULL, ?, ?)`, []any{t0, t0}},
		{`INSERT INTO flags VALUES('gh1', 'beta', 1, NULL, ?, ?)`, []any{t0, t0}},
		{`INSERT INTO config_keys VALUES('gh1', 'db', 2, 'old', ?, ?, 0)`, []any{t0, t0}},
		{`INSERT INTO config_versions(owner, key, version, value, description, created_at) VALUES('gh1', 'db', 1, '1', '', ?)`, []any{t0}},
		{`INSERT INTO config_versions(owner, key, version, value, description, created_at) VALUES('gh1', 'db', 2, '{"v":2}', 'old', ?)`, []any{t0}},
		{`INSERT INTO config_keys VALUES('alice', 'db', 1, '', ?, ?, 0)`, []any{t0, t0}},
		{`INSERT INTO config_versions(owner, key, version, value, description, created_at) VALUES('alice', 'db', 1, '"a"', '', ?)`, []any{t0}},
	} {
		if _, err := old.Exec(q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	old.Close()

	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var v int
	if err := db.write.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != SchemaVersion() {
		t.Fatalf("schema version %d %v, want %d", v, err, SchemaVersion())
	}
	w, err := NewWriter(db, WriterOptions{}) // folds the journal
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore(db, w)
	defer func() { s.Close(); db.Close() }()

	// Tokens still authenticate their users, now with their ids.
	for h, want := range map[[32]byte]Principal{
		tokAlice: {UserID: 1, ID: "u:1", Login: "alice", Source: SourceStatic},
		tokOcto:  {UserID: 2, ID: "gh:3001", Login: "gh1-renamed", Source: SourceOAuth},
	} {
		if p, ok, err := s.LookupToken(h); err != nil || !ok || p != want {
			t.Fatalf("token of %s: %+v %v %v, want %+v", want.Login, p, ok, err, want)
		}
	}
	if ep, err := s.AuthEpoch(); err != nil || ep != 5 {
		t.Fatalf("auth epoch %d %v, want 5 (kept)", ep, err)
	}
	// Every owner and holder column names an id; no login is left.
	for table, col := range map[string]string{"limits": "owner", "flags": "owner", "config_keys": "owner",
		"config_versions": "owner", "locks": "holder", "lock_log": "holder"} {
		var n int
		if err := db.read.QueryRow(`SELECT count(*) FROM ` + table + ` WHERE ` + col + ` <> '' AND ` + col +
			` NOT LIKE 'u:%' AND ` + col + ` NOT LIKE 'gh:%' AND ` + col + ` NOT LIKE 'orphan:%'`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("%s.%s: %d values that are not user ids (%v)", table, col, n, err)
		}
	}
	// The loaders find each resource under its owner's id.
	if _, ok, err := s.LoadLimit("u:1", "api"); err != nil || !ok {
		t.Fatalf("alice's limit: %v %v", ok, err)
	}
	if _, ok, err := s.LoadLimit("orphan:gh1", "api"); err != nil || !ok {
		t.Fatalf("the old login's limit: %v %v", ok, err)
	}
	for owner, enabled := range map[string]bool{"u:1": true, "gh:3001": false, "orphan:gh1": true} {
		if f, ok, err := s.LoadFlag(owner, "beta"); err != nil || !ok || f.Enabled != enabled {
			t.Fatalf("flag beta of %s: %+v %v %v", owner, f, ok, err)
		}
	}
	if c, ok, err := s.LoadConfig("orphan:gh1", "db"); err != nil || !ok || c.Version != 2 || string(c.Value) != `{"v":2}` {
		t.Fatalf("config db of the old login: %+v %v %v", c, ok, err)
	}
	if h, _, ok, err := s.ConfigHistory(context.Background(), "orphan:gh1", "db", 0, 10); err != nil || !ok || len(h) != 2 {
		t.Fatalf("history of the old login's key: %d versions %v %v", len(h), ok, err)
	}
	if c, ok, err := s.LoadConfig("u:1", "db"); err != nil || !ok || string(c.Value) != `"a"` {
		t.Fatalf("alice's config: %+v %v %v", c, ok, err)
	}
	// Nothing is found under the bare logins any more.
	if _, ok, _ := s.LoadFlag("gh1", "beta"); ok {
		t.Fatal("a flag is still owned by the login gh1")
	}
	for name, holder := range map[string]string{"a-lock": "u:1", "old-lock": "orphan:gh1", "j-lock": "gh:3001", "free-lock": ""} {
		if l, ok, err := s.LoadLock(name); err != nil || !ok || l.Holder != holder {
			t.Fatalf("lock %s: %+v %v %v, want holder %q", name, l, ok, err, holder)
		}
	}
	var active []actors.LockRecord
	if err := s.ActiveLocks(now, func(l actors.LockRecord) { active = append(active, l) }); err != nil || len(active) != 3 {
		t.Fatalf("active locks after migration: %+v %v", active, err)
	}
	// An account that takes the freed login gh1 now is a new user: it owns
	// nothing of the orphaned rows.
	if _, err := s.SignIn(context.Background(), GitHubUser{ID: 3002, Login: "gh1"}, 5); err != nil {
		t.Fatal(err)
	}
	u, ok, err := s.UserByLogin(context.Background(), "gh1")
	if err != nil || !ok || u.UID != "gh:3002" {
		t.Fatalf("the new gh1: %+v %v %v", u, ok, err)
	}
	if _, ok, _ := s.LoadConfig(u.UID, "db"); ok {
		t.Fatal("the account that took the login gh1 inherits gh1's config")
	}
	// A local user made after the migration gets the next id, named.
	if err := s.Apply(IssueToken{Login: "zed", Hash: HashToken("zed"), Source: SourceCLI, Now: now}); err != nil {
		t.Fatal(err)
	}
	if p, ok, _ := s.LookupToken(HashToken("zed")); !ok || p.ID != LocalUID(p.UserID) || p.UserID <= 2 {
		t.Fatalf("a user made after the migration: %+v", p)
	}
}

// TestMigrateToSessionsAndSemaphores: a database as the octostore before
// issue 16 left it (every migration before the sessions one), with a held
// lock, a freed one and a journal entry, is migrated to sessions,
// lock-delay, semaphores and metadata: the locks keep their holders,
// leases and fencing tokens, with no session, no lock-delay and no
// metadata; the new tables take writes.
func TestMigrateToSessionsAndSemaphores(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	before := -1
	for i, m := range ms {
		if strings.HasSuffix(m.name, "_sessions.sql") {
			before = i
		}
	}
	if before < 5 {
		t.Fatalf("no sessions migration after the user ids one: %d", before)
	}
	path := filepath.Join(t.TempDir(), "v.db")
	old := openAtVersion(t, path, before)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	t0, later := now.UnixMilli(), now.Add(time.Hour).UnixMilli()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO locks(name, holder, holder_id, lease_id, fencing_token, expires_at, acquired_at) VALUES('held', 'u:1', 'w1', 'lease-h', 7, ?, ?)`, []any{later, t0}},
		{`INSERT INTO locks(name, holder, holder_id, lease_id, fencing_token, expires_at, acquired_at) VALUES('free', '', '', '', 4, 0, 0)`, nil},
		{`INSERT INTO lock_log(name, holder, holder_id, lease_id, fencing_token, expires_at, acquired_at) VALUES('logged', 'gh:9', '', 'lease-l', 2, ?, ?)`, []any{later, t0}},
	} {
		if _, err := old.Exec(q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	old.Close()

	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var v int
	if err := db.write.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != SchemaVersion() || v != len(ms) {
		t.Fatalf("schema version %d %v, want %d", v, err, len(ms))
	}
	w, err := NewWriter(db, WriterOptions{}) // folds the journal
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore(db, w)
	defer func() { s.Close(); db.Close() }()
	for name, want := range map[string]actors.LockRecord{
		"held":   {Name: "held", Holder: "u:1", HolderID: "w1", LeaseID: "lease-h", Token: 7},
		"free":   {Name: "free", Token: 4},
		"logged": {Name: "logged", Holder: "gh:9", LeaseID: "lease-l", Token: 2},
	} {
		l, ok, err := s.LoadLock(name)
		if err != nil || !ok {
			t.Fatalf("lock %s: %v %v", name, ok, err)
		}
		got := actors.LockRecord{Name: l.Name, Holder: l.Holder, HolderID: l.HolderID, LeaseID: l.LeaseID, Token: l.Token}
		if got != want || l.SessionID != "" || l.LockDelay != 0 || l.Metadata != "" || !l.AvailableAt.IsZero() || l.DelayHolder != "" {
			t.Fatalf("lock %s: %+v, want %+v and no session, lock-delay or metadata", name, l, want)
		}
	}
	var active []string
	if err := s.ActiveLocks(now, func(l actors.LockRecord) { active = append(active, l.Name) }); err != nil || len(active) != 2 {
		t.Fatalf("active locks after migration: %v %v", active, err)
	}
	// The new tables take writes.
	exp := now.Add(time.Minute)
	if err := s.Apply(actors.PutSession{Session: actors.SessionRecord{ID: "0b5a1f7e-1d2c-4e8a-9f00-0123456789ab", Owner: "u:1",
		TTL: time.Minute, ExpiresAt: exp, CreatedAt: now}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(actors.PutSemaphore{Name: "pool", Limit: 3, Token: 1, Put: []actors.SemaphoreSlot{{Holder: "u:1", LeaseID: "lease-s",
		Token: 1, ExpiresAt: exp, AcquiredAt: now, Metadata: "host-1"}}}); err != nil {
		t.Fatal(err)
	}
	if ss, ok, err := s.LoadSession("0b5a1f7e-1d2c-4e8a-9f00-0123456789ab"); err != nil || !ok || ss.Owner != "u:1" || !ss.ExpiresAt.Equal(exp) {
		t.Fatalf("session after migration: %+v %v %v", ss, ok, err)
	}
	if sem, ok, err := s.LoadSemaphore("pool"); err != nil || !ok || sem.Limit != 3 || sem.Token != 1 || len(sem.Slots) != 1 || sem.Slots[0].Metadata != "host-1" {
		t.Fatalf("semaphore after migration: %+v %v %v", sem, ok, err)
	}
}
