package client

import (
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"
)

func TestHotBodies(t *testing.T) {
	tests := []struct {
		got  []byte
		want any
	}{
		{appendAcquireBody(nil, 30*time.Second, AcquireOptions{}), map[string]any{"ttl_seconds": 30.0}},
		{appendAcquireBody(nil, 1500*time.Millisecond, AcquireOptions{}), map[string]any{"ttl_seconds": 2.0}},
		{appendAcquireBody(nil, time.Second, AcquireOptions{HolderID: "host-1:42"}), map[string]any{"ttl_seconds": 1.0, "holder_id": "host-1:42"}},
		{appendAcquireBody(nil, time.Second, AcquireOptions{Wait: 1500 * time.Millisecond}), map[string]any{"ttl_seconds": 1.0, "wait_seconds": 2.0}},
		{appendAcquireBody(nil, time.Second, AcquireOptions{Wait: time.Hour}), map[string]any{"ttl_seconds": 1.0, "wait_seconds": 300.0}},
		{appendRenewBody(nil, "550e8400-e29b-41d4-a716-446655440000", time.Minute), map[string]any{"lease_id": "550e8400-e29b-41d4-a716-446655440000", "ttl_seconds": 60.0}},
		{appendReleaseBody(nil, "a\"b\\c\n\x01é"), map[string]any{"lease_id": "a\"b\\c\n\x01é"}},
		{appendCheckBody(nil, 100, time.Hour), map[string]any{"max_requests": 100.0, "window_seconds": 3600.0}},
	}
	for _, tt := range tests {
		var got any
		if err := json.Unmarshal(tt.got, &got); err != nil {
			t.Fatalf("%s: %v", tt.got, err)
		}
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(tt.want)
		if string(gb) != string(wb) {
			t.Errorf("body %s, want %s", gb, wb)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote\"", "back\\slash", "\x00\x1f", "é✓", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q -> %s: %v", s, b, err)
		}
		if utf8.ValidString(s) && got != s {
			t.Fatalf("%q -> %s -> %q", s, b, got)
		}
	})
}

func BenchmarkAppendRenewBody(b *testing.B) {
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendRenewBody(buf[:0], "550e8400-e29b-41d4-a716-446655440000", 30*time.Second)
	}
}
