package loadtest

import (
	"bytes"
	"strings"
	"testing"
)

func TestBenchTable(t *testing.T) {
	rep := func(sc, label string, ops float64) *Report {
		return &Report{Scenario: sc, Label: label, TargetKind: "octostore", OpsPerSec: ops,
			Latency: Latency{P50: 0.5, P99: 2}, Safety: &SafetyReport{}}
	}
	reps := []*Report{
		rep("flag-eval", "noop", 100000), rep("flag-eval", "octostore", 80000),
		rep("lock-cycle", "redis-always", 60000), rep("lock-cycle", "octostore", 30000),
		rep("lock-cycle", "redis-none", 120000),
		rep("lock-cycle", "octostore-c32", 20000), rep("lock-cycle", "octostore-c32", 25000),
	}
	reps[5].Latency.P99, reps[6].Latency.P99 = 4.5, 6 // the lower p99 counts, not the faster round's
	reps[3].Safety = &SafetyReport{Checked: 10, Violations: 0}
	var b bytes.Buffer
	BenchTable(&b, reps)
	out := b.String()
	for _, want := range []string{
		"| durable lock-cycle vs Redis appendfsync always | 30000 | 60000 | 0.50x | 1.0x | **no** |",
		"| flag-eval vs no-op fasthttp | 80000 | 100000 | 0.80x | 0.9x | **no** |",
		"| ratelimit-check vs no-op fasthttp | - | - | - | 0.8x | not measured |",
		"| lock-cycle p99 at 32 workers (ms) | p99 4.500 | - | - | ≤ 5.0 | yes |",
		"| lock-cycle | octostore-c32 | 25000 |",
		"| lock-cycle | octostore | 30000 | 0.500 | 2.000 |",
		"| 10 / 0 |",
		"| lock-cycle | redis-none | 120000 |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// lock-cycle rows come before flag-eval rows, octostore first within a scenario.
	if strings.Index(out, "| lock-cycle | octostore") > strings.Index(out, "| lock-cycle | redis-always") ||
		strings.Index(out, "| lock-cycle | redis-none") > strings.Index(out, "| flag-eval | octostore") {
		t.Errorf("row order:\n%s", out)
	}
}

func TestBenchTableKeepsBestRound(t *testing.T) {
	var b bytes.Buffer
	BenchTable(&b, []*Report{
		{Scenario: "flag-eval", Label: "octostore", OpsPerSec: 500},
		{Scenario: "flag-eval", Label: "octostore", OpsPerSec: 900},
		{Scenario: "flag-eval", Label: "octostore", OpsPerSec: 700},
		{Scenario: "flag-eval", Label: "noop", OpsPerSec: 1000},
	})
	if !strings.Contains(b.String(), "| flag-eval vs no-op fasthttp | 900 | 1000 | 0.90x | 0.9x | yes |") {
		t.Fatalf("best round not kept:\n%s", b.String())
	}
	// Fast errors meet no goal.
	b.Reset()
	BenchTable(&b, []*Report{
		{Scenario: "flag-eval", Label: "octostore", OpsPerSec: 5000, Errors: 20000},
		{Scenario: "flag-eval", Label: "noop", OpsPerSec: 1000},
	})
	if !strings.Contains(b.String(), "| 5.00x | 0.9x | **no**: octostore answered 20000 requests with errors |") {
		t.Fatalf("errors counted as success:\n%s", b.String())
	}
}
