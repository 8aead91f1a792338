package httpd

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestFoldedKey(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`{"ttl_seconds":60}`, ""},
		{` { "ttl_seconds" : 60 , "lease_id" : "x" } `, ""},
		{`{"TTL_SECONDS":60}`, `field names are case-sensitive: "TTL_SECONDS" is not ttl_seconds`},
		{`{"lease_id":"x","Lease_ID":"y"}`, `field names are case-sensitive: "Lease_ID" is not lease_id`},
		{`{"ttl_ſeconds":1}`, `field names are case-sensitive: "ttl_ſeconds" is not ttl_seconds`},
		{`{"\u0074tl_seconds":1}`, ""},
		{`{"\u0054tl_seconds":1}`, `field names are case-sensitive: "Ttl_seconds" is not ttl_seconds`},
		{`{"a":"}\"TTL_SECONDS\"","b":[{"TTL_SECONDS":1}],"c":{"LEASE_ID":[]}}`, ""},
		{`{"a":[1,{"x":"]"}],"Lease_id":null}`, `field names are case-sensitive: "Lease_id" is not lease_id`},
		{`{"ttl":1,"ttl_second":2,"TTL_SECONDSX":3}`, ""},
		{`null`, ""},
		{`{}`, ""},
	} {
		var b lockBody
		if got := foldedKey([]byte(c.body), &b); got != c.want {
			t.Errorf("%s: %q, want %q", c.body, got, c.want)
		}
	}
}

// The check runs on every decoded body: it must not allocate for a body
// without escapes.
func TestFoldedKeyDoesNotAllocate(t *testing.T) {
	body := []byte(`{"ttl_seconds":60,"lease_id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8"}`)
	var b lockBody
	if n := testing.AllocsPerRun(100, func() { foldedKey(body, &b) }); n != 0 {
		t.Fatalf("%v allocations per call", n)
	}
}

// FuzzFoldedKey checks the hand-written key scanner against encoding/json's
// own tokenizer: for any body json.Unmarshal accepts, foldedKey reports a
// key exactly when one of the top-level keys equals a field name of
// lockBody case-insensitively but not exactly.
//
//	go test ./httpd -run '^$' -fuzz '^FuzzFoldedKey$' -fuzztime 30s
func FuzzFoldedKey(f *testing.F) {
	for _, s := range []string{`{"ttl_seconds":60}`, `{"TTL_SECONDS":60}`, `{"a":{"TTL_SECONDS":1},"b":"}"}`, `{"\u0054TL_seconds":1}`,
		`{"ttl_ſeconds":1}`, `{"x":[{"y":"]"}],"Lease_Id":"z"}`, `null`, `{}`, ` {"lease_id" : "a\"b" , "ttl_seconds" : [ ] } `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v lockBody
		if json.Unmarshal(body, &v) != nil {
			return // decodeBody answers before foldedKey runs
		}
		want := ""
		dec := json.NewDecoder(bytes.NewReader(body))
		if tok, _ := dec.Token(); tok == json.Delim('{') {
			for dec.More() {
				k, _ := dec.Token()
				key := k.(string)
				for _, name := range []string{"ttl_seconds", "lease_id"} {
					if want == "" && key != name && strings.EqualFold(key, name) {
						want = "field names are case-sensitive: " + quoteKey([]byte(key)) + " is not " + name
					}
				}
				var skip json.RawMessage
				if err := dec.Decode(&skip); err != nil {
					t.Fatal(err)
				}
			}
		}
		if got := foldedKey(body, &v); got != want {
			t.Fatalf("foldedKey(%q) = %q, want %q", body, got, want)
		}
	})
}
