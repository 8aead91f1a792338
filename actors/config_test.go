package actors

import (
	"errors"
	"testing"
	"time"
)

func TestNextConfig(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	min := time.Minute
	type step struct {
		at       time.Duration
		op       string // set | delete
		value    string
		desc     *string
		expected int64
		version  int64 // expected version after the step (or current_version of the conflict)
		conflict bool
		desc2    string // expected description
		created  time.Duration
	}
	s := func(v string) *string { return &v }
	tests := []struct {
		name  string
		steps []step
	}{
		{"versions start at 1 and grow by one", []step{
			{at: 0, op: "set", value: `1`, expected: ExpectAny, version: 1, created: 0},
			{at: min, op: "set", value: `2`, expected: ExpectAny, version: 2, created: 0},
			{at: 2 * min, op: "set", value: `2`, expected: ExpectAny, version: 3, created: 0},
		}},
		{"If-Match: version must match", []step{
			{at: 0, op: "set", value: `"a"`, expected: 0, version: 1},
			{at: min, op: "set", value: `"b"`, expected: 1, version: 2},
			{at: min, op: "set", value: `"c"`, expected: 1, conflict: true, version: 2},
			{at: min, op: "set", value: `"c"`, expected: 3, conflict: true, version: 2},
			{at: min, op: "set", value: `"c"`, expected: 2, version: 3},
		}},
		{"If-Match: 0 creates only", []step{
			{at: 0, op: "set", value: `{}`, expected: 0, version: 1},
			{at: min, op: "set", value: `{}`, expected: 0, conflict: true, version: 1},
		}},
		{"If-Match: * needs the key", []step{
			{at: 0, op: "set", value: `{}`, expected: ExpectExists, conflict: true, version: 0},
			{at: 0, op: "set", value: `{}`, expected: ExpectAny, version: 1},
			{at: min, op: "set", value: `[]`, expected: ExpectExists, version: 2},
		}},
		{"a key that does not exist is at version 0", []step{
			{at: 0, op: "set", value: `1`, expected: 5, conflict: true, version: 0},
		}},
		{"re-created key continues the numbering and gets a new created_at", []step{
			{at: 0, op: "set", value: `1`, expected: ExpectAny, version: 1, created: 0},
			{at: min, op: "set", value: `2`, expected: ExpectAny, version: 2, created: 0},
			{at: 2 * min, op: "delete"},
			{at: 3 * min, op: "set", value: `3`, expected: 2, conflict: true, version: 0},
			{at: 3 * min, op: "set", value: `3`, expected: 0, version: 3, created: 3 * min},
		}},
		{"description: kept when absent, replaced when given, cleared with empty", []step{
			{at: 0, op: "set", value: `1`, desc: s("timeout"), expected: ExpectAny, version: 1, desc2: "timeout"},
			{at: min, op: "set", value: `2`, expected: ExpectAny, version: 2, desc2: "timeout"},
			{at: 2 * min, op: "set", value: `3`, desc: s("seconds"), expected: ExpectAny, version: 3, desc2: "seconds"},
			{at: 3 * min, op: "set", value: `4`, desc: s(""), expected: ExpectAny, version: 4, desc2: ""},
			{at: 4 * min, op: "delete"},
			{at: 5 * min, op: "set", value: `5`, expected: ExpectAny, version: 5, desc2: "", created: 5 * min},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := ConfigRecord{Owner: "alice", Key: "k"}
			for i, st := range tt.steps {
				now := t0.Add(st.at)
				if st.op == "delete" {
					cur = ConfigRecord{Owner: cur.Owner, Key: cur.Key, Version: cur.Version, Deleted: true}
					continue
				}
				op := ConfigWrite{Value: []byte(st.value), Expected: st.expected}
				if st.desc != nil {
					op.Description, op.SetDescription = *st.desc, true
				}
				next, err := NextConfig(cur, op, now)
				if st.conflict {
					var c *VersionConflictError
					if !errors.As(err, &c) || c.Current != st.version || c.Key != "k" {
						t.Fatalf("step %d: err %v, want conflict at current version %d", i, err, st.version)
					}
					if next.Version != cur.Version || string(next.Value) != string(cur.Value) {
						t.Fatalf("step %d: a conflict changed the record", i)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if next.Version != st.version || string(next.Value) != st.value || !next.Live() ||
					!next.UpdatedAt.Equal(now) || !next.CreatedAt.Equal(t0.Add(st.created)) || next.Description != st.desc2 {
					t.Fatalf("step %d: %+v", i, next)
				}
				cur = next
			}
		})
	}
}

func TestResourceQuota(t *testing.T) {
	q := newQuota(2, "things")
	if !q.reserve("a") || !q.reserve("a") || q.reserve("a") {
		t.Fatal("cap of 2 not enforced")
	}
	if !q.reserve("b") {
		t.Fatal("owners share a cap")
	}
	q.release("a")
	if !q.reserve("a") {
		t.Fatal("release did not free a slot")
	}
	// commit callbacks: a failed create gives its slot back, a failed
	// delete takes it again; successes change nothing
	n := q.n["a"]
	q.created("a", nil)
	q.deleted("a", nil)
	if q.n["a"] != n {
		t.Fatal("successful writes changed the count")
	}
	q.created("a", ErrUnavailable)
	if q.n["a"] != n-1 {
		t.Fatalf("failed create not released: %d", q.n["a"])
	}
	q.deleted("a", ErrUnavailable)
	if q.n["a"] != n {
		t.Fatalf("failed delete not re-counted: %d", q.n["a"])
	}
	unlimited := newQuota(0, "things")
	for i := 0; i < 5000; i++ {
		if !unlimited.reserve("a") {
			t.Fatal("no cap refused")
		}
	}
	if !errors.Is(q.err, ErrQuota) || q.err.Error() != "quota exceeded: at most 2 things per user" {
		t.Fatalf("quota error %q", q.err)
	}
}
