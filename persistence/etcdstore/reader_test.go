package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/persistence"
)

// Names are path-escaped in keys: a '/' or '%' in an owner or name neither
// collides with another record nor leaks into a neighbour's listing, and
// listings come back ordered by the names themselves.
func TestKeysEscapeNames(t *testing.T) {
	c := startCluster(t, 1, nil)[0].Client()
	s, _ := openTestStore(t, c, Options{})
	flag := func(owner, name string) actors.FlagRecord {
		return actors.FlagRecord{Owner: owner, Name: name, Percentage: actors.NoPercentage, CreatedAt: t0, UpdatedAt: t0}
	}
	recs := []actors.FlagRecord{flag("a/b", "c"), flag("a", "b/c"), flag("a", "%2F"), flag("a", "z")}
	for _, f := range recs {
		if err := s.Apply(actors.PutFlag{Flag: f}); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range recs {
		if got, ok, err := s.LoadFlag(f.Owner, f.Name); !ok || err != nil || !reflect.DeepEqual(got, f) {
			t.Fatalf("LoadFlag(%q, %q) = %+v %v %v", f.Owner, f.Name, got, ok, err)
		}
	}
	// A page a flag: the position of each page is the escaped name.
	list, err := actors.AllPages(1, func(q actors.PageQuery) (actors.Page[actors.FlagRecord], error) {
		return s.ListFlags(t.Context(), "a", q)
	},
		func(f *actors.FlagRecord) (string, string) { return f.Owner, f.Name })
	if err != nil || len(list) != 3 || list[0].Name != "%2F" || list[1].Name != "b/c" || list[2].Name != "z" {
		t.Fatalf("ListFlags(a) = %+v %v", list, err)
	}
	if err := s.Apply(actors.PutLock{Lock: actors.LockRecord{Name: "x/y", Token: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.LoadLock("x"); ok {
		t.Fatal("lock x/y is visible as x")
	}
}

// ActiveLocks and CountOwned page through more records than one range
// request returns, from one revision.
func TestScansPage(t *testing.T) {
	c := startCluster(t, 1, nil)[0].Client()
	s, _ := openTestStore(t, c, Options{})
	const n = scanPage*2 + 17
	var last uint64
	for i := range n {
		holder := ""
		if i%3 == 0 {
			holder = "alice"
		}
		seq, err := s.Enqueue(actors.PutLock{Lock: actors.LockRecord{Name: fmt.Sprintf("l%04d", i), Holder: holder,
			Token: uint64(i + 1), ExpiresAt: t0.Add(time.Minute), AcquiredAt: t0}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		last = seq
	}
	s.WaitResolved(last)
	seen := map[string]bool{}
	if err := s.ActiveLocks(t0, func(r actors.LockRecord) {
		if seen[r.Name] {
			t.Errorf("%s listed twice", r.Name)
		}
		seen[r.Name] = true
	}); err != nil {
		t.Fatal(err)
	}
	if want := (n + 2) / 3; len(seen) != want {
		t.Fatalf("ActiveLocks found %d held locks, want %d", len(seen), want)
	}
}

// Users and tokens read back as persistence's DB reads them.
func TestUsersAndTokenListing(t *testing.T) {
	c := startCluster(t, 1, nil)[0].Client()
	s, _ := openTestStore(t, c, Options{})
	h1, h2, h3 := persistence.HashToken("a"), persistence.HashToken("b"), persistence.HashToken("c")
	for _, m := range []persistence.IssueToken{
		{Login: "alice", Hash: h1, Source: persistence.SourceCLI, Now: t0.Add(2 * time.Second)},
		{Login: "bob", GitHubID: 7, AvatarURL: "https://x/b", Hash: h2, Source: persistence.SourceOAuth, Now: t0},
		{Login: "alice", Hash: h3, Source: persistence.SourceDev, Now: t0.Add(time.Second)},
	} {
		if err := s.Apply(m); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	all, err := s.ListTokens(ctx, "")
	if err != nil || len(all) != 3 || all[0].Hash != h2 || all[1].Hash != h3 || all[2].Hash != h1 {
		t.Fatalf("ListTokens() = %+v %v (oldest first)", all, err)
	}
	mine, err := s.ListTokens(ctx, "alice")
	if err != nil || len(mine) != 2 || mine[0].Login != "alice" || mine[0].Source != persistence.SourceDev {
		t.Fatalf("ListTokens(alice) = %+v %v", mine, err)
	}
	bob, ok, err := s.UserByLogin(ctx, "bob")
	if err != nil || !ok || bob.GitHubID != 7 || bob.AvatarURL != "https://x/b" {
		t.Fatalf("UserByLogin(bob) = %+v %v %v", bob, ok, err)
	}
	byGH, ok, err := s.UserByGitHubID(ctx, 7)
	if err != nil || !ok || byGH != bob {
		t.Fatalf("UserByGitHubID(7) = %+v %v %v", byGH, ok, err)
	}
	if _, ok, err := s.UserByLogin(ctx, "nobody"); ok || err != nil {
		t.Fatalf("UserByLogin(nobody): %v %v", ok, err)
	}
	// User ids: gh:<GitHub id> for bob, u:<n> for the local alice.
	alice, _, _ := s.UserByLogin(ctx, "alice")
	if bob.UID != "gh:7" || alice.UID != persistence.LocalUID(alice.ID) {
		t.Fatalf("user ids: bob %q, alice %q (user %d)", bob.UID, alice.UID, alice.ID)
	}
	for uid, want := range map[string]string{"gh:7": "bob", alice.UID: "alice", "u:" + fmt.Sprint(bob.ID): "", "orphan:x": "", "gh:8": ""} {
		u, ok, err := s.UserByUID(ctx, uid)
		if err != nil || ok != (want != "") || u.Login != want {
			t.Fatalf("UserByUID(%s) = %+v %v %v, want %q", uid, u, ok, err, want)
		}
	}
	// A GitHub account may not take a login that belongs to another user:
	// that write fails alone.
	err = s.Apply(persistence.IssueToken{Login: "alice", GitHubID: 9, Hash: persistence.HashToken("d"), Source: persistence.SourceOAuth, Now: t0})
	if !errors.Is(err, actors.ErrUnavailable) || !errors.Is(err, errLoginTaken) {
		t.Fatalf("GitHub sign-in as another user's login: %v", err)
	}
	if _, ok, _ := s.LookupToken(persistence.HashToken("d")); ok {
		t.Fatal("the refused token was stored")
	}
	if s.Lost() != nil {
		t.Fatalf("a refused write ended the term: %v", s.Lost())
	}
	// The raw token is nowhere in etcd: only its hash names the key.
	resp, err := c.Get(ctx, s.Reader.ks.prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		for _, raw := range []string{"\"a\"", "\"b\"", "\"c\""} {
			if string(kv.Value) == raw {
				t.Fatalf("a raw token is stored at %s", kv.Key)
			}
		}
	}
}

// A keyspace written by a newer layout is refused; an unknown one is
// claimed with this binary's layout.
func TestOpenChecksLayout(t *testing.T) {
	c := startCluster(t, 1, nil)[0].Client()
	s, _ := openTestStore(t, c, Options{Prefix: "/new/"})
	if got := rawGet(t, c, s.Reader.ks.layout()); string(got) != fmt.Sprint(LayoutVersion) {
		t.Fatalf("layout %q after first open", got)
	}
	ks := newKeyspace("/future/")
	if _, err := c.Put(context.Background(), ks.layout(), fmt.Sprint(LayoutVersion+1)); err != nil {
		t.Fatal(err)
	}
	fence, _ := testFence(t, c, "/future/")
	if _, err := Open(context.Background(), c, fence, Options{Prefix: "/future/"}); !errors.Is(err, ErrNewerLayout) {
		t.Fatalf("open of a newer layout: %v", err)
	}
	// Layout 1 named owners by login: refused, never read as user ids.
	old := newKeyspace("/old/")
	if _, err := c.Put(context.Background(), old.layout(), "1"); err != nil {
		t.Fatal(err)
	}
	fence, _ = testFence(t, c, "/old/")
	if _, err := Open(context.Background(), c, fence, Options{Prefix: "/old/"}); !errors.Is(err, ErrOldLayout) {
		t.Fatalf("open of layout 1: %v", err)
	}
}
