package httpd_test

import (
	"fmt"
	"testing"

	"github.com/octostore/octostore/httpd"
)

// The fence check over HTTP: any user may check; valid only for the
// current grant's token; stale answers give the last token granted; bad
// tokens are 422.
func TestFenceHTTP(t *testing.T) {
	a := waitStart(t, httpd.TestOptions{})
	fence := func(path string, token string, status int) lkResp {
		t.Helper()
		return lkDo(t, a, "GET", path+"/fence?token="+token, "tokC", "").expect(t, status)
	}
	if r := fence("/locks/f", "0", 409); r.body["valid"] != false || r.body["current_fencing_token"].(float64) != 0 {
		t.Fatalf("a lock never granted: %v", r.body)
	}
	l := lkDo(t, a, "POST", "/locks/f/acquire", "tokA", `{"ttl_seconds":60}`).expect(t, 200)
	lease := l.body["lease_id"].(string)
	if r := fence("/locks/f", "1", 200); r.body["valid"] != true || r.body["holder"] != "alice" || r.body["fencing_token"].(float64) != 1 {
		t.Fatalf("the current token: %v", r.body)
	}
	fence("/locks/f", "2", 409)
	lkDo(t, a, "POST", "/locks/f/release", "tokA", `{"lease_id":"`+lease+`"}`).expect(t, 200)
	if r := fence("/locks/f", "1", 409); r.body["current_fencing_token"].(float64) != 1 {
		t.Fatalf("after the release: %v", r.body)
	}
	lkDo(t, a, "POST", "/locks/f/acquire", "tokB", `{"ttl_seconds":60}`).expect(t, 200)
	fence("/locks/f", "1", 409)
	fence("/locks/f", "2", 200)
	for _, bad := range []string{"x", "-1", "1.5", "", "%201", "18446744073709551616", "1&token=2"} {
		fence("/locks/f", bad, 422)
	}
	lkDo(t, a, "GET", "/locks/f/fence", "tokC", "").expect(t, 422)
	lkDo(t, a, "GET", "/locks/f/fence?token=2", "", "").expect(t, 401)

	// A session lock: valid while the session lives.
	sid := lkDo(t, a, "POST", "/sessions", "tokA", `{"ttl_seconds":60}`).expect(t, 200).body["session_id"].(string)
	lkDo(t, a, "POST", "/locks/s/acquire", "tokA", `{"session_id":"`+sid+`"}`).expect(t, 200)
	fence("/locks/s", "1", 200)
	lkDo(t, a, "DELETE", "/sessions/"+sid, "tokA", "").expect(t, 200)
	fence("/locks/s", "1", 409)

	// Semaphores: valid while that slot is held.
	var leases []string
	for _, tok := range []string{"tokA", "tokB"} {
		r := lkDo(t, a, "POST", "/semaphores/p/acquire", tok, `{"limit":2,"ttl_seconds":60}`).expect(t, 200)
		leases = append(leases, r.body["lease_id"].(string))
	}
	if r := fence("/semaphores/p", "2", 200); r.body["holder"] != "bob" {
		t.Fatalf("semaphore: %v", r.body)
	}
	lkDo(t, a, "POST", "/semaphores/p/release", "tokA", fmt.Sprintf(`{"lease_id":%q}`, leases[0])).expect(t, 200)
	if r := fence("/semaphores/p", "1", 409); r.body["current_fencing_token"].(float64) != 2 {
		t.Fatalf("a released slot: %v", r.body)
	}
	fence("/semaphores/p", "2", 200)
	fence("/semaphores/p", "x", 422)
}
