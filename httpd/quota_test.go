package httpd_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd"
)

// newRelClock is an injected clock (TestOptions.Now) reading now.
func newRelClock() *httpd.TestClock {
	return httpd.NewTestClock(time.Now().UTC().Truncate(time.Millisecond))
}

// TestLockQuotaHolds: a user may hold at most MaxLocksPerUser locks at
// once, even when the grants race each other; beyond it acquire is 403
// {error}; re-acquiring a held lock, releases, expiries and restarts keep
// the count right; other users are not affected.
func TestLockQuotaHolds(t *testing.T) {
	const max = 5
	clk := newRelClock()
	e := relStart(t, func(o *httpd.TestOptions) { o.Locks.MaxPerUser = max; o.Now = clk.Now })

	results := make(chan relResp, 50)
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results <- e.acquire("tokA", fmt.Sprintf("q-%d", i), 60)
		}(i)
	}
	wg.Wait()
	close(results)
	granted := map[string]string{}
	for r := range results {
		switch r.status {
		case 200:
			granted[r.str("name")] = r.str("lease_id")
		case http.StatusForbidden:
			mustJSONError(t, "acquire beyond the quota", r, http.StatusForbidden)
		default:
			t.Fatalf("acquire: %d %s", r.status, r.body)
		}
	}
	if len(granted) != max {
		t.Fatalf("%d concurrent grants succeeded with a quota of %d", len(granted), max)
	}
	if r := e.do("GET", "/locks", "tokA", ""); r.num("total") != max {
		t.Fatalf("alice's locks: %s", r.body)
	}
	var one, lease string
	for one, lease = range granted {
		break
	}
	if r := e.acquire("tokA", one, 60); r.status != 200 || r.str("status") != "held" {
		t.Fatalf("re-acquiring a held lock at the quota: %d %s", r.status, r.body)
	}
	if r := e.acquire("tokB", "bobs", 60); r.status != 200 {
		t.Fatalf("another user while alice is at her quota: %d %s", r.status, r.body)
	}
	mustJSONError(t, "acquire at the quota", e.acquire("tokA", "extra", 60), http.StatusForbidden)
	if r := e.release("tokA", one, lease); r.status != 200 {
		t.Fatalf("release: %d %s", r.status, r.body)
	}
	if r := e.acquire("tokA", "extra", 60); r.status != 200 {
		t.Fatalf("acquire after a release freed a slot: %d %s", r.status, r.body)
	}
	mustJSONError(t, "acquire at the quota again", e.acquire("tokA", "extra2", 60), http.StatusForbidden)

	// A restart recovers the count.
	e.restart()
	mustJSONError(t, "acquire at the quota after a restart", e.acquire("tokA", "extra2", 60), http.StatusForbidden)

	// Expired holds do not count.
	clk.Add(61 * time.Second)
	for i := 0; i < max; i++ {
		if r := e.acquire("tokA", fmt.Sprintf("later-%d", i), 60); r.status != 200 {
			t.Fatalf("acquire %d after every hold expired: %d %s", i, r.status, r.body)
		}
	}
	mustJSONError(t, "acquire beyond the quota after expiries", e.acquire("tokA", "later-x", 60), http.StatusForbidden)
}

// TestLockQuotaNeverBlocksBelow drives one user through a random mix of
// grants, re-acquires, releases and expiries against a model of what it
// holds: every acquire while it holds fewer than the quota succeeds, and
// every acquire of a new lock at the quota is refused.
func TestLockQuotaNeverBlocksBelow(t *testing.T) {
	const max = 12
	clk := newRelClock()
	e := relStart(t, func(o *httpd.TestOptions) { o.Locks.MaxPerUser = max; o.Now = clk.Now })
	type hold struct {
		lease string
		exp   time.Time
	}
	held := map[string]hold{}
	count := func() int {
		n := 0
		for name, h := range held {
			if clk.Now().Before(h.exp) {
				n++
			} else {
				delete(held, name)
			}
		}
		return n
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	grants, refusals := 0, 0
	for step := 0; step < 1500; step++ {
		switch k := rng.IntN(10); {
		case k < 6: // acquire one of 40 names
			name := fmt.Sprintf("n-%d", rng.IntN(40))
			ttl := 1 + rng.IntN(30)
			n := count()
			_, mine := held[name]
			r := e.acquire("tokA", name, ttl)
			switch {
			case mine || n < max:
				if r.status != 200 {
					t.Fatalf("seed %d step %d: acquire %s holding %d < %d (or re-acquire): %d %s", seed, step, name, n, max, r.status, r.body)
				}
				exp, _ := time.Parse(time.RFC3339Nano, r.str("expires_at"))
				held[name] = hold{lease: r.str("lease_id"), exp: exp}
				grants++
			default:
				if r.status != http.StatusForbidden {
					t.Fatalf("seed %d step %d: acquire %s holding %d = quota: %d %s, want 403", seed, step, name, n, r.status, r.body)
				}
				refusals++
			}
		case k < 8: // release one held lock
			count()
			for name, h := range held {
				if r := e.release("tokA", name, h.lease); r.status != 200 {
					t.Fatalf("seed %d step %d: release %s: %d %s", seed, step, name, r.status, r.body)
				}
				delete(held, name)
				break
			}
		default: // time passes; some holds expire
			clk.Add(time.Duration(rng.IntN(8000)) * time.Millisecond)
		}
	}
	if grants == 0 || refusals == 0 {
		t.Fatalf("seed %d: walk never reached both sides of the quota (%d grants, %d refusals)", seed, grants, refusals)
	}
	t.Logf("%d grants, %d refusals at the quota", grants, refusals)
}

// TestLockQuotaDefault: with the default quota (1000) a user can hold 1000
// locks and the 1001st is refused.
func TestLockQuotaDefault(t *testing.T) {
	e := relStart(t, nil)
	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				if r := e.acquire("tokA", fmt.Sprintf("d-%d", i), 600); r.status != 200 {
					errs <- fmt.Sprintf("acquire %d of %d: %d %s", i, n, r.status, r.body)
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	mustJSONError(t, "lock 1001", e.acquire("tokA", "d-1000", 600), http.StatusForbidden)
}
