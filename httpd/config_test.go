package httpd_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd"
	"github.com/octostore/octostore/httpd/apitest"
	"github.com/octostore/octostore/tools/keepreading"
)

// rawValue extracts the bytes of "value" exactly as the server wrote them.
func rawValue(t *testing.T, body []byte) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	v, ok := m["value"]
	if !ok {
		t.Fatalf("no value in %s", body)
	}
	return string(v)
}

func TestConfigLifecycle(t *testing.T) {
	e := rsStart(t, nil)
	e.do(t, "GET", "/config/app.timeout", rsAlice, "").want(t, 404, "not found")
	r := e.do(t, "PUT", "/config/app.timeout", rsAlice, `{"value":{"seconds":30},"description":"request timeout"}`).want(t, 200)
	m := r.obj(t)
	if m["key"] != "app.timeout" || num(t, m["version"]) != 1 || m["description"] != "request timeout" ||
		!rsTime(t, m["created_at"]).Equal(rsT0) || !rsTime(t, m["updated_at"]).Equal(rsT0) || r.header.Get("ETag") != `"1"` {
		t.Fatalf("v1: %s %v", r, r.header)
	}
	e.clock.Add(time.Minute)
	// no description: the current one is kept
	m = e.do(t, "PUT", "/config/app.timeout", rsAlice, `{"value":{"seconds":45}}`).want(t, 200).obj(t)
	if num(t, m["version"]) != 2 || m["description"] != "request timeout" || !rsTime(t, m["created_at"]).Equal(rsT0) ||
		!rsTime(t, m["updated_at"]).Equal(rsT0.Add(time.Minute)) {
		t.Fatalf("v2: %v", m)
	}
	r = e.do(t, "GET", "/config/app.timeout", rsAlice, "").want(t, 200)
	if rawValue(t, r.body) != `{"seconds":45}` || num(t, r.obj(t)["version"]) != 2 || r.header.Get("ETag") != `"2"` {
		t.Fatalf("get: %s", r)
	}
	r = e.do(t, "GET", "/config/app.timeout?version=1", rsAlice, "").want(t, 200)
	if m := r.obj(t); rawValue(t, r.body) != `{"seconds":30}` || num(t, m["version"]) != 1 || !rsTime(t, m["updated_at"]).Equal(rsT0) {
		t.Fatalf("version 1: %s", r)
	}
	e.do(t, "GET", "/config/app.timeout?version=3", rsAlice, "").want(t, 404)
	for _, bad := range []string{"0", "-1", "x", "1.5", ""} {
		e.do(t, "GET", "/config/app.timeout?version="+bad, rsAlice, "").want(t, 422, "version")
	}
	h := e.do(t, "GET", "/config/app.timeout/history", rsAlice, "").want(t, 200)
	vs := h.list(t, "versions")
	if len(vs) != 2 || num(t, vs[0]["version"]) != 2 || num(t, vs[1]["version"]) != 1 ||
		!rsTime(t, vs[0]["created_at"]).Equal(rsT0.Add(time.Minute)) || vs[1]["description"] != "request timeout" {
		t.Fatalf("history: %s", h)
	}
	e.do(t, "PUT", "/config/zeta", rsAlice, `{"value":1}`).want(t, 200)
	l := e.do(t, "GET", "/config", rsAlice, "").want(t, 200).list(t, "configs")
	if len(l) != 2 || l[0]["key"] != "app.timeout" || num(t, l[0]["version"]) != 2 || l[0]["description"] != "request timeout" || l[1]["key"] != "zeta" {
		t.Fatalf("list: %v", l)
	}
	if _, has := l[0]["value"]; has {
		t.Fatalf("listing carries values: %v", l)
	}

	if m := e.do(t, "DELETE", "/config/app.timeout", rsAlice, "").want(t, 200).obj(t); m["deleted"] != true {
		t.Fatalf("delete: %v", m)
	}
	e.do(t, "DELETE", "/config/app.timeout", rsAlice, "").want(t, 404)
	e.do(t, "GET", "/config/app.timeout", rsAlice, "").want(t, 404)
	e.do(t, "GET", "/config/app.timeout/history", rsAlice, "").want(t, 404)
	e.do(t, "GET", "/config/app.timeout?version=2", rsAlice, "").want(t, 404)
	if l := e.do(t, "GET", "/config", rsAlice, "").list(t, "configs"); len(l) != 1 {
		t.Fatalf("list after delete: %v", l)
	}
	// re-created: versions continue, so (key, version) never names two values
	e.clock.Add(time.Minute)
	m = e.do(t, "PUT", "/config/app.timeout", rsAlice, `{"value":"again"}`).want(t, 200).obj(t)
	if num(t, m["version"]) != 3 || m["description"] != "" || !rsTime(t, m["created_at"]).Equal(rsT0.Add(2*time.Minute)) {
		t.Fatalf("re-created: %v", m)
	}
	if vs := e.do(t, "GET", "/config/app.timeout/history", rsAlice, "").list(t, "versions"); len(vs) != 1 {
		t.Fatalf("history after re-create: %v", vs)
	}
}

// Values round-trip byte for byte: objects, arrays, numbers in any
// formatting, strings with escapes, booleans, null.
func TestConfigValuesRoundTrip(t *testing.T) {
	e := rsStart(t, nil)
	values := []string{
		`{"b":1,"a":[true,false,null],"nested":{"x":{}}}`,
		`[]`,
		`[1, 2 ,3]`,
		`1.50`,
		`1e3`,
		`-0.0`,
		`12345678901234567890123456789`,
		`0.1000000000000000055511151231257827`,
		`"tab\tquote\"unicode\u00e9 emoji 😀 \ud83d\ude00"`,
		`""`,
		`true`,
		`false`,
		`null`,
		`{"k": "v"}`,
	}
	for i, v := range values {
		key := fmt.Sprintf("v%d", i)
		r := e.do(t, "PUT", "/config/"+key, rsAlice, `{"value":`+v+`}`).want(t, 200)
		if got := rawValue(t, r.body); got != v {
			t.Fatalf("PUT %s: value %s", v, got)
		}
		if got := rawValue(t, e.do(t, "GET", "/config/"+key, rsAlice, "").body); got != v {
			t.Fatalf("GET %s: value %s", v, got)
		}
		if got := rawValue(t, e.do(t, "GET", "/config/"+key+"?version=1", rsAlice, "").body); got != v {
			t.Fatalf("GET version %s: value %s", v, got)
		}
		h := e.do(t, "GET", "/config/"+key+"/history", rsAlice, "").want(t, 200)
		var hist struct{ Versions []map[string]json.RawMessage }
		if err := json.Unmarshal(h.body, &hist); err != nil || len(hist.Versions) != 1 || string(hist.Versions[0]["value"]) != v {
			t.Fatalf("history %s: %s %v", v, h, err)
		}
	}
	// the values survive a restart byte for byte
	e.restart(t)
	for i, v := range values {
		if got := rawValue(t, e.do(t, "GET", fmt.Sprintf("/config/v%d", i), rsAlice, "").body); got != v {
			t.Fatalf("after restart %s: value %s", v, got)
		}
	}
}

func TestConfigOptimisticConcurrency(t *testing.T) {
	e := rsStart(t, nil)
	put := func(body string, hdr ...string) rsReply {
		return e.do(t, "PUT", "/config/k", rsAlice, body, hdr...)
	}
	conflict := func(r rsReply, current int64) {
		t.Helper()
		r.want(t, 409)
		if m := r.obj(t); num(t, m["current_version"]) != current || m["error"] == "" {
			t.Fatalf("conflict: %s, want current_version %d", r, current)
		}
	}
	conflict(put(`{"value":1}`, "If-Match", "*"), 0) // must exist
	conflict(put(`{"value":1}`, "If-Match", "3"), 0)
	put(`{"value":1}`, "If-Match", "0").want(t, 200) // create only
	conflict(put(`{"value":2}`, "If-Match", "0"), 1) // exists now
	conflict(put(`{"value":2,"expected_version":0}`), 1)
	put(`{"value":2}`, "If-Match", `"1"`).want(t, 200) // the ETag form
	conflict(put(`{"value":3}`, "If-Match", "1"), 2)
	conflict(put(`{"value":3,"expected_version":1}`), 2)
	if m := put(`{"value":3,"expected_version":2}`).want(t, 200).obj(t); num(t, m["version"]) != 3 {
		t.Fatalf("expected_version 2: %v", m)
	}
	put(`{"value":4}`, "If-Match", "*").want(t, 200)
	put(`{"value":5,"expected_version":4}`, "If-Match", "4").want(t, 200)
	put(`{"value":6,"expected_version":5}`, "If-Match", "4").want(t, 422, "expected_version", "If-Match")
	for _, bad := range []string{"abc", "-1", "1.0", `W/"5"`} {
		put(`{"value":6}`, "If-Match", bad).want(t, 422, "If-Match")
	}
	put(`{"value":6,"expected_version":-1}`).want(t, 422, "expected_version")
	put(`{"value":6,"expected_version":"5"}`).want(t, 422, "expected_version")
	// nothing above changed the key
	if m := e.do(t, "GET", "/config/k", rsAlice, "").obj(t); num(t, m["version"]) != 5 || rawValue(t, e.do(t, "GET", "/config/k", rsAlice, "").body) != "5" {
		t.Fatalf("after rejected writes: %v", m)
	}

	// concurrent writers with If-Match: exactly one wins each version
	const writers = 8
	type res struct {
		status int
		body   string
	}
	out := make(chan res, writers)
	for i := 0; i < writers; i++ {
		go func() {
			r := put(fmt.Sprintf(`{"value":"w%d"}`, i), "If-Match", "5")
			out <- res{r.status, string(r.body)}
		}()
	}
	won := 0
	for i := 0; i < writers; i++ {
		r := <-out
		switch r.status {
		case 200:
			won++
		case 409:
			if !strings.Contains(r.body, `"current_version":6`) {
				t.Fatalf("loser: %s", r.body)
			}
		default:
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	}
	if won != 1 {
		t.Fatalf("%d writers won version 6", won)
	}
}

func TestConfigValidation(t *testing.T) {
	e := rsStart(t, nil)
	big := func(n int) string { return `"` + strings.Repeat("x", n-2) + `"` } // n bytes of JSON
	for _, tc := range []struct {
		name, path, body string
		status           int
		fragment         string
	}{
		{"no value", "/config/k", `{"description":"d"}`, 422, "value is required"},
		{"value over 100 KiB", "/config/k", `{"value":` + big(httpd.MaxConfigValue+1) + `}`, 413, "value"},
		{"description over 500 characters", "/config/k", `{"value":1,"description":"` + strings.Repeat("é", 501) + `"}`, 422, "description"},
		{"description not a string", "/config/k", `{"value":1,"description":5}`, 422, "description"},
		{"description with ESC[2J and BEL", "/config/k", `{"value":1,"description":"clear\u001b[2J ring\u0007"}`, 422, "description must not contain control"},
		{"description with a newline", "/config/k", `{"value":1,"description":"two\nlines"}`, 422, "(U+000A at character 4)"},
		{"description with C1 CSI", "/config/k", `{"value":1,"description":"x\u009b31m"}`, 422, "description"},
		{"description with a bidi override", "/config/k", "{\"value\":1,\"description\":\"txt.exe\u202e\"}", 422, "U+202E"},
		{"key too long", "/config/" + strings.Repeat("k", 101), `{"value":1}`, 422, "config key"},
		{"key with a slash-like char", "/config/a%20b", `{"value":1}`, 422, "config key"},
		{"key ..", "/config/..", `{"value":1}`, 422, "config key"},
		{"key .", "/config/.", `{"value":1}`, 422, "config key"},
		{"percent-escaped key", "/config/a%2Eb", `{"value":1}`, 422, "config key"},
		{"not JSON", "/config/k", `{"value":}`, 400, "JSON"},
		{"invalid JSON inside the value", "/config/k", `{"value":[1,}`, 400, "JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, "PUT", tc.path, rsAlice, tc.body)
			if tc.fragment == "" {
				r.want(t, tc.status)
			} else {
				r.want(t, tc.status, tc.fragment)
			}
		})
	}
	// A body over the server's limit (1 MiB) is refused before it is read.
	// fasthttp answers Expect: 100-continue with 100 Continue and then the
	// 413 for the declared length, closing while the client may still be
	// sending: the client's connection must read that 413 even when its
	// write fails (keepreading; this failed 1 run in 20 with "write: broken
	// pipe" before).
	req, _ := http.NewRequest("PUT", e.url+"/config/k", strings.NewReader(`{"value":`+big(1<<20+10)+`}`))
	req.Header.Set("Authorization", "Bearer "+rsAlice)
	req.Header.Set("Expect", "100-continue")
	cl := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 10 * time.Second, DialContext: keepreading.DialContext(nil)}, Timeout: 30 * time.Second}
	resp, err := apitest.Client(t, cl).Do(req) // checked against docs/openapi.yaml
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("body over the server limit: %d", resp.StatusCode)
	}
	if l := e.do(t, "GET", "/config", rsAlice, "").list(t, "configs"); len(l) != 0 {
		t.Fatalf("rejected writes created keys: %v", l)
	}
	// at the limits: exactly 100 KiB, 500 characters of two bytes each, a
	// 100-character key with dots
	key := strings.Repeat("a.", 50)
	r := e.do(t, "PUT", "/config/"+key, rsAlice, `{"value":`+big(httpd.MaxConfigValue)+`,"description":"`+strings.Repeat("é", 500)+`"}`).want(t, 200)
	if got := rawValue(t, r.body); len(got) != httpd.MaxConfigValue {
		t.Fatalf("value of %d bytes", len(got))
	}
	// null is a value
	if got := rawValue(t, e.do(t, "PUT", "/config/n", rsAlice, `{"value":null}`).want(t, 200).body); got != "null" {
		t.Fatalf("null: %s", got)
	}
	if !bytes.Contains(e.do(t, "GET", "/config/n", rsAlice, "").body, []byte(`"value":null`)) {
		t.Fatal("null not stored")
	}
}

func TestConfigHistoryRetention(t *testing.T) {
	e := rsStart(t, func(o *httpd.TestOptions) { o.ConfigKeys.History = 3 })
	for i := 1; i <= 5; i++ {
		e.do(t, "PUT", "/config/k", rsAlice, fmt.Sprintf(`{"value":%d}`, i)).want(t, 200)
	}
	vs := e.do(t, "GET", "/config/k/history", rsAlice, "").list(t, "versions")
	if len(vs) != 3 || num(t, vs[0]["version"]) != 5 || num(t, vs[2]["version"]) != 3 {
		t.Fatalf("history: %v", vs)
	}
	e.do(t, "GET", "/config/k?version=2", rsAlice, "").want(t, 404)
	e.do(t, "GET", "/config/k?version=3", rsAlice, "").want(t, 200)
}

// TestConfigIfMatchStrict: a present If-Match is a condition or a 422, on
// every method that reads it (PUT and DELETE). An empty header, a sign, a
// leading zero or a list is refused and changes nothing; it is never taken
// as "no condition" nor as another version.
func TestConfigIfMatchStrict(t *testing.T) {
	e := rsStart(t, nil)
	e.do(t, "PUT", "/config/k", rsAlice, `{"value":1}`).want(t, 200)
	e.do(t, "PUT", "/config/k", rsAlice, `{"value":2}`).want(t, 200) // version 2
	version := func() int64 {
		t.Helper()
		return num(t, e.do(t, "GET", "/config/k", rsAlice, "").want(t, 200).obj(t)["version"])
	}
	bad := []string{"", " ", "+2", "02", "00", `"02"`, `"+2"`, `""`, `"2`, `2"`, "2,2", `"2", "2"`, "0x2", "2e0", "2.0",
		`W/"2"`, "-0", "**", "9223372036854775808", "１"}
	for _, h := range bad {
		e.do(t, "PUT", "/config/k", rsAlice, `{"value":"changed"}`, "If-Match", h).want(t, 422, "If-Match")
		e.do(t, "DELETE", "/config/k", rsAlice, "", "If-Match", h).want(t, 422, "If-Match")
	}
	// Two If-Match headers are a list too.
	for _, method := range []string{"PUT", "DELETE"} {
		req, _ := http.NewRequest(method, e.url+"/config/k", strings.NewReader(`{"value":"changed"}`))
		req.Header.Set("Authorization", "Bearer "+rsAlice)
		req.Header.Add("If-Match", "2")
		req.Header.Add("If-Match", "2")
		resp, err := apitest.Client(t, nil).Do(req) // checked against docs/openapi.yaml
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 422 {
			t.Fatalf("%s with two If-Match headers: %d, want 422", method, resp.StatusCode)
		}
	}
	if v := version(); v != 2 {
		t.Fatalf("refused conditions changed the key: version %d", v)
	}
	if got := rawValue(t, e.do(t, "GET", "/config/k", rsAlice, "").body); got != "2" {
		t.Fatalf("refused conditions changed the value: %s", got)
	}

	// DELETE honours a valid condition: a stale version is 409 with the
	// current one and deletes nothing; the current one deletes.
	conflict := func(r rsReply, current int64) {
		t.Helper()
		if m := r.want(t, 409).obj(t); num(t, m["current_version"]) != current {
			t.Fatalf("conflict %s, want current_version %d", r.body, current)
		}
	}
	conflict(e.do(t, "DELETE", "/config/k", rsAlice, "", "If-Match", "1"), 2)
	conflict(e.do(t, "DELETE", "/config/k", rsAlice, "", "If-Match", "0"), 2)
	if v := version(); v != 2 {
		t.Fatalf("a failed conditional delete changed the key: version %d", v)
	}
	e.do(t, "DELETE", "/config/k", rsAlice, "", "If-Match", `"2"`).want(t, 200)
	e.do(t, "GET", "/config/k", rsAlice, "").want(t, 404)
	// A key that does not exist: "*" and a version fail (409, current 0);
	// "0" holds but there is nothing to delete (404).
	conflict(e.do(t, "DELETE", "/config/k", rsAlice, "", "If-Match", "*"), 0)
	conflict(e.do(t, "DELETE", "/config/k", rsAlice, "", "If-Match", "2"), 0)
	e.do(t, "DELETE", "/config/k", rsAlice, "", "If-Match", "0").want(t, 404)
	e.do(t, "PUT", "/config/k", rsAlice, `{"value":3}`).want(t, 200) // version 3
	e.do(t, "DELETE", "/config/k", rsAlice, "", "If-Match", "*").want(t, 200)
}
