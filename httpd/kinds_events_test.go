package httpd_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd"
	"github.com/octostore/octostore/tools/client"
)

// The events of the kinds of issue 16 over /events: semaphores are a shared
// namespace like locks (everybody sees them, the lease and holder ids only
// the holder and the admin key); sessions are their owner's (and the
// admin's). Each user's stream numbers what it may see without gaps.
func TestSemaphoreAndSessionEventsOverHTTP(t *testing.T) {
	a := waitStart(t, httpd.TestOptions{})
	alice := subscribe(t, evClient(t, a, "tokA"), client.EventFilter{})
	bob := subscribe(t, evClient(t, a, "tokB"), client.EventFilter{})
	admin := subscribe(t, evClient(t, a, "admin-secret"), client.EventFilter{})

	sid := lkDo(t, a, "POST", "/sessions", "tokA", `{"ttl_seconds":60}`).expect(t, 200).body["session_id"].(string)
	g := lkDo(t, a, "POST", "/semaphores/pool/acquire", "tokA", `{"limit":2,"ttl_seconds":60,"holder_id":"w1","metadata":"host-1"}`).expect(t, 200)
	lease := g.body["lease_id"].(string)
	lkDo(t, a, "POST", "/semaphores/pool/renew", "tokA", `{"lease_id":"`+lease+`","ttl_seconds":60}`).expect(t, 200)
	lkDo(t, a, "POST", "/semaphores/pool/release", "tokA", `{"lease_id":"`+lease+`"}`).expect(t, 200)
	short := lkDo(t, a, "POST", "/semaphores/pool/acquire", "tokA", `{"limit":2,"session_id":"`+sid+`"}`).expect(t, 200)
	lkDo(t, a, "DELETE", "/sessions/"+sid, "tokA", "").expect(t, 200) // releases the slot
	lkDo(t, a, "POST", "/locks/marker/acquire", "tokB", `{"ttl_seconds":60}`).expect(t, 200)

	want := map[string][]string{
		"alice": {"session.created", "semaphore.acquired", "semaphore.renewed", "semaphore.released", "semaphore.acquired",
			"semaphore.released", "session.closed", "lock.acquired"},
		"bob": {"semaphore.acquired", "semaphore.renewed", "semaphore.released", "semaphore.acquired", "semaphore.released",
			"lock.acquired"},
	}
	want["admin"] = want["alice"]
	for who, s := range map[string]*client.EventStream{"alice": alice, "bob": bob, "admin": admin} {
		var got []string
		var first uint64
		sem := 0 // semaphore events seen
		for i, typ := range want[who] {
			e := next(t, s, 10*time.Second)
			if i == 0 {
				first = e.Seq
			}
			got = append(got, e.Type)
			if e.Type != typ || e.Seq != first+uint64(i) {
				t.Fatalf("%s: events %v (seq %d, want %d), want %v", who, got, e.Seq, first+uint64(i), want[who])
			}
			own := who != "bob"
			switch e.Kind {
			case "semaphore":
				if e.Name != "pool" || e.Holder != "alice" || e.Limit != 2 || e.FencingToken == 0 {
					t.Fatalf("%s: %s %+v", who, e.Type, e)
				}
				if (e.LeaseID != "") != own {
					t.Fatalf("%s: %s lease id %q", who, e.Type, e.LeaseID)
				}
				if sem < 3 && e.Metadata != "host-1" {
					t.Fatalf("%s: %s metadata %q", who, e.Type, e.Metadata)
				}
				if sem >= 3 && ((e.SessionID == sid) != own || e.LeaseID != "" && e.LeaseID != short.body["lease_id"]) {
					t.Fatalf("%s: the session's slot: %+v", who, e)
				}
				sem++
			case "session":
				if e.Name != sid || e.Owner != "alice" {
					t.Fatalf("%s: %s %+v", who, e.Type, e)
				}
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want[who]) {
			t.Fatalf("%s: %v", who, got)
		}
	}
}
