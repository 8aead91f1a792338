package names

import (
	"regexp"
	"strings"
	"testing"
)

// The rules agree with their own patterns as regular expressions, on
// every byte and at every length boundary.
func TestRulesMatchTheirPatterns(t *testing.T) {
	for _, r := range []*Rule{Lock, Resource, ConfigKey, Login, HolderID} {
		re := regexp.MustCompile(r.Pattern())
		cases := []string{"", ".", "..", "...", "a.b", "host-1:42", "ci@runner/7", "a+b=", "a\\b", strings.Repeat("a", r.Max()), strings.Repeat("a", r.Max()+1), "a/b", "a b", "ä", "-", "_"}
		for c := 0; c < 256; c++ {
			cases = append(cases, "x"+string(rune(c))+"y", string([]byte{byte(c)}))
		}
		for _, s := range cases {
			want := re.MatchString(s) && !(r.noDots && (s == "." || s == ".."))
			if got := r.Valid(s); got != want {
				t.Errorf("%s: Valid(%q) = %v, want %v", r.Pattern(), s, got, want)
			}
		}
	}
}

// The messages are the ones the API has always answered (docs/api.md).
func TestRequirements(t *testing.T) {
	for r, want := range map[*Rule]string{
		Lock:      "must match ^[A-Za-z0-9_-]{1,128}$",
		Resource:  "must match ^[A-Za-z0-9_-]{1,100}$",
		Login:     "must match ^[A-Za-z0-9_-]{1,64}$",
		ConfigKey: "must match ^[a-zA-Z0-9._-]{1,100}$ (and not be . or ..)",
		HolderID:  "must match ^[A-Za-z0-9._:@/+=-]{1,128}$",
	} {
		if got := r.Requirement(); got != want {
			t.Errorf("Requirement() = %q, want %q", got, want)
		}
	}
}

func FuzzRules(f *testing.F) {
	for _, s := range []string{"a", "a.b", "..", "x_y-z", strings.Repeat("z", 129)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, r := range []*Rule{Lock, Resource, ConfigKey, Login, HolderID} {
			want := regexp.MustCompile(r.Pattern()).MatchString(s) && !(r.noDots && (s == "." || s == ".."))
			if r.Valid(s) != want {
				t.Fatalf("%s: Valid(%q) = %v", r.Pattern(), s, !want)
			}
		}
	})
}
