package httpd_test

import (
	"strings"
	"testing"
)

// TestFieldNamesAreCaseSensitive: every operation that takes a body matches
// its field names exactly as docs/openapi.yaml spells them. A name in
// another case (encoding/json would take {"TTL_SECONDS": 60} as
// ttl_seconds), or equal under Unicode case folding (ſ for s, K for k), is
// a 422 that names the key, for a required field as for an optional one,
// and changes nothing; so are the keys of the objects inside a body (a
// batch's checks, a flag's rules and variants). Each exchange is checked
// against the contract, so the 422 must be declared for the operation. (Before, every one of these
// requests was taken: acquired, renewed, released, counted, set.)
func TestFieldNamesAreCaseSensitive(t *testing.T) {
	e := relStart(t, nil)
	held := e.mustAcquire("tokA", "held", 3600)
	lease := held.lease
	for _, w := range []struct{ method, path, body string }{
		{"POST", "/limits/lim/check", `{"max_requests":10,"window_seconds":60}`},
		{"PUT", "/flags/flg", `{"enabled":true,"percentage":50}`},
		{"PUT", "/config/cfg", `{"value":1,"description":"d"}`},
	} {
		if r := e.do(w.method, w.path, "tokA", w.body); r.status != 200 {
			t.Fatalf("%s %s: %d %s", w.method, w.path, r.status, r.body)
		}
	}
	// A graceful restart writes the limit's write-behind counter, so the
	// snapshot is stable.
	e.restart()
	before := dbSnapshot(t, e.app.DB.ReadDB())

	for _, c := range []struct {
		op, method, path, body, key string
	}{
		{"acquire", "POST", "/locks/fresh/acquire", `{"TTL_SECONDS":60}`, `"TTL_SECONDS"`},
		{"acquire", "POST", "/locks/fresh/acquire", `{"Ttl_Seconds":60}`, `"Ttl_Seconds"`},
		{"acquire", "POST", "/locks/fresh/acquire", `{"ttl_ſeconds":60}`, `"ttl_ſeconds"`}, // U+017F folds to s
		{"acquire", "POST", "/locks/fresh/acquire", `{"\u0054TL_SECONDS":60}`, `"TTL_SECONDS"`},
		{"acquire", "POST", "/locks/fresh/acquire", `{"ttl_seconds":60,"TTL_SECONDS":60}`, `"TTL_SECONDS"`},
		{"acquire", "POST", "/locks/fresh/acquire", `{"x":{"ttl_seconds":[1,"}"]},"TTL_seconds":60}`, `"TTL_seconds"`},
		{"renew", "POST", "/locks/held/renew", `{"TTL_SECONDS":60,"lease_id":"` + lease + `"}`, `"TTL_SECONDS"`},
		{"renew", "POST", "/locks/held/renew", `{"ttl_seconds":60,"Lease_Id":"` + lease + `"}`, `"Lease_Id"`},
		{"release", "POST", "/locks/held/release", `{"LEASE_ID":"` + lease + `"}`, `"LEASE_ID"`},
		{"check", "POST", "/limits/lim/check", `{"MAX_REQUESTS":10,"window_seconds":60}`, `"MAX_REQUESTS"`},
		{"check", "POST", "/limits/lim/check", `{"max_requests":10,"Window_Seconds":60}`, `"Window_Seconds"`},
		{"flag", "PUT", "/flags/flg", `{"Enabled":false}`, `"Enabled"`},
		{"flag", "PUT", "/flags/flg", `{"enabled":true,"PERCENTAGE":10}`, `"PERCENTAGE"`},
		{"config", "PUT", "/config/cfg", `{"VALUE":2}`, `"VALUE"`},
		{"config", "PUT", "/config/cfg", `{"value":2,"Description":"e"}`, `"Description"`},
		{"config", "PUT", "/config/cfg", `{"value":2,"EXPECTED_VERSION":1}`, `"EXPECTED_VERSION"`},
		{"config", "PUT", "/config/cfg", `{"value":2,"expected_version":1,"Expected_Version":1}`, `"Expected_Version"`},
		{"rollback", "POST", "/config/cfg/rollback", `{"VERSION":1}`, `"VERSION"`},
		{"rollback", "POST", "/config/cfg/rollback", `{"version":1,"Expected_Version":1}`, `"Expected_Version"`},
		{"batch", "POST", "/limits/check", `{"CHECKS":[{"name":"lim","max_requests":10,"window_seconds":60}]}`, `"CHECKS"`},
		{"batch", "POST", "/limits/check", `{"checks":[{"NAME":"lim","max_requests":10,"window_seconds":60}]}`, `"NAME"`},
		{"batch", "POST", "/limits/check", `{"checks":[{"name":"lim","max_requests":10,"window_seconds":60},{"name":"lim","Max_Requests":10,"window_seconds":60}]}`, `"Max_Requests"`},
		{"flag", "PUT", "/flags/flg", `{"enabled":true,"RULES":[]}`, `"RULES"`},
		{"flag", "PUT", "/flags/flg", `{"enabled":true,"rules":[{"Attribute":"plan","operator":"in","values":["pro"],"enabled":true}]}`, `"Attribute"`},
		{"flag", "PUT", "/flags/flg", `{"enabled":true,"variants":[{"name":"a","value":1,"WEIGHT":100}]}`, `"WEIGHT"`},
	} {
		tok := "tokA"
		if c.op == "acquire" {
			tok = "tokB"
		}
		r := e.do(c.method, c.path, tok, c.body)
		mustJSONError(t, c.method+" "+c.path+" "+c.body, r, 422)
		if !strings.Contains(r.str("error"), c.key) || !strings.Contains(r.str("error"), "case-sensitive") {
			t.Errorf("%s %s %s: error %q does not name %s", c.method, c.path, c.body, r.str("error"), c.key)
		}
	}
	if after := dbSnapshot(t, e.app.DB.ReadDB()); after != before {
		t.Fatalf("requests with misspelt field names changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	e.mustHold("tokA", "held", held, "after the misspelt requests")

	// Exact names, also written with escapes, and unknown keys, are fine.
	for _, w := range []struct{ method, path, tok, body string }{
		{"POST", "/locks/fresh/acquire", "tokB", `{"ttl\u005fseconds":60,"ttl":5,"note":{"TTL_SECONDS":1}}`},
		{"POST", "/locks/held/renew", "tokA", `{"lease_id":"` + lease + `","ttl_seconds":60}`},
		{"POST", "/limits/lim/check", "tokA", `{"window_seconds":60,"max_requests":10,"comment":"x"}`},
		{"PUT", "/flags/flg", "tokA", `{"enabled":false}`},
		{"PUT", "/config/cfg", "tokA", `{"value":{"VALUE":"nested keys are data"},"expected_version":1}`},
		{"POST", "/config/cfg/rollback", "tokA", `{"version":1,"expected_version":2}`},
		{"POST", "/limits/check", "tokA", `{"checks":[{"name":"lim","max_requests":10,"window_seconds":60,"note":1}]}`},
		{"PUT", "/flags/flg", "tokA", `{"enabled":true,"variants":[{"name":"a","value":{"WEIGHT":1},"weight":100}]}`},
	} {
		if r := e.do(w.method, w.path, w.tok, w.body); r.status != 200 {
			t.Errorf("%s %s %s: %d %s", w.method, w.path, w.body, r.status, r.body)
		}
	}
}
