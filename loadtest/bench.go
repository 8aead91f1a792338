package loadtest

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Goal is one of the goals octostore steers by. A throughput goal:
// octostore's ops/s in Scenario divided by the Baseline's (a report label)
// must reach Min. A latency goal (MaxP99 > 0): the p99 of the run labelled
// Label in Scenario must be at most MaxP99 milliseconds.
type Goal struct {
	Scenario string
	Baseline string
	Min      float64
	What     string
	Label    string  // latency goals: the run judged (bench-compare: octostore-c32)
	MaxP99   float64 // latency goals: milliseconds
}

// Goals as stated in issue 18 (performance).
var Goals = []Goal{
	{Scenario: "lock-cycle", Baseline: "redis-always", Min: 1.0, What: "durable lock-cycle vs Redis appendfsync always"},
	{Scenario: "ratelimit-check", Baseline: "noop", Min: 0.8, What: "ratelimit-check vs no-op fasthttp"},
	{Scenario: "flag-eval", Baseline: "noop", Min: 0.9, What: "flag-eval vs no-op fasthttp"},
	{Scenario: "lock-cycle", Label: "octostore-c32", MaxP99: 5, What: "lock-cycle p99 at 32 workers (ms)"},
}

// BenchTable writes markdown tables for reports labelled by target (the
// bench-compare script labels them octostore, redis-always, redis-none and
// noop): the goals, then every run with octostore's throughput relative to it.
// Of several reports with the same scenario and label (rounds), the one with
// the highest throughput counts.
func BenchTable(w io.Writer, reports []*Report) {
	by := map[string]map[string]*Report{}     // scenario -> label -> report
	lowP99 := map[string]map[string]*Report{} // scenario -> label -> the round with the lowest p99
	var scenarios []string
	for _, r := range reports {
		if by[r.Scenario] == nil {
			by[r.Scenario] = map[string]*Report{}
			lowP99[r.Scenario] = map[string]*Report{}
			scenarios = append(scenarios, r.Scenario)
		}
		// several rounds of one run: keep the best (noise on a shared machine only ever slows a run down).
		if old := by[r.Scenario][labelOf(r)]; old == nil || r.OpsPerSec > old.OpsPerSec {
			by[r.Scenario][labelOf(r)] = r
		}
		if old := lowP99[r.Scenario][labelOf(r)]; r.Errors == 0 && (old == nil || r.Latency.P99 < old.Latency.P99) {
			lowP99[r.Scenario][labelOf(r)] = r
		}
	}
	order := map[string]int{}
	for i, s := range append(append([]string{}, Scenarios...), "mixed") {
		order[s] = i
	}
	sort.SliceStable(scenarios, func(i, j int) bool { return order[scenarios[i]] < order[scenarios[j]] })

	fmt.Fprintln(w, "| goal | octostore ops/s | baseline ops/s | ratio | needed | met |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---|")
	for _, g := range Goals {
		if g.MaxP99 > 0 {
			r := lowP99[g.Scenario][g.Label]
			if r == nil {
				fmt.Fprintf(w, "| %s | - | - | - | ≤ %.1f | not measured |\n", g.What, g.MaxP99)
				continue
			}
			met := "yes"
			if r.Latency.P99 > g.MaxP99 {
				met = "**no**"
			}
			fmt.Fprintf(w, "| %s | p99 %.3f | - | - | ≤ %.1f | %s |\n", g.What, r.Latency.P99, g.MaxP99, met)
			continue
		}
		o, b := by[g.Scenario]["octostore"], by[g.Scenario][g.Baseline]
		if o == nil || b == nil {
			fmt.Fprintf(w, "| %s | - | - | - | %.1fx | not measured |\n", g.What, g.Min)
			continue
		}
		ratio := Ratio(b.OpsPerSec, o.OpsPerSec)
		met := "yes"
		switch {
		case o.Errors > 0:
			met = fmt.Sprintf("**no**: octostore answered %d requests with errors", o.Errors)
		case o.Safety != nil && o.Safety.Violations > 0:
			met = fmt.Sprintf("**no**: %d safety violations", o.Safety.Violations)
		case b.Errors > 0:
			met = fmt.Sprintf("unknown: the baseline had %d errors", b.Errors)
		case !(ratio >= g.Min):
			met = "**no**"
		}
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %s | %.1fx | %s |\n", g.What, o.OpsPerSec, b.OpsPerSec, fmtRatio(ratio), g.Min, met)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| scenario | target | ops/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | safety (checked / violations) | server cpu µs/op | tool cpu µs/op | octostore ÷ this |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
	for _, sc := range scenarios {
		labels := make([]string, 0, len(by[sc]))
		for l := range by[sc] {
			labels = append(labels, l)
		}
		sort.Slice(labels, func(i, j int) bool {
			return labelRank(labels[i]) < labelRank(labels[j]) || labelRank(labels[i]) == labelRank(labels[j]) && labels[i] < labels[j]
		})
		o := by[sc]["octostore"]
		for _, l := range labels {
			r := by[sc][l]
			safety := "-"
			if r.Safety != nil && r.Safety.Checked > 0 {
				safety = fmt.Sprintf("%d / %d", r.Safety.Checked, r.Safety.Violations)
			}
			ratio := "-"
			if o != nil && l != "octostore" {
				ratio = fmtRatio(Ratio(r.OpsPerSec, o.OpsPerSec))
			}
			srv := "-"
			if r.ServerCPU != nil {
				srv = fmt.Sprintf("%.1f", r.ServerCPU.MicrosPerOp)
			}
			fmt.Fprintf(w, "| %s | %s | %.0f | %.3f | %.3f | %.3f | %.3f | %d | %s | %s | %.1f | %s |\n",
				sc, l, r.OpsPerSec, r.Latency.P50, r.Latency.P99, r.Latency.P999, r.Latency.Max, r.Errors, safety, srv, r.ToolCPU.MicrosPerOp, ratio)
		}
	}
}

func labelOf(r *Report) string {
	if r.Label != "" {
		return r.Label
	}
	return r.TargetKind
}

func labelRank(l string) int {
	switch {
	case l == "octostore":
		return 0
	case strings.HasPrefix(l, "octostore"):
		return 1
	case strings.HasPrefix(l, "redis-always"):
		return 2
	case strings.HasPrefix(l, "redis"):
		return 3
	case l == "noop":
		return 4
	}
	return 5
}
