package httpd_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/httpd"
	"github.com/octostore/octostore/tools/client"
)

// Sessions over HTTP: the endpoints, their bad input, locks under a
// session, and the end of a session (close, expiry).

func TestSessionsHTTP(t *testing.T) {
	a := waitStart(t, httpd.TestOptions{})
	r := lkDo(t, a, "POST", "/sessions", "tokA", `{"ttl_seconds":60,"lock_delay_seconds":5}`).expect(t, 200)
	id, _ := r.body["session_id"].(string)
	if len(id) != 36 || r.body["ttl_seconds"].(float64) != 60 || r.body["lock_delay_seconds"].(float64) != 5 {
		t.Fatalf("create: %v", r.body)
	}
	exp, _ := time.Parse(time.RFC3339, r.body["expires_at"].(string))
	if d := time.Until(exp); d < 55*time.Second || d > 61*time.Second {
		t.Fatalf("expires_at %v", r.body["expires_at"])
	}

	// Locks under the session: the holder sees its session_id; renew is 422.
	l := lkDo(t, a, "POST", "/locks/s1/acquire", "tokA", `{"session_id":"`+id+`"}`).expect(t, 200)
	if l.body["session_id"] != id || l.body["expires_at"] != r.body["expires_at"] || l.body["status"] != "acquired" {
		t.Fatalf("acquire under the session: %v", l.body)
	}
	if s := lkDo(t, a, "GET", "/locks/s1", "tokB", "").expect(t, 200); s.body["session_id"] != nil || s.body["holder"] != "alice" {
		t.Fatalf("status for another user: %v", s.body)
	}
	lkDo(t, a, "POST", "/locks/s2/acquire", "tokA", `{"session_id":"`+id+`","holder_id":"worker-2"}`).expect(t, 200)
	e := lkDo(t, a, "POST", "/locks/s1/renew", "tokA", `{"lease_id":"`+l.body["lease_id"].(string)+`","ttl_seconds":60}`).expect(t, 422)
	if !strings.Contains(e.body["error"].(string), "keep the session alive") {
		t.Fatalf("renew of a session lock: %v", e.body)
	}
	// A re-acquire by the holder under the same session is "held".
	if h := lkDo(t, a, "POST", "/locks/s1/acquire", "tokA", `{"session_id":"`+id+`"}`).expect(t, 200); h.body["status"] != "held" {
		t.Fatalf("re-acquire: %v", h.body)
	}

	// Keepalive moves the locks' expiry.
	k := lkDo(t, a, "POST", "/sessions/"+id+"/keepalive", "tokA", "").expect(t, 200)
	if k.body["session_id"] != id {
		t.Fatalf("keepalive: %v", k.body)
	}
	if s := lkDo(t, a, "GET", "/locks/s1", "tokA", "").expect(t, 200); s.body["expires_at"] != k.body["expires_at"] {
		t.Fatalf("the lock's expiry after a keepalive: %v, want %v", s.body["expires_at"], k.body["expires_at"])
	}
	list := lkDo(t, a, "GET", "/sessions", "tokA", "").expect(t, 200)
	if fmt.Sprint(list.body["sessions"]) != fmt.Sprintf("[map[expires_at:%s lock_delay_seconds:5 locks:[s1 s2] semaphores:[] session_id:%s ttl_seconds:60]]", k.body["expires_at"], id) ||
		list.body["total"].(float64) != 1 {
		t.Fatalf("GET /sessions: %v", list.body)
	}
	if o := lkDo(t, a, "GET", "/sessions", "tokB", "").expect(t, 200); o.body["total"].(float64) != 0 {
		t.Fatalf("another user's listing: %v", o.body)
	}
	if adm := lkDo(t, a, "GET", "/sessions", "", "", "X-Admin-Key", "admin-secret").expect(t, 200); adm.body["total"].(float64) != 1 ||
		adm.body["sessions"].([]any)[0].(map[string]any)["owner"] != "alice" {
		t.Fatalf("the admin's listing: %v", adm.body)
	}
	// Another user's session is not found: keepalive, close, acquire.
	lkDo(t, a, "POST", "/sessions/"+id+"/keepalive", "tokB", "").expect(t, 404)
	lkDo(t, a, "DELETE", "/sessions/"+id, "tokB", "").expect(t, 404)
	lkDo(t, a, "POST", "/locks/s3/acquire", "tokB", `{"session_id":"`+id+`"}`).expect(t, 404)

	// Close: both locks released at once.
	c := lkDo(t, a, "DELETE", "/sessions/"+id, "tokA", "").expect(t, 200)
	if c.body["status"] != "closed" || c.body["released"].(float64) != 2 {
		t.Fatalf("close: %v", c.body)
	}
	for _, n := range []string{"s1", "s2"} {
		if s := lkDo(t, a, "GET", "/locks/"+n, "tokB", "").expect(t, 200); s.body["status"] != "available" {
			t.Fatalf("%s after the close: %v", n, s.body)
		}
	}
	lkDo(t, a, "POST", "/sessions/"+id+"/keepalive", "tokA", "").expect(t, 404)
	lkDo(t, a, "DELETE", "/sessions/"+id, "tokA", "").expect(t, 404)
	lkDo(t, a, "POST", "/locks/s1/acquire", "tokA", `{"session_id":"`+id+`"}`).expect(t, 404)
}

// Bad input: 422 naming the field, and nothing created.
func TestSessionsBadInput(t *testing.T) {
	a := waitStart(t, httpd.TestOptions{})
	for _, body := range []string{`{}`, `{"ttl_seconds":4}`, `{"ttl_seconds":3601}`, `{"ttl_seconds":"60"}`, `{"ttl_seconds":1.5}`,
		`{"ttl_seconds":60,"ttl_seconds":61}`, `{"ttl_seconds":null}`} {
		e := lkDo(t, a, "POST", "/sessions", "tokA", body).expect(t, 422)
		if !strings.Contains(e.body["error"].(string), "ttl_seconds") {
			t.Fatalf("%s: %v", body, e.body)
		}
	}
	for _, d := range []string{`61`, `-1`, `0.5`, `"5"`, `true`} {
		e := lkDo(t, a, "POST", "/sessions", "tokA", `{"ttl_seconds":60,"lock_delay_seconds":`+d+`}`).expect(t, 422)
		if !strings.Contains(e.body["error"].(string), "lock_delay_seconds") {
			t.Fatalf("lock_delay_seconds %s: %v", d, e.body)
		}
	}
	lkDo(t, a, "POST", "/sessions", "", `{"ttl_seconds":60}`, "X-Admin-Key", "admin-secret").expect(t, 403)
	for _, id := range []string{"nope", "0b5a1f7e-1d2c-4e8a-9f00-0123456789aX", "0b5a1f7e1d2c4e8a9f000123456789ab", "%2e%2e"} {
		lkDo(t, a, "POST", "/sessions/"+id+"/keepalive", "tokA", "").expect(t, 422)
		lkDo(t, a, "DELETE", "/sessions/"+id, "tokA", "").expect(t, 422)
	}
	lkDo(t, a, "POST", "/sessions/0b5a1f7e-1d2c-4e8a-9f00-0123456789ab/keepalive", "tokA", "").expect(t, 404)
	if l := lkDo(t, a, "GET", "/sessions", "tokA", "").expect(t, 200); l.body["total"].(float64) != 0 {
		t.Fatalf("sessions after bad input: %v", l.body)
	}
	// Acquire: session_id malformed, together with ttl_seconds, unknown.
	s := lkDo(t, a, "POST", "/sessions", "tokA", `{"ttl_seconds":60}`).expect(t, 200)
	id := s.body["session_id"].(string)
	for body, field := range map[string]string{
		`{"session_id":"x"}`:                          "session_id",
		`{"session_id":5}`:                            "session_id",
		`{"session_id":"` + id + `","ttl_seconds":5}`: "ttl_seconds or session_id",
		`{}`: "ttl_seconds",
		`{"session_id":"` + id + `","session_id":"` + id + `"}`: "session_id is given more than once",
	} {
		e := lkDo(t, a, "POST", "/locks/b/acquire", "tokA", body).expect(t, 422)
		if !strings.Contains(e.body["error"].(string), field) {
			t.Fatalf("%s: %v, want a message naming %s", body, e.body, field)
		}
	}
	lkDo(t, a, "POST", "/locks/b/acquire", "tokA", `{"session_id":"0b5a1f7e-1d2c-4e8a-9f00-0123456789ab"}`).expect(t, 404)
	if st := lkDo(t, a, "GET", "/locks/b", "tokA", "").expect(t, 200); st.body["status"] != "available" {
		t.Fatalf("after refused acquires: %v", st.body)
	}
	subscribe(t, evClient(t, a, "tokA"), client.EventFilter{Kind: "session"}) // the kind is accepted
}

// A session that is not kept alive expires, and its locks are free within a
// second of its expiry, announced with lock.expired and session.expired.
func TestSessionExpiresOverHTTP(t *testing.T) {
	t.Parallel()
	a := waitStart(t, httpd.TestOptions{})
	c := evClient(t, a, "tokA")
	sub := subscribe(t, c, client.EventFilter{})
	r := lkDo(t, a, "POST", "/sessions", "tokA", `{"ttl_seconds":5}`).expect(t, 200)
	id := r.body["session_id"].(string)
	exp, _ := time.Parse(time.RFC3339Nano, r.body["expires_at"].(string))
	for _, n := range []string{"e1", "e2", "e3"} {
		lkDo(t, a, "POST", "/locks/"+n+"/acquire", "tokA", `{"session_id":"`+id+`"}`).expect(t, 200)
	}
	seen := map[string]time.Time{}
	deadline := time.After(20 * time.Second)
	for len(seen) < 4 {
		select {
		case ev := <-sub.C:
			if ev.Type == "lock.expired" || ev.Type == actors.EventSessionExpired {
				seen[ev.Type+" "+ev.Name] = time.Now()
			}
		case <-deadline:
			t.Fatalf("events after 20 s: %v", seen)
		}
	}
	for what, at := range seen {
		if late := at.Sub(exp); late > time.Second {
			t.Errorf("%s announced %s after the session's expiry", what, late)
		}
	}
	if _, ok := seen[actors.EventSessionExpired+" "+id]; !ok {
		t.Fatalf("no session.expired for %s: %v", id, seen)
	}
	lkDo(t, a, "POST", "/locks/e1/acquire", "tokB", `{"ttl_seconds":5}`).expect(t, 200)
}

// GET /sessions?owner=: the admin key narrows its listing to one user's
// sessions (by login, shown as the owner); a user may name only themselves;
// an owner no account has is 422, as for the other owned listings.
func TestSessionsListOwner(t *testing.T) {
	a := waitStart(t, httpd.TestOptions{})
	alice := lkDo(t, a, "POST", "/sessions", "tokA", `{"ttl_seconds":60}`).expect(t, 200).body["session_id"]
	bob := lkDo(t, a, "POST", "/sessions", "tokB", `{"ttl_seconds":60}`).expect(t, 200).body["session_id"]
	ids := func(r lkResp) (out []string) {
		for _, s := range r.body["sessions"].([]any) {
			m := s.(map[string]any)
			out = append(out, fmt.Sprint(m["owner"], ":", m["session_id"]))
		}
		return out
	}
	admin := []string{"X-Admin-Key", "admin-secret"}
	if got := ids(lkDo(t, a, "GET", "/sessions?owner=bob", "", "", admin...).expect(t, 200)); fmt.Sprint(got) != fmt.Sprint([]string{"bob:" + bob.(string)}) {
		t.Fatalf("admin ?owner=bob: %v", got)
	}
	if got := ids(lkDo(t, a, "GET", "/sessions", "", "", admin...).expect(t, 200)); len(got) != 2 {
		t.Fatalf("admin, every user's: %v", got)
	}
	if r := lkDo(t, a, "GET", "/sessions?owner=alice", "tokA", "").expect(t, 200); r.body["total"].(float64) != 1 ||
		r.body["sessions"].([]any)[0].(map[string]any)["session_id"] != alice {
		t.Fatalf("alice ?owner=alice: %v", r.body)
	}
	lkDo(t, a, "GET", "/sessions?owner=bob", "tokA", "").expect(t, 403)
	e := lkDo(t, a, "GET", "/sessions?owner=nobody", "", "", admin...).expect(t, 422)
	if !strings.Contains(e.body["error"].(string), "owner") {
		t.Fatalf("unknown owner: %v", e.body)
	}
	lkDo(t, a, "GET", "/sessions?owner=bad.name", "", "", admin...).expect(t, 422)
}
