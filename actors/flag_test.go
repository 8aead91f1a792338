package actors

import (
	"fmt"
	"testing"
	"time"
)

// The test vectors of docs/api.md: bucket = big-endian uint32 of the first
// four bytes of SHA-256(name + ":" + subject), mod 100. Computed
// independently (Python hashlib).
func TestFlagBucketVectors(t *testing.T) {
	for _, v := range []struct {
		name, subject string
		bucket        int
	}{
		{"beta", "alice", 54},           // sha256 c68ba71e…
		{"beta", "bob", 21},             // 443da8e5…
		{"new-checkout", "user-42", 0},  // 50a89a30…
		{"new-checkout", "user-43", 47}, // bc812f3f…
		{"dark_mode", "", 21},           // b695b56d…
		{"dark_mode", "ümlaut", 64},     // dd09264c… (UTF-8 bytes)
		{"x", "12345", 55},              // e659b073…
	} {
		if got := FlagBucket(v.name, []byte(v.subject)); got != v.bucket {
			t.Errorf("FlagBucket(%q, %q) = %d, want %d", v.name, v.subject, got, v.bucket)
		}
	}
	long := make([]byte, 1000) // longer than the stack buffer
	for i := range long {
		long[i] = 'a' + byte(i%26)
	}
	if a, b := FlagBucket("f", long), FlagBucket("f", long); a != b || a < 0 || a > 99 {
		t.Fatalf("long subject: %d %d", a, b)
	}
}

// 10,000 subjects at 30% give 30% ± 2%, for several flags.
func TestFlagDistribution(t *testing.T) {
	for _, name := range []string{"beta", "new-checkout", "x"} {
		f := FlagRecord{Name: name, Enabled: true, Percentage: 30}
		on := 0
		for i := 0; i < 10000; i++ {
			if r := EvaluateFlag(&f, true, FlagContext{Subject: []byte(fmt.Sprintf("user-%d", i))}); r.Enabled {
				on++
				if r.Reason != ReasonSplit {
					t.Fatalf("reason %s", r.Reason)
				}
			}
		}
		if on < 2800 || on > 3200 {
			t.Errorf("flag %s: %d of 10000 subjects at 30%%", name, on)
		}
	}
}

// Raising the percentage only ever adds subjects; the same subject always
// gets the same answer.
func TestFlagRolloutMonotonic(t *testing.T) {
	for i := 0; i < 2000; i++ {
		subject := []byte(fmt.Sprintf("subject-%d", i))
		was := false
		for p := 0; p <= 100; p++ {
			f := FlagRecord{Name: "rollout", Enabled: true, Percentage: p}
			on := EvaluateFlag(&f, true, FlagContext{Subject: subject}).Enabled
			if was && !on {
				t.Fatalf("subject %s: on at %d%%, off at %d%%", subject, p-1, p)
			}
			if again := EvaluateFlag(&f, true, FlagContext{Subject: subject}).Enabled; again != on {
				t.Fatalf("subject %s: unstable at %d%%", subject, p)
			}
			was = on
		}
		if !was {
			t.Fatalf("subject %s off at 100%%", subject)
		}
	}
}

func TestEvaluateFlag(t *testing.T) {
	alice := []byte("alice") // bucket 54 for "beta"
	tests := []struct {
		name   string
		f      FlagRecord
		found  bool
		on     bool
		reason string
	}{
		{"unknown flag", FlagRecord{Name: "beta"}, false, false, ReasonFlagNotFound},
		{"disabled", FlagRecord{Name: "beta", Enabled: false, Percentage: NoPercentage}, true, false, ReasonDisabled},
		{"disabled with a percentage", FlagRecord{Name: "beta", Enabled: false, Percentage: 100}, true, false, ReasonDisabled},
		{"enabled, no percentage", FlagRecord{Name: "beta", Enabled: true, Percentage: NoPercentage}, true, true, ReasonStatic},
		{"enabled at 100", FlagRecord{Name: "beta", Enabled: true, Percentage: 100}, true, true, ReasonStatic},
		{"enabled at 0", FlagRecord{Name: "beta", Enabled: true, Percentage: 0}, true, false, ReasonSplit},
		{"bucket 54 at 54%: out", FlagRecord{Name: "beta", Enabled: true, Percentage: 54}, true, false, ReasonSplit},
		{"bucket 54 at 55%: in", FlagRecord{Name: "beta", Enabled: true, Percentage: 55}, true, true, ReasonSplit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := EvaluateFlag(&tt.f, tt.found, FlagContext{Subject: alice})
			if r.Enabled != tt.on || r.Reason != tt.reason {
				t.Fatalf("got %+v, want %v %s", r, tt.on, tt.reason)
			}
			// A flag without variants serves its implicit variants.
			wantVariant, wantValue := "", ""
			if tt.found {
				wantVariant, wantValue = VariantOff, "false"
				if tt.on {
					wantVariant, wantValue = VariantOn, "true"
				}
			}
			if r.Variant != wantVariant || string(r.Value) != wantValue {
				t.Fatalf("variant %q value %s, want %q %s", r.Variant, r.Value, wantVariant, wantValue)
			}
		})
	}
}

func TestApplyFlagWrite(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := ApplyFlagWrite(FlagRecord{Owner: "alice", Name: "beta", Percentage: NoPercentage}, false, FlagWrite{Enabled: true, Percentage: 30}, t0)
	if !f.CreatedAt.Equal(t0) || !f.UpdatedAt.Equal(t0) || !f.Enabled || f.Percentage != 30 || f.Owner != "alice" {
		t.Fatalf("create: %+v", f)
	}
	g := ApplyFlagWrite(f, true, FlagWrite{Enabled: false, Percentage: NoPercentage}, t0.Add(time.Minute))
	if !g.CreatedAt.Equal(t0) || !g.UpdatedAt.Equal(t0.Add(time.Minute)) || g.Enabled || g.Percentage != NoPercentage {
		t.Fatalf("update: %+v", g)
	}
}

func BenchmarkEvaluateFlag(b *testing.B) {
	f := FlagRecord{Name: "new-checkout", Enabled: true, Percentage: 30}
	subject := []byte("user-123456")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		EvaluateFlag(&f, true, FlagContext{Subject: subject})
	}
}
