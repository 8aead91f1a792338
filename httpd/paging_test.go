package httpd_test

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/httpd"
)

// walk reads a listing page by page (limit items a page, more query
// parameters in query) and checks each page: at most limit items, the same
// total, next_cursor exactly while items remain. It returns the items and
// the number of pages.
func (e *rsEnv) walk(t *testing.T, path, key, token, query string, limit int) (items []map[string]any, pages int) {
	t.Helper()
	cursor := ""
	total := int64(-1)
	seen := map[string]bool{}
	for {
		q := fmt.Sprintf("?limit=%d", limit)
		if query != "" {
			q += "&" + query
		}
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		r := e.do(t, "GET", path+q, token, "").want(t, 200)
		m := r.obj(t)
		page := r.list(t, key)
		pages++
		if len(page) > limit {
			t.Fatalf("%s%s: %d items for a limit of %d", path, q, len(page), limit)
		}
		n := num(t, m["total"])
		if total >= 0 && n != total {
			t.Fatalf("%s%s: total %d, the first page said %d", path, q, n, total)
		}
		total = n
		items = append(items, page...)
		next, _ := m["next_cursor"].(string)
		if next == "" {
			if int64(len(items)) != total {
				t.Fatalf("%s: %d items listed, total %d", path, len(items), total)
			}
			return items, pages
		}
		if len(page) != limit {
			t.Fatalf("%s%s: a page of %d (limit %d) with a next_cursor", path, q, len(page), limit)
		}
		if seen[next] || len(items) > 100000 {
			t.Fatalf("%s%s: the listing does not move forward (cursor %q again, %d items)", path, q, next, len(items))
		}
		seen[next] = true
		cursor = next
	}
}

func names(items []map[string]any, field string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i], _ = it[field].(string)
	}
	return out
}

// Every listing pages: any page size gives every item once, in order, with
// the total; the admin key's listing of everyone pages across owners in
// owner id order.
func TestListingsPage(t *testing.T) {
	e := rsStart(t, nil)
	var aliceLocks, allLocks []string
	for i := range 23 {
		n := fmt.Sprintf("lock-%02d", (i*7)%23)
		e.do(t, "POST", "/locks/"+n+"/acquire", rsAlice, `{"ttl_seconds":600}`).want(t, 200)
		aliceLocks = append(aliceLocks, n)
	}
	for i := range 4 {
		n := fmt.Sprintf("bob-%d", i)
		e.do(t, "POST", "/locks/"+n+"/acquire", rsBob, `{"ttl_seconds":600}`).want(t, 200)
		allLocks = append(allLocks, n)
	}
	allLocks = append(allLocks, aliceLocks...)
	sort.Strings(aliceLocks)
	sort.Strings(allLocks)
	for _, limit := range []int{1, 5, 23, 1000} {
		got, pages := e.walk(t, "/locks", "locks", rsAlice, "", limit)
		if !slices.Equal(names(got, "name"), aliceLocks) {
			t.Fatalf("alice's locks in pages of %d: %v", limit, names(got, "name"))
		}
		if want := (len(aliceLocks) + limit - 1) / limit; pages != want && !(len(aliceLocks)%limit == 0 && pages == want) {
			t.Fatalf("alice's locks in pages of %d: %d pages, want %d", limit, pages, want)
		}
		got, _ = e.walk(t, "/locks", "locks", rsAdmin, "", limit)
		if !slices.Equal(names(got, "name"), allLocks) {
			t.Fatalf("every lock in pages of %d: %v", limit, names(got, "name"))
		}
	}

	// Owner-scoped kinds: alice and bob each have some; the admin listing is
	// ordered by owner id, then name.
	uid := map[string]string{"alice": e.app.UID(t, "alice"), "bob": e.app.UID(t, "bob")}
	for i := range 9 {
		for _, tok := range []string{rsAlice, rsBob} {
			n := fmt.Sprintf("n%d", (i*4)%9)
			e.do(t, "POST", "/limits/"+n+"/check", tok, `{"max_requests":5,"window_seconds":60}`).want(t, 200)
			e.do(t, "PUT", "/flags/"+n, tok, `{"enabled":true}`).want(t, 200)
			e.do(t, "PUT", "/config/"+n, tok, `{"value":1}`).want(t, 200)
		}
	}
	for _, kind := range []struct{ path, key, name string }{{"/limits", "limits", "name"}, {"/flags", "flags", "name"}, {"/config", "configs", "key"}} {
		var mine []string
		for i := range 9 {
			mine = append(mine, fmt.Sprintf("n%d", i))
		}
		for _, limit := range []int{1, 4, 9, 10} {
			got, _ := e.walk(t, kind.path, kind.key, rsAlice, "", limit)
			if !slices.Equal(names(got, kind.name), mine) || got[0]["owner"] != nil {
				t.Fatalf("alice's %s in pages of %d: %v", kind.path, limit, got)
			}
			got, _ = e.walk(t, kind.path, kind.key, rsAdmin, "owner=bob", limit)
			if !slices.Equal(names(got, kind.name), mine) || got[0]["owner"] != "bob" {
				t.Fatalf("bob's %s for the admin in pages of %d: %v", kind.path, limit, got)
			}
			got, _ = e.walk(t, kind.path, kind.key, rsAdmin, "", limit)
			if len(got) != 18 {
				t.Fatalf("everyone's %s in pages of %d: %d items", kind.path, limit, len(got))
			}
			for i := 1; i < len(got); i++ {
				a, b := got[i-1], got[i]
				oa, ob := uid[a["owner"].(string)], uid[b["owner"].(string)]
				if oa > ob || oa == ob && a[kind.name].(string) >= b[kind.name].(string) {
					t.Fatalf("everyone's %s in pages of %d: %v/%v before %v/%v", kind.path, limit, a["owner"], a[kind.name], b["owner"], b[kind.name])
				}
			}
		}
	}
}

// Sessions page by id, for their owner and for the admin key.
func TestSessionListingPages(t *testing.T) {
	e := rsStart(t, nil)
	var ids []string
	for range 5 {
		m := e.do(t, "POST", "/sessions", rsAlice, `{"ttl_seconds":60}`).want(t, 200).obj(t)
		ids = append(ids, m["session_id"].(string))
	}
	e.do(t, "POST", "/sessions", rsBob, `{"ttl_seconds":60}`).want(t, 200)
	sort.Strings(ids)
	for _, limit := range []int{1, 2, 5, 6} {
		got, _ := e.walk(t, "/sessions", "sessions", rsAlice, "", limit)
		if !slices.Equal(names(got, "session_id"), ids) {
			t.Fatalf("alice's sessions in pages of %d: %v, want %v", limit, names(got, "session_id"), ids)
		}
		all, _ := e.walk(t, "/sessions", "sessions", rsAdmin, "", limit)
		if len(all) != 6 || !slices.IsSorted(names(all, "session_id")) {
			t.Fatalf("everyone's sessions in pages of %d: %v", limit, names(all, "session_id"))
		}
	}
	e.do(t, "GET", "/sessions?limit=0", rsAlice, "").want(t, 422, "limit")
}

// Bad paging parameters are 422 and name what is wrong; a cursor is only a
// position (one from another listing is not refused).
func TestListingPageValidation(t *testing.T) {
	e := rsStart(t, nil)
	for _, path := range []string{"/locks", "/semaphores", "/sessions", "/limits", "/flags", "/config"} {
		for _, q := range []string{"limit=0", "limit=10001", "limit=-1", "limit=ten", "limit=", "limit=1.5"} {
			e.do(t, "GET", path+"?"+q, rsAlice, "").want(t, 422, "limit must be an integer from 1 to 10000")
		}
		for _, c := range []string{"x", "%%%", base64.RawURLEncoding.EncodeToString([]byte("q\nname")),
			base64.RawURLEncoding.EncodeToString([]byte("pno-newline")), base64.RawURLEncoding.EncodeToString([]byte("p\n")),
			base64.RawURLEncoding.EncodeToString([]byte("p\na b")), strings.Repeat("A", 600)} {
			e.do(t, "GET", path+"?cursor="+url.QueryEscape(c), rsAlice, "").want(t, 422, "cursor")
		}
		e.do(t, "GET", path+"?limit=10000", rsAlice, "").want(t, 200)
		e.do(t, "GET", path+"?cursor="+base64.RawURLEncoding.EncodeToString([]byte("pu:7\nzzz")), rsAlice, "").want(t, 200)
	}
}

// A listing of more than the default page answers the first 1,000 and a
// cursor; items deleted between two pages do not make the next page skip
// or repeat any of the others.
func TestListingDefaultPageAndChanges(t *testing.T) {
	e := rsStart(t, func(o *httpd.TestOptions) { o.Limits.MaxPerUser = -1 })
	alice := e.app.UID(t, "alice")
	for i := range httpd.DefaultListLimit + 5 {
		if _, err := e.app.Limits.Check(t.Context(), alice, fmt.Sprintf("l%04d", i), actors.LimitParams{Max: 5, Window: time.Minute, Cost: 1}); err != nil {
			t.Fatal(err)
		}
	}
	r := e.do(t, "GET", "/limits", rsAlice, "").want(t, 200)
	m := r.obj(t)
	if n := len(r.list(t, "limits")); n != httpd.DefaultListLimit || num(t, m["total"]) != int64(httpd.DefaultListLimit+5) || m["next_cursor"] == nil {
		t.Fatalf("default page: %d items, total %v, next %v", n, m["total"], m["next_cursor"])
	}
	// page 1 of 10, then delete the page's last item and one of the next page
	r = e.do(t, "GET", "/limits?limit=10", rsAlice, "").want(t, 200)
	first := names(r.list(t, "limits"), "name")
	next := r.obj(t)["next_cursor"].(string)
	e.do(t, "DELETE", "/limits/"+first[9], rsAlice, "").want(t, 200)
	e.do(t, "DELETE", "/limits/l0012", rsAlice, "").want(t, 200)
	r = e.do(t, "GET", "/limits?limit=10&cursor="+url.QueryEscape(next), rsAlice, "").want(t, 200)
	second := names(r.list(t, "limits"), "name")
	want := []string{"l0010", "l0011", "l0013", "l0014", "l0015", "l0016", "l0017", "l0018", "l0019", "l0020"}
	if !slices.Equal(second, want) || num(t, r.obj(t)["total"]) != int64(httpd.DefaultListLimit+3) {
		t.Fatalf("after deleting l0009 and l0012: %v (total %v), want %v", second, r.obj(t)["total"], want)
	}
}

// A page's memory comes from the answer budget: when it is taken, the
// listing is 503 with Retry-After, and nothing stays reserved.
func TestListingPageBudget(t *testing.T) {
	e := rsStart(t, func(o *httpd.TestOptions) { o.Server.MaxAnswerMemory = 100 << 10 })
	e.do(t, "POST", "/locks/a/acquire", rsAlice, `{"ttl_seconds":60}`).want(t, 200)
	r := e.do(t, "GET", "/locks?limit=10000", rsAlice, "").want(t, 503)
	if r.header.Get("Retry-After") == "" {
		t.Fatalf("503 without Retry-After: %v", r.header)
	}
	e.do(t, "GET", "/locks?limit=100", rsAlice, "").want(t, 200)
	if n := e.app.AnswerBytesInFlight(); n != 0 {
		t.Fatalf("%d answer bytes still reserved", n)
	}
}

// The admin's token listing pages too (oldest first, then by hash), of
// every user or one (?user=); a cursor of another listing is 422 there.
func TestTokenListingPages(t *testing.T) {
	e := rsStart(t, nil)
	for i := range 7 {
		user := []string{"carol", "dave"}[i%2]
		e.do(t, "POST", "/admin/tokens", rsAdmin, `{"user":"`+user+`"}`).want(t, 201)
	}
	whole, _ := e.walk(t, "/admin/tokens", "tokens", rsAdmin, "", httpd.MaxListLimit)
	if len(whole) < 7 {
		t.Fatalf("%d tokens listed, want at least the 7 created", len(whole))
	}
	for i := 1; i < len(whole); i++ {
		if whole[i-1]["created_at"].(string) > whole[i]["created_at"].(string) {
			t.Fatalf("tokens out of age order: %v before %v", whole[i-1], whole[i])
		}
	}
	for _, limit := range []int{1, 2, 3, 7} {
		got, _ := e.walk(t, "/admin/tokens", "tokens", rsAdmin, "", limit)
		if !slices.Equal(names(got, "fingerprint"), names(whole, "fingerprint")) {
			t.Fatalf("tokens in pages of %d: %v, want %v", limit, names(got, "fingerprint"), names(whole, "fingerprint"))
		}
		carols, _ := e.walk(t, "/admin/tokens", "tokens", rsAdmin, "user=carol", limit)
		var want []string
		for _, tok := range whole {
			if tok["user"] == "carol" {
				want = append(want, tok["fingerprint"].(string))
			}
		}
		if len(want) != 4 || !slices.Equal(names(carols, "fingerprint"), want) {
			t.Fatalf("carol's tokens in pages of %d: %v, want %v", limit, names(carols, "fingerprint"), want)
		}
	}
	lockCursor := base64.RawURLEncoding.EncodeToString([]byte("p\nlock-01"))
	for _, q := range []string{"limit=0", "limit=10001", "cursor=x", "cursor=" + lockCursor,
		"cursor=" + base64.RawURLEncoding.EncodeToString([]byte("p1\n0123"))} {
		e.do(t, "GET", "/admin/tokens?"+q, rsAdmin, "").want(t, 422)
	}
	e.do(t, "GET", "/admin/tokens?limit=2", rsAlice, "").want(t, 403)
}

// GET /semaphores pages the caller's held slots by semaphore name, then
// lease id (the admin key: everyone's); alice never sees bob's; a
// session's slots are listed with its expiry while it lives; expired slots
// are not listed; a cursor from another listing is only a position.
func TestSemaphoreListingPages(t *testing.T) {
	e := rsStart(t, nil)
	acq := func(tok, name, body string) map[string]any {
		t.Helper()
		return e.do(t, "POST", "/semaphores/"+name+"/acquire", tok, body).want(t, 200).obj(t)
	}
	type slot struct{ name, holder, lease string }
	var alice, all []slot
	grants := map[string]map[string]any{} // by lease
	add := func(tok, who, name, body string) {
		m := acq(tok, name, body)
		grants[m["lease_id"].(string)] = m
		s := slot{name, who, m["lease_id"].(string)}
		all = append(all, s)
		if who == "alice" {
			alice = append(alice, s)
		}
	}
	for i := range 7 {
		add(rsAlice, "alice", fmt.Sprintf("pool-%d", (i*3)%4), `{"limit":5,"ttl_seconds":600}`)
	}
	add(rsBob, "bob", "pool-1", `{"limit":5,"ttl_seconds":600,"holder_id":"b1","metadata":"bob's job"}`)
	add(rsBob, "bob", "pool", `{"limit":2,"ttl_seconds":600}`)
	sess := e.do(t, "POST", "/sessions", rsAlice, `{"ttl_seconds":60}`).want(t, 200).obj(t)["session_id"].(string)
	add(rsAlice, "alice", "pool-2", `{"limit":5,"session_id":"`+sess+`"}`)
	// Slots that expire before the listings: not listed.
	acq(rsAlice, "short", `{"limit":5,"ttl_seconds":5}`)
	acq(rsBob, "short", `{"limit":5,"ttl_seconds":5}`)
	e.clock.Add(6 * time.Second)

	order := func(s []slot) []string {
		slices.SortFunc(s, func(a, b slot) int { return strings.Compare(a.name+"\x00"+a.lease, b.name+"\x00"+b.lease) })
		var out []string
		for _, x := range s {
			out = append(out, x.name+" "+x.holder+" "+x.lease)
		}
		return out
	}
	show := func(items []map[string]any) []string {
		var out []string
		for _, it := range items {
			out = append(out, fmt.Sprint(it["name"], " ", it["holder"], " ", it["lease_id"]))
		}
		return out
	}
	wantAlice, wantAll := order(alice), order(all)
	for _, limit := range []int{1, 3, 8, 11, 1000} {
		got, pages := e.walk(t, "/semaphores", "semaphores", rsAlice, "", limit)
		if !slices.Equal(show(got), wantAlice) {
			t.Fatalf("alice's slots in pages of %d:\n%v\nwant\n%v", limit, show(got), wantAlice)
		}
		if want := (len(wantAlice) + limit - 1) / limit; pages != want {
			t.Fatalf("alice's %d slots in pages of %d: %d pages, want %d", len(wantAlice), limit, pages, want)
		}
		got, _ = e.walk(t, "/semaphores", "semaphores", rsAdmin, "", limit)
		if !slices.Equal(show(got), wantAll) {
			t.Fatalf("every slot in pages of %d:\n%v\nwant\n%v", limit, show(got), wantAll)
		}
		got, _ = e.walk(t, "/semaphores", "semaphores", rsBob, "", limit)
		if len(got) != 2 || got[0]["name"] != "pool" || got[1]["name"] != "pool-1" || got[0]["holder"] != "bob" || got[1]["holder"] != "bob" {
			t.Fatalf("bob's slots in pages of %d: %v", limit, got)
		}
	}
	// What an item shows: the limit, the holder id, the metadata, the
	// session (with the session's expiry) of the caller's own slots.
	bob := e.do(t, "GET", "/semaphores", rsBob, "").want(t, 200).obj(t)["semaphores"].([]any)
	if b := bob[1].(map[string]any); num(t, b["limit"]) != 5 || b["holder_id"] != "b1" || b["metadata"] != "bob's job" ||
		num(t, b["fencing_token"]) != num(t, grants[b["lease_id"].(string)]["fencing_token"]) || b["expires_at"] != grants[b["lease_id"].(string)]["expires_at"] {
		t.Fatalf("bob's pool-1 slot: %v", b)
	}
	if b := bob[0].(map[string]any); num(t, b["limit"]) != 2 {
		t.Fatalf("bob's pool slot: %v", b)
	}
	sessionSlot := func() map[string]any {
		for _, it := range e.do(t, "GET", "/semaphores", rsAlice, "").want(t, 200).obj(t)["semaphores"].([]any) {
			if m := it.(map[string]any); m["session_id"] != nil {
				return m
			}
		}
		return nil
	}
	first := sessionSlot()
	if first == nil || first["session_id"] != sess || first["name"] != "pool-2" {
		t.Fatalf("alice's session slot: %v", first)
	}
	e.clock.Add(30 * time.Second)
	e.do(t, "POST", "/sessions/"+sess+"/keepalive", rsAlice, "").want(t, 200)
	if again := sessionSlot(); again == nil || again["expires_at"].(string) <= first["expires_at"].(string) {
		t.Fatalf("after a keepalive the session slot shows %v, before %v", again, first)
	}
	// A slot released is gone from the next page; one of a closed session too.
	e.do(t, "POST", "/semaphores/pool/release", rsBob, `{"lease_id":"`+strings.Fields(wantAll[0])[2]+`"}`).want(t, 200)
	e.do(t, "DELETE", "/sessions/"+sess, rsAlice, "").want(t, 200)
	if m := e.do(t, "GET", "/semaphores", rsAdmin, "").want(t, 200).obj(t); num(t, m["total"]) != int64(len(wantAll)-2) {
		t.Fatalf("after a release and a session closed: %v", m)
	}
	// A cursor is a position: one from the lock listing starts after that
	// name; one past every slot gives an empty last page.
	lockCursor := base64.RawURLEncoding.EncodeToString([]byte("p\npool-2"))
	m := e.do(t, "GET", "/semaphores?cursor="+lockCursor, rsAlice, "").want(t, 200).obj(t)
	for _, it := range m["semaphores"].([]any) {
		if n := it.(map[string]any)["name"].(string); n < "pool-2" {
			t.Fatalf("a lock cursor at pool-2 listed %s", n)
		}
	}
	end := base64.RawURLEncoding.EncodeToString([]byte("p\nzzz/x"))
	if m := e.do(t, "GET", "/semaphores?cursor="+end, rsAlice, "").want(t, 200).obj(t); len(m["semaphores"].([]any)) != 0 || m["next_cursor"] != nil {
		t.Fatalf("past the end: %v", m)
	}
}
