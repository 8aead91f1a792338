package httpd_test

import (
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd"
	"github.com/octostore/octostore/tools/client"
)

// Metadata of a hold: shown to every user (status, 409, listings, events),
// changed by a re-acquire, cleared with the hold; bad values are 422 and
// change nothing.
func TestMetadataHTTP(t *testing.T) {
	a := waitStart(t, httpd.TestOptions{})
	sub := subscribe(t, evClient(t, a, "tokB"), client.EventFilter{Kind: "lock"})
	r := lkDo(t, a, "POST", "/locks/m/acquire", "tokA", `{"ttl_seconds":60,"holder_id":"h1","metadata":"build-7 pid 31337 ✓"}`).expect(t, 200)
	if r.body["metadata"] != "build-7 pid 31337 ✓" {
		t.Fatalf("acquire: %v", r.body)
	}
	if s := lkDo(t, a, "GET", "/locks/m", "tokB", "").expect(t, 200); s.body["metadata"] != "build-7 pid 31337 ✓" || s.body["lease_id"] != nil {
		t.Fatalf("status for another user: %v", s.body)
	}
	if c := lkDo(t, a, "POST", "/locks/m/acquire", "tokB", `{"ttl_seconds":60}`).expect(t, 409); c.body["lock"].(map[string]any)["metadata"] != "build-7 pid 31337 ✓" {
		t.Fatalf("409: %v", c.body)
	}
	if e := next(t, sub, 5*time.Second); e.Type != "lock.acquired" || e.Metadata != "build-7 pid 31337 ✓" {
		t.Fatalf("event for another user: %+v", e)
	}
	// A re-acquire changes it; without metadata it is kept.
	lkDo(t, a, "POST", "/locks/m/acquire", "tokA", `{"ttl_seconds":60,"holder_id":"h1","metadata":"build-8"}`).expect(t, 200)
	if l := lkDo(t, a, "POST", "/locks/m/acquire", "tokA", `{"ttl_seconds":60,"holder_id":"h1"}`).expect(t, 200); l.body["metadata"] != "build-8" {
		t.Fatalf("re-acquire without metadata: %v", l.body)
	}
	if ls := lkDo(t, a, "GET", "/locks", "tokA", "").expect(t, 200); ls.body["locks"].([]any)[0].(map[string]any)["metadata"] != "build-8" {
		t.Fatalf("listing: %v", ls.body)
	}
	// Bad values: 422 naming metadata, nothing changed.
	for _, v := range []string{`"` + strings.Repeat("x", 1025) + `"`, `"a\u001b[2Jb"`, `"two\nlines"`, `"tab\there"`, `"\u202eevil"`, `5`, `true`, `["a"]`} {
		e := lkDo(t, a, "POST", "/locks/m/acquire", "tokA", `{"ttl_seconds":60,"holder_id":"h1","metadata":`+v+`}`).expect(t, 422)
		if !strings.Contains(e.body["error"].(string), "metadata") {
			t.Fatalf("metadata %.20s: %v", v, e.body)
		}
	}
	lkDo(t, a, "POST", "/locks/n/acquire", "tokA", `{"ttl_seconds":60,"metadata":"`+strings.Repeat("é", 512)+`"}`).expect(t, 200) // 1,024 bytes
	if s := lkDo(t, a, "GET", "/locks/m", "tokA", "").expect(t, 200); s.body["metadata"] != "build-8" {
		t.Fatalf("after refused values: %v", s.body)
	}
	// The hold's end clears it.
	lkDo(t, a, "POST", "/locks/m/release", "tokA", `{"lease_id":"`+r.body["lease_id"].(string)+`"}`).expect(t, 200)
	if g := lkDo(t, a, "POST", "/locks/m/acquire", "tokB", `{"ttl_seconds":60}`).expect(t, 200); g.body["metadata"] != nil {
		t.Fatalf("the next holder: %v", g.body)
	}
	// Semaphore slots.
	lkDo(t, a, "POST", "/semaphores/ms/acquire", "tokA", `{"limit":2,"ttl_seconds":60,"metadata":"worker 3"}`).expect(t, 200)
	if s := lkDo(t, a, "GET", "/semaphores/ms", "tokB", "").expect(t, 200); s.body["holders"].([]any)[0].(map[string]any)["metadata"] != "worker 3" {
		t.Fatalf("semaphore status for another user: %v", s.body)
	}
	lkDo(t, a, "POST", "/semaphores/ms/acquire", "tokA", `{"limit":2,"ttl_seconds":60,"metadata":"\u0007"}`).expect(t, 422)
}
