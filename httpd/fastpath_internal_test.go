package httpd

import (
	"encoding/json"
	"testing"

	"github.com/google/uuid"
)

// The shortcuts on the request path must give what the general code gives
// (field.String's: FuzzFieldString in fuzz_test.go).

// FuzzLeaseField: leaseField accepts exactly the 36-character forms
// uuid.Parse accepts and answers their canonical form.
//
//	go test ./httpd -run '^$' -fuzz '^FuzzLeaseField$' -fuzztime 30s
func FuzzLeaseField(f *testing.F) {
	for _, s := range []string{"6ba7b810-9dad-11d1-80b4-00c04fd430c8", "6BA7B810-9DAD-11D1-80B4-00C04FD430C8",
		"6ba7b8109dad11d180b400c04fd430c8", "{6ba7b810-9dad-11d1-80b4-00c04fd430c8}", "6ba7b810-9dad-11d1-80b4_00c04fd430c8",
		"g6a7b810-9dad-11d1-80b4-00c04fd430c8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		raw, _ := json.Marshal(s)
		fl := field{raw: raw, seen: true}
		got, err := leaseField(&fl)
		u, perr := uuid.Parse(s)
		if len(s) != 36 || perr != nil {
			if err == nil {
				t.Fatalf("%q: leaseField accepted it as %q", s, got)
			}
			return
		}
		if err != nil || got != u.String() {
			t.Fatalf("%q: leaseField = %q, %v; want %q", s, got, err, u.String())
		}
	})
}
