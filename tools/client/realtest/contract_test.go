// Package realtest runs one contract suite for the Go client against every
// implementation of the API: the real server (the octostore binary, built
// once by TestMain and run as `octostore serve` on 127.0.0.1:0 with a
// temporary database) and the in-memory fake (clienttest). Every exchange of
// the suite is also checked against the published document,
// docs/openapi.yaml (httpd/apitest), so the fake and the server are held to
// one contract. It lives apart from package client so that the client's own
// tests never depend on the server compiling.
package realtest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd/apitest"
	"github.com/octostore/octostore/tools/client"
	"github.com/octostore/octostore/tools/client/clienttest"
	"github.com/octostore/octostore/tools/servertest"
)

const (
	tokA     = "tokA" // alice
	tokB     = "tokB" // bob
	adminKey = "admin-secret"
)

// octostoreBin is the binary TestMain builds.
var octostoreBin string

func TestMain(m *testing.M) { os.Exit(servertest.BuildAndRun(m, false, &octostoreBin)) }

type implementation struct {
	name  string
	start func(t *testing.T) string // returns the base URL
}

var implementations = []implementation{
	{"real", func(t *testing.T) string {
		var stderr bytes.Buffer
		p, err := servertest.Start(octostoreBin, []string{"serve", "--addr", "127.0.0.1:0",
			"--db", filepath.Join(t.TempDir(), "octostore.db"),
			"--static-tokens", "alice:" + tokA + ",bob:" + tokB, "--admin-key", adminKey, "--log-level", "warn"},
			&stderr, 60*time.Second)
		if err != nil {
			t.Fatalf("%v: %s", err, stderr.String())
		}
		t.Cleanup(func() {
			if err := p.Stop(30 * time.Second); err != nil {
				t.Errorf("serve after SIGTERM: %v: %s", err, stderr.String())
			}
		})
		return p.URL
	}},
	{"fake", func(t *testing.T) string {
		srv := clienttest.New(map[string]string{tokA: "alice", tokB: "bob"})
		srv.SetAdminKey(adminKey)
		t.Cleanup(srv.Close)
		return srv.URL
	}},
}

// each runs f against every implementation.
func each(t *testing.T, f func(t *testing.T, url string)) {
	for _, impl := range implementations {
		t.Run(impl.name, func(t *testing.T) { f(t, impl.start(t)) })
	}
}

func clients(t *testing.T, url string) (alice, bob *client.Client) {
	t.Helper()
	return newClient(t, url, tokA), newClient(t, url, tokB)
}

// newClient is a client for token whose every exchange (unary calls and
// event streams) is checked against docs/openapi.yaml (shown in
// docs/client.md, word for word: docs/docs_test.go checks it).
func newClient(t *testing.T, url, token string) *client.Client {
	t.Helper()
	c, err := client.New(url, token,
		client.WithTransport(apitest.FastTransport(t, nil)), // unary calls (fasthttp)
		client.WithHTTPClient(apitest.Client(t, nil)))       // event streams (net/http)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// requireRoute fails the test when the server does not serve path.
func requireRoute(t *testing.T, url, path string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url+path, nil)
	req.Header.Set("Authorization", "Bearer "+tokA)
	resp, err := apitest.Client(t, nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close() // without reading: it may be an endless event stream
	if resp.StatusCode == 404 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if bytes.Contains(body, []byte("no such route")) {
			t.Fatalf("server does not serve %s", path)
		}
	}
}

func TestContractLocks(t *testing.T) {
	each(t, func(t *testing.T, url string) {
		alice, bob := clients(t, url)
		ctx := context.Background()
		l, err := alice.Acquire(ctx, "contract", 30*time.Second)
		if err != nil || l.Status != "acquired" || l.Holder != "alice" || l.FencingToken < 1 || len(l.LeaseID) != 36 {
			t.Fatalf("acquire = %+v, %v", l, err)
		}
		if time.Until(l.ExpiresAt) < 25*time.Second || time.Until(l.ExpiresAt) > 35*time.Second {
			t.Fatalf("expires_at %v not ~30s ahead", l.ExpiresAt)
		}
		again, err := alice.Acquire(ctx, "contract", 30*time.Second)
		if err != nil || again.Status != "held" || again.LeaseID != l.LeaseID || again.FencingToken != l.FencingToken {
			t.Fatalf("re-acquire = %+v, %v", again, err)
		}
		_, err = bob.Acquire(ctx, "contract", 30*time.Second)
		var held *client.LockHeldError
		if !errors.As(err, &held) || held.Holder != "alice" || held.ExpiresAt.IsZero() || !errors.Is(err, client.ErrLockHeld) {
			t.Fatalf("bob acquire err = %v", err)
		}
		st, err := bob.LockStatus(ctx, "contract")
		if err != nil || st.Available() || st.Holder != "alice" || st.LeaseID != "" {
			t.Fatalf("bob status = %+v, %v (lease id must not leak)", st, err)
		}
		if _, err := bob.Renew(ctx, "contract", l.LeaseID, time.Minute); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("bob renew err = %v", err)
		}
		r, err := alice.Renew(ctx, "contract", l.LeaseID, time.Minute)
		if err != nil || r.FencingToken != l.FencingToken || !r.ExpiresAt.After(l.ExpiresAt) {
			t.Fatalf("renew = %+v, %v", r, err)
		}
		ls, err := alice.ListLocks(ctx)
		if err != nil || len(ls) != 1 || ls[0].Name != "contract" || ls[0].LeaseID != l.LeaseID {
			t.Fatalf("list = %+v, %v", ls, err)
		}
		if err := alice.Release(ctx, "contract", l.LeaseID); err != nil {
			t.Fatal(err)
		}
		if err := alice.Release(ctx, "contract", l.LeaseID); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("release twice err = %v", err)
		}
		if st, err := alice.LockStatus(ctx, "contract"); err != nil || !st.Available() {
			t.Fatalf("status after release = %+v, %v", st, err)
		}
		l2, err := bob.Acquire(ctx, "contract", time.Second)
		if err != nil || l2.FencingToken <= l.FencingToken {
			t.Fatalf("next grant = %+v, %v (fencing token must increase)", l2, err)
		}
	})
}

func TestContractErrors(t *testing.T) {
	each(t, func(t *testing.T, url string) {
		alice, _ := clients(t, url)
		ctx := context.Background()
		stranger := newClient(t, url, "nope")
		if _, err := stranger.Acquire(ctx, "x", time.Second); !errors.Is(err, client.ErrUnauthorized) {
			t.Fatalf("bad token err = %v", err)
		}
		var ve *client.ValidationError
		if _, err := alice.Acquire(ctx, "x", 2*time.Hour); !errors.As(err, &ve) || ve.Message == "" {
			t.Fatalf("ttl 2h err = %v", err)
		}
		if _, err := alice.Acquire(ctx, "bad name!", time.Second); !errors.Is(err, client.ErrValidation) {
			t.Fatalf("bad name err = %v", err)
		}
		if err := alice.Release(ctx, "x", "not-a-uuid"); !errors.Is(err, client.ErrValidation) {
			t.Fatalf("bad lease id err = %v", err)
		}
		if err := alice.Health(ctx); err != nil {
			t.Fatalf("health = %v", err)
		}
	})
}

func TestContractLocker(t *testing.T) {
	each(t, func(t *testing.T, url string) {
		alice, bob := clients(t, url)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		a := client.NewLocker(alice, "locker", time.Second) // renewed every ~333ms
		if err := a.Lock(ctx); err != nil {
			t.Fatal(err)
		}
		first := a.Lease()
		// Renewal keeps the 1s lease alive: wait until the server shows an
		// expiry later than the first grant's, twice.
		for seen := first.ExpiresAt; seen.Before(first.ExpiresAt.Add(time.Second)); {
			select {
			case <-a.Done():
				t.Fatalf("lost: %v", a.Err())
			case <-ctx.Done():
				t.Fatal("no renewal observed")
			case <-time.After(50 * time.Millisecond):
			}
			st, err := alice.LockStatus(ctx, "locker")
			if err != nil || st.Holder != "alice" || st.FencingToken != first.FencingToken {
				t.Fatalf("status = %+v, %v", st, err)
			}
			seen = st.ExpiresAt
		}
		b := client.NewLocker(bob, "locker", time.Second, client.WithPollInterval(10*time.Millisecond, 50*time.Millisecond))
		if err := b.TryLock(ctx); !errors.Is(err, client.ErrLockHeld) {
			t.Fatalf("TryLock while held = %v", err)
		}
		errc := make(chan error, 1)
		go func() { errc <- b.Lock(ctx) }()
		if err := a.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if got := b.Lease(); got.FencingToken <= first.FencingToken {
			t.Fatalf("second holder's token %d not above %d", got.FencingToken, first.FencingToken)
		}
		b.Unlock(ctx)
	})
}

// Two processes sharing one token (README pattern 2 on two hosts): each
// Locker is its own holder, so the second is refused, never handed the
// first's lease, and its attempts never extend the first's hold; after the
// first releases, the second gets the next fencing token.
func TestContractLockerOneTokenTwoHolders(t *testing.T) {
	each(t, func(t *testing.T, url string) {
		hostA, hostB := newClient(t, url, tokA), newClient(t, url, tokA)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		a := client.NewLocker(hostA, "one-token", time.Minute)
		if err := a.TryLock(ctx); err != nil {
			t.Fatal(err)
		}
		before, err := hostA.LockStatus(ctx, "one-token")
		if err != nil {
			t.Fatal(err)
		}
		b := client.NewLocker(hostB, "one-token", time.Hour, client.WithPollInterval(10*time.Millisecond, 50*time.Millisecond))
		if err := b.TryLock(ctx); !errors.Is(err, client.ErrLockHeld) || b.Held() {
			t.Fatalf("second holder of the token: TryLock = %v, held %v", err, b.Held())
		}
		// The raw API agrees: another holder id of the same user is 409.
		if _, err := hostB.AcquireAs(ctx, "one-token", "host-b", time.Hour); !errors.Is(err, client.ErrLockHeld) {
			t.Fatalf("AcquireAs another holder id = %v", err)
		}
		after, err := hostA.LockStatus(ctx, "one-token")
		if err != nil || !after.ExpiresAt.Equal(before.ExpiresAt) || after.HolderID != a.HolderID() {
			t.Fatalf("status after the second's attempts %+v (%v), was %+v", after, err, before)
		}
		errc := make(chan error, 1)
		go func() { errc <- b.Lock(ctx) }()
		if err := a.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if got := b.Lease(); got.FencingToken != before.FencingToken+1 {
			t.Fatalf("second holder's lease %+v, first's token %d", got, before.FencingToken)
		}
		b.Unlock(ctx)
	})
}

func TestContractLimitsFlagsConfig(t *testing.T) {
	each(t, func(t *testing.T, url string) {
		alice, _ := clients(t, url)
		ctx := context.Background()
		t.Run("limits", func(t *testing.T) {
			requireRoute(t, url, "/limits")
			for i := 0; i < 2; i++ {
				if r, err := alice.CheckLimit(ctx, "api", 2, time.Minute); err != nil || !r.Allowed {
					t.Fatalf("check %d = %+v, %v", i, r, err)
				}
			}
			if r, err := alice.CheckLimit(ctx, "api", 2, time.Minute); err != nil || r.Allowed {
				t.Fatalf("third check = %+v, %v", r, err)
			}
			if err := alice.ResetLimit(ctx, "api"); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("flags", func(t *testing.T) {
			requireRoute(t, url, "/flags")
			if _, err := alice.SetFlag(ctx, "beta", client.FlagSpec{Enabled: true}); err != nil {
				t.Fatal(err)
			}
			if ev, err := alice.GetFlag(ctx, "beta", "u1"); err != nil || !ev.Enabled {
				t.Fatalf("get = %+v, %v", ev, err)
			}
			if err := alice.DeleteFlag(ctx, "beta"); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("config", func(t *testing.T) {
			requireRoute(t, url, "/config")
			if _, err := alice.SetConfig(ctx, "app.k", client.ConfigWrite{Value: 1, ExpectedVersion: new(int64(0))}); err != nil {
				t.Fatal(err)
			}
			_, err := alice.SetConfig(ctx, "app.k", client.ConfigWrite{Value: 2, ExpectedVersion: new(int64(0))})
			var ce *client.ConflictError
			if !errors.As(err, &ce) || ce.CurrentVersion != 1 {
				t.Fatalf("conflict err = %v", err)
			}
		})
	})
}

// The admin key with WithOwner works on a user's flags, limits and config,
// a user may name only itself, and the admin releases a lock without its
// lease id.
func TestContractAdminOwner(t *testing.T) {
	each(t, func(t *testing.T, url string) {
		alice, bob := clients(t, url)
		ctx := context.Background()
		adminForAlice, err := client.New(url, adminKey, client.WithOwner("alice"),
			client.WithTransport(apitest.FastTransport(t, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := adminForAlice.SetFlag(ctx, "owned", client.FlagSpec{Enabled: true}); err != nil {
			t.Fatalf("admin set alice's flag: %v", err)
		}
		if ev, err := alice.GetFlag(ctx, "owned", ""); err != nil || !ev.Enabled {
			t.Fatalf("alice's flag set by the admin = %+v, %v", ev, err)
		}
		if ev, err := bob.GetFlag(ctx, "owned", ""); err != nil || ev.Enabled {
			t.Fatalf("bob sees %+v, %v: the flag went to the wrong owner", ev, err)
		}
		if _, err := adminForAlice.SetConfig(ctx, "app.owned", client.ConfigWrite{Value: 1}); err != nil {
			t.Fatalf("admin set alice's config: %v", err)
		}
		if e, err := alice.GetConfig(ctx, "app.owned"); err != nil || e.Version != 1 {
			t.Fatalf("alice's config = %+v, %v", e, err)
		}
		if r, err := adminForAlice.CheckLimit(ctx, "owned", 5, time.Minute); err != nil || r.Remaining != 4 {
			t.Fatalf("admin check of alice's limit = %+v, %v", r, err)
		}
		if r, err := alice.LimitStatus(ctx, "owned"); err != nil || r.Remaining != 4 {
			t.Fatalf("alice's limit = %+v, %v", r, err)
		}
		if err := adminForAlice.DeleteFlag(ctx, "owned"); err != nil {
			t.Fatalf("admin delete alice's flag: %v", err)
		}
		bobAsAlice, err := client.New(url, tokB, client.WithOwner("alice"), client.WithTransport(apitest.FastTransport(t, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bobAsAlice.GetConfig(ctx, "app.owned"); !errors.Is(err, client.ErrForbidden) {
			t.Fatalf("bob naming alice = %v, want ErrForbidden", err)
		}

		if _, err := bob.Acquire(ctx, "stuck", time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := alice.Release(ctx, "stuck", ""); !errors.Is(err, client.ErrValidation) {
			t.Fatalf("a user's release without a lease id = %v, want ErrValidation", err)
		}
		admin := newClient(t, url, adminKey)
		if err := admin.Release(ctx, "stuck", ""); err != nil {
			t.Fatalf("admin release without a lease id: %v", err)
		}
		if st, err := bob.LockStatus(ctx, "stuck"); err != nil || !st.Available() {
			t.Fatalf("after the admin's release = %+v, %v", st, err)
		}
	})
}

func TestContractEvents(t *testing.T) {
	each(t, func(t *testing.T, url string) {
		requireRoute(t, url, "/events")
		alice, bob := clients(t, url)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		next := func(s *client.EventStream, what string) client.Event {
			t.Helper()
			select {
			case ev, ok := <-s.C:
				if !ok {
					t.Fatalf("%s: stream ended: %v", what, s.Err())
				}
				return ev
			case <-ctx.Done():
				t.Fatalf("%s: no event", what)
			}
			return client.Event{}
		}
		all, err := alice.Events(ctx, client.EventFilter{Kind: "lock", Prefix: "ev-"})
		if err != nil {
			t.Fatal(err)
		}
		defer all.Close()
		watch, err := alice.WatchLock(ctx, "ev-1")
		if err != nil {
			t.Fatal(err)
		}
		defer watch.Close()
		if ev := next(watch, "watch state"); ev.Type != client.EventLockState || ev.Holder != "" {
			t.Fatalf("first watch event = %+v", ev)
		}
		if _, err := alice.Acquire(ctx, "other", time.Minute); err != nil { // filtered out by prefix
			t.Fatal(err)
		}
		l, err := bob.Acquire(ctx, "ev-1", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []*client.EventStream{all, watch} {
			ev := next(s, "acquired")
			if ev.Type != client.EventLockAcquired || ev.Name != "ev-1" || ev.Holder != "bob" || ev.FencingToken != l.FencingToken || ev.Seq == 0 {
				t.Fatalf("event = %+v", ev)
			}
			if ev.LeaseID != "" {
				t.Fatalf("lease id leaked to a non-holder: %+v", ev)
			}
		}
		if err := bob.Release(ctx, "ev-1", l.LeaseID); err != nil {
			t.Fatal(err)
		}
		for _, s := range []*client.EventStream{all, watch} {
			if ev := next(s, "released"); ev.Type != client.EventLockReleased || ev.Name != "ev-1" {
				t.Fatalf("event = %+v", ev)
			}
		}
	})
}

// A Session keeps itself alive (TTL 5 s: keepalives every ~1.7 s) beyond
// its TTL, its Lockers hold their locks without renewals, another user
// waits in the lock's queue, and closing the session hands the lock to the
// waiter at once.
func TestContractSession(t *testing.T) {
	each(t, func(t *testing.T, url string) {
		alice, bob := clients(t, url)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := client.NewSession(ctx, alice, client.WithSessionTTL(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		l := s.NewLocker("sess-job")
		if err := l.Lock(ctx); err != nil {
			t.Fatal(err)
		}
		first := s.ExpiresAt()
		for s.ExpiresAt().Before(first.Add(time.Second)) { // a keepalive moved it
			select {
			case <-s.Done():
				t.Fatalf("session lost: %v", s.Err())
			case <-ctx.Done():
				t.Fatal("no keepalive observed")
			case <-time.After(50 * time.Millisecond):
			}
		}
		st, err := bob.LockStatus(ctx, "sess-job")
		if err != nil || st.Holder != "alice" || !st.ExpiresAt.Equal(s.ExpiresAt()) {
			t.Fatalf("status = %+v %v, want the session's expiry %s", st, err, s.ExpiresAt())
		}
		w := client.NewLocker(bob, "sess-job", time.Minute)
		errc := make(chan error, 1)
		go func() { errc <- w.Lock(ctx) }()
		for {
			st, err := alice.LockStatus(ctx, "sess-job")
			if err != nil {
				t.Fatal(err)
			}
			if st.Waiters == 1 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		<-l.Done()
		if w.Lease().FencingToken != l.Lease().FencingToken+1 && w.Lease().FencingToken < 2 {
			t.Fatalf("waiter's lease %+v", w.Lease())
		}
		w.Unlock(ctx)
	})
}

// The Semaphore type against the real server (the fake has no semaphores):
// two slots of a limit-2 semaphore, a third waits in the queue and gets the
// next fencing token when one is released; Limit and Holders come back;
// renewal keeps a 1 s slot alive.
func TestSemaphoreClient(t *testing.T) {
	url := implementations[0].start(t)
	alice, bob := clients(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := client.NewSemaphore(alice, "sem-client", 2, time.Second) // renewed every ~333ms
	b := client.NewSemaphore(bob, "sem-client", 2, time.Minute)
	for _, s := range []*client.Semaphore{a, b} {
		if err := s.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if l := b.Lease(); l.Limit != 2 || l.Holders != 2 || l.FencingToken != 2 {
		t.Fatalf("second slot %+v", l)
	}
	c := client.NewSemaphore(bob, "sem-client", 2, time.Minute)
	if err := c.TryAcquire(ctx); !errors.Is(err, client.ErrSemaphoreFull) {
		t.Fatalf("TryAcquire of a full semaphore: %v", err)
	}
	if _, err := bob.AcquireSemaphore(ctx, "sem-client", 3, time.Minute, client.AcquireOptions{}); !errors.Is(err, client.ErrValidation) {
		t.Fatalf("another limit: %v", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- c.Acquire(ctx) }()
	for {
		st, err := alice.SemaphoreStatus(ctx, "sem-client")
		if err != nil {
			t.Fatal(err)
		}
		if st.Waiters == 1 {
			if st.Available != 0 || len(st.Holders) != 2 || st.Holders[0].LeaseID != a.Lease().LeaseID || st.Holders[1].LeaseID != "" {
				t.Fatalf("status for alice: %+v", st)
			}
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	// a's 1 s slot outlives its TTL by renewal: the server shows an expiry a
	// second past the grant's.
	first := a.Lease().ExpiresAt
	for seen := first; seen.Before(first.Add(time.Second)); {
		select {
		case <-a.Done():
			t.Fatalf("a lost its slot: %v", a.Err())
		case <-ctx.Done():
			t.Fatal("no renewal observed")
		case <-time.After(50 * time.Millisecond):
		}
		st, err := alice.SemaphoreStatus(ctx, "sem-client")
		if err != nil {
			t.Fatal(err)
		}
		seen = st.Holders[0].ExpiresAt
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if l := c.Lease(); l.FencingToken != 3 {
		t.Fatalf("the waiter's slot %+v", l)
	}
	b.Release(ctx)
	c.Release(ctx)
}

// CheckFence against the real server: the storage side's check.
func TestFenceClient(t *testing.T) {
	url := implementations[0].start(t)
	alice, bob := clients(t, url)
	ctx := context.Background()
	l, err := alice.Acquire(ctx, "fenced", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if f, err := bob.CheckFence(ctx, "fenced", l.FencingToken); err != nil || !f.Valid || f.Holder != "alice" {
		t.Fatalf("the current token: %+v %v", f, err)
	}
	if err := alice.Release(ctx, "fenced", l.LeaseID); err != nil {
		t.Fatal(err)
	}
	if f, err := bob.CheckFence(ctx, "fenced", l.FencingToken); !errors.Is(err, client.ErrStaleToken) || f.Valid || f.CurrentFencingToken != l.FencingToken {
		t.Fatalf("after the release: %+v %v", f, err)
	}
	if f, err := bob.CheckSemaphoreFence(ctx, "never", 3); !errors.Is(err, client.ErrStaleToken) || f.Valid || f.CurrentFencingToken != 0 {
		t.Fatalf("a semaphore never taken: %+v %v", f, err)
	}
}
