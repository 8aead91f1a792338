package httpd_test

import (
	"fmt"
	"strings"
	"testing"
)

const ofrepOne = "/ofrep/v1/evaluate/flags/"

// ofrep evaluates one flag for a context (JSON text).
func (e *rsEnv) ofrep(t *testing.T, key, context string) rsReply {
	t.Helper()
	return e.do(t, "POST", ofrepOne+key, rsAlice, `{"context":`+context+`}`)
}

// OFREP single-flag evaluation: every reason, the value of every variant
// type, attributes of every JSON type, and one answer per subject whichever
// endpoint asks.
func TestOFREPEvaluate(t *testing.T) {
	e := rsStart(t, nil)
	e.do(t, "PUT", "/flags/on", rsAlice, `{"enabled":true}`).want(t, 200)
	e.do(t, "PUT", "/flags/off", rsAlice, `{"enabled":false}`).want(t, 200)
	e.do(t, "PUT", "/flags/beta", rsAlice, `{"enabled":true,"percentage":30}`).want(t, 200)
	e.do(t, "PUT", "/flags/gate", rsAlice, `{"enabled":true,"rules":[
		{"attribute":"age","operator":"gt","values":[17],"enabled":true},
		{"attribute":"beta","operator":"eq","values":["true"],"enabled":true},
		{"attribute":"country","operator":"not_in","values":["NL"],"enabled":false}]}`).want(t, 200)
	e.do(t, "PUT", "/flags/theme", rsAlice, `{"enabled":true,
		"variants":[{"name":"blue","value":"blue","weight":50},{"name":"big","value":{"size":3,"tags":["a"]},"weight":50}],
		"rules":[{"attribute":"plan","operator":"in","values":["pro"],"variant":"big"}]}`).want(t, 200)
	e.do(t, "PUT", "/flags/price", rsAlice, `{"enabled":false,"off_variant":"low",
		"variants":[{"name":"low","value":9.5,"weight":100}]}`).want(t, 200)
	e.do(t, "PUT", "/flags/dark", rsAlice, `{"enabled":false,"variants":[{"name":"x","value":1,"weight":100}]}`).want(t, 200)

	for _, tc := range []struct {
		key, context, want string
	}{
		{"on", `{"targetingKey":"u1"}`, `{"key":"on","value":true,"reason":"STATIC","variant":"on","metadata":{}}`},
		{"on", `{}`, `{"key":"on","value":true,"reason":"STATIC","variant":"on","metadata":{}}`}, // needs no subject
		{"off", `{}`, `{"key":"off","value":false,"reason":"DISABLED","variant":"off","metadata":{}}`},
		{"beta", `{"targetingKey":"bob"}`, `{"key":"beta","value":true,"reason":"SPLIT","variant":"on","metadata":{}}`},     // bucket 21
		{"beta", `{"targetingKey":"alice"}`, `{"key":"beta","value":false,"reason":"SPLIT","variant":"off","metadata":{}}`}, // bucket 54
		{"gate", `{"targetingKey":"u","age":18}`, `{"key":"gate","value":true,"reason":"TARGETING_MATCH","variant":"on","metadata":{}}`},
		{"gate", `{"targetingKey":"u","age":"18"}`, `{"key":"gate","value":true,"reason":"TARGETING_MATCH","variant":"on","metadata":{}}`},
		{"gate", `{"targetingKey":"u","beta":true}`, `{"key":"gate","value":true,"reason":"TARGETING_MATCH","variant":"on","metadata":{}}`},
		{"gate", `{"targetingKey":"u","country":"DE"}`, `{"key":"gate","value":false,"reason":"TARGETING_MATCH","variant":"off","metadata":{}}`},
		{"gate", `{"targetingKey":"u","country":"NL","age":{"years":30}}`, `{"key":"gate","value":true,"reason":"DEFAULT","variant":"on","metadata":{}}`},
		{"gate", `{"country":null}`, `{"key":"gate","value":true,"reason":"DEFAULT","variant":"on","metadata":{}}`}, // null is absent
		{"theme", `{"targetingKey":"u","plan":"pro"}`, `{"key":"theme","value":{"size":3,"tags":["a"]},"reason":"TARGETING_MATCH","variant":"big","metadata":{}}`},
		{"price", `{}`, `{"key":"price","value":9.5,"reason":"DISABLED","variant":"low","metadata":{}}`},
		{"dark", `{}`, `{"key":"dark","reason":"DISABLED","metadata":{}}`}, // nothing served: the code's default
	} {
		if got := e.ofrep(t, tc.key, tc.context).want(t, 200).String(); got != tc.want {
			t.Errorf("%s %s:\n got %s\nwant %s", tc.key, tc.context, got, tc.want)
		}
	}
	// One subject, one answer, whichever endpoint asks.
	for i := 0; i < 100; i++ {
		subj := fmt.Sprintf("user-%d", i)
		for _, key := range []string{"beta", "theme"} {
			get := e.do(t, "GET", "/flags/"+key+"?subject="+subj, rsAlice, "").want(t, 200).obj(t)
			of := e.ofrep(t, key, `{"targetingKey":"`+subj+`"}`).want(t, 200).obj(t)
			if get["variant"] != of["variant"] || get["reason"] != of["reason"] {
				t.Fatalf("%s %s: GET %v, OFREP %v", key, subj, get, of)
			}
		}
	}
}

// OFREP's errors: each status and errorCode the protocol names, and the
// house's for what surrounds evaluation.
func TestOFREPErrors(t *testing.T) {
	e := rsStart(t, nil)
	e.do(t, "PUT", "/flags/beta", rsAlice, `{"enabled":true,"percentage":30}`).want(t, 200)
	e.do(t, "PUT", "/flags/exp", rsAlice, `{"enabled":true,"variants":[{"name":"a","value":1,"weight":100}]}`).want(t, 200)
	e.do(t, "PUT", "/flags/bobs", rsBob, `{"enabled":true}`).want(t, 200)
	for _, tc := range []struct {
		name, key, body string
		status          int
		code, details   string
	}{
		{"unknown flag", "nope", `{"context":{"targetingKey":"u"}}`, 404, "FLAG_NOT_FOUND", `flag \"nope\" not found`},
		{"another user's flag", "bobs", `{"context":{"targetingKey":"u"}}`, 404, "FLAG_NOT_FOUND", "not found"},
		{"a key no flag can have", "a.b", `{"context":{}}`, 404, "FLAG_NOT_FOUND", "flag name must match"},
		{"not JSON", "beta", `{"context":`, 400, "PARSE_ERROR", "JSON object"},
		{"an array", "beta", `[1]`, 400, "PARSE_ERROR", "JSON object"},
		{"empty", "beta", ` `, 400, "PARSE_ERROR", "JSON object"},
		{"no context", "beta", `{}`, 400, "INVALID_CONTEXT", "context is required"},
		{"context a string", "beta", `{"context":"u"}`, 400, "INVALID_CONTEXT", "context must be an object"},
		{"context null", "beta", `{"context":null}`, 400, "INVALID_CONTEXT", "context must be an object"},
		{"targetingKey a number", "beta", `{"context":{"targetingKey":5}}`, 400, "INVALID_CONTEXT", "targetingKey must be a string"},
		{"targetingKey too long", "beta", `{"context":{"targetingKey":"` + strings.Repeat("k", 1025) + `"}}`, 400, "INVALID_CONTEXT", "1024"},
		{"percentage without targetingKey", "beta", `{"context":{"plan":"pro"}}`, 400, "TARGETING_KEY_MISSING", "targetingKey"},
		{"weights with an empty targetingKey", "exp", `{"context":{"targetingKey":""}}`, 400, "TARGETING_KEY_MISSING", "targetingKey"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, "POST", ofrepOne+tc.key, rsAlice, tc.body).want(t, tc.status)
			m := r.obj(t)
			if m["key"] != tc.key || m["errorCode"] != tc.code || !strings.Contains(r.String(), tc.details) {
				t.Fatalf("%s, want key %q errorCode %s details mentioning %q", r, tc.key, tc.code, tc.details)
			}
		})
	}
	// Around evaluation, the house's errors.
	e.do(t, "POST", ofrepOne+"beta", "", `{"context":{}}`).want(t, 401)
	e.do(t, "POST", ofrepOne+"beta?owner=bob", rsAlice, `{"context":{}}`).want(t, 403, "another user")
	e.do(t, "POST", ofrepOne+"beta", rsAdmin, `{"context":{}}`).want(t, 422, "owner is required")
	if m := e.do(t, "POST", ofrepOne+"beta?owner=alice", rsAdmin, `{"context":{"targetingKey":"bob"}}`).want(t, 200).obj(t); m["value"] != true {
		t.Fatalf("admin with ?owner=: %v", m)
	}
	e.do(t, "POST", ofrepOne+"beta", rsAlice, `{"context":{}}`, "Content-Type", "text/plain").want(t, 415)
	e.do(t, "GET", ofrepOne+"beta", rsAlice, "").want(t, 405)
}

// Bulk: every flag in name order, per-flag failures in place, an ETag that
// changes with any flag and with the answer, 304 for If-None-Match.
func TestOFREPBulk(t *testing.T) {
	e := rsStart(t, nil)
	const bulk = "/ofrep/v1/evaluate/flags"
	post := func(context string, hdr ...string) rsReply {
		t.Helper()
		return e.do(t, "POST", bulk, rsAlice, `{"context":`+context+`}`, hdr...)
	}
	empty := post(`{"targetingKey":"bob"}`).want(t, 200)
	if empty.String() != `{"flags":[]}` || empty.header.Get("ETag") == "" {
		t.Fatalf("no flags: %s %v", empty, empty.header)
	}
	e.do(t, "PUT", "/flags/b-split", rsAlice, `{"enabled":true,"percentage":30}`).want(t, 200)
	e.do(t, "PUT", "/flags/a-off", rsAlice, `{"enabled":false}`).want(t, 200)
	e.do(t, "PUT", "/flags/c-var", rsAlice, `{"enabled":true,"variants":[{"name":"x","value":"X","weight":100}]}`).want(t, 200)
	e.do(t, "PUT", "/flags/other", rsBob, `{"enabled":true}`).want(t, 200) // bob's: not in alice's answer
	r := post(`{"targetingKey":"bob"}`).want(t, 200)
	const want = `{"flags":[{"key":"a-off","value":false,"reason":"DISABLED","variant":"off","metadata":{}},` +
		`{"key":"b-split","value":true,"reason":"SPLIT","variant":"on","metadata":{}},` +
		`{"key":"c-var","value":"X","reason":"SPLIT","variant":"x","metadata":{}}]}`
	if r.String() != want {
		t.Fatalf("bulk:\n got %s\nwant %s", r, want)
	}
	etag := r.header.Get("ETag")
	if etag == "" || etag == empty.header.Get("ETag") || !strings.HasPrefix(etag, `"`) {
		t.Fatalf("etag %q (empty set: %q)", etag, empty.header.Get("ETag"))
	}
	if again := post(`{"targetingKey":"bob"}`).want(t, 200); again.header.Get("ETag") != etag {
		t.Fatalf("same flags, same context: etag %q then %q", etag, again.header.Get("ETag"))
	}
	// If-None-Match: 304 without a body, for the tag alone, in a list, weak, or *.
	for _, inm := range []string{etag, `"zzz", ` + etag, "W/" + etag, "*"} {
		nm := post(`{"targetingKey":"bob"}`, "If-None-Match", inm)
		if nm.status != 304 || len(nm.body) != 0 || nm.header.Get("ETag") != etag {
			t.Fatalf("If-None-Match %s: %d %q %v", inm, nm.status, nm.body, nm.header)
		}
	}
	if nm := post(`{"targetingKey":"bob"}`, "If-None-Match", `"stale"`); nm.status != 200 {
		t.Fatalf("stale If-None-Match: %d", nm.status)
	}
	// Another context with another answer has another tag (alice is out at 30%).
	if a := post(`{"targetingKey":"alice"}`, "If-None-Match", etag).want(t, 200); a.header.Get("ETag") == etag {
		t.Fatalf("alice's answer differs but has bob's etag")
	}
	// Any change of any of alice's flags changes the tag, even one that does
	// not change bob's answer (a-off stays off at a new percentage). (A
	// delete that brings back an earlier set of definitions brings back its
	// tag: the representation is the same.)
	for _, change := range []struct{ method, path, body string }{
		{"PUT", "/flags/a-off", `{"enabled":false,"percentage":5}`},
		{"PUT", "/flags/d-new", `{"enabled":false}`},
		{"DELETE", "/flags/d-new", ""},
		{"PUT", "/flags/a-off", `{"enabled":false,"percentage":5,"rules":[{"attribute":"x","operator":"eq","values":["y"],"enabled":true}]}`},
	} {
		e.do(t, change.method, change.path, rsAlice, change.body).want(t, 200)
		tag := post(`{"targetingKey":"bob"}`, "If-None-Match", etag).want(t, 200).header.Get("ETag")
		if tag == etag {
			t.Fatalf("after %v the etag is unchanged", change)
		}
		etag = tag
	}
	// bob's flags are not alice's: changing them leaves alice's tag alone.
	e.do(t, "PUT", "/flags/other", rsBob, `{"enabled":false}`).want(t, 200)
	if nm := post(`{"targetingKey":"bob"}`, "If-None-Match", etag); nm.status != 304 {
		t.Fatalf("bob's change moved alice's etag: %d", nm.status)
	}
	// Without a targetingKey the splitting flags fail in place.
	r = post(`{}`).want(t, 200)
	if !strings.Contains(r.String(), `{"key":"b-split","errorCode":"TARGETING_KEY_MISSING","errorDetails":`) ||
		!strings.Contains(r.String(), `{"key":"c-var","errorCode":"TARGETING_KEY_MISSING"`) ||
		!strings.Contains(r.String(), `"key":"a-off","value":false,"reason":"DISABLED"`) {
		t.Fatalf("bulk without targetingKey: %s", r)
	}
	// Whole-request failures have no key.
	for body, code := range map[string]string{`[`: "PARSE_ERROR", `{"context":[]}`: "INVALID_CONTEXT", `{}`: "INVALID_CONTEXT"} {
		m := e.do(t, "POST", bulk, rsAlice, body).want(t, 400).obj(t)
		if _, has := m["key"]; has || m["errorCode"] != code {
			t.Fatalf("%s: %v, want %s without key", body, m, code)
		}
	}
	e.do(t, "POST", bulk, rsAdmin, `{"context":{}}`).want(t, 422, "owner")
	if l := e.do(t, "POST", bulk+"?owner=bob", rsAdmin, `{"context":{}}`).want(t, 200).String(); !strings.Contains(l, `"key":"other"`) {
		t.Fatalf("admin ?owner=bob: %s", l)
	}
}
