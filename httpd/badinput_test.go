package httpd_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd"
	"github.com/octostore/octostore/httpd/apitest"
)

// dbSnapshot renders every row of every table (but meta, where the health
// probe writes) so that a test can assert that nothing changed.
func dbSnapshot(t *testing.T, db *sql.DB) string {
	t.Helper()
	var b strings.Builder
	httpd.EachRow(t, db, []string{"meta"}, func(table string, cols []string, vals []any) {
		fmt.Fprintf(&b, "%s %v: %v\n", table, cols, vals)
	})
	return b.String()
}

// TestBadInputIsRejectedAndChangesNothing sends every kind of malformed
// request: each is answered with a clear 4xx JSON {error} (never 500, never
// a panic) and the database is byte-for-byte the same afterwards, with the
// one lock that exists still held by its lease.
func TestBadInputIsRejectedAndChangesNothing(t *testing.T) {
	e := relStart(t, nil)
	victim := e.mustAcquire("tokA", "victim", 3600)
	lease := victim.lease
	before := dbSnapshot(t, e.app.DB.ReadDB())

	const ctJSON = "application/json"
	long := strings.Repeat("n", 129)
	type tc struct {
		name         string
		method, path string
		ctype, body  string
		auth         string // default "Bearer tokB"
		rawAuth      bool   // send auth as is (even empty)
		want         []int
	}
	var cases []tc
	add := func(c tc) { cases = append(cases, c) }
	badBodies := []struct {
		name, body string
		want       int
	}{
		{"empty body", "", 400},
		{"whitespace body", "  \n ", 400},
		{"truncated object", `{"ttl_seconds":60`, 400},
		{"just a brace", `{`, 400},
		{"array", `[{"ttl_seconds":60}]`, 400},
		{"string", `"ttl_seconds"`, 400},
		{"number", `60`, 400},
		{"null body", `null`, 422},
		{"trailing garbage", `{"ttl_seconds":60} x`, 400},
		{"two objects", `{"ttl_seconds":60}{"ttl_seconds":60}`, 400},
		{"single quotes", `{'ttl_seconds':60}`, 400},
		{"unquoted key", `{ttl_seconds:60}`, 400},
		{"trailing comma", `{"ttl_seconds":60,}`, 400},
		{"comment", `{"ttl_seconds":60 /* hi */}`, 400},
		{"invalid UTF-8", "{\"ttl_seconds\":60,\"x\":\"\xff\xfe\"}", 400},
		{"NaN", `{"ttl_seconds":NaN}`, 400},
		{"hex number", `{"ttl_seconds":0x3c}`, 400},
		{"leading zero", `{"ttl_seconds":060}`, 400},
		{"ttl as string", `{"ttl_seconds":"60"}`, 422},
		{"ttl as bool", `{"ttl_seconds":true}`, 422},
		{"ttl as object", `{"ttl_seconds":{"$gt":0}}`, 422},
		{"ttl as array", `{"ttl_seconds":[60]}`, 422},
		{"ttl null", `{"ttl_seconds":null}`, 422},
		{"ttl missing", `{}`, 422},
		{"ttl fractional", `{"ttl_seconds":60.5}`, 422},
		{"ttl zero", `{"ttl_seconds":0}`, 422},
		{"ttl negative", `{"ttl_seconds":-60}`, 422},
		{"ttl too big", `{"ttl_seconds":3601}`, 422},
		{"ttl huge", `{"ttl_seconds":99999999999999999999999999999}`, 422},
		{"ttl 1e400", `{"ttl_seconds":1e400}`, 422},
		{"ttl min int64", `{"ttl_seconds":-9223372036854775808}`, 422},
		{"duplicate key, bad last", `{"ttl_seconds":60,"ttl_seconds":"x"}`, 422},
		{"duplicate key, good last", `{"ttl_seconds":"x","ttl_seconds":60}`, 422},
		{"duplicate key, same value", `{"ttl_seconds":60,"ttl_seconds":60}`, 422},
		{"deeply nested", strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000), 400},
	}
	for _, b := range badBodies {
		add(tc{name: "acquire: " + b.name, method: "POST", path: "/locks/fresh/acquire", ctype: ctJSON, body: b.body, want: []int{b.want}})
	}
	badLeases := []string{`""`, `"not-a-uuid"`, `"` + strings.ToUpper(lease) + `x"`, `"` + lease[:35] + `"`, `"../../etc/passwd"`,
		`"` + lease + `\u0000"`, `123`, `null`, `["` + lease + `"]`, `{"id":"` + lease + `"}`, `"6ba7b810-9dad-11d1-80b4-00c04fd430c8"`}
	for i, l := range badLeases {
		want := []int{422}
		if i == len(badLeases)-1 {
			want = []int{404} // well-formed, but not bob's lease
		}
		add(tc{name: "release: lease " + l, method: "POST", path: "/locks/victim/release", ctype: ctJSON, body: `{"lease_id":` + l + `}`, want: want})
		add(tc{name: "renew: lease " + l, method: "POST", path: "/locks/victim/renew", ctype: ctJSON, body: `{"ttl_seconds":60,"lease_id":` + l + `}`, want: want})
	}
	add(tc{name: "release: another user's real lease", method: "POST", path: "/locks/victim/release", ctype: ctJSON, body: `{"lease_id":"` + lease + `"}`, want: []int{404}})
	add(tc{name: "release: duplicate lease_id", method: "POST", path: "/locks/victim/release", ctype: ctJSON, body: `{"lease_id":"` + lease + `","lease_id":"` + lease + `"}`, auth: "Bearer tokA", want: []int{422}})
	add(tc{name: "acquire: held by alice", method: "POST", path: "/locks/victim/acquire", ctype: ctJSON, body: `{"ttl_seconds":60}`, want: []int{409}})

	names := map[string]string{
		"too long":              long,
		"unicode":               "%C3%A9t%C3%A9",
		"emoji":                 "%F0%9F%94%92",
		"NUL":                   "a%00b",
		"newline":               "a%0Ab",
		"tab":                   "a%09b",
		"DEL":                   "a%7Fb",
		"space":                 "a%20b",
		"dot":                   "a.b",
		"dot dot":               "..",
		"encoded slash":         "a%2Fb",
		"encoded traversal":     "..%2F..%2Fetc%2Fpasswd",
		"double-encoded":        "..%252F..%252Fetc",
		"backslash traversal":   "..%5C..%5Cwindows",
		"percent":               "100%25",
		"quote":                 "a%22b",
		"angle brackets":        "%3Cscript%3E",
		"semicolon":             "a;b",
		"overlong UTF-8 slash":  "%C0%AF",
		"invalid UTF-8":         "%FF%FE",
		"right-to-left mark":    "a%E2%80%8Fb",
		"zero-width joiner":     "a%E2%80%8Db",
		"fullwidth letter":      "%EF%BC%A1",
		"combining accent":      "e%CC%81",
		"plus":                  "a+b",
		"asterisk":              "*",
		"encoded question mark": "a%3Fb",
		"encoded hash":          "a%23b",
	}
	for what, n := range names {
		for _, op := range []string{"acquire", "renew", "release"} {
			body := `{"ttl_seconds":60,"lease_id":"` + lease + `"}`
			add(tc{name: op + ": name " + what, method: "POST", path: "/locks/" + n + "/" + op, ctype: ctJSON, body: body, want: []int{400, 404, 405, 422}})
		}
		add(tc{name: "status: name " + what, method: "GET", path: "/locks/" + n, want: []int{400, 404, 405, 422}})
	}
	for _, ct := range []string{"text/plain", "application/xml", "multipart/form-data; boundary=x", "application/jsonx", "json", "application/octet-stream"} {
		want := []int{415}
		if strings.HasPrefix(ct, "multipart/") {
			want = []int{400, 415} // fasthttp parses multipart bodies itself: 400 "malformed request"
		}
		add(tc{name: "content type " + ct, method: "POST", path: "/locks/victim/release", ctype: ct, body: `{"lease_id":"` + lease + `"}`, auth: "Bearer tokA", want: want})
	}
	for _, a := range []string{"", "Bearer", "Bearer ", "Basic dG9rQTo=", "Bearer tokA tokA", "Bearer tok%41", "Bearer t\u00f6kA", "tokA", "Bearer " + strings.Repeat("t", 600), "Bearer adminkeyx"} {
		add(tc{name: "auth " + fmt.Sprintf("%.30q", a), method: "POST", path: "/locks/victim/release", ctype: ctJSON, body: `{"lease_id":"` + lease + `"}`, auth: a, rawAuth: true, want: []int{401}})
	}
	add(tc{name: "wrong method", method: "DELETE", path: "/locks/victim", want: []int{405}})
	add(tc{name: "wrong method on acquire", method: "GET", path: "/locks/victim/acquire", want: []int{405}})
	add(tc{name: "unknown route", method: "POST", path: "/locks/victim/steal", ctype: ctJSON, body: `{}`, want: []int{404}})
	add(tc{name: "empty name", method: "POST", path: "/locks//acquire", ctype: ctJSON, body: `{"ttl_seconds":60}`, want: []int{400, 404, 422}})
	add(tc{name: "admin key cannot acquire", method: "POST", path: "/locks/victim2/acquire", ctype: ctJSON, body: `{"ttl_seconds":60}`, auth: "Bearer adminkey", want: []int{403}})

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			auth := c.auth
			if auth == "" && !c.rawAuth {
				auth = "Bearer tokB"
			}
			req, err := http.NewRequest(c.method, e.app.URL()+c.path, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if auth != "" {
				req.Header["Authorization"] = []string{auth}
			}
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			resp, err := apitest.Client(t, e.http).Do(req) // checked against docs/openapi.yaml
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			r := relResp{status: resp.StatusCode, header: resp.Header, body: b}
			_ = json.Unmarshal(b, &r.json)
			ok := false
			for _, w := range c.want {
				ok = ok || r.status == w
			}
			if !ok {
				t.Fatalf("%s %s: %d %s, want one of %v", c.method, c.path, r.status, r.body, c.want)
			}
			mustJSONError(t, c.method+" "+c.path, r, r.status)
		})
	}
	if after := dbSnapshot(t, e.app.DB.ReadDB()); after != before {
		t.Fatalf("bad requests changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	e.mustHold("tokA", "victim", victim, "after every bad request")
	if r := e.do("GET", "/locks", "tokB", ""); r.num("total") != 0 {
		t.Fatalf("bob holds locks after bad requests: %s", r.body)
	}
}

// TestBadInputOtherResourcesChangesNothing does the same for config keys,
// flags and rate limits: every malformed write is a 4xx JSON error and
// leaves the database as it was.
func TestBadInputOtherResourcesChangesNothing(t *testing.T) {
	e := relStart(t, nil)
	if r := e.do("POST", "/limits/lim/check", "tokA", `{"max_requests":10,"window_seconds":60}`); r.status != 200 {
		t.Fatalf("limit check: %d %s", r.status, r.body)
	}
	if r := e.do("PUT", "/flags/flg", "tokA", `{"enabled":true,"percentage":50}`); r.status != 200 {
		t.Fatalf("flag: %d %s", r.status, r.body)
	}
	// Durable, and committed after the limit's write-behind counter.
	if r := e.do("PUT", "/config/cfg", "tokA", `{"value":{"a":1}}`); r.status != 200 {
		t.Fatalf("config: %d %s", r.status, r.body)
	}
	// The limit's counter is written behind (--limit-flush-interval): wait
	// until it is in the database before taking the snapshot.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := e.app.DB.ReadDB().QueryRow(`SELECT count(*) FROM limits WHERE owner = ? AND name = 'lim'`, e.app.UID(t, "alice")).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the limit's counter was never written")
		}
		time.Sleep(time.Millisecond)
	}
	before := dbSnapshot(t, e.app.DB.ReadDB())

	type tc struct {
		method, path, body string
		hdr                []string
	}
	cases := []tc{}
	for _, b := range []string{"", "{", "[]", `"v"`, "{}", `{"value":1,"value":2}`, `{"description":"x"}`, `{"value":1,"description":5}`,
		`{"value":1,"description":"` + strings.Repeat("d", 501) + `"}`, `{"value":1,"expected_version":"1"}`, `{"value":1,"expected_version":-1}`,
		`{"value":1,"expected_version":1.5}`, `{"value":1,"expected_version":7}`, `{"value":1,"expected_version":0}`,
		`{"value":"` + strings.Repeat("v", 101<<10) + `"}`, `{"value":1} trailing`, "{\"value\":\"\xff\"}"} {
		cases = append(cases, tc{"PUT", "/config/cfg", b, nil})
	}
	for _, h := range []string{"abc", "-1", "1.0", `W/"1"`, "5", "0", "99999999999999999999", "", "+1", "01", `"01"`} {
		cases = append(cases, tc{"PUT", "/config/cfg", `{"value":2}`, []string{"If-Match", h}})
	}
	cases = append(cases, tc{"PUT", "/config/cfg", `{"value":2,"expected_version":1}`, []string{"If-Match", "2"}})
	cases = append(cases, tc{"PUT", "/config/cfg", `{"value":2}`, []string{"Content-Type", "text/plain"}})
	for _, k := range []string{"..", ".", "a%2Fb", "%2E%2E", "%C3%A9", strings.Repeat("k", 101), "a%00", "a%20b", "..%2F..%2Fetc"} {
		cases = append(cases, tc{"PUT", "/config/" + k, `{"value":1}`, nil}, tc{"GET", "/config/" + k, "", nil}, tc{"DELETE", "/config/" + k, "", nil})
	}
	for _, v := range []string{"abc", "-1", "0", "99999999999999999999", "1.5", "7"} {
		cases = append(cases, tc{"GET", "/config/cfg?version=" + v, "", nil})
	}
	for _, b := range []string{"", "{}", `{"enabled":"true"}`, `{"enabled":1}`, `{"enabled":true,"percentage":101}`, `{"enabled":true,"percentage":-1}`,
		`{"enabled":true,"percentage":50.5}`, `{"enabled":true,"percentage":"50"}`, `{"enabled":true,"enabled":false}`,
		`{"enabled":false,"percentage":50,"percentage":60}`, `{"enabled":null}`} {
		cases = append(cases, tc{"PUT", "/flags/flg", b, nil})
	}
	for _, n := range []string{"a.b", "..", "a%2Fb", "%C3%A9", strings.Repeat("f", 101), "a%00"} {
		cases = append(cases, tc{"PUT", "/flags/" + n, `{"enabled":true}`, nil}, tc{"DELETE", "/flags/" + n, "", nil},
			tc{"POST", "/limits/" + n + "/check", `{"max_requests":10,"window_seconds":60}`, nil})
	}
	for _, b := range []string{"{", `{"max_requests":0,"window_seconds":60}`, `{"max_requests":10,"window_seconds":0}`, `{"max_requests":-5,"window_seconds":60}`,
		`{"max_requests":"10","window_seconds":60}`, `{"max_requests":1e30,"window_seconds":60}`, `{"max_requests":10,"window_seconds":60,"window_seconds":1}`,
		`{"max_requests":10,"window_seconds":99999999999}`} {
		cases = append(cases, tc{"POST", "/limits/lim2/check", b, nil})
	}
	for _, c := range cases {
		r := e.do(c.method, c.path, "tokA", c.body, c.hdr...)
		if r.status < 400 || r.status > 499 {
			t.Errorf("%s %s %.80q %v: %d %s, want a 4xx", c.method, c.path, c.body, c.hdr, r.status, r.body)
			continue
		}
		if r.str("error") == "" {
			t.Errorf("%s %s %.80q %v: %d with a non-JSON-error body %q", c.method, c.path, c.body, c.hdr, r.status, r.body)
		}
	}
	if after := dbSnapshot(t, e.app.DB.ReadDB()); after != before {
		t.Fatalf("bad requests changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	t.Logf("%d malformed config, flag and limit requests refused", len(cases))
}
