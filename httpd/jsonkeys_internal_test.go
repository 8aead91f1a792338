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

// decodeFlat is the fast path of decodeBody: whatever it accepts,
// encoding/json (decodeJSON) must accept with the same fields; what it
// leaves to encoding/json it must not have touched.
func checkFlatMatchesJSON[T comparableBody[T]](t *testing.T, body []byte) (flat bool) {
	t.Helper()
	var fast, slow T
	sentinel := fast.marked()
	fast = sentinel
	if !decodeFlat(body, &fast) {
		if !fast.equal(sentinel) {
			t.Fatalf("%q: decodeFlat declined but changed the value: %+v", body, fast)
		}
		return false
	}
	if err := decodeJSON(body, &slow); err != nil {
		t.Fatalf("%q: decodeFlat accepted, encoding/json answered %v", body, err)
	}
	if !fast.equal(slow) {
		t.Fatalf("%q: decodeFlat gave %+v, encoding/json %+v", body, fast, slow)
	}
	return true
}

// comparableBody is what the check needs of a body type.
type comparableBody[T any] interface {
	equal(T) bool
	marked() T // a value with every field set, to see that a decline changes nothing
}

func sameField(a, b field) bool {
	return a.seen == b.seen && a.dup == b.dup && (a.raw == nil) == (b.raw == nil) && bytes.Equal(a.raw, b.raw)
}

var markField = field{raw: []byte("mark"), seen: true}

func (a lockBody) equal(b lockBody) bool {
	return sameField(a.TTL, b.TTL) && sameField(a.LeaseID, b.LeaseID) && sameField(a.HolderID, b.HolderID) &&
		sameField(a.Wait, b.Wait) && sameField(a.SessionID, b.SessionID) && sameField(a.LockDelay, b.LockDelay) &&
		sameField(a.Metadata, b.Metadata)
}
func (lockBody) marked() lockBody {
	return lockBody{markField, markField, markField, markField, markField, markField, markField}
}
func (a limitBody) equal(b limitBody) bool {
	return sameField(a.Max, b.Max) && sameField(a.Window, b.Window) && sameField(a.Cost, b.Cost) && sameField(a.Algorithm, b.Algorithm)
}
func (limitBody) marked() limitBody { return limitBody{markField, markField, markField, markField} }
func (a flagBody) equal(b flagBody) bool {
	return sameField(a.Enabled, b.Enabled) && sameField(a.Percentage, b.Percentage) && sameField(a.Rules, b.Rules) &&
		sameField(a.Variants, b.Variants) && sameField(a.OffVariant, b.OffVariant)
}
func (flagBody) marked() flagBody {
	return flagBody{markField, markField, markField, markField, markField}
}

func TestDecodeFlat(t *testing.T) {
	for _, c := range []struct {
		body string
		flat bool // taken by the fast path
	}{
		{`{"ttl_seconds":60}`, true},
		{` { "ttl_seconds" : 60 , "lease_id" : "6ba7b810-9dad-11d1-80b4-00c04fd430c8" } `, true},
		{`{"ttl_seconds":60,"ttl_seconds":null}`, true},
		{`{"lease_id":null,"holder_id":"w-1","ttl_seconds":-1.5e3}`, true},
		{`{"ttl_seconds":true}`, true},
		{`{}`, true},
		{"{\"ttl_seconds\":60}\n", true},
		{`{"TTL_SECONDS":60}`, false},
		{`{"ttl_seconds":60,"other":1}`, false},
		{`{"lease_id":"a\"b"}`, false},
		{`{"lease_id":"é"}`, false},
		{`{"ttl_seconds":[60]}`, false},
		{`{"ttl_seconds":060}`, false},
		{`{"ttl_seconds":60,}`, false},
		{`{"ttl_seconds":60} x`, false},
		{`{"ttl_seconds":6 0}`, false},
		{`{"ttl_seconds":-}`, false},
		{`{"ttl_seconds":1.}`, false},
		{`{"ttl_seconds":nul}`, false},
		{`null`, false},
		{``, false},
		{`{`, false},
	} {
		if got := checkFlatMatchesJSON[lockBody](t, []byte(c.body)); got != c.flat {
			t.Errorf("%q: fast path %v, want %v", c.body, got, c.flat)
		}
	}
	if !checkFlatMatchesJSON[limitBody](t, []byte(`{"max_requests":100,"window_seconds":1,"cost":2,"algorithm":"token_bucket"}`)) {
		t.Error("limit body not on the fast path")
	}
	if !checkFlatMatchesJSON[flagBody](t, []byte(`{"enabled":true,"percentage":30}`)) {
		t.Error("flag body not on the fast path")
	}
	if checkFlatMatchesJSON[flagBody](t, []byte(`{"enabled":true,"rules":[{"enabled":false}]}`)) {
		t.Error("a flag body with rules (an array) taken by the fast path")
	}
	// A body type with a field of another type is never flat.
	var cb configBody
	if decodeFlat([]byte(`{"description":"x"}`), &cb) {
		t.Error("config body taken by the fast path")
	}
}

// The fast path is what a lock request costs: it must not allocate.
func TestDecodeFlatDoesNotAllocate(t *testing.T) {
	body := []byte(`{"ttl_seconds":60,"lease_id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8"}`)
	var b lockBody
	decodeFlat(body, &b) // the type's field table is built once
	if n := testing.AllocsPerRun(100, func() { decodeFlat(body, &b) }); n != 0 {
		t.Fatalf("%v allocations per call", n)
	}
}

// FuzzDecodeFlat: for any body, the fast path either declines (changing
// nothing) or agrees with encoding/json.
//
//	go test ./httpd -run '^$' -fuzz '^FuzzDecodeFlat$' -fuzztime 30s
func FuzzDecodeFlat(f *testing.F) {
	for _, s := range []string{`{"ttl_seconds":60}`, `{"lease_id":"x","ttl_seconds":1e3,"holder_id":null}`, `{"ttl_seconds":60,"ttl_seconds":61}`,
		`{"max_requests":100,"window_seconds":1}`, `{"enabled":false,"percentage":-0}`, ` {} `, `{"ttl_seconds":"60"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkFlatMatchesJSON[lockBody](t, body)
		checkFlatMatchesJSON[limitBody](t, body)
		checkFlatMatchesJSON[flagBody](t, body)
	})
}
