package httpd_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/octostore/octostore/httpd"
)

// Semaphores over HTTP: slots, held for a repeated holder id, full, limit
// mismatch, renew and release, status (lease ids of one's own slots only),
// waiting, bad input, across a restart.
func TestSemaphoresHTTP(t *testing.T) {
	db := filepath.Join(t.TempDir(), "sem.db")
	opts := httpd.TestOptions{DBPath: db, StaticTokens: map[string]string{"tokA": "alice", "tokB": "bob", "tokC": "carol"}, AdminKey: "admin-secret"}
	a := httpd.MustStartTestServer(t, opts)
	acq := func(tok, body string, status int) lkResp {
		t.Helper()
		return lkDo(t, a, "POST", "/semaphores/pool/acquire", tok, body).expect(t, status)
	}
	r := acq("tokA", `{"limit":2,"ttl_seconds":60,"holder_id":"w1"}`, 200)
	if r.body["status"] != "acquired" || r.body["limit"].(float64) != 2 || r.body["holders"].(float64) != 1 ||
		r.body["fencing_token"].(float64) != 1 || r.body["holder_id"] != "w1" {
		t.Fatalf("first: %v", r.body)
	}
	lease := r.body["lease_id"].(string)
	if h := acq("tokA", `{"limit":2,"ttl_seconds":60,"holder_id":"w1"}`, 200); h.body["status"] != "held" || h.body["lease_id"] != lease {
		t.Fatalf("a repeated holder id: %v", h.body)
	}
	b := acq("tokB", `{"limit":2,"ttl_seconds":60}`, 200)
	if b.body["fencing_token"].(float64) != 2 || b.body["holders"].(float64) != 2 {
		t.Fatalf("second: %v", b.body)
	}
	f := acq("tokC", `{"limit":2,"ttl_seconds":60}`, 409)
	if sem, _ := f.body["semaphore"].(map[string]any); f.body["error"] != "Semaphore full" || sem["limit"].(float64) != 2 || sem["holders"].(float64) != 2 {
		t.Fatalf("full: %v", f.body)
	}
	if e := acq("tokC", `{"limit":3,"ttl_seconds":60}`, 422); !strings.Contains(e.body["error"].(string), "limit") {
		t.Fatalf("another limit: %v", e.body)
	}
	st := lkDo(t, a, "GET", "/semaphores/pool", "tokA", "").expect(t, 200)
	hs := st.body["holders"].([]any)
	if st.body["limit"].(float64) != 2 || st.body["available"].(float64) != 0 || len(hs) != 2 ||
		hs[0].(map[string]any)["lease_id"] != lease || hs[1].(map[string]any)["lease_id"] != nil || hs[1].(map[string]any)["holder"] != "bob" {
		t.Fatalf("status for alice: %v", st.body)
	}
	lkDo(t, a, "POST", "/semaphores/pool/renew", "tokB", `{"lease_id":"`+lease+`","ttl_seconds":60}`).expect(t, 404)
	lkDo(t, a, "POST", "/semaphores/pool/renew", "tokA", `{"lease_id":"`+lease+`","ttl_seconds":120}`).expect(t, 200)
	lkDo(t, a, "POST", "/semaphores/pool/release", "tokB", `{"lease_id":"`+lease+`"}`).expect(t, 404)
	lkDo(t, a, "POST", "/semaphores/pool/release", "tokA", `{"lease_id":"`+lease+`"}`).expect(t, 200)
	lkDo(t, a, "POST", "/semaphores/pool/release", "tokA", `{"lease_id":"`+lease+`"}`).expect(t, 404)
	if c := acq("tokC", `{"limit":2,"ttl_seconds":60}`, 200); c.body["fencing_token"].(float64) != 3 {
		t.Fatalf("after a release: %v", c.body)
	}

	// Waiting: carol's second slot waits until bob releases.
	w := startWaitingPath(t, a, "tokC", "/semaphores/pool/acquire", `{"limit":2,"ttl_seconds":60,"wait_seconds":30,"holder_id":"w2"}`)
	waitUntil(t, "carol queued", func() bool {
		return lkDo(t, a, "GET", "/semaphores/pool", "tokC", "").expect(t, 200).body["waiters"].(float64) == 1
	})
	lkDo(t, a, "POST", "/semaphores/pool/release", "tokB", `{"lease_id":"`+b.body["lease_id"].(string)+`"}`).expect(t, 200)
	if res := <-w.done; res == nil || res.StatusCode != 200 || res.body["fencing_token"].(float64) != 4 {
		t.Fatalf("carol's waiting acquire: %+v", res)
	}

	// Durable: slots and tokens survive a restart.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a = httpd.MustStartTestServer(t, opts)
	acq("tokA", `{"limit":2,"ttl_seconds":60}`, 409)
	st = lkDo(t, a, "GET", "/semaphores/pool", "", "", "X-Admin-Key", "admin-secret").expect(t, 200)
	if hs := st.body["holders"].([]any); len(hs) != 2 || hs[1].(map[string]any)["fencing_token"].(float64) != 4 || hs[1].(map[string]any)["lease_id"] == nil {
		t.Fatalf("after a restart, as the admin: %v", st.body)
	}
	for _, h := range st.body["holders"].([]any) {
		lkDo(t, a, "POST", "/semaphores/pool/release", "", `{"lease_id":"`+h.(map[string]any)["lease_id"].(string)+`"}`, "X-Admin-Key", "admin-secret").expect(t, 200)
	}
	if g := acq("tokA", `{"limit":5,"ttl_seconds":60}`, 200); g.body["fencing_token"].(float64) != 5 || g.body["limit"].(float64) != 5 {
		t.Fatalf("empty after the admin's releases, a new limit: %v", g.body)
	}
}

func TestSemaphoresBadInput(t *testing.T) {
	a := waitStart(t, httpd.TestOptions{})
	for body, field := range map[string]string{
		`{"ttl_seconds":60}`:                              "limit",
		`{"limit":0,"ttl_seconds":60}`:                    "limit",
		`{"limit":10001,"ttl_seconds":60}`:                "limit",
		`{"limit":"3","ttl_seconds":60}`:                  "limit",
		`{"limit":2.5,"ttl_seconds":60}`:                  "limit",
		`{"limit":2}`:                                     "ttl_seconds",
		`{"limit":2,"ttl_seconds":0}`:                     "TTL",
		`{"limit":2,"ttl_seconds":60,"holder_id":""}`:     "holder_id",
		`{"limit":2,"ttl_seconds":60,"wait_seconds":301}`: "wait_seconds",
		`{"limit":2,"ttl_seconds":60,"session_id":"x"}`:   "session_id",
		`{"limit":2,"limit":3,"ttl_seconds":60}`:          "limit is given more than once",
	} {
		e := lkDo(t, a, "POST", "/semaphores/bad/acquire", "tokA", body).expect(t, 422)
		if !strings.Contains(e.body["error"].(string), field) {
			t.Fatalf("%s: %v, want a message naming %s", body, e.body, field)
		}
	}
	lkDo(t, a, "POST", "/semaphores/a.b/acquire", "tokA", `{"limit":2,"ttl_seconds":60}`).expect(t, 422)
	lkDo(t, a, "POST", "/semaphores/bad/release", "tokA", `{"lease_id":"nope"}`).expect(t, 422)
	lkDo(t, a, "POST", "/semaphores/bad/acquire", "", `{"limit":2,"ttl_seconds":60}`, "X-Admin-Key", "admin-secret").expect(t, 403)
	if st := lkDo(t, a, "GET", "/semaphores/bad", "tokA", "").expect(t, 200); st.body["limit"].(float64) != 0 || len(st.body["holders"].([]any)) != 0 {
		t.Fatalf("after refused acquires: %v", st.body)
	}
}
