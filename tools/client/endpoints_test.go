package client

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd/apitest"
	"github.com/octostore/octostore/tools/client/clienttest"
)

// fake starts the fake server with alice's and bob's clients, whose every
// exchange is checked against docs/openapi.yaml (the fake is held to the
// contract the client is written for).
func fake(t *testing.T) (*clienttest.Server, *Client, *Client) {
	t.Helper()
	return fakeWith(t, checked(t)...)
}

// fakeOffContract is fake without the contract check, for tests that make
// the fake answer what the contract does not allow (a bare 503) on purpose.
func fakeOffContract(t *testing.T) (*clienttest.Server, *Client, *Client) {
	t.Helper()
	return fakeWith(t)
}

func fakeWith(t *testing.T, opts ...Option) (*clienttest.Server, *Client, *Client) {
	t.Helper()
	srv := clienttest.New(map[string]string{"tokA": "alice", "tokB": "bob"})
	srv.SetAdminKey("adminkey")
	t.Cleanup(srv.Close)
	alice := newTestClient(t, srv.URL, opts...)
	bob, err := New(srv.URL, "tokB", opts...)
	if err != nil {
		t.Fatal(err)
	}
	return srv, alice, bob
}

// checked are the options that pass every exchange (unary calls and event
// streams) through the contract check (httpd/apitest).
func checked(t *testing.T) []Option {
	t.Helper()
	return []Option{WithTransport(apitest.FastTransport(t, nil)), WithHTTPClient(apitest.Client(t, nil))}
}

func TestLockEndpoints(t *testing.T) {
	_, alice, bob := fake(t)
	ctx := context.Background()
	l, err := alice.Acquire(ctx, "db", 30*time.Second)
	if err != nil || l.Status != "acquired" || l.FencingToken != 1 || l.Holder != "alice" || l.LeaseID == "" {
		t.Fatalf("acquire = %+v, %v", l, err)
	}
	again, err := alice.Acquire(ctx, "db", 30*time.Second)
	if err != nil || again.Status != "held" || again.LeaseID != l.LeaseID {
		t.Fatalf("re-acquire = %+v, %v", again, err)
	}
	if _, err := bob.Acquire(ctx, "db", 30*time.Second); !errors.Is(err, ErrLockHeld) {
		t.Fatalf("bob acquire err = %v", err)
	}
	st, err := bob.LockStatus(ctx, "db")
	if err != nil || st.Available() || st.Holder != "alice" || st.LeaseID != "" {
		t.Fatalf("status = %+v, %v", st, err)
	}
	r, err := alice.Renew(ctx, "db", l.LeaseID, time.Minute)
	if err != nil || r.FencingToken != 1 {
		t.Fatalf("renew = %+v, %v", r, err)
	}
	if _, err := bob.Renew(ctx, "db", l.LeaseID, time.Minute); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bob renew err = %v", err)
	}
	locks, err := alice.ListLocks(ctx)
	if err != nil || len(locks) != 1 || locks[0].Name != "db" {
		t.Fatalf("list = %+v, %v", locks, err)
	}
	if err := alice.Release(ctx, "db", l.LeaseID); err != nil {
		t.Fatal(err)
	}
	if err := alice.Release(ctx, "db", l.LeaseID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second release err = %v", err)
	}
	st, err = bob.LockStatus(ctx, "db")
	if err != nil || !st.Available() {
		t.Fatalf("status after release = %+v, %v", st, err)
	}
	l2, err := bob.Acquire(ctx, "db", time.Second)
	if err != nil || l2.FencingToken != 2 {
		t.Fatalf("bob acquire = %+v, %v", l2, err)
	}
	if _, err := alice.Acquire(ctx, "db", 0); !errors.Is(err, ErrValidation) {
		t.Fatalf("ttl 0 err = %v", err)
	}
}

func TestLimitEndpoints(t *testing.T) {
	_, alice, _ := fake(t)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		r, err := alice.CheckLimit(ctx, "api", 2, time.Minute)
		if err != nil || !r.Allowed || r.Remaining != 1-i || r.Limit != 2 {
			t.Fatalf("check %d = %+v, %v", i, r, err)
		}
	}
	r, err := alice.CheckLimit(ctx, "api", 2, time.Minute)
	if err != nil || r.Allowed || r.RetryAfter() <= 0 {
		t.Fatalf("denied check = %+v, %v", r, err)
	}
	st, err := alice.LimitStatus(ctx, "api")
	if err != nil || st.Allowed || st.Remaining != 0 {
		t.Fatalf("status = %+v, %v", st, err)
	}
	ls, err := alice.ListLimits(ctx)
	if err != nil || len(ls) != 1 || ls[0].MaxRequests != 2 || ls[0].CurrentCount != 2 {
		t.Fatalf("list = %+v, %v", ls, err)
	}
	if err := alice.ResetLimit(ctx, "api"); err != nil {
		t.Fatal(err)
	}
	if err := alice.ResetLimit(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("reset unknown err = %v", err)
	}
	if _, err := alice.LimitStatus(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("status unknown err = %v", err)
	}
}

func TestFlagEndpoints(t *testing.T) {
	_, alice, _ := fake(t)
	ctx := context.Background()
	f, err := alice.SetFlag(ctx, "beta", FlagSpec{Enabled: true, Percentage: new(30)})
	if err != nil || !f.Enabled || f.Percentage == nil || *f.Percentage != 30 {
		t.Fatalf("set = %+v, %v", f, err)
	}
	ev, err := alice.GetFlag(ctx, "beta", "user 42/é")
	if err != nil || ev.Reason != "SPLIT" {
		t.Fatalf("get = %+v, %v", ev, err)
	}
	if ev, _ := alice.GetFlag(ctx, "missing", ""); ev.Enabled || ev.Reason != "FLAG_NOT_FOUND" {
		t.Fatalf("missing = %+v", ev)
	}
	fs, err := alice.ListFlags(ctx)
	if err != nil || len(fs) != 1 || fs[0].Name != "beta" {
		t.Fatalf("list = %+v, %v", fs, err)
	}
	if err := alice.DeleteFlag(ctx, "beta"); err != nil {
		t.Fatal(err)
	}
	if err := alice.DeleteFlag(ctx, "beta"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete again err = %v", err)
	}
}

func TestConfigEndpoints(t *testing.T) {
	_, alice, _ := fake(t)
	ctx := context.Background()
	e, err := alice.SetConfig(ctx, "app.db", ConfigWrite{Value: map[string]int{"pool": 5}, Description: "db settings", ExpectedVersion: new(int64(0))})
	if err != nil || e.Version != 1 || string(e.Value) != `{"pool":5}` {
		t.Fatalf("create = %+v, %v", e, err)
	}
	_, err = alice.SetConfig(ctx, "app.db", ConfigWrite{Value: 1, ExpectedVersion: new(int64(0))})
	var ce *ConflictError
	if !errors.Is(err, ErrConflict) || !errors.As(err, &ce) || ce.CurrentVersion != 1 {
		t.Fatalf("create-only on existing err = %v", err)
	}
	if e, err = alice.SetConfig(ctx, "app.db", ConfigWrite{Value: json.RawMessage(`{"pool":9}`)}); err != nil || e.Version != 2 {
		t.Fatalf("update = %+v, %v", e, err)
	}
	if e, err = alice.GetConfig(ctx, "app.db"); err != nil || e.Version != 2 || string(e.Value) != `{"pool":9}` {
		t.Fatalf("get = %+v, %v", e, err)
	}
	if e, err = alice.GetConfigVersion(ctx, "app.db", 1); err != nil || e.Version != 1 {
		t.Fatalf("get v1 = %+v, %v", e, err)
	}
	h, err := alice.ConfigHistory(ctx, "app.db")
	if err != nil || len(h) != 2 || h[0].Version != 2 || h[1].Description != "db settings" {
		t.Fatalf("history = %+v, %v (newest first)", h, err)
	}
	// Pages: 25 more versions, read 10 at a time and whole.
	for i := 0; i < 25; i++ {
		if _, err := alice.SetConfig(ctx, "app.db", ConfigWrite{Value: i}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := alice.ConfigHistoryPage(ctx, "app.db", "", 10)
	if err != nil || len(p.Versions) != 10 || p.Versions[0].Version != 27 || p.NextCursor == "" {
		t.Fatalf("first page = %+v, %v", p, err)
	}
	p, err = alice.ConfigHistoryPage(ctx, "app.db", p.NextCursor, 10)
	if err != nil || len(p.Versions) != 10 || p.Versions[0].Version != 17 {
		t.Fatalf("second page = %+v, %v", p, err)
	}
	if h, err = alice.ConfigHistory(ctx, "app.db"); err != nil || len(h) != 27 || h[26].Version != 1 {
		t.Fatalf("whole history: %d versions, %v", len(h), err)
	}
	ls, err := alice.ListConfig(ctx)
	if err != nil || len(ls) != 1 || ls[0].Key != "app.db" || ls[0].Value != nil {
		t.Fatalf("list = %+v, %v", ls, err)
	}
	if err := alice.DeleteConfig(ctx, "app.db"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.GetConfig(ctx, "app.db"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get deleted err = %v", err)
	}
}

func TestTokensHealthMetrics(t *testing.T) {
	srv, alice, _ := fake(t)
	ctx := context.Background()
	if err := alice.Health(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Metrics(ctx); !errors.Is(err, ErrForbidden) {
		t.Fatalf("metrics as user err = %v", err)
	}
	admin, _ := New(srv.URL, "", append(checked(t), WithAdminKey("adminkey"))...)
	m, err := admin.Metrics(ctx)
	if err != nil || !strings.Contains(m, "octostore_up 1") {
		t.Fatalf("metrics = %q, %v", m, err)
	}
	old := alice.Token()
	tok, err := alice.RotateToken(ctx)
	if err != nil || !strings.HasPrefix(tok, "octo_") || alice.Token() != tok {
		t.Fatalf("rotate = %q, %v", tok, err)
	}
	stale, _ := New(srv.URL, old, checked(t)...)
	if _, err := stale.ListLocks(ctx); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("old token err = %v", err)
	}
	if _, err := alice.ListLocks(ctx); err != nil {
		t.Fatalf("new token err = %v", err)
	}
	if err := alice.RevokeToken(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.ListLocks(ctx); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("revoked token err = %v", err)
	}
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:3000", "ftp://x", "http://", "http://[::1"} {
		if _, err := New(u, "t"); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
	c, err := New("https://example.com/api/", "t")
	if err != nil || c.BaseURL() != "https://example.com/api" || c.hc.Addr != "example.com:443" || !c.hc.IsTLS {
		t.Fatalf("New(https) = %+v, %v", c, err)
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	srv := clienttest.New(map[string]string{"tokA": "alice"})
	defer srv.Close()
	c, _ := New(srv.URL, "tokA")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		l, err := c.Acquire(ctx, "bench", time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Release(ctx, "bench", l.LeaseID); err != nil {
			b.Fatal(err)
		}
	}
}
