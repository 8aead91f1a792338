package httpd_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/tools/client"
)

// Two processes sharing one token are two holders when they say so: with a
// holder_id, a re-acquire is "held" only for the same holder_id of the same
// user; the user's other holder ids, and requests without one, get 409 like
// any other user. The seed's contract (no holder_id: per-user re-entrance)
// is kept. The holder id is durable, and shown to the holder and the admin
// only (status, listings, events).
func TestLockHolderID(t *testing.T) {
	db := filepath.Join(t.TempDir(), "h.db")
	a := lkStart(t, db)
	alice, bob := evClient(t, a, "tokA"), evClient(t, a, "tokB")
	sa := subscribe(t, alice, client.EventFilter{Kind: "lock"})
	sb := subscribe(t, bob, client.EventFilter{Kind: "lock"})

	acquire := func(token, body string, status int) lkResp {
		t.Helper()
		return lkDo(t, a, "POST", "/locks/deploy/acquire", token, body).expect(t, status)
	}
	r := acquire("tokA", `{"ttl_seconds":60,"holder_id":"host-a:101"}`, 200)
	if r.body["status"] != "acquired" || r.body["holder_id"] != "host-a:101" || r.body["holder"] != "alice" {
		t.Fatalf("acquire: %v", r.body)
	}
	lease := r.body["lease_id"].(string)
	// The same user from another host, or without a holder id: held by
	// someone else.
	for _, body := range []string{`{"ttl_seconds":60,"holder_id":"host-b:202"}`, `{"ttl_seconds":60}`, `{"ttl_seconds":60,"holder_id":null}`} {
		r = acquire("tokA", body, 409)
		if lk, _ := r.body["lock"].(map[string]any); lk["holder"] != "alice" {
			t.Fatalf("%s: %v", body, r.body)
		}
	}
	// Another user with the same holder id is someone else too.
	acquire("tokB", `{"ttl_seconds":60,"holder_id":"host-a:101"}`, 409)
	// The same holder re-acquires: held, same lease and token.
	r = acquire("tokA", `{"ttl_seconds":90,"holder_id":"host-a:101"}`, 200)
	if r.body["status"] != "held" || r.body["lease_id"] != lease || r.body["fencing_token"].(float64) != 1 || r.body["holder_id"] != "host-a:101" {
		t.Fatalf("re-acquire by the same holder: %v", r.body)
	}

	// Status, listings: the holder id goes where the lease goes.
	if r := lkDo(t, a, "GET", "/locks/deploy", "tokA", "").expect(t, 200); r.body["holder_id"] != "host-a:101" {
		t.Fatalf("status for the holder: %v", r.body)
	}
	if r := lkDo(t, a, "GET", "/locks/deploy", "tokB", "").expect(t, 200); r.body["holder_id"] != nil || r.body["lease_id"] != nil {
		t.Fatalf("status for another user: %v", r.body)
	}
	if r := lkDo(t, a, "GET", "/locks/deploy", "", "", "X-Admin-Key", "admin-secret").expect(t, 200); r.body["holder_id"] != "host-a:101" {
		t.Fatalf("status for the admin: %v", r.body)
	}
	for _, who := range [][]string{{"tokA"}, {"", "X-Admin-Key", "admin-secret"}} {
		r := lkDo(t, a, "GET", "/locks", who[0], "", who[1:]...).expect(t, 200)
		if l := r.body["locks"].([]any); len(l) != 1 || l[0].(map[string]any)["holder_id"] != "host-a:101" {
			t.Fatalf("listing for %v: %v", who, r.body)
		}
	}

	// Renew and release go by lease, whatever the holder id.
	lkDo(t, a, "POST", "/locks/deploy/renew", "tokA", `{"lease_id":"`+lease+`","ttl_seconds":60}`).expect(t, 200)

	// Events: the holder id only to the holder (read before the restart:
	// a shutdown ends the streams, and what they have not sent yet is lost).
	for _, s := range []struct {
		stream *client.EventStream
		want   string
	}{{sa, "host-a:101"}, {sb, ""}} {
		for _, typ := range []string{"lock.acquired", "lock.renewed", "lock.renewed"} {
			e := next(t, s.stream, 5*time.Second)
			if e.Type != typ || e.HolderID != s.want || e.Holder != "alice" {
				t.Fatalf("event %+v, want %s with holder_id %q", e, typ, s.want)
			}
		}
	}

	// Durable: after a restart the same holder re-acquires, another does not.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a = lkStart(t, db)
	acquire("tokA", `{"ttl_seconds":60,"holder_id":"host-b:202"}`, 409)
	acquire("tokA", `{"ttl_seconds":60}`, 409)
	if r := acquire("tokA", `{"ttl_seconds":60,"holder_id":"host-a:101"}`, 200); r.body["status"] != "held" || r.body["lease_id"] != lease {
		t.Fatalf("after a restart: %v", r.body)
	}
	lkDo(t, a, "POST", "/locks/deploy/release", "tokA", `{"lease_id":"`+lease+`"}`).expect(t, 200)
	r = acquire("tokA", `{"ttl_seconds":60,"holder_id":"host-b:202"}`, 200)
	if r.body["status"] != "acquired" || r.body["fencing_token"].(float64) != 2 || r.body["holder_id"] != "host-b:202" {
		t.Fatalf("the next holder: %v", r.body)
	}
	// Without holder ids the seed's contract holds: the same user re-acquires.
	lkDo(t, a, "POST", "/locks/seed/acquire", "tokA", `{"ttl_seconds":60}`).expect(t, 200)
	if r := lkDo(t, a, "POST", "/locks/seed/acquire", "tokA", `{"ttl_seconds":60}`).expect(t, 200); r.body["status"] != "held" || r.body["holder_id"] != nil {
		t.Fatalf("seed re-acquire: %v", r.body)
	}
	lkDo(t, a, "POST", "/locks/seed/acquire", "tokA", `{"ttl_seconds":60,"holder_id":"host-a:101"}`).expect(t, 409)
}

// A holder_id that is not 1 to 128 of [A-Za-z0-9._:@/+=-] is 422 naming
// holder_id, and changes nothing.
func TestLockHolderIDValidation(t *testing.T) {
	a := lkStart(t, "")
	for _, v := range []string{`""`, `" "`, `"a b"`, `"tab\there"`, `"é"`, `"a\"b"`, `"` + strings.Repeat("h", 129) + `"`, `5`, `true`, `["a"]`, `{"id":"a"}`} {
		r := lkDo(t, a, "POST", "/locks/v/acquire", "tokA", `{"ttl_seconds":5,"holder_id":`+v+`}`).expect(t, 422)
		if msg, _ := r.body["error"].(string); !strings.Contains(msg, "holder_id") {
			t.Fatalf("holder_id %s: error %q does not name holder_id", v, msg)
		}
	}
	r := lkDo(t, a, "POST", "/locks/v/acquire", "tokA", `{"ttl_seconds":5,"holder_id":"a","holder_id":"a"}`).expect(t, 422)
	if msg, _ := r.body["error"].(string); !strings.Contains(msg, "holder_id") {
		t.Fatalf("holder_id twice: %q", msg)
	}
	if r := lkDo(t, a, "GET", "/locks/v", "tokA", "").expect(t, 200); r.body["status"] != "available" {
		t.Fatalf("refused acquires changed the lock: %v", r.body)
	}
	// The longest and every allowed character.
	id := strings.Repeat("x", 128-16) + "Az09._:@/+=-host"
	if r := lkDo(t, a, "POST", "/locks/v/acquire", "tokA", `{"ttl_seconds":5,"holder_id":"`+id+`"}`).expect(t, 200); r.body["holder_id"] != id {
		t.Fatalf("valid holder id: %v", r.body)
	}
}
