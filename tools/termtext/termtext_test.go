package termtext

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestClean(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text, é, 漢字", "plain text, é, 漢字"},
		{"clear\x1b[2Jbell\a", "clear\uFFFD[2Jbell\uFFFD"},
		{"two\nlines\tand\rcr", "two lines and cr"},
		{"c1 \u0085\u009b31m del \x7f", "c1 \uFFFD\uFFFD31m del \uFFFD"},
		{"bidi \u202egnp.exe\u202c \u2066x\u2069 \u200f", "bidi \uFFFDgnp.exe\uFFFD \uFFFDx\uFFFD \uFFFD"},
		{"sep\u2028line\u2029para", "sep line para"},
		{"bad utf-8 \xff!", "bad utf-8 \uFFFD!"},
	} {
		if got := Clean(tc.in); got != tc.want {
			t.Errorf("Clean(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if Index(Clean(tc.in)) >= 0 {
			t.Errorf("Clean(%q) still holds an unsafe rune", tc.in)
		}
	}
}

func TestIndex(t *testing.T) {
	if i := Index("ok"); i != -1 {
		t.Fatalf("Index(ok) = %d", i)
	}
	if i := Index("é\x1b"); i != 2 {
		t.Fatalf("Index = %d, want 2 (bytes)", i)
	}
}

func TestEscapeJSONKeepsTheValue(t *testing.T) {
	for _, in := range []string{
		`{"a":"plain","n":[1,2.5,null,true]}`,
		"{\n  \"d\": \"x\u202ey\u009b\x7f\",\n\t\"k\\\"\u2066\": \"\\\\\u200f\"\n}",
		`["\u001b[2J", "esc\u0007"]`, // already escaped: nothing to do
		"\"\u0085\"",
	} {
		out := EscapeJSON([]byte(in))
		if Index(string(out)) >= 0 && firstEscape(out) >= 0 {
			t.Errorf("EscapeJSON(%q) = %q: still holds an unsafe rune", in, out)
		}
		var a, b any
		if err := json.Unmarshal([]byte(in), &a); err != nil {
			t.Fatalf("test input %q: %v", in, err)
		}
		if err := json.Unmarshal(out, &b); err != nil {
			t.Fatalf("EscapeJSON(%q) = %q: %v", in, out, err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("EscapeJSON(%q) = %q: value %v, want %v", in, out, b, a)
		}
	}
	if out := EscapeJSON([]byte(`{"a": 1}`)); string(out) != `{"a": 1}` {
		t.Errorf("clean JSON changed: %q", out)
	}
	if out := EscapeJSON([]byte("\"\u202e\"")); string(out) != `"\u202e"` {
		t.Errorf("EscapeJSON(RLO) = %q", out)
	}
}

func TestClip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		w    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"longer than ten", 10, "longer th…"},
		{"漢字漢字漢字", 6, "漢字…"},
		{"x", 0, ""},
	} {
		if got := Clip(tc.in, tc.w); got != tc.want || Width(got) > tc.w {
			t.Errorf("Clip(%q, %d) = %q, want %q", tc.in, tc.w, got, tc.want)
		}
	}
}

func FuzzEscapeJSON(f *testing.F) {
	f.Add(`{"a":"b\u202e"}`)
	f.Add("[\"\x7f\u0085\"]")
	f.Fuzz(func(t *testing.T, s string) {
		var a any
		if json.Unmarshal([]byte(s), &a) != nil {
			return
		}
		out := EscapeJSON([]byte(s))
		if firstEscape(out) >= 0 {
			t.Fatalf("EscapeJSON(%q) = %q: an unsafe rune is left", s, out)
		}
		var b any
		if err := json.Unmarshal(out, &b); err != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("EscapeJSON(%q) = %q: %v, value %v want %v", s, out, err, b, a)
		}
	})
}
