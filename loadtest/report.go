package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the result of one run; its JSON form is what --json writes and
// --compare reads.
type Report struct {
	Scenario    string               `json:"scenario"`
	Mix         string               `json:"mix,omitempty"`
	Label       string               `json:"label,omitempty"`
	Target      string               `json:"target"`
	TargetKind  string               `json:"target_kind"`
	Driver      string               `json:"driver,omitempty"`
	Mode        string               `json:"mode"` // "closed" or "open"
	Rate        float64              `json:"rate,omitempty"`
	Concurrency int                  `json:"concurrency"`
	Users       int                  `json:"users"`
	Keys        int                  `json:"keys"`
	DurationS   float64              `json:"duration_s"`
	WarmupS     float64              `json:"warmup_s"`
	Ops         int64                `json:"ops"`
	OpsPerSec   float64              `json:"ops_per_sec"`
	Errors      int64                `json:"errors"`
	Rejected    int64                `json:"rejected"`
	ErrorsBy    map[string]int64     `json:"errors_by_status"`
	Latency     Latency              `json:"latency_ms"`
	PerOp       map[string]*OpReport `json:"per_op"`
	Safety      *SafetyReport        `json:"safety"`
	ToolCPU     CPU                  `json:"tool_cpu"`
	ServerCPU   *CPU                 `json:"server_cpu,omitempty"` // with --server-pid
	Interrupted bool                 `json:"interrupted,omitempty"`
	Started     time.Time            `json:"started_at"`
	Host        Host                 `json:"host"`
}

// Latency percentiles in milliseconds (successes and expected refusals).
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// OpReport is one operation's figures. Rejected counts expected refusals
// (lock held by another, rate limit denied, lease gone under contention).
type OpReport struct {
	Ops       int64            `json:"ops"`
	OpsPerSec float64          `json:"ops_per_sec"`
	OK        int64            `json:"ok"`
	Rejected  int64            `json:"rejected"`
	Errors    int64            `json:"errors"`
	ErrorsBy  map[string]int64 `json:"errors_by_status"`
	Latency   Latency          `json:"latency_ms"`
}

// SafetyReport is the safety checker's verdict.
type SafetyReport struct {
	Checked    int      `json:"checked"`
	Leases     int      `json:"leases"`
	Violations int      `json:"violations"`
	SlackMS    float64  `json:"slack_ms,omitempty"`
	CutoffS    float64  `json:"cutoff_s,omitempty"` // history kept only up to here (memory bound)
	Evidence   []string `json:"evidence,omitempty"`
}

// CPU is the load generator's own CPU use over the run.
type CPU struct {
	UserS       float64 `json:"user_s"`
	SysS        float64 `json:"sys_s"`
	Cores       float64 `json:"cores"`
	MicrosPerOp float64 `json:"us_per_op"`
}

// Host describes the machine the load generator ran on.
type Host struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model,omitempty"`
	Go       string `json:"go"`
	OS       string `json:"os"`
}

// WriteJSON writes the report, indented, to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadReport reads a report written by WriteJSON.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Scenario == "" {
		return nil, fmt.Errorf("%s: not a loadtest report (no scenario)", path)
	}
	return &r, nil
}

func (r *Report) title() string {
	s := r.Scenario
	if r.Mix != "" {
		s += " (" + r.Mix + ")"
	}
	t := fmt.Sprintf("%s against %s %s", s, r.TargetKind, r.Target)
	if r.Driver != "" {
		t += " [" + r.Driver + "]"
	}
	if r.Label != "" {
		t = r.Label + ": " + t
	}
	return t
}

// WriteTable prints the human summary.
func (r *Report) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "%s\n", r.title())
	mode := fmt.Sprintf("closed loop, %d workers", r.Concurrency)
	if r.Mode == "open" {
		mode = fmt.Sprintf("open loop at %.0f/s, %d workers", r.Rate, r.Concurrency)
	}
	fmt.Fprintf(w, "%s, %d user(s), %d keys; %.1fs measured after %.1fs warmup%s\n\n",
		mode, r.Users, r.Keys, r.DurationS, r.WarmupS, map[bool]string{true: " (INTERRUPTED)"}[r.Interrupted])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\tops\tops/s\trejected\terrors\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\t")
	row := func(name string, o *OpReport) {
		l := o.Latency
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%d\t%d\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t\n",
			name, o.Ops, o.OpsPerSec, o.Rejected, o.Errors, l.P50, l.P90, l.P99, l.P999, l.Max)
	}
	for _, name := range sortedOps(r.PerOp) {
		row(name, r.PerOp[name])
	}
	if len(r.PerOp) != 1 {
		row("all", &OpReport{Ops: r.Ops, OpsPerSec: r.OpsPerSec, Rejected: r.Rejected, Errors: r.Errors, Latency: r.Latency})
	}
	tw.Flush()
	fmt.Fprintln(w)
	if len(r.ErrorsBy) > 0 {
		fmt.Fprintf(w, "errors by status: %s\n", fmtCounts(r.ErrorsBy))
	}
	if s := r.Safety; s != nil && s.Checked > 0 {
		fmt.Fprintf(w, "safety: %d lock operations on %d leases checked (slack %.0fms), %d violations\n",
			s.Checked, s.Leases, s.SlackMS, s.Violations)
		if s.CutoffS > 0 {
			fmt.Fprintf(w, "  (history kept up to +%.1fs to bound memory)\n", s.CutoffS)
		}
		for _, e := range s.Evidence {
			fmt.Fprintln(w, e)
		}
	}
	c := r.ToolCPU
	fmt.Fprintf(w, "tool cpu: %.2fs user + %.2fs sys = %.2f cores, %.1f µs per request\n",
		c.UserS, c.SysS, c.Cores, c.MicrosPerOp)
	if c := r.ServerCPU; c != nil {
		fmt.Fprintf(w, "server cpu: %.2fs user + %.2fs sys = %.2f cores, %.1f µs per request\n",
			c.UserS, c.SysS, c.Cores, c.MicrosPerOp)
	}
}

// opOrder is the order of operations in tables.
var opOrder = func() map[string]int {
	m := map[string]int{}
	for i, n := range opNames {
		m[n] = i
	}
	return m
}()

func sortedOps(m map[string]*OpReport) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		oi, iok := opOrder[names[i]]
		oj, jok := opOrder[names[j]]
		if iok && jok {
			return oi < oj
		}
		if iok != jok {
			return iok
		}
		return names[i] < names[j]
	})
	return names
}

func fmtCounts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// Ratio is b/a, or NaN when a is zero.
func Ratio(a, b float64) float64 {
	if a == 0 {
		return math.NaN()
	}
	return b / a
}

func fmtRatio(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "-"
	}
	return fmt.Sprintf("%.2fx", x)
}

// Compare prints B relative to A: throughput and latency ratios (B/A), per
// operation too. For throughput above 1 means B is faster; for latency above
// 1 means B is slower.
func Compare(w io.Writer, a, b *Report) {
	fmt.Fprintf(w, "A: %s\nB: %s\n\n", a.title(), b.title())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "metric\tA\tB\tB/A\t")
	line := func(name string, x, y float64, format string) {
		fmt.Fprintf(tw, "%s\t"+format+"\t"+format+"\t%s\t\n", name, x, y, fmtRatio(Ratio(x, y)))
	}
	lat := func(prefix string, x, y Latency) {
		line(prefix+"p50 ms", x.P50, y.P50, "%.3f")
		line(prefix+"p90 ms", x.P90, y.P90, "%.3f")
		line(prefix+"p99 ms", x.P99, y.P99, "%.3f")
		line(prefix+"p99.9 ms", x.P999, y.P999, "%.3f")
		line(prefix+"max ms", x.Max, y.Max, "%.3f")
	}
	line("ops/s", a.OpsPerSec, b.OpsPerSec, "%.1f")
	lat("", a.Latency, b.Latency)
	line("errors", float64(a.Errors), float64(b.Errors), "%.0f")
	line("tool µs/op", a.ToolCPU.MicrosPerOp, b.ToolCPU.MicrosPerOp, "%.1f")
	if a.ServerCPU != nil && b.ServerCPU != nil {
		line("server µs/op", a.ServerCPU.MicrosPerOp, b.ServerCPU.MicrosPerOp, "%.1f")
	}
	var sa, sb float64
	if a.Safety != nil {
		sa = float64(a.Safety.Violations)
	}
	if b.Safety != nil {
		sb = float64(b.Safety.Violations)
	}
	line("safety violations", sa, sb, "%.0f")
	for _, name := range sortedOps(a.PerOp) {
		x, y := a.PerOp[name], b.PerOp[name]
		if y == nil {
			continue
		}
		line(name+" ops/s", x.OpsPerSec, y.OpsPerSec, "%.1f")
		line(name+" p50 ms", x.Latency.P50, y.Latency.P50, "%.3f")
		line(name+" p99 ms", x.Latency.P99, y.Latency.P99, "%.3f")
	}
	tw.Flush()
}
