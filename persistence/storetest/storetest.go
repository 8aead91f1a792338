// Package storetest is the contract every octostore store backend must
// meet: one suite, run against the SQLite store (package persistence) and
// the etcd store (package persistence/etcdstore), as litestream runs one
// replica-client suite against each of its backends (RunWithReplicaClient).
//
// It covers what is store-generic: durable round trips of every record
// type, the loaders the actors use at activation, the listings, token
// lookups, and the writer's contract (callbacks in enqueue order, guarded
// writes failing alone, AfterCommit, Barrier, Close). What is particular to
// one backend (SQLite's lock journal and busy timeout; etcd's fencing,
// transaction caps and leadership) is tested in that backend's package.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/persistence"
)

// Store is what the suite needs of a backend.
type Store interface {
	actors.Store
	actors.GuardedStore
	actors.LockLoader
	actors.LimitStore
	actors.FlagStore
	actors.ConfigStore
	actors.SessionStore
	actors.SemaphoreStore

	Apply(m actors.Mutation) error
	Barrier() error
	Close() error

	LookupToken(hash [32]byte) (persistence.Principal, bool, error)
	CountTokens() (int, error)
	AuthEpoch() (int64, error)
	UserByLogin(ctx context.Context, login string) (persistence.UserInfo, bool, error)
	UserByUID(ctx context.Context, uid string) (persistence.UserInfo, bool, error)

	// Token administration (the API's /admin/tokens).
	ListTokens(ctx context.Context, login string) ([]persistence.TokenInfo, error)
	ListTokensPage(ctx context.Context, q persistence.TokenPageQuery) (actors.Page[persistence.TokenInfo], error)
	CreateToken(login, source string) (string, persistence.TokenInfo, error)
	RevokeTokens(ctx context.Context, sel persistence.RevokeSelector) ([]persistence.TokenInfo, error)
}

// Opener opens a new, empty store for one test and arranges its cleanup
// (closing it twice must be harmless).
type Opener func(t *testing.T) Store

// Run runs the whole contract against the stores open makes.
func Run(t *testing.T, open Opener) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T, Store)
	}{
		{"Locks", testLocks},
		{"SessionLocks", testSessionLocks},
		{"Sessions", testSessions},
		{"Semaphores", testSemaphores},
		{"Limits", testLimits},
		{"Flags", testFlags},
		{"ConfigVersions", testConfigVersions},
		{"ConfigDeleteAndRecreate", testConfigDeleteAndRecreate},
		{"CountOwned", testCountOwned},
		{"ListingPages", testListingPages},
		{"Tokens", testTokens},
		{"TokenAdmin", testTokenAdmin},
		{"TokenPages", testTokenPages},
		{"GitHubRename", testGitHubRename},
		{"StaticTokens", testStaticTokens},
		{"StaticUsersInLoginOrder", testStaticUsersInLoginOrder},
		{"CallbacksInOrder", testCallbacksInOrder},
		{"GuardFailsAlone", testGuardFailsAlone},
		{"AfterCommitAndBarrier", testAfterCommitAndBarrier},
		{"Close", testClose},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open(t)) })
	}
}

// T0 is the suite's clock: every time is whole milliseconds, as stored.
var T0 = time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)

func apply(t *testing.T, s interface{ Apply(actors.Mutation) error }, ms ...actors.Mutation) {
	t.Helper()
	for _, m := range ms {
		if err := s.Apply(m); err != nil {
			t.Fatalf("apply %T: %v", m, err)
		}
	}
}

// testTokenAdmin: tokens created through the writer authenticate their
// user and are listed (never with a secret); a revocation deletes exactly
// what its selector names, or nothing with the error that says why.
func testTokenAdmin(t *testing.T, s Store) {
	ctx := context.Background()
	var raws []string
	var infos []persistence.TokenInfo
	for _, login := range []string{"carol", "carol", "dave"} {
		raw, info, err := s.CreateToken(login, persistence.SourceCLI)
		if err != nil {
			t.Fatalf("CreateToken(%s): %v", login, err)
		}
		if info.Login != login || info.Source != persistence.SourceCLI || info.Hash != persistence.HashToken(raw) ||
			info.CreatedAt.IsZero() {
			t.Fatalf("CreateToken(%s) = %+v", login, info)
		}
		if p, ok, err := s.LookupToken(info.Hash); err != nil || !ok || p.Login != login {
			t.Fatalf("the created token of %s: %+v %v %v", login, p, ok, err)
		}
		raws, infos = append(raws, raw), append(infos, info)
	}
	if raws[0] == raws[1] {
		t.Fatal("two created tokens are equal")
	}
	carols, err := s.ListTokens(ctx, "carol")
	if err != nil || len(carols) != 2 || carols[0].Login != "carol" {
		t.Fatalf("ListTokens(carol) = %+v %v", carols, err)
	}
	if all, err := s.ListTokens(ctx, ""); err != nil || len(all) != 3 {
		t.Fatalf("ListTokens() = %+v %v", all, err)
	}
	fp := func(i int) string { return infos[i].Fingerprint() }
	for _, c := range []struct {
		sel  persistence.RevokeSelector
		want error
	}{
		{persistence.RevokeSelector{Login: "carol"}, persistence.ErrTokenAmbiguous},
		{persistence.RevokeSelector{Login: "nobody"}, persistence.ErrTokenNotFound},
		{persistence.RevokeSelector{Fingerprint: "0123"}, persistence.ErrBadSelector},
		{persistence.RevokeSelector{Fingerprint: fp(0), Login: "carol"}, persistence.ErrBadSelector},
		{persistence.RevokeSelector{Fingerprint: fp(0), All: true}, persistence.ErrBadSelector},
		{persistence.RevokeSelector{}, persistence.ErrBadSelector},
	} {
		if got, err := s.RevokeTokens(ctx, c.sel); !errors.Is(err, c.want) || got != nil {
			t.Fatalf("RevokeTokens(%+v) = %+v %v, want %v", c.sel, got, err, c.want)
		}
	}
	if all, err := s.ListTokens(ctx, ""); err != nil || len(all) != 3 {
		t.Fatalf("after refused revocations: %+v %v, want the 3 tokens", all, err)
	}
	got, err := s.RevokeTokens(ctx, persistence.RevokeSelector{Fingerprint: strings.ToUpper(fp(1))})
	if err != nil || len(got) != 1 || got[0].Hash != infos[1].Hash {
		t.Fatalf("RevokeTokens(fingerprint) = %+v %v", got, err)
	}
	if _, ok, _ := s.LookupToken(infos[1].Hash); ok {
		t.Fatal("a revoked token still authenticates")
	}
	if _, _, err := s.CreateToken("carol", persistence.SourceCLI); err != nil {
		t.Fatal(err)
	}
	got, err = s.RevokeTokens(ctx, persistence.RevokeSelector{Login: "carol", All: true})
	if err != nil || len(got) != 2 {
		t.Fatalf("RevokeTokens(carol, all) = %+v %v", got, err)
	}
	if left, err := s.ListTokens(ctx, ""); err != nil || len(left) != 1 || left[0].Hash != infos[2].Hash {
		t.Fatalf("left: %+v %v, want dave's token only", left, err)
	}
}

// testTokenPages: the token listing pages oldest first, then by hash (ties
// of one millisecond included), of every login or one; the pages of any
// size put together are the whole listing, each token once, with the
// listing's total on every page.
func testTokenPages(t *testing.T, s Store) {
	ctx := context.Background()
	var want []persistence.TokenInfo
	for i := 0; i < 9; i++ {
		login := []string{"carol", "dave", "erin"}[i%3]
		at := T0.Add(time.Duration(2-i/3) * time.Second) // three per millisecond, the newest first
		h := persistence.HashToken(fmt.Sprintf("page-token-%d", i))
		apply(t, s, persistence.IssueToken{Login: login, Hash: h, Source: persistence.SourceCLI, Now: at})
		want = append(want, persistence.TokenInfo{Login: login, Source: persistence.SourceCLI, CreatedAt: at, Hash: h})
	}
	persistence.SortTokens(want)
	if all, err := s.ListTokens(ctx, ""); err != nil || !reflect.DeepEqual(all, want) {
		t.Fatalf("ListTokens() = %+v %v\nwant %+v", all, err, want)
	}
	pages := func(login string, limit int) []persistence.TokenInfo {
		t.Helper()
		var got []persistence.TokenInfo
		q := persistence.TokenPageQuery{Login: login, Limit: limit}
		for n := 0; ; n++ {
			pg, err := s.ListTokensPage(ctx, q)
			if err != nil || n > len(want) {
				t.Fatalf("ListTokensPage(%+v) = %v after %d pages", q, err, n)
			}
			wantTotal := len(want)
			if login != "" {
				wantTotal = 3
			}
			if pg.Total != wantTotal || len(pg.Items) > limit || pg.More && len(pg.Items) != limit {
				t.Fatalf("ListTokensPage(%+v) = %d items, total %d, more %v; want total %d",
					q, len(pg.Items), pg.Total, pg.More, wantTotal)
			}
			got = append(got, pg.Items...)
			if !pg.More {
				return got
			}
			last := pg.Items[len(pg.Items)-1].Position()
			q.After = &last
		}
	}
	for _, limit := range []int{1, 2, 3, 4, 9, 10} {
		if got := pages("", limit); !reflect.DeepEqual(got, want) {
			t.Fatalf("pages of %d:\n%+v\nwant %+v", limit, got, want)
		}
	}
	var daves []persistence.TokenInfo
	for _, ti := range want {
		if ti.Login == "dave" {
			daves = append(daves, ti)
		}
	}
	if got := pages("dave", 2); !reflect.DeepEqual(got, daves) {
		t.Fatalf("dave's pages: %+v, want %+v", got, daves)
	}
	end := want[len(want)-1].Position()
	if pg, err := s.ListTokensPage(ctx, persistence.TokenPageQuery{After: &end, Limit: 5}); err != nil ||
		len(pg.Items) != 0 || pg.More || pg.Total != len(want) {
		t.Fatalf("the page after the last token = %+v %v", pg, err)
	}
	if pg, err := s.ListTokensPage(ctx, persistence.TokenPageQuery{Login: "nobody", Limit: 5}); err != nil ||
		len(pg.Items) != 0 || pg.More || pg.Total != 0 {
		t.Fatalf("the tokens of nobody = %+v %v", pg, err)
	}
}

func testLocks(t *testing.T, s Store) {
	held := actors.LockRecord{Name: "held", Holder: "alice", HolderID: "host-a:4242", LeaseID: "lease-1", Token: 7,
		ExpiresAt: T0.Add(time.Minute), AcquiredAt: T0, Metadata: "host-a pid 4242 ✓"}
	expired := actors.LockRecord{Name: "expired", Holder: "bob", LeaseID: "lease-2", Token: 3,
		ExpiresAt: T0.Add(-time.Second), AcquiredAt: T0.Add(-time.Minute)}
	released := actors.LockRecord{Name: "released", Token: 12} // free: the token survives
	// Freed by an expiry with a lock-delay: who held it, when it expired and
	// when it is available again survive with the token.
	delayed := actors.LockRecord{Name: "delayed", Token: 5, ExpiresAt: T0.Add(-time.Second),
		AvailableAt: T0.Add(29 * time.Second), DelayHolder: "carol"}
	renewed := held
	renewed.ExpiresAt = T0.Add(2 * time.Minute)
	renewed.LockDelay = 30 * time.Second
	apply(t, s, actors.PutLock{Lock: held}, actors.PutLock{Lock: expired}, actors.PutLock{Lock: released},
		actors.PutLock{Lock: renewed}, actors.PutLock{Lock: delayed})
	for _, want := range []actors.LockRecord{renewed, expired, released, delayed} {
		got, ok, err := s.LoadLock(want.Name)
		if err != nil || !ok || got != want {
			t.Fatalf("LoadLock(%s) = %+v %v %v, want %+v", want.Name, got, ok, err, want)
		}
	}
	got, ok, err := s.LoadLock("never")
	if err != nil || ok || got.Name != "never" || got.Token != 0 {
		t.Fatalf("LoadLock(never) = %+v %v %v", got, ok, err)
	}
	var active []actors.LockRecord
	if err := s.ActiveLocks(T0, func(r actors.LockRecord) { active = append(active, r) }); err != nil {
		t.Fatal(err)
	}
	if len(active) != 1 || active[0] != renewed {
		t.Fatalf("ActiveLocks(T0) = %+v, want only %+v", active, renewed)
	}
	active = nil
	if err := s.ActiveLocks(T0.Add(3*time.Minute), func(r actors.LockRecord) { active = append(active, r) }); err != nil {
		t.Fatal(err)
	}
	if len(active) != 0 {
		t.Fatalf("ActiveLocks after every expiry = %+v", active)
	}
	// ExpiredLocks: holds that ran out and whose end is not recorded (the
	// holder is still set); a freed record (released, or its expiry
	// recorded) is not one.
	expiredAt := func(now time.Time) []actors.LockRecord {
		t.Helper()
		var out []actors.LockRecord
		if err := s.ExpiredLocks(now, func(r actors.LockRecord) { out = append(out, r) }); err != nil {
			t.Fatal(err)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return out
	}
	if got := expiredAt(T0); len(got) != 1 || got[0] != expired {
		t.Fatalf("ExpiredLocks(T0) = %+v, want only %+v", got, expired)
	}
	if got := expiredAt(renewed.ExpiresAt); len(got) != 2 || got[0] != expired || got[1] != renewed {
		t.Fatalf("ExpiredLocks at the renewed expiry = %+v, want %+v and %+v", got, expired, renewed)
	}
	recorded := expired
	recorded.Holder, recorded.HolderID, recorded.LeaseID, recorded.ExpiresAt, recorded.AcquiredAt = "", "", "", time.Time{}, time.Time{}
	apply(t, s, actors.PutLock{Lock: recorded})
	if got := expiredAt(T0); len(got) != 0 {
		t.Fatalf("ExpiredLocks(T0) after the expiry was recorded = %+v", got)
	}
}

// A lock held under a session is active (recovered) whatever its stored
// expiry: the session decides; it is never one of the expired holds.
func testSessionLocks(t *testing.T, s Store) {
	sess := actors.LockRecord{Name: "sess", Holder: "alice", LeaseID: "lease-s", Token: 4, SessionID: "0b5a1f7e-1d2c-4e8a-9f00-0123456789ab",
		ExpiresAt: T0.Add(-time.Minute), AcquiredAt: T0.Add(-2 * time.Minute)}
	apply(t, s, actors.PutLock{Lock: sess})
	got, ok, err := s.LoadLock("sess")
	if err != nil || !ok || got != sess {
		t.Fatalf("LoadLock(sess) = %+v %v %v, want %+v", got, ok, err, sess)
	}
	var active, expired []actors.LockRecord
	if err := s.ActiveLocks(T0, func(r actors.LockRecord) { active = append(active, r) }); err != nil {
		t.Fatal(err)
	}
	if err := s.ExpiredLocks(T0, func(r actors.LockRecord) { expired = append(expired, r) }); err != nil {
		t.Fatal(err)
	}
	if len(active) != 1 || active[0] != sess || len(expired) != 0 {
		t.Fatalf("a session lock: active %+v, expired %+v", active, expired)
	}
	freed := sess
	freed.Holder, freed.LeaseID, freed.SessionID, freed.ExpiresAt, freed.AcquiredAt = "", "", "", time.Time{}, time.Time{}
	apply(t, s, actors.PutLock{Lock: freed})
	active = nil
	if err := s.ActiveLocks(T0, func(r actors.LockRecord) { active = append(active, r) }); err != nil || len(active) != 0 {
		t.Fatalf("after its end: active %+v %v", active, err)
	}
}

func testSessions(t *testing.T, s Store) {
	a := actors.SessionRecord{ID: "0b5a1f7e-1d2c-4e8a-9f00-0123456789ab", Owner: "alice", TTL: 30 * time.Second,
		LockDelay: 5 * time.Second, ExpiresAt: T0.Add(30 * time.Second), CreatedAt: T0}
	b := actors.SessionRecord{ID: "1c6b2f8f-2e3d-4f9b-8a11-123456789abc", Owner: "bob", TTL: time.Hour,
		ExpiresAt: T0.Add(-time.Second), CreatedAt: T0.Add(-time.Hour)} // expired, not removed yet
	apply(t, s, actors.PutSession{Session: a}, actors.PutSession{Session: b})
	kept := a
	kept.ExpiresAt = T0.Add(time.Minute) // a keepalive
	apply(t, s, actors.PutSession{Session: kept})
	for _, want := range []actors.SessionRecord{kept, b} {
		got, ok, err := s.LoadSession(want.ID)
		if err != nil || !ok || got != want {
			t.Fatalf("LoadSession(%s) = %+v %v %v, want %+v", want.ID, got, ok, err, want)
		}
	}
	if _, ok, err := s.LoadSession("2d7c3a9a-3f4e-4a0c-9b22-23456789abcd"); ok || err != nil {
		t.Fatalf("LoadSession of nothing: %v %v", ok, err)
	}
	all := map[string]actors.SessionRecord{}
	if err := s.Sessions(func(r actors.SessionRecord) { all[r.ID] = r }); err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[a.ID] != kept || all[b.ID] != b {
		t.Fatalf("Sessions = %+v", all)
	}
	apply(t, s, actors.RemoveSession{ID: b.ID})
	if _, ok, err := s.LoadSession(b.ID); ok || err != nil {
		t.Fatalf("LoadSession after removal: %v %v", ok, err)
	}
	n := 0
	if err := s.Sessions(func(actors.SessionRecord) { n++ }); err != nil || n != 1 {
		t.Fatalf("Sessions after removal: %d %v", n, err)
	}
}

// A semaphore's head and slots: grants add slots, a renew replaces one, a
// release removes it, and the last token survives when no slot is left.
func testSemaphores(t *testing.T, s Store) {
	a := actors.SemaphoreSlot{Holder: "alice", HolderID: "w-1", LeaseID: "lease-a", Token: 1, ExpiresAt: T0.Add(time.Minute), AcquiredAt: T0,
		Metadata: "job 17"}
	b := actors.SemaphoreSlot{Holder: "bob", LeaseID: "lease-b", Token: 2, SessionID: "0b5a1f7e-1d2c-4e8a-9f00-0123456789ab",
		ExpiresAt: T0.Add(-time.Second), AcquiredAt: T0}
	apply(t, s, actors.PutSemaphore{Name: "pool", Limit: 3, Token: 1, Put: []actors.SemaphoreSlot{a}},
		actors.PutSemaphore{Name: "pool", Limit: 3, Token: 2, Put: []actors.SemaphoreSlot{b}},
		actors.PutSemaphore{Name: "other", Limit: 1, Token: 9, Put: []actors.SemaphoreSlot{{Holder: "carol", LeaseID: "lease-c", Token: 9,
			ExpiresAt: T0.Add(time.Hour), AcquiredAt: T0}}})
	renewed := a
	renewed.ExpiresAt = T0.Add(2 * time.Minute)
	apply(t, s, actors.PutSemaphore{Name: "pool", Limit: 3, Token: 2, Put: []actors.SemaphoreSlot{renewed}})
	got, ok, err := s.LoadSemaphore("pool")
	want := actors.SemaphoreRecord{Name: "pool", Limit: 3, Token: 2, Slots: []actors.SemaphoreSlot{renewed, b}}
	if err != nil || !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("LoadSemaphore(pool) = %+v %v %v,\nwant %+v", got, ok, err, want)
	}
	if r, ok, err := s.LoadSemaphore("never"); ok || err != nil || r.Token != 0 || len(r.Slots) != 0 {
		t.Fatalf("LoadSemaphore(never) = %+v %v %v", r, ok, err)
	}
	var held []string
	if err := s.HeldSemaphores(func(r actors.SemaphoreRecord) {
		held = append(held, fmt.Sprintf("%s %d %d", r.Name, len(r.Slots), r.Token))
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(held) != "[other 1 9 pool 2 2]" {
		t.Fatalf("HeldSemaphores = %v", held)
	}
	apply(t, s, actors.PutSemaphore{Name: "other", Limit: 1, Token: 9, Remove: []string{"lease-c"}})
	got, ok, err = s.LoadSemaphore("other")
	if err != nil || !ok || got.Token != 9 || len(got.Slots) != 0 {
		t.Fatalf("after the last slot left: %+v %v %v", got, ok, err)
	}
	held = nil
	if err := s.HeldSemaphores(func(r actors.SemaphoreRecord) { held = append(held, r.Name) }); err != nil || fmt.Sprint(held) != "[pool]" {
		t.Fatalf("HeldSemaphores after a release = %v %v", held, err)
	}
}

func window(t *testing.T, max int, win time.Duration, checks ...time.Time) actors.SlidingWindow {
	t.Helper()
	w, err := actors.DecodeSlidingWindow(max, win, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range checks {
		w.Check(at, max, win)
	}
	return w
}

func testLimits(t *testing.T, s Store) {
	a := window(t, 5, time.Minute, T0, T0.Add(time.Second), T0.Add(2*time.Second))
	b := window(t, 100, time.Hour, T0)
	apply(t, s, actors.NewPutLimit("alice", "api", a), actors.NewPutLimit("alice", "aaa", b),
		actors.NewPutLimit("bob", "api", b))
	got, ok, err := s.LoadLimit("alice", "api")
	if err != nil || !ok {
		t.Fatalf("LoadLimit: %v %v", ok, err)
	}
	if got.Algorithm != actors.AlgSlidingWindow || got.Window.Max != a.Max || got.Window.Window != a.Window ||
		string(got.Window.AppendBinary(nil)) != string(a.AppendBinary(nil)) || got.Count(T0.Add(3*time.Second)) != 3 {
		t.Fatalf("LoadLimit round trip: %+v, want %+v", got, a)
	}
	// A token bucket: 10 tokens a minute, 7 taken at T0 (cost 3, 4), one
	// check denied; stored and loaded it is the same bucket.
	var tb actors.LimitState
	p := actors.LimitParams{Max: 10, Window: time.Minute, Algorithm: actors.AlgTokenBucket}
	for _, c := range []int{3, 4, 5} {
		p.Cost = c
		tb.Check(T0.Add(time.Second), p)
	}
	apply(t, s, actors.PutLimits{Rows: []actors.LimitRow{tb.Row("carol", "tb")}})
	gotTB, ok, err := s.LoadLimit("carol", "tb")
	if err != nil || !ok || !reflect.DeepEqual(gotTB, tb) || gotTB.Bucket.Tokens(T0.Add(7*time.Second)) != 4 {
		t.Fatalf("LoadLimit(token bucket) = %+v %v %v, want %+v", gotTB, ok, err, tb)
	}
	if l, err := listLimits(t, s, "carol"); err != nil || len(l) != 1 || !reflect.DeepEqual(l[0].State, tb) ||
		!l[0].UpdatedAt.Equal(T0.Add(time.Second)) {
		t.Fatalf("ListLimits(carol) = %+v %v", l, err)
	}
	apply(t, s, actors.RemoveLimit{Owner: "carol", Name: "tb"})
	if _, ok, err := s.LoadLimit("carol", "api"); ok || err != nil {
		t.Fatalf("LoadLimit of nothing: %v %v", ok, err)
	}
	mine, err := listLimits(t, s, "alice")
	if err != nil || len(mine) != 2 || mine[0].Name != "aaa" || mine[1].Name != "api" {
		t.Fatalf("ListLimits(alice) = %+v %v", mine, err)
	}
	if !mine[1].UpdatedAt.Equal(T0.Add(2 * time.Second)) {
		t.Fatalf("limit UpdatedAt %v, want the newest check", mine[1].UpdatedAt)
	}
	all, err := listLimits(t, s, "")
	if err != nil || len(all) != 3 || all[2].Owner != "bob" {
		t.Fatalf("ListLimits() = %+v %v", all, err)
	}
	apply(t, s, actors.RemoveLimit{Owner: "alice", Name: "api"})
	if _, ok, err := s.LoadLimit("alice", "api"); ok || err != nil {
		t.Fatalf("LoadLimit after reset: %v %v", ok, err)
	}
}

// TargetedFlag is a flag with every kind of rule and variant value, its
// rules compiled (actors.CheckFlagWrite), as a store must give it back:
// values of every JSON type, text that JSON encoders like to escape
// (<, >, &, non-ASCII), numbers as they were written.
func TargetedFlag(t testing.TB, owner, name string) actors.FlagRecord {
	t.Helper()
	w := actors.FlagWrite{Enabled: false, Percentage: actors.NoPercentage, OffVariant: "control",
		Variants: []actors.FlagVariant{
			{Name: "control", Value: []byte(`{"color":"<grey> & \u00fc","sizes":[1,2.50,1e3]}`), Weight: 50},
			{Name: "blue", Value: []byte(`"blue"`), Weight: 30},
			{Name: "v.2", Value: []byte(`12.50`), Weight: 20},
			{Name: "never", Value: []byte(`null`), Weight: 0},
		},
		Rules: []actors.FlagRule{
			{Attribute: "plan", Operator: actors.OpIn, Values: []string{"pro", "<team> & ü"}, Variant: "blue"},
			{Attribute: "email", Operator: actors.OpEndsWith, Values: []string{"@example.com"}, Variant: "v.2"},
			{Attribute: "app.version", Operator: actors.OpSemverGte, Values: []string{"2.0.0-rc.1"}, Variant: "blue"},
			{Attribute: "age", Operator: actors.OpGt, Values: []string{"1e2"}, Variant: "control"},
		}}
	if err := actors.CheckFlagWrite(&w); err != nil {
		t.Fatal(err)
	}
	return actors.FlagRecord{Owner: owner, Name: name, Enabled: w.Enabled, Percentage: w.Percentage,
		Rules: w.Rules, Variants: w.Variants, OffVariant: w.OffVariant, CreatedAt: T0, UpdatedAt: T0.Add(time.Second)}
}

func testFlags(t *testing.T, s Store) {
	a := actors.FlagRecord{Owner: "alice", Name: "beta", Enabled: true, Percentage: 30, CreatedAt: T0, UpdatedAt: T0.Add(time.Minute)}
	b := actors.FlagRecord{Owner: "bob", Name: "beta", Enabled: false, Percentage: actors.NoPercentage, CreatedAt: T0, UpdatedAt: T0}
	c := actors.FlagRecord{Owner: "alice", Name: "alpha", Enabled: true, Percentage: 0, CreatedAt: T0, UpdatedAt: T0}
	d := TargetedFlag(t, "bob", "exp")
	e := actors.FlagRecord{Owner: "bob", Name: "gate", Enabled: true, Percentage: 40, CreatedAt: T0, UpdatedAt: T0}
	w := actors.FlagWrite{Enabled: true, Percentage: 40, Rules: []actors.FlagRule{
		{Attribute: "plan", Operator: actors.OpIn, Values: []string{"pro", "team"}, Variant: actors.VariantOn},
		{Attribute: "age", Operator: actors.OpLt, Values: []string{"18"}, Variant: actors.VariantOff},
	}}
	if err := actors.CheckFlagWrite(&w); err != nil {
		t.Fatal(err)
	}
	e.Rules = w.Rules
	apply(t, s, actors.PutFlag{Flag: a}, actors.PutFlag{Flag: b}, actors.PutFlag{Flag: c}, actors.PutFlag{Flag: d}, actors.PutFlag{Flag: e})
	for _, want := range []actors.FlagRecord{a, b, c, d, e} {
		got, ok, err := s.LoadFlag(want.Owner, want.Name)
		if err != nil || !ok || !reflect.DeepEqual(got, want) {
			t.Fatalf("LoadFlag(%s/%s) = %+v %v %v, want %+v", want.Owner, want.Name, got, ok, err, want)
		}
	}
	got, ok, err := s.LoadFlag("carol", "beta")
	if err != nil || ok || got.Percentage != actors.NoPercentage || got.Owner != "carol" || got.Name != "beta" {
		t.Fatalf("LoadFlag of nothing = %+v %v %v", got, ok, err)
	}
	mine, err := listFlags(t, s, "alice")
	if err != nil || !reflect.DeepEqual(mine, []actors.FlagRecord{c, a}) {
		t.Fatalf("ListFlags(alice) = %+v %v", mine, err)
	}
	all, err := listFlags(t, s, "")
	if err != nil || !reflect.DeepEqual(all, []actors.FlagRecord{c, a, b, d, e}) {
		t.Fatalf("ListFlags() = %+v %v", all, err)
	}
	apply(t, s, actors.RemoveFlag{Owner: "alice", Name: "beta"})
	if _, ok, err := s.LoadFlag("alice", "beta"); ok || err != nil {
		t.Fatalf("LoadFlag after delete: %v %v", ok, err)
	}
}

func putConfig(key string, v int64, value string, created time.Time, keep int) actors.PutConfig {
	return actors.PutConfig{Keep: keep, Config: actors.ConfigRecord{Owner: "alice", Key: key, Version: v,
		Value: []byte(value), Description: fmt.Sprintf("v%d", v), CreatedAt: created,
		UpdatedAt: T0.Add(time.Duration(v) * time.Minute)}}
}

func testConfigVersions(t *testing.T, s Store) {
	for v := int64(1); v <= 5; v++ {
		// Values are stored exactly as sent: whitespace and key order kept.
		apply(t, s, putConfig("db", v, fmt.Sprintf(`{ "v" : %d,"a":[ ] }`, v), T0, 3))
	}
	cur, ok, err := s.LoadConfig("alice", "db")
	want := actors.ConfigRecord{Owner: "alice", Key: "db", Version: 5, Value: []byte(`{ "v" : 5,"a":[ ] }`),
		Description: "v5", CreatedAt: T0, UpdatedAt: T0.Add(5 * time.Minute)}
	if err != nil || !ok || !reflect.DeepEqual(cur, want) {
		t.Fatalf("LoadConfig = %+v %v %v, want %+v", cur, ok, err, want)
	}
	hist, more, ok, err := s.ConfigHistory(t.Context(), "alice", "db", 0, 10)
	if err != nil || !ok || more || len(hist) != 3 {
		t.Fatalf("ConfigHistory = %+v %v %v %v, want versions 5, 4, 3 (keep 3)", hist, more, ok, err)
	}
	for i, h := range hist {
		v := int64(5 - i)
		if h.Version != v || string(h.Value) != fmt.Sprintf(`{ "v" : %d,"a":[ ] }`, v) ||
			h.Description != fmt.Sprintf("v%d", v) || !h.UpdatedAt.Equal(T0.Add(time.Duration(v)*time.Minute)) {
			t.Fatalf("history[%d] = %+v", i, h)
		}
	}
	old, ok, err := s.ConfigVersion(t.Context(), "alice", "db", 4)
	if err != nil || !ok || string(old.Value) != `{ "v" : 4,"a":[ ] }` || old.Description != "v4" ||
		!old.CreatedAt.Equal(T0) || !old.UpdatedAt.Equal(T0.Add(4*time.Minute)) {
		t.Fatalf("ConfigVersion(4) = %+v %v %v", old, ok, err)
	}
	if _, ok, err := s.ConfigVersion(t.Context(), "alice", "db", 2); ok || err != nil {
		t.Fatalf("ConfigVersion(2), pruned: %v %v", ok, err)
	}
	// Pages: newest first, older than the cursor, more while some remain.
	for _, pg := range []struct {
		before     int64
		limit      int
		want       []int64
		more, none bool
	}{
		{0, 2, []int64{5, 4}, true, false},
		{4, 2, []int64{3}, false, false},
		{3, 2, nil, false, false}, // past the oldest: an empty page of a live key
		{0, 3, []int64{5, 4, 3}, false, false},
		{100, 1, []int64{5}, true, false},
		{5, 1, []int64{4}, true, false},
	} {
		page, more, ok, err := s.ConfigHistory(t.Context(), "alice", "db", pg.before, pg.limit)
		var got []int64
		for _, h := range page {
			got = append(got, h.Version)
		}
		if err != nil || !ok || more != pg.more || !reflect.DeepEqual(got, pg.want) {
			t.Fatalf("ConfigHistory(before %d, limit %d) = %v more %v ok %v %v, want %v more %v", pg.before, pg.limit, got, more, ok, err, pg.want, pg.more)
		}
	}
	if _, _, ok, err := s.ConfigHistory(t.Context(), "alice", "nope", 0, 10); ok || err != nil {
		t.Fatalf("history of an unknown key: %v %v", ok, err)
	}
	if _, ok, err := s.LoadConfig("alice", "nope"); ok || err != nil {
		t.Fatalf("LoadConfig of nothing: %v %v", ok, err)
	}
	apply(t, s, putConfig("aaa", 1, `1`, T0, 3))
	list, err := listConfig(t, s, "alice")
	if err != nil || len(list) != 2 || list[0].Key != "aaa" || list[1].Key != "db" || list[1].Version != 5 {
		t.Fatalf("ListConfig = %+v %v", list, err)
	}
}

func testConfigDeleteAndRecreate(t *testing.T, s Store) {
	apply(t, s, putConfig("db", 1, `1`, T0, 10), putConfig("db", 2, `2`, T0, 10),
		actors.RemoveConfig{Owner: "alice", Key: "db", Version: 2, At: T0.Add(time.Hour)})
	del, ok, err := s.LoadConfig("alice", "db")
	if err != nil || !ok || !del.Deleted || del.Version != 2 || del.Live() {
		t.Fatalf("LoadConfig of a deleted key = %+v %v %v (want Deleted at version 2)", del, ok, err)
	}
	if _, _, ok, err := s.ConfigHistory(t.Context(), "alice", "db", 0, 10); ok || err != nil {
		t.Fatalf("history of a deleted key: %v %v", ok, err)
	}
	if _, ok, err := s.ConfigVersion(t.Context(), "alice", "db", 2); ok || err != nil {
		t.Fatalf("version of a deleted key: %v %v", ok, err)
	}
	if list, err := listConfig(t, s, ""); err != nil || len(list) != 0 {
		t.Fatalf("ListConfig lists a deleted key: %+v %v", list, err)
	}
	// Re-created, the key continues the numbering.
	apply(t, s, putConfig("db", 3, `3`, T0.Add(2*time.Hour), 10))
	cur, ok, err := s.LoadConfig("alice", "db")
	if err != nil || !ok || cur.Version != 3 || cur.Deleted || string(cur.Value) != `3` || !cur.CreatedAt.Equal(T0.Add(2*time.Hour)) {
		t.Fatalf("re-created key = %+v %v %v", cur, ok, err)
	}
	hist, _, ok, err := s.ConfigHistory(t.Context(), "alice", "db", 0, 10)
	if err != nil || !ok || len(hist) != 1 || hist[0].Version != 3 {
		t.Fatalf("history of the re-created key = %+v %v %v", hist, ok, err)
	}
}

func testCountOwned(t *testing.T, s Store) {
	w := window(t, 5, time.Minute, T0)
	flag := func(owner, name string) actors.PutFlag {
		return actors.PutFlag{Flag: actors.FlagRecord{Owner: owner, Name: name, Percentage: actors.NoPercentage, CreatedAt: T0, UpdatedAt: T0}}
	}
	bobConfig := putConfig("k", 1, `1`, T0, 10)
	bobConfig.Config.Owner = "bob"
	apply(t, s,
		actors.NewPutLimit("alice", "a", w), actors.NewPutLimit("alice", "b", w), actors.NewPutLimit("bob", "a", w),
		flag("alice", "f"), flag("carol", "f"), flag("carol", "g"),
		putConfig("live", 1, `1`, T0, 10), putConfig("gone", 1, `1`, T0, 10), bobConfig,
		actors.RemoveConfig{Owner: "alice", Key: "gone", Version: 1, At: T0})
	got := map[actors.Kind]map[string]int{}
	for _, k := range []actors.Kind{actors.KindLimit, actors.KindFlag, actors.KindConfig} {
		if err := s.CountOwned(k, func(owner string, n int) {
			if got[k] == nil {
				got[k] = map[string]int{}
			}
			got[k][owner] += n
		}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[actors.Kind]map[string]int{
		actors.KindLimit:  {"alice": 2, "bob": 1},
		actors.KindFlag:   {"alice": 1, "carol": 2},
		actors.KindConfig: {"alice": 1, "bob": 1}, // deleted keys do not count
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("CountOwned = %v, want %v", got, want)
	}
}

func testTokens(t *testing.T, s Store) {
	if ep, err := s.AuthEpoch(); err != nil || ep != 0 {
		t.Fatalf("AuthEpoch of a new store = %d %v", ep, err)
	}
	h1, h2, h3 := persistence.HashToken("one"), persistence.HashToken("two"), persistence.HashToken("three")
	apply(t, s,
		persistence.IssueToken{Login: "alice", Hash: h1, Source: persistence.SourceCLI, Now: T0},
		persistence.IssueToken{Login: "alice", Hash: h2, Source: persistence.SourceDev, Now: T0},
		persistence.IssueToken{Login: "bob", Hash: h3, Source: persistence.SourceCLI, Now: T0})
	p1, ok1, err1 := s.LookupToken(h1)
	p2, ok2, err2 := s.LookupToken(h2)
	p3, ok3, err3 := s.LookupToken(h3)
	if err := errors.Join(err1, err2, err3); err != nil || !ok1 || !ok2 || !ok3 {
		t.Fatalf("LookupToken: %v %v %v %v", ok1, ok2, ok3, err)
	}
	if p1.Login != "alice" || p1.Source != persistence.SourceCLI || p2.Source != persistence.SourceDev || p3.Login != "bob" {
		t.Fatalf("principals %+v %+v %+v", p1, p2, p3)
	}
	if p1.UserID != p2.UserID || p1.UserID == p3.UserID || p1.UserID <= 0 {
		t.Fatalf("user ids: alice %d and %d, bob %d (one user, one id; ids differ)", p1.UserID, p2.UserID, p3.UserID)
	}
	// Local users' stable ids: u:<user number>, found both ways.
	if p1.ID != persistence.LocalUID(p1.UserID) || p2.ID != p1.ID || p3.ID != persistence.LocalUID(p3.UserID) {
		t.Fatalf("user ids: alice %q and %q, bob %q", p1.ID, p2.ID, p3.ID)
	}
	ctx := context.Background()
	if u, ok, err := s.UserByLogin(ctx, "alice"); err != nil || !ok || u.UID != p1.ID || u.ID != p1.UserID {
		t.Fatalf("UserByLogin(alice) = %+v %v %v", u, ok, err)
	}
	if u, ok, err := s.UserByUID(ctx, p3.ID); err != nil || !ok || u.Login != "bob" {
		t.Fatalf("UserByUID(%s) = %+v %v %v", p3.ID, u, ok, err)
	}
	for _, uid := range []string{"bob", "u:999", "gh:1", "orphan:alice", "u:01", ""} {
		if u, ok, err := s.UserByUID(ctx, uid); err != nil || ok {
			t.Fatalf("UserByUID(%q) = %+v %v %v, want none", uid, u, ok, err)
		}
	}
	if _, ok, err := s.LookupToken(persistence.HashToken("unknown")); ok || err != nil {
		t.Fatalf("unknown token: %v %v", ok, err)
	}
	if n, err := s.CountTokens(); err != nil || n != 3 {
		t.Fatalf("CountTokens = %d %v", n, err)
	}
	// Rotation keeps the user and source; the old token stops working.
	h4 := persistence.HashToken("four")
	apply(t, s, persistence.RotateToken{Old: h1, New: h4, Now: T0.Add(time.Hour)})
	if _, ok, _ := s.LookupToken(h1); ok {
		t.Fatal("the rotated token still authenticates")
	}
	p4, ok, err := s.LookupToken(h4)
	if err != nil || !ok || p4.UserID != p1.UserID || p4.Source != persistence.SourceCLI {
		t.Fatalf("rotated token: %+v %v %v", p4, ok, err)
	}
	// Rotating a token that is gone changes nothing, and does not fail.
	apply(t, s, persistence.RotateToken{Old: h1, New: persistence.HashToken("five"), Now: T0})
	if _, ok, _ := s.LookupToken(persistence.HashToken("five")); ok {
		t.Fatal("rotating a revoked token issued a new one")
	}
	apply(t, s, persistence.RevokeToken{Hash: h4})
	if _, ok, _ := s.LookupToken(h4); ok {
		t.Fatal("a revoked token still authenticates")
	}
	if n, err := s.CountTokens(); err != nil || n != 2 {
		t.Fatalf("CountTokens after revoke = %d %v", n, err)
	}
}

func testGitHubRename(t *testing.T, s Store) {
	h1, h2 := persistence.HashToken("gh1"), persistence.HashToken("gh2")
	apply(t, s, persistence.IssueToken{Login: "octo", GitHubID: 42, AvatarURL: "https://a/1", Hash: h1, Source: persistence.SourceOAuth, Now: T0})
	before, ok, err := s.LookupToken(h1)
	if err != nil || !ok || before.Login != "octo" {
		t.Fatalf("GitHub token: %+v %v %v", before, ok, err)
	}
	// The same GitHub account signs in under a new login: same user.
	apply(t, s, persistence.IssueToken{Login: "octo2", GitHubID: 42, AvatarURL: "https://a/2", Hash: h2, Source: persistence.SourceOAuth, Now: T0})
	old, ok1, err1 := s.LookupToken(h1)
	now, ok2, err2 := s.LookupToken(h2)
	if err := errors.Join(err1, err2); err != nil || !ok1 || !ok2 {
		t.Fatalf("after rename: %v %v %v", ok1, ok2, err)
	}
	if old.Login != "octo2" || now.Login != "octo2" || old.UserID != before.UserID || now.UserID != before.UserID {
		t.Fatalf("after rename: old token %+v, new %+v, before %+v", old, now, before)
	}
	// The stable id is the GitHub id's, before and after the rename.
	if before.ID != "gh:42" || old.ID != "gh:42" || now.ID != "gh:42" {
		t.Fatalf("user ids around a rename: %q, %q, %q, want gh:42", before.ID, old.ID, now.ID)
	}
	ctx := context.Background()
	if u, ok, err := s.UserByUID(ctx, "gh:42"); err != nil || !ok || u.Login != "octo2" || u.GitHubID != 42 {
		t.Fatalf("UserByUID(gh:42) = %+v %v %v", u, ok, err)
	}
	if _, ok, err := s.UserByLogin(ctx, "octo"); ok || err != nil {
		t.Fatalf("the old login still finds a user: %v %v", ok, err)
	}
	// Another account taking the freed login is a new user with its own id.
	h3 := persistence.HashToken("gh3")
	apply(t, s, persistence.IssueToken{Login: "octo", GitHubID: 43, Hash: h3, Source: persistence.SourceOAuth, Now: T0})
	if p, ok, err := s.LookupToken(h3); err != nil || !ok || p.ID != "gh:43" || p.UserID == before.UserID {
		t.Fatalf("the account that took the freed login: %+v %v %v", p, ok, err)
	}
}

// testStaticUsersInLoginOrder: the users a sync creates get their numbers
// in login order, whatever the order of the configuration's map (eight
// logins: a store that followed the map's iteration order would number them
// in login order once in 8! runs).
func testStaticUsersInLoginOrder(t *testing.T, s Store) {
	logins := []string{"hal", "bea", "gus", "ada", "fay", "eve", "cal", "dan"}
	tokens := map[[32]byte]string{}
	for _, l := range logins {
		tokens[persistence.HashToken("tok-"+l)] = l
	}
	apply(t, s, persistence.SyncStaticTokens{Tokens: tokens, Now: T0})
	sorted := slices.Sorted(slices.Values(logins))
	var last int64
	for _, l := range sorted {
		u, ok, err := s.UserByLogin(context.Background(), l)
		if err != nil || !ok {
			t.Fatalf("UserByLogin(%s) = %+v %v %v", l, u, ok, err)
		}
		if u.ID <= last {
			t.Fatalf("user %s got number %d after %d: users are not numbered in login order (%v)", l, u.ID, last, sorted)
		}
		last = u.ID
	}
}

func testStaticTokens(t *testing.T, s Store) {
	ha, hb, hc := persistence.HashToken("sa"), persistence.HashToken("sb"), persistence.HashToken("sc")
	cli := persistence.HashToken("cli")
	apply(t, s,
		persistence.IssueToken{Login: "ann", Hash: cli, Source: persistence.SourceCLI, Now: T0},
		persistence.SyncStaticTokens{Tokens: map[[32]byte]string{ha: "ann", hb: "ben"}, Now: T0})
	for h, login := range map[[32]byte]string{ha: "ann", hb: "ben"} {
		p, ok, err := s.LookupToken(h)
		if err != nil || !ok || p.Login != login || p.Source != persistence.SourceStatic {
			t.Fatalf("static token of %s: %+v %v %v", login, p, ok, err)
		}
	}
	pc, _, _ := s.LookupToken(cli)
	pa, _, _ := s.LookupToken(ha)
	if pa.UserID != pc.UserID {
		t.Fatal("a static token of an existing login made a second user")
	}
	// Static tokens are never rotated.
	apply(t, s, persistence.RotateToken{Old: ha, New: persistence.HashToken("rot"), Now: T0})
	if _, ok, _ := s.LookupToken(ha); !ok {
		t.Fatal("a static token was rotated away")
	}
	// The next sync drops what is no longer configured and keeps the rest,
	// and says what it changed.
	var changes []persistence.StaticTokenChange
	apply(t, s, persistence.SyncStaticTokens{Tokens: map[[32]byte]string{hb: "ben", hc: "cy"}, Now: T0, Changes: &changes})
	if _, ok, _ := s.LookupToken(ha); ok {
		t.Fatal("a static token no longer configured still authenticates")
	}
	for _, h := range [][32]byte{hb, hc, cli} {
		if _, ok, err := s.LookupToken(h); !ok || err != nil {
			t.Fatalf("token %x after the second sync: %v %v", h[:4], ok, err)
		}
	}
	if n, err := s.CountTokens(); err != nil || n != 3 {
		t.Fatalf("CountTokens = %d %v, want 3", n, err)
	}
	want := []persistence.StaticTokenChange{
		{Fingerprint: persistence.Fingerprint(ha), Previous: "ann"},
		{Fingerprint: persistence.Fingerprint(hc), Login: "cy"},
	}
	if !reflect.DeepEqual(changes, want) {
		t.Fatalf("changes %+v, want %+v", changes, want)
	}
	// A token moved to another user, and a user renamed in the
	// configuration: the token follows the configuration (issue 12, item 2).
	pb, _, _ := s.LookupToken(hb)
	changes = nil
	apply(t, s, persistence.SyncStaticTokens{Tokens: map[[32]byte]string{hb: "cy", hc: "dee"}, Now: T0, Changes: &changes})
	if p, ok, err := s.LookupToken(hb); err != nil || !ok || p.Login != "cy" || p.ID == pb.ID || p.Source != persistence.SourceStatic {
		t.Fatalf("the token moved from ben to cy: %+v %v %v (ben was %+v)", p, ok, err, pb)
	}
	if p, ok, err := s.LookupToken(hc); err != nil || !ok || p.Login != "dee" {
		t.Fatalf("the token of cy renamed dee: %+v %v %v", p, ok, err)
	}
	want = []persistence.StaticTokenChange{
		{Fingerprint: persistence.Fingerprint(hb), Login: "cy", Previous: "ben"},
		{Fingerprint: persistence.Fingerprint(hc), Login: "dee", Previous: "cy"},
	}
	if !reflect.DeepEqual(changes, want) {
		t.Fatalf("changes %+v, want %+v", changes, want)
	}
	// The same configuration again changes nothing.
	changes = nil
	apply(t, s, persistence.SyncStaticTokens{Tokens: map[[32]byte]string{hb: "cy", hc: "dee"}, Now: T0, Changes: &changes})
	if len(changes) != 0 {
		t.Fatalf("an unchanged configuration changed %+v", changes)
	}
}

func testCallbacksInOrder(t *testing.T, s Store) {
	const writers, each = 8, 40
	var mu sync.Mutex
	var order []uint64
	var failed atomic.Int32
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				done := make(chan struct{})
				var seq uint64
				var err error
				seq, err = s.Enqueue(actors.PutLock{Lock: actors.LockRecord{Name: fmt.Sprintf("w%d", w), Token: uint64(i + 1)}},
					func(err error) {
						<-done // seq is set
						if err != nil {
							failed.Add(1)
						}
						mu.Lock()
						order = append(order, seq)
						mu.Unlock()
					})
				if err != nil {
					failed.Add(1)
				}
				close(done)
			}
		}()
	}
	wg.Wait()
	if err := s.Barrier(); err != nil {
		t.Fatal(err)
	}
	if failed.Load() != 0 {
		t.Fatalf("%d writes failed", failed.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(order) != writers*each || !sort.SliceIsSorted(order, func(i, j int) bool { return order[i] < order[j] }) {
		t.Fatalf("%d callbacks, in order %v", len(order), sort.SliceIsSorted(order, func(i, j int) bool { return order[i] < order[j] }))
	}
	for w := range writers {
		if r, ok, err := s.LoadLock(fmt.Sprintf("w%d", w)); err != nil || !ok || r.Token != each {
			t.Fatalf("writer %d's lock: %+v %v %v (its last write must win)", w, r, ok, err)
		}
	}
}

func testGuardFailsAlone(t *testing.T, s Store) {
	var failedGen atomic.Uint64
	failedGen.Store(2) // generation 2 failed: its later writes must not apply
	errs := make(chan error, 3)
	cb := func(err error) { errs <- err }
	if _, err := s.EnqueueGuarded(actors.PutLock{Lock: actors.LockRecord{Name: "gen1", Token: 1}}, actors.Guard{Failed: &failedGen, Gen: 3}, cb); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnqueueGuarded(actors.PutLock{Lock: actors.LockRecord{Name: "gen2", Token: 1}}, actors.Guard{Failed: &failedGen, Gen: 2}, cb); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(actors.PutLock{Lock: actors.LockRecord{Name: "plain", Token: 1}}, cb); err != nil {
		t.Fatal(err)
	}
	got := []error{<-errs, <-errs, <-errs}
	if got[0] != nil || !errors.Is(got[1], actors.ErrUnavailable) || got[2] != nil {
		t.Fatalf("callbacks %v: want nil, ErrUnavailable, nil", got)
	}
	for name, want := range map[string]bool{"gen1": true, "gen2": false, "plain": true} {
		if _, ok, err := s.LoadLock(name); ok != want || err != nil {
			t.Fatalf("lock %s stored %v, want %v (%v)", name, ok, want, err)
		}
	}
}

func testAfterCommitAndBarrier(t *testing.T, s Store) {
	seq, err := s.Enqueue(actors.PutLock{Lock: actors.LockRecord{Name: "a", Token: 1}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	s.AfterCommit(seq, func(err error) { ran <- err })
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	if s.Resolved() < seq {
		t.Fatalf("Resolved %d < %d after the callback", s.Resolved(), seq)
	}
	// Registered after the write resolved: runs at once.
	now := make(chan error, 1)
	s.AfterCommit(seq, func(err error) { now <- err })
	select {
	case err := <-now:
		if err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatal("AfterCommit of a resolved write did not run at once")
	}
	if _, err := s.Enqueue(actors.PutLock{Lock: actors.LockRecord{Name: "b", Token: 1}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Barrier(); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.LoadLock("b"); !ok || err != nil {
		t.Fatalf("a write before the barrier is not visible after it: %v %v", ok, err)
	}
	s.WaitResolved(s.Resolved()) // returns at once
}

func testClose(t *testing.T, s Store) {
	done := make(chan error, 1)
	if _, err := s.Enqueue(actors.PutLock{Lock: actors.LockRecord{Name: "queued", Token: 9}}, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("a write queued before Close: %v", err)
	}
	if _, err := s.Enqueue(actors.PutLock{Lock: actors.LockRecord{Name: "late"}}, nil); !errors.Is(err, actors.ErrClosed) {
		t.Fatalf("Enqueue after Close: %v, want ErrClosed", err)
	}
	if r, ok, err := s.LoadLock("queued"); err != nil || !ok || r.Token != 9 {
		t.Fatalf("the queued write after Close: %+v %v %v", r, ok, err)
	}
}

// Listings page in (owner, name) order whatever the page size, across owner
// ids that are prefixes of one another (the etcd store escapes owners in
// its keys, which orders them otherwise), a page position in the middle of
// an owner, and config keys deleted between the live ones (not listed, not
// counted).
func testListingPages(t *testing.T, s Store) {
	owners := []string{"u:10", "gh:5", "u:1", "u:2", "u:1x"}
	var flags []actors.FlagRecord
	var keys []actors.ConfigRecord
	for _, o := range owners {
		for i := range 4 {
			f := actors.FlagRecord{Owner: o, Name: fmt.Sprintf("f%d", 3-i), Enabled: true, Percentage: actors.NoPercentage, CreatedAt: T0, UpdatedAt: T0}
			apply(t, s, actors.PutFlag{Flag: f})
			flags = append(flags, f)
			c := actors.ConfigRecord{Owner: o, Key: fmt.Sprintf("k.%d", i), Version: 1, Value: []byte("1"), CreatedAt: T0, UpdatedAt: T0}
			apply(t, s, actors.PutConfig{Config: c, Keep: 1})
			if i%2 == 1 {
				apply(t, s, actors.RemoveConfig{Owner: o, Key: c.Key, Version: 1, At: T0})
				continue
			}
			c.Value = nil
			keys = append(keys, c)
		}
	}
	sort.Slice(flags, func(i, j int) bool {
		return flags[i].Owner < flags[j].Owner || flags[i].Owner == flags[j].Owner && flags[i].Name < flags[j].Name
	})
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].Owner < keys[j].Owner || keys[i].Owner == keys[j].Owner && keys[i].Key < keys[j].Key
	})
	flagPos := func(f *actors.FlagRecord) (string, string) { return f.Owner, f.Name }
	keyPos := func(c *actors.ConfigRecord) (string, string) { return c.Owner, c.Key }
	for _, limit := range []int{1, 2, 3, 7, 100} {
		got, err := actors.AllPages(limit, func(q actors.PageQuery) (actors.Page[actors.FlagRecord], error) {
			pg, err := s.ListFlags(t.Context(), "", q)
			if err == nil && pg.Total != len(flags) {
				t.Fatalf("flags: total %d, want %d", pg.Total, len(flags))
			}
			return pg, err
		}, flagPos)
		if err != nil || len(got) != len(flags) {
			t.Fatalf("flags in pages of %d: %d of %d, %v", limit, len(got), len(flags), err)
		}
		for i := range got {
			if got[i].Owner != flags[i].Owner || got[i].Name != flags[i].Name {
				t.Fatalf("flags in pages of %d: item %d is %s/%s, want %s/%s", limit, i, got[i].Owner, got[i].Name, flags[i].Owner, flags[i].Name)
			}
		}
		mine, err := actors.AllPages(limit, func(q actors.PageQuery) (actors.Page[actors.FlagRecord], error) {
			return s.ListFlags(t.Context(), "u:1", q)
		}, flagPos)
		if err != nil || len(mine) != 4 || mine[0].Name != "f0" || mine[3].Name != "f3" || mine[0].Owner != "u:1" {
			t.Fatalf("u:1's flags in pages of %d: %+v %v", limit, mine, err)
		}
		gotKeys, err := actors.AllPages(limit, func(q actors.PageQuery) (actors.Page[actors.ConfigRecord], error) {
			pg, err := s.ListConfig(t.Context(), "", q)
			if err == nil && pg.Total != len(keys) {
				t.Fatalf("config: total %d, want %d (deleted keys are not counted)", pg.Total, len(keys))
			}
			return pg, err
		}, keyPos)
		if err != nil || len(gotKeys) != len(keys) {
			t.Fatalf("config in pages of %d: %d of %d, %v", limit, len(gotKeys), len(keys), err)
		}
		for i := range gotKeys {
			if gotKeys[i].Owner != keys[i].Owner || gotKeys[i].Key != keys[i].Key {
				t.Fatalf("config in pages of %d: item %d is %s/%s, want %s/%s", limit, i, gotKeys[i].Owner, gotKeys[i].Key, keys[i].Owner, keys[i].Key)
			}
		}
	}
	// A position in the middle of an owner, and one past an owner that has
	// no items (a cursor is only a position).
	pg, err := s.ListFlags(t.Context(), "", actors.PageQuery{AfterOwner: "u:1", AfterName: "f1", Limit: 3})
	if err != nil || len(pg.Items) != 3 || !pg.More || pg.Items[0].Owner != "u:1" || pg.Items[0].Name != "f2" || pg.Items[2].Owner != "u:10" {
		t.Fatalf("after u:1/f1: %+v %v", pg, err)
	}
	pg, err = s.ListFlags(t.Context(), "", actors.PageQuery{AfterOwner: "u:0", AfterName: "zzz", Limit: 1})
	if err != nil || len(pg.Items) != 1 || pg.Items[0].Owner != "u:1" || pg.Items[0].Name != "f0" {
		t.Fatalf("after u:0/zzz: %+v %v", pg, err)
	}
	pg, err = s.ListFlags(t.Context(), "u:2", actors.PageQuery{AfterName: "f3", Limit: 5})
	if err != nil || len(pg.Items) != 0 || pg.More || pg.Total != 4 {
		t.Fatalf("u:2 after its last: %+v %v", pg, err)
	}
}

// The listings are read through their pages, two items a page, so that
// every listing of the suite also checks paging: each item once, in order,
// every page with the count of the whole listing.

func listLimits(t *testing.T, s Store, owner string) ([]actors.LimitRecord, error) {
	return paged(t, func(q actors.PageQuery) (actors.Page[actors.LimitRecord], error) {
		return s.ListLimits(t.Context(), owner, q)
	},
		func(r *actors.LimitRecord) (string, string) { return r.Owner, r.Name })
}

func listFlags(t *testing.T, s Store, owner string) ([]actors.FlagRecord, error) {
	return paged(t, func(q actors.PageQuery) (actors.Page[actors.FlagRecord], error) {
		return s.ListFlags(t.Context(), owner, q)
	},
		func(f *actors.FlagRecord) (string, string) { return f.Owner, f.Name })
}

func listConfig(t *testing.T, s Store, owner string) ([]actors.ConfigRecord, error) {
	return paged(t, func(q actors.PageQuery) (actors.Page[actors.ConfigRecord], error) {
		return s.ListConfig(t.Context(), owner, q)
	},
		func(c *actors.ConfigRecord) (string, string) { return c.Owner, c.Key })
}

func paged[T any](t *testing.T, list func(actors.PageQuery) (actors.Page[T], error), pos func(*T) (string, string)) ([]T, error) {
	t.Helper()
	var totals []int
	all, err := actors.AllPages(2, func(q actors.PageQuery) (actors.Page[T], error) {
		pg, err := list(q)
		if err == nil && (len(pg.Items) > q.Limit || pg.More && len(pg.Items) < q.Limit) {
			t.Fatalf("page of %d items (more: %v) for a limit of %d", len(pg.Items), pg.More, q.Limit)
		}
		totals = append(totals, pg.Total)
		return pg, err
	}, pos)
	if err != nil {
		return all, err
	}
	for _, n := range totals {
		if n != len(all) {
			t.Fatalf("pages give totals %v for a listing of %d", totals, len(all))
		}
	}
	return all, nil
}

// SignInStore is what the sign-in contract needs of a backend: GitHub
// sign-in (one transaction: account, rename, cap of tokens), token lookups,
// and the rotation and revocation httpd.Storage does.
type SignInStore interface {
	SignIn(ctx context.Context, u persistence.GitHubUser, maxTokens int) (persistence.SignInResult, error)
	LookupToken(hash [32]byte) (persistence.Principal, bool, error)
	CountTokens() (int, error)
	Rotate(old [32]byte) (raw string, hash [32]byte, err error)
	Revoke(hash [32]byte) error
	Apply(m actors.Mutation) error
}

// ClockOpener opens a new, empty store for one test, as Opener, whose
// sign-ins read the time from now.
type ClockOpener func(t *testing.T, now func() time.Time) SignInStore

// RunSignIn runs the sign-in contract against the stores open makes:
// tokens resolve to their account; the cap of tokens per account revokes
// the oldest; a rename keeps the account and its tokens (all stale in
// caches); a login another account has is refused with nothing written; a
// login freed by a rename is free; rotation and revocation; two accounts
// racing for one login never both get it.
func RunSignIn(t *testing.T, open ClockOpener) {
	var mu sync.Mutex
	clock := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	s := open(t, func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Second) // each write a second after the last: "oldest" is well defined
		return clock
	})
	ctx := t.Context()
	octo := persistence.GitHubUser{ID: 7, Login: "octo", AvatarURL: "https://avatars.example/7"}
	var tokens []persistence.SignInResult
	for i := 0; i < 3; i++ {
		r, err := s.SignIn(ctx, octo, 2)
		if err != nil {
			t.Fatal(err)
		}
		if p, ok, err := s.LookupToken(persistence.HashToken(r.Token)); err != nil || !ok || p.Login != "octo" || p.Source != persistence.SourceOAuth {
			t.Fatalf("sign-in %d: token resolves to %+v %v %v", i, p, ok, err)
		}
		tokens = append(tokens, r)
	}
	// The cap of 2: the third sign-in revoked the first token.
	if len(tokens[2].Revoked) != 1 || tokens[2].Revoked[0].Hash != tokens[0].Hash || len(tokens[2].Stale) != 1 {
		t.Fatalf("third sign-in revoked %+v (stale %d), want the first token", tokens[2].Revoked, len(tokens[2].Stale))
	}
	if _, ok, _ := s.LookupToken(tokens[0].Hash); ok {
		t.Fatal("the oldest token still works")
	}

	// A rename keeps the user and its tokens; every token is stale in caches.
	renamed, err := s.SignIn(ctx, persistence.GitHubUser{ID: 7, Login: "octo2"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if renamed.RenamedFrom != "octo" || len(renamed.Stale) < 2 {
		t.Fatalf("rename: %+v", renamed)
	}
	if p, ok, _ := s.LookupToken(tokens[2].Hash); !ok || p.Login != "octo2" {
		t.Fatalf("a token issued before the rename: %+v %v", p, ok)
	}

	// A login used by another account (a local user) is refused: nothing
	// is written, not even the token.
	mu.Lock()
	now := clock
	mu.Unlock()
	apply(t, s, persistence.IssueToken{Login: "local", Hash: persistence.HashToken("local-tok"), Source: persistence.SourceCLI, Now: now})
	before, _ := s.CountTokens()
	if _, err := s.SignIn(ctx, persistence.GitHubUser{ID: 8, Login: "local"}, 2); actors.ErrorCode(err) != actors.CodeConflict {
		t.Fatalf("sign-in as another account's login: %v, want a conflict", err)
	}
	// The old login of the renamed account belongs to nobody now: free.
	if _, err := s.SignIn(ctx, persistence.GitHubUser{ID: 9, Login: "octo"}, 2); err != nil {
		t.Fatalf("sign-in with a login freed by a rename: %v", err)
	}
	if after, _ := s.CountTokens(); after != before+1 {
		t.Fatalf("tokens %d → %d: the refused sign-in wrote something", before, after)
	}

	// Rotate and Revoke (httpd.Storage).
	raw, h, err := s.Rotate(tokens[2].Hash)
	if err != nil || raw == "" || h != persistence.HashToken(raw) {
		t.Fatalf("rotate: %q %v", raw, err)
	}
	if _, ok, _ := s.LookupToken(tokens[2].Hash); ok {
		t.Fatal("the rotated token still works")
	}
	if p, ok, _ := s.LookupToken(h); !ok || p.Login != "octo2" || p.Source != persistence.SourceOAuth {
		t.Fatalf("the rotated token's successor: %+v %v", p, ok)
	}
	if err := s.Revoke(h); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Rotate(h); !errors.Is(err, persistence.ErrTokenGone) {
		t.Fatalf("rotating a revoked token: %v, want ErrTokenGone", err)
	}

	// Two accounts racing for one login: exactly one gets it.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.SignIn(ctx, persistence.GitHubUser{ID: int64(100 + i), Login: "contested"}, 5)
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case actors.ErrorCode(err) != actors.CodeConflict:
			t.Fatalf("unexpected error %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d accounts got the login, want exactly 1", won)
	}
}
