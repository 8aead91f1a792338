package actors

import (
	"strings"
	"testing"
)

// sortByName sorts whatever it is given: records already in name order (a
// name-ordered loader) are kept as they are, a sorted run with a tail (the
// store's journal after its rows) is merged, anything else sorted; equal
// names stay next to each other with the later one last.
func TestSortByName(t *testing.T) {
	mk := func(names ...string) []*holding {
		cs := make([]*holding, len(names))
		for i, n := range names {
			cs[i] = &holding{name: n}
		}
		return cs
	}
	names := func(cs []*holding) string {
		var b strings.Builder
		for _, c := range cs {
			b.WriteString(c.name + " ")
		}
		return b.String()
	}
	for _, tc := range []struct{ in, want []string }{
		{nil, nil},
		{[]string{"a"}, []string{"a"}},
		{[]string{"a", "b", "c", "d"}, []string{"a", "b", "c", "d"}},
		{[]string{"a", "c", "e", "g", "f", "b", "0"}, []string{"0", "a", "b", "c", "e", "f", "g"}},
		{[]string{"d", "c", "b", "a", "e"}, []string{"a", "b", "c", "d", "e"}},
		{[]string{"a", "b", "c", "z", "b"}, []string{"a", "b", "b", "c", "z"}},
	} {
		in := mk(tc.in...)
		var lastB *holding
		for _, c := range in {
			if c.name == "b" {
				lastB = c
			}
		}
		got := sortByName(in)
		if names(got) != names(mk(tc.want...)) {
			t.Errorf("sortByName(%q) = %q, want %q", tc.in, names(got), tc.want)
		}
		if lastB != nil {
			for i, c := range got {
				if c.name == "b" && (i+1 == len(got) || got[i+1].name != "b") && c != lastB {
					t.Errorf("sortByName(%q): the later of equal names is not last", tc.in)
				}
			}
		}
	}
}
