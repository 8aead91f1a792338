package httpd_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd"
)

const check3 = `{"max_requests":3,"window_seconds":60}`

func TestLimitCheckSlidingWindow(t *testing.T) {
	e := rsStart(t, nil)
	for i, wantRemaining := range []int64{2, 1, 0} {
		r := e.do(t, "POST", "/limits/api/check", rsAlice, check3).want(t, 200)
		m := r.obj(t)
		if m["allowed"] != true || num(t, m["remaining"]) != wantRemaining {
			t.Fatalf("check %d: %s", i, r)
		}
		if _, has := m["retry_after_seconds"]; has {
			t.Fatalf("allowed check has retry_after_seconds: %s", r)
		}
		if got := rsTime(t, m["reset_at"]); !got.Equal(rsT0.Add(time.Minute)) {
			t.Fatalf("reset_at %v, want the first check + 60s", got)
		}
		if r.header.Get("RateLimit-Limit") != "3" || r.header.Get("RateLimit-Remaining") != strconv.FormatInt(wantRemaining, 10) ||
			r.header.Get("RateLimit-Reset") != strconv.Itoa(60-10*i) || r.header.Get("RateLimit-Policy") != "3;w=60" || r.header.Get("Retry-After") != "" {
			t.Fatalf("check %d headers: %v", i, r.header)
		}
		e.clock.Add(10 * time.Second)
	}
	// at +30s: denied until the first check leaves at +60s
	r := e.do(t, "POST", "/limits/api/check", rsAlice, check3).want(t, 200)
	m := r.obj(t)
	if m["allowed"] != false || num(t, m["remaining"]) != 0 || num(t, m["retry_after_seconds"]) != 30 {
		t.Fatalf("denied: %s", r)
	}
	if r.header.Get("Retry-After") != "30" || r.header.Get("RateLimit-Remaining") != "0" || r.header.Get("RateLimit-Reset") != "30" {
		t.Fatalf("denied headers: %v", r.header)
	}
	// the denied check was not counted: exactly at +60s one slot is free
	e.clock.Add(30*time.Second - time.Millisecond)
	if m := e.do(t, "POST", "/limits/api/check", rsAlice, check3).obj(t); m["allowed"] != false || num(t, m["retry_after_seconds"]) != 1 {
		t.Fatalf("1ms before the window end: %v", m)
	}
	e.clock.Add(time.Millisecond)
	m = e.do(t, "POST", "/limits/api/check", rsAlice, check3).obj(t)
	if m["allowed"] != true || num(t, m["remaining"]) != 0 || !rsTime(t, m["reset_at"]).Equal(rsT0.Add(70*time.Second)) {
		t.Fatalf("at the window end: %v", m)
	}
	// new parameters apply from this check on
	m = e.do(t, "POST", "/limits/api/check", rsAlice, `{"max_requests":10,"window_seconds":60}`).obj(t)
	if m["allowed"] != true || num(t, m["remaining"]) != 6 {
		t.Fatalf("raised max: %v", m)
	}
}

func TestLimitStatusAndReset(t *testing.T) {
	e := rsStart(t, nil)
	e.do(t, "GET", "/limits/api", rsAlice, "").want(t, 404, "not found")
	e.do(t, "DELETE", "/limits/api", rsAlice, "").want(t, 404, "not found")
	e.do(t, "POST", "/limits/api/check", rsAlice, `{"max_requests":2,"window_seconds":10}`).want(t, 200)
	for i := 0; i < 3; i++ { // reading does not consume
		r := e.do(t, "GET", "/limits/api", rsAlice, "").want(t, 200)
		if m := r.obj(t); m["allowed"] != true || num(t, m["remaining"]) != 1 || r.header.Get("RateLimit-Limit") != "2" {
			t.Fatalf("status: %s %v", r, r.header)
		}
	}
	e.do(t, "POST", "/limits/api/check", rsAlice, `{"max_requests":2,"window_seconds":10}`).want(t, 200)
	e.clock.Add(4 * time.Second)
	r := e.do(t, "GET", "/limits/api", rsAlice, "").want(t, 200)
	if m := r.obj(t); m["allowed"] != false || num(t, m["remaining"]) != 0 || num(t, m["retry_after_seconds"]) != 6 || r.header.Get("Retry-After") != "6" {
		t.Fatalf("full: %s %v", r, r.header)
	}
	if m := e.do(t, "DELETE", "/limits/api", rsAlice, "").want(t, 200).obj(t); m["reset"] != true {
		t.Fatalf("reset: %v", m)
	}
	e.do(t, "GET", "/limits/api", rsAlice, "").want(t, 404)
	e.do(t, "DELETE", "/limits/api", rsAlice, "").want(t, 404)
	// after a reset the window starts empty
	if m := e.do(t, "POST", "/limits/api/check", rsAlice, `{"max_requests":2,"window_seconds":10}`).obj(t); num(t, m["remaining"]) != 1 {
		t.Fatalf("after reset: %v", m)
	}
}

func TestLimitValidation(t *testing.T) {
	e := rsStart(t, nil)
	long := strings.Repeat("a", 101)
	for _, tc := range []struct {
		name, path, body, ctype string
		status                  int
		fragment                string
	}{
		{"name too long", "/limits/" + long + "/check", check3, "", 422, "rate limit name"},
		{"name with a dot", "/limits/a.b/check", check3, "", 422, "rate limit name"},
		{"no max_requests", "/limits/x/check", `{"window_seconds":60}`, "", 422, "max_requests is required"},
		{"no window_seconds", "/limits/x/check", `{"max_requests":1}`, "", 422, "window_seconds is required"},
		{"max_requests 0", "/limits/x/check", `{"max_requests":0,"window_seconds":60}`, "", 422, "max_requests"},
		{"max_requests 10001", "/limits/x/check", `{"max_requests":10001,"window_seconds":60}`, "", 422, "max_requests"},
		{"max_requests negative", "/limits/x/check", `{"max_requests":-1,"window_seconds":60}`, "", 422, "max_requests"},
		{"max_requests fraction", "/limits/x/check", `{"max_requests":1.5,"window_seconds":60}`, "", 422, "max_requests"},
		{"max_requests string", "/limits/x/check", `{"max_requests":"5","window_seconds":60}`, "", 422, "max_requests"},
		{"window 0", "/limits/x/check", `{"max_requests":1,"window_seconds":0}`, "", 422, "window_seconds"},
		{"window over a day", "/limits/x/check", `{"max_requests":1,"window_seconds":86401}`, "", 422, "window_seconds"},
		{"window bool", "/limits/x/check", `{"max_requests":1,"window_seconds":true}`, "", 422, "window_seconds"},
		{"huge number", "/limits/x/check", `{"max_requests":99999999999999999999999,"window_seconds":60}`, "", 422, "max_requests"},
		{"not JSON", "/limits/x/check", `{"max_requests":`, "", 400, "JSON"},
		{"trailing data", "/limits/x/check", check3 + `{}`, "", 400, "JSON"},
		{"array", "/limits/x/check", `[1,2]`, "", 400, ""},
		{"wrong content type", "/limits/x/check", check3, "text/plain", 415, "Content-Type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.ctype != "" {
				hdr = []string{"Content-Type", tc.ctype}
			}
			r := e.do(t, "POST", tc.path, rsAlice, tc.body, hdr...)
			if tc.fragment == "" {
				r.want(t, tc.status)
			} else {
				r.want(t, tc.status, tc.fragment)
			}
		})
	}
	e.do(t, "GET", "/limits/"+long, rsAlice, "").want(t, 422, "rate limit name")
	e.do(t, "POST", "/limits/x/check", "", check3).want(t, 401)
	e.do(t, "POST", "/limits/x/check", "nope", check3).want(t, 401)
	// a rejected request changed nothing
	e.do(t, "GET", "/limits/x", rsAlice, "").want(t, 404)
	if l := e.do(t, "GET", "/limits", rsAlice, "").want(t, 200).list(t, "limits"); len(l) != 0 {
		t.Fatalf("rejected checks created limits: %v", l)
	}
	// accepted spellings: whitespace, key order, 60.0, unknown keys ignored
	for _, body := range []string{
		" {\n\t\"window_seconds\" : 60 ,\"max_requests\":3 }\n",
		`{"max_requests":3.0,"window_seconds":6e1}`,
		`{"max_requests":3,"window_seconds":60,"comment":"x"}`,
	} {
		r := e.do(t, "POST", "/limits/spell/check", rsAlice, body).want(t, 200)
		if r.header.Get("RateLimit-Policy") != "3;w=60" {
			t.Fatalf("%q: %v", body, r.header)
		}
	}
}

func TestLimitList(t *testing.T) {
	e := rsStart(t, nil)
	for i := 0; i < 4; i++ {
		e.do(t, "POST", "/limits/b/check", rsAlice, check3).want(t, 200)
	}
	e.do(t, "POST", "/limits/a/check", rsAlice, `{"max_requests":100,"window_seconds":1}`).want(t, 200)
	e.do(t, "POST", "/limits/a/check", rsBob, check3).want(t, 200)

	l := e.do(t, "GET", "/limits", rsAlice, "").want(t, 200).list(t, "limits")
	if len(l) != 2 || l[0]["name"] != "a" || l[1]["name"] != "b" {
		t.Fatalf("alice's limits: %v", l)
	}
	// write-behind counters are in the listing at once (it waits for the
	// writer), denied checks are not counted
	b := l[1]
	if num(t, b["max_requests"]) != 3 || num(t, b["window_seconds"]) != 60 || num(t, b["current_count"]) != 3 ||
		num(t, b["remaining"]) != 0 || b["allowed"] != false || !rsTime(t, b["reset_at"]).Equal(rsT0.Add(time.Minute)) {
		t.Fatalf("limit b: %v", b)
	}
	if _, has := b["owner"]; has {
		t.Fatalf("a user's listing carries owner: %v", b)
	}
	// time passes: the listing computes the window at now
	e.clock.Add(2 * time.Second)
	l = e.do(t, "GET", "/limits", rsAlice, "").list(t, "limits")
	if num(t, l[0]["current_count"]) != 0 || num(t, l[0]["remaining"]) != 100 || l[0]["allowed"] != true {
		t.Fatalf("limit a after its window: %v", l[0])
	}
	if l := e.do(t, "GET", "/limits", rsBob, "").list(t, "limits"); len(l) != 1 || num(t, l[0]["current_count"]) != 1 {
		t.Fatalf("bob's limits: %v", l)
	}
	// the admin's listing: by owner (user id), then name
	all := e.do(t, "GET", "/limits", rsAdmin, "").want(t, 200).list(t, "limits")
	owners := "alice alice bob"
	if e.app.UID(t, "bob") < e.app.UID(t, "alice") {
		owners = "bob alice alice"
	}
	if len(all) != 3 || fmt.Sprint(all[0]["owner"], " ", all[1]["owner"], " ", all[2]["owner"]) != owners {
		t.Fatalf("admin listing: %v, want owners %s", all, owners)
	}
	if l := e.do(t, "GET", "/limits?owner=bob", rsAdmin, "").list(t, "limits"); len(l) != 1 || l[0]["owner"] != "bob" {
		t.Fatalf("admin ?owner=bob: %v", l)
	}
}

// Concurrent checks on one limit never admit more than max_requests.
func TestLimitConcurrentChecks(t *testing.T) {
	e := rsStart(t, nil)
	const workers, each = 8, 50
	allowed := make(chan bool, workers*each)
	done := make(chan struct{})
	for w := 0; w < workers; w++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < each; i++ {
				r := e.do(t, "POST", "/limits/hot/check", rsAlice, `{"max_requests":123,"window_seconds":3600}`)
				allowed <- r.obj(t)["allowed"] == true
			}
		}()
	}
	for w := 0; w < workers; w++ {
		<-done
	}
	close(allowed)
	n := 0
	for a := range allowed {
		if a {
			n++
		}
	}
	if n != 123 {
		t.Fatalf("%d checks admitted, want exactly 123", n)
	}
	l := e.do(t, "GET", "/limits", rsAlice, "").list(t, "limits")
	if num(t, l[0]["current_count"]) != 123 {
		t.Fatalf("listing: %v", l)
	}
}

// A token bucket over HTTP: burst, continuous refill, cost, the RateLimit
// headers, the algorithm in every answer; state kept across a graceful
// restart; a change of algorithm carries the usage over.
func TestLimitTokenBucket(t *testing.T) {
	e := rsStart(t, nil)
	tb := func(cost int) string {
		return `{"max_requests":4,"window_seconds":8,"algorithm":"token_bucket","cost":` + strconv.Itoa(cost) + `}`
	}
	r := e.do(t, "POST", "/limits/tb/check", rsAlice, tb(3)).want(t, 200)
	if m := r.obj(t); m["allowed"] != true || num(t, m["remaining"]) != 1 || m["algorithm"] != "token_bucket" ||
		!rsTime(t, m["reset_at"]).Equal(rsT0.Add(6*time.Second)) {
		t.Fatalf("first check: %s", r)
	}
	if r.header.Get("RateLimit-Limit") != "4" || r.header.Get("RateLimit-Remaining") != "1" || r.header.Get("RateLimit-Reset") != "6" ||
		r.header.Get("RateLimit-Policy") != "4;w=8" {
		t.Fatalf("headers %v", r.header)
	}
	// one token left: a cost of 2 is denied (takes nothing) until one more is back (2 s)
	r = e.do(t, "POST", "/limits/tb/check", rsAlice, tb(2)).want(t, 200)
	if m := r.obj(t); m["allowed"] != false || num(t, m["retry_after_seconds"]) != 2 || r.header.Get("Retry-After") != "2" {
		t.Fatalf("denied: %s %v", r, r.header)
	}
	e.clock.Add(time.Second) // half a token back
	if m := e.do(t, "POST", "/limits/tb/check", rsAlice, tb(2)).obj(t); m["allowed"] != false || num(t, m["retry_after_seconds"]) != 1 {
		t.Fatalf("after 1s: %v", m)
	}
	e.clock.Add(time.Second)
	if m := e.do(t, "POST", "/limits/tb/check", rsAlice, tb(2)).obj(t); m["allowed"] != true || num(t, m["remaining"]) != 0 {
		t.Fatalf("after 2s: %v", m)
	}
	st := e.do(t, "GET", "/limits/tb", rsAlice, "").want(t, 200).obj(t)
	if st["allowed"] != false || st["algorithm"] != "token_bucket" || num(t, st["remaining"]) != 0 {
		t.Fatalf("status: %v", st)
	}
	l := e.do(t, "GET", "/limits", rsAlice, "").list(t, "limits")
	if len(l) != 1 || l[0]["algorithm"] != "token_bucket" || num(t, l[0]["current_count"]) != 4 || num(t, l[0]["max_requests"]) != 4 {
		t.Fatalf("list: %v", l)
	}
	e.restart(t) // a graceful restart writes the bucket
	e.clock.Add(2 * time.Second)
	if m := e.do(t, "POST", "/limits/tb/check", rsAlice, tb(1)).obj(t); m["allowed"] != true || num(t, m["remaining"]) != 0 {
		t.Fatalf("after the restart, one token back: %v", m)
	}
	// to a sliding window of 4: the 4 tokens in use count from the change
	if m := e.do(t, "POST", "/limits/tb/check", rsAlice, `{"max_requests":4,"window_seconds":8}`).obj(t); m["allowed"] != false || m["algorithm"] != "sliding_window" {
		t.Fatalf("switched to a window: %v", m)
	}
}

// Cost in the sliding window, and the bounds of cost and algorithm.
func TestLimitCostAndValidation(t *testing.T) {
	e := rsStart(t, nil)
	if m := e.do(t, "POST", "/limits/c/check", rsAlice, `{"max_requests":5,"window_seconds":60,"cost":4}`).obj(t); m["allowed"] != true || num(t, m["remaining"]) != 1 || m["algorithm"] != "sliding_window" {
		t.Fatalf("cost 4: %v", m)
	}
	if m := e.do(t, "POST", "/limits/c/check", rsAlice, `{"max_requests":5,"window_seconds":60,"cost":2}`).obj(t); m["allowed"] != false || num(t, m["remaining"]) != 1 {
		t.Fatalf("cost 2 of 1 left: %v", m)
	}
	before := e.do(t, "GET", "/limits", rsAlice, "").body
	for _, tc := range []struct{ body, fragment string }{
		{`{"max_requests":5,"window_seconds":60,"cost":0}`, "cost must be between 1 and 5"},
		{`{"max_requests":5,"window_seconds":60,"cost":6}`, "cost must be between 1 and 5"},
		{`{"max_requests":5,"window_seconds":60,"cost":"1"}`, "cost"},
		{`{"max_requests":5,"window_seconds":60,"cost":1.5}`, "cost"},
		{`{"max_requests":5,"window_seconds":60,"algorithm":"leaky_bucket"}`, "algorithm must be sliding_window or token_bucket"},
		{`{"max_requests":5,"window_seconds":60,"algorithm":5}`, "algorithm must be a string"},
		{`{"max_requests":5,"window_seconds":60,"algorithm":"token_bucket","algorithm":"token_bucket"}`, "algorithm is given more than once"},
	} {
		e.do(t, "POST", "/limits/c/check", rsAlice, tc.body).want(t, 422, tc.fragment)
	}
	if after := e.do(t, "GET", "/limits", rsAlice, "").body; string(after) != string(before) {
		t.Fatalf("rejected checks changed the limit:\n%s\n%s", before, after)
	}
}

// A batch answers in order, each check as a single one at that point (a
// repeated name sees its earlier checks); invalid batches change nothing;
// the quota refuses single checks in place.
func TestLimitBatch(t *testing.T) {
	e := rsStart(t, func(o *httpd.TestOptions) { o.Limits.MaxPerUser = 3 })
	e.do(t, "POST", "/limits/a/check", rsAlice, `{"max_requests":2,"window_seconds":60}`).want(t, 200)
	r := e.do(t, "POST", "/limits/check", rsAlice, `{"checks":[
		{"name":"a","max_requests":2,"window_seconds":60},
		{"name":"b","max_requests":3,"window_seconds":60,"algorithm":"token_bucket","cost":2},
		{"name":"a","max_requests":2,"window_seconds":60},
		{"name":"b","max_requests":3,"window_seconds":60,"algorithm":"token_bucket","cost":2},
		{"name":"c","max_requests":1,"window_seconds":60},
		{"name":"d","max_requests":1,"window_seconds":60}]}`).want(t, 200)
	const want = `{"results":[` +
		`{"name":"a","allowed":true,"remaining":0,"reset_at":"2026-04-01T09:01:00.000Z","algorithm":"sliding_window"},` +
		`{"name":"b","allowed":true,"remaining":1,"reset_at":"2026-04-01T09:00:40.000Z","algorithm":"token_bucket"},` +
		`{"name":"a","allowed":false,"remaining":0,"reset_at":"2026-04-01T09:01:00.000Z","retry_after_seconds":60,"algorithm":"sliding_window"},` +
		`{"name":"b","allowed":false,"remaining":1,"reset_at":"2026-04-01T09:00:40.000Z","retry_after_seconds":20,"algorithm":"token_bucket"},` +
		`{"name":"c","allowed":true,"remaining":0,"reset_at":"2026-04-01T09:01:00.000Z","algorithm":"sliding_window"},` +
		`{"name":"d","error":"quota exceeded: at most 3 rate limits per user","status":403}]}`
	if r.String() != want {
		t.Fatalf("batch:\n got %s\nwant %s", r, want)
	}
	if r.header.Get("RateLimit-Limit") != "" {
		t.Fatalf("a batch has no RateLimit headers: %v", r.header)
	}
	// Each result is what a single check says at that point.
	if m := e.do(t, "GET", "/limits/b", rsAlice, "").obj(t); num(t, m["remaining"]) != 1 {
		t.Fatalf("b after the batch: %v", m)
	}
	before := e.do(t, "GET", "/limits", rsAlice, "").body
	checks := func(n int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = `{"name":"a","max_requests":2,"window_seconds":60}`
		}
		return `{"checks":[` + strings.Join(s, ",") + `]}`
	}
	for _, tc := range []struct{ body, fragment string }{
		{`{"checks":[]}`, "checks must be an array of 1 to 100"},
		{`{}`, "checks must be an array of 1 to 100"},
		{`{"checks":null}`, "checks must be an array"},
		{`{"checks":{}}`, "checks must be an array"},
		{checks(101), "checks: at most 100"},
		{`{"checks":[{"name":"a","max_requests":2,"window_seconds":60},5]}`, "checks[1] must be an object"},
		{`{"checks":[{"name":"a","max_requests":2,"window_seconds":60},{"max_requests":2,"window_seconds":60}]}`, "checks[1].name is required"},
		{`{"checks":[{"name":"a.b","max_requests":2,"window_seconds":60}]}`, "checks[0].name: rate limit name must match"},
		{`{"checks":[{"name":"a","max_requests":2,"window_seconds":60},{"name":"a","max_requests":2,"window_seconds":60,"cost":3}]}`, "checks[1].cost must be between 1 and 2"},
		{`{"checks":[{"name":"a","max_requests":0,"window_seconds":60}]}`, "checks[0].max_requests"},
		{`{"checks":[{"name":"a","max_requests":2,"window_seconds":60,"algorithm":"x"}]}`, "checks[0].algorithm must be"},
	} {
		e.do(t, "POST", "/limits/check", rsAlice, tc.body).want(t, 422, tc.fragment)
	}
	e.do(t, "POST", "/limits/check", rsAlice, `{"checks":[`).want(t, 400)
	e.do(t, "POST", "/limits/check", rsAdmin, checks(1)).want(t, 403)
	e.do(t, "POST", "/limits/check?owner=bob", rsAlice, checks(1)).want(t, 403)
	if after := e.do(t, "GET", "/limits", rsAlice, "").body; string(after) != string(before) {
		t.Fatalf("rejected batches changed limits:\n%s\n%s", before, after)
	}
	// 100 checks of one name: exactly the first two allowed, in order.
	var res struct {
		Results []struct{ Allowed bool } `json:"results"`
	}
	e.do(t, "DELETE", "/limits/a", rsAlice, "").want(t, 200)
	if err := json.Unmarshal(e.do(t, "POST", "/limits/check", rsAlice, checks(100)).want(t, 200).body, &res); err != nil || len(res.Results) != 100 {
		t.Fatalf("%v %v", res, err)
	}
	for i, r := range res.Results {
		if r.Allowed != (i < 2) {
			t.Fatalf("check %d of one name: allowed %v", i, r.Allowed)
		}
	}
	// a limit named check is a limit like any other
	e.do(t, "POST", "/limits/check/check", rsBob, check3).want(t, 200)
	if m := e.do(t, "GET", "/limits/check", rsBob, "").want(t, 200).obj(t); num(t, m["remaining"]) != 2 {
		t.Fatalf("limit named check: %v", m)
	}
	e.do(t, "DELETE", "/limits/check", rsBob, "").want(t, 200)
}
