package httpd_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd"
)

// Lock-delay over HTTP, on an injected clock: 409 "Lock in lock-delay"
// with available_at after an expiry, the status "delayed", free at once
// after a release, durable across a restart; bad input 422.
func TestLockDelayHTTP(t *testing.T) {
	clk := httpd.NewTestClock(time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC))
	db := filepath.Join(t.TempDir(), "delay.db")
	opts := httpd.TestOptions{DBPath: db, Now: clk.Now, StaticTokens: map[string]string{"tokA": "alice", "tokB": "bob"}}
	a := httpd.MustStartTestServer(t, opts)
	lkDo(t, a, "POST", "/locks/d/acquire", "tokA", `{"ttl_seconds":5,"lock_delay_seconds":10}`).expect(t, 200)
	clk.Add(5 * time.Second)
	r := lkDo(t, a, "POST", "/locks/d/acquire", "tokB", `{"ttl_seconds":60}`).expect(t, 409)
	lk, _ := r.body["lock"].(map[string]any)
	if r.body["error"] != "Lock in lock-delay" || lk["holder"] != "alice" || lk["expires_at"] != "2026-06-01T10:00:05.000Z" ||
		lk["available_at"] != "2026-06-01T10:00:15.000Z" {
		t.Fatalf("acquire in the delay: %v", r.body)
	}
	s := lkDo(t, a, "GET", "/locks/d", "tokB", "").expect(t, 200)
	if s.body["status"] != "delayed" || s.body["available_at"] != "2026-06-01T10:00:15.000Z" || s.body["holder"] != "alice" {
		t.Fatalf("status in the delay: %v", s.body)
	}
	// Durable: the delay holds across a restart.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a = httpd.MustStartTestServer(t, opts)
	clk.Add(9 * time.Second)
	lkDo(t, a, "POST", "/locks/d/acquire", "tokA", `{"ttl_seconds":60}`).expect(t, 409) // the former holder too
	clk.Add(time.Second)
	if g := lkDo(t, a, "POST", "/locks/d/acquire", "tokB", `{"ttl_seconds":60}`).expect(t, 200); g.body["fencing_token"].(float64) != 2 {
		t.Fatalf("after the delay: %v", g.body)
	}
	// A release is not an expiry: free at once.
	l := lkDo(t, a, "POST", "/locks/e/acquire", "tokA", `{"ttl_seconds":60,"lock_delay_seconds":60}`).expect(t, 200)
	lkDo(t, a, "POST", "/locks/e/release", "tokA", `{"lease_id":"`+l.body["lease_id"].(string)+`"}`).expect(t, 200)
	lkDo(t, a, "POST", "/locks/e/acquire", "tokB", `{"ttl_seconds":60}`).expect(t, 200)

	// Bad input: 422 naming the field, nothing changed.
	sess := lkDo(t, a, "POST", "/sessions", "tokA", `{"ttl_seconds":60}`).expect(t, 200).body["session_id"].(string)
	for _, body := range []string{`{"ttl_seconds":5,"lock_delay_seconds":61}`, `{"ttl_seconds":5,"lock_delay_seconds":-1}`,
		`{"ttl_seconds":5,"lock_delay_seconds":"1"}`, `{"ttl_seconds":5,"lock_delay_seconds":1.5}`,
		`{"session_id":"` + sess + `","lock_delay_seconds":5}`} {
		e := lkDo(t, a, "POST", "/locks/f/acquire", "tokA", body).expect(t, 422)
		if !strings.Contains(e.body["error"].(string), "lock_delay_seconds") {
			t.Fatalf("%s: %v", body, e.body)
		}
	}
	if st := lkDo(t, a, "GET", "/locks/f", "tokA", "").expect(t, 200); st.body["status"] != "available" {
		t.Fatalf("after refused acquires: %v", st.body)
	}
}
