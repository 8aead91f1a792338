package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// Report is the result of one run; its JSON form is what --out writes (and
// --json prints) and --compare reads.
type Report struct {
	Scenario    string               `json:"scenario"`
	RunID       string               `json:"run_id,omitempty"` // names: Prefix(RunID) + …
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
	Safety      *SafetyReport        `json:"safety"`              // nil: no lock scenario ran
	Queue       *QueueReport         `json:"queue,omitempty"`     // lock-queue: hand-off latency and fairness
	Semaphore   *SemaphoreReport     `json:"semaphore,omitempty"` // semaphore: the semaphore checker's verdict
	ToolCPU     CPU                  `json:"tool_cpu"`
	ServerCPU   *CPU                 `json:"server_cpu,omitempty"` // with --server-pid
	Interrupted bool                 `json:"interrupted,omitempty"`
	Cleanup     *CleanupReport       `json:"cleanup,omitempty"`
	// Failures are the reasons the run failed (see Judge); empty: it passed.
	Failures []string  `json:"failures,omitempty"`
	Started  time.Time `json:"started_at"`
	Host     Host      `json:"host"`
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
	Checked    int `json:"checked"`
	Leases     int `json:"leases"`
	Violations int `json:"violations"`
	// NotChecked says why the check proved nothing (no lease was granted):
	// such a run fails, it did not pass.
	NotChecked string   `json:"not_checked,omitempty"`
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

// EncodeJSON writes the report, indented, to w.
func (r *Report) EncodeJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
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

// DefaultMaxErrorRate is the share of measured requests that may fail
// (errors, not expected refusals) before Judge fails a run: 1%.
const DefaultMaxErrorRate = 0.01

// ParseErrorRate parses a --max-error-rate: a percentage ("1%", "0.5%") or
// a fraction ("0.01"), between 0 and 100%.
func ParseErrorRate(s string) (float64, error) {
	t := strings.TrimSpace(s)
	scale := 1.0
	if p, ok := strings.CutSuffix(t, "%"); ok {
		t, scale = strings.TrimSpace(p), 100
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) || v < 0 || v/scale > 1 {
		return 0, fmt.Errorf("error rate %q: want a percentage such as 1%% or 0.5%%, or a fraction 0..1", s)
	}
	return v / scale, nil
}

// Judge decides whether the run passed, records the reasons it did not in
// r.Failures and returns them: it was interrupted; no request was measured;
// more than maxErrorRate of the measured requests were errors (expected
// refusals such as a lock held by another do not count); the safety checker
// found violations, or checked nothing because no lease was granted; the
// cleanup left something behind.
func (r *Report) Judge(maxErrorRate float64) []string {
	var f []string
	if r.Interrupted {
		f = append(f, "interrupted")
	}
	switch {
	case r.Ops == 0:
		f = append(f, "no request was answered in the measured time")
	case float64(r.Errors) > maxErrorRate*float64(r.Ops):
		why := fmt.Sprintf("error rate %s (%d of %d requests) is above the allowed %s; errors by status: %s",
			pct(float64(r.Errors)/float64(r.Ops)), r.Errors, r.Ops, pct(maxErrorRate), fmtCounts(r.ErrorsBy))
		if r.ErrorsBy["401"]+r.ErrorsBy["403"] > r.Errors/2 {
			why += " (refused: a user's token is needed; the admin key owns no locks, limits, flags or config)"
		}
		f = append(f, why)
	}
	if s := r.Safety; s != nil {
		if s.Violations > 0 {
			f = append(f, fmt.Sprintf("%d lock safety violations", s.Violations))
		} else if s.NotChecked != "" {
			f = append(f, "lock safety not checked: "+s.NotChecked)
		}
	}
	if s := r.Semaphore; s != nil {
		switch {
		case s.Violations > 0:
			f = append(f, fmt.Sprintf("%d semaphore safety violations", s.Violations))
		case s.Slots == 0:
			f = append(f, "semaphore safety not checked: no slot was granted")
		}
	}
	if c := r.Cleanup; c != nil && !c.Complete() {
		f = append(f, c.String())
	}
	r.Failures = f
	return f
}

func pct(x float64) string {
	s := strconv.FormatFloat(100*x, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s + "%"
}

// width is the terminal width (columns) the human output is laid out for.
const width = 80

// fit cuts s to at most n columns (runes), ending it with "…" when cut.
func fit(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// wrapList lays items out after head, separated by sep, on lines of at most
// width columns; continuation lines are indented like the first item.
func wrapList(head string, items []string, sep string) []string {
	indent := strings.Repeat(" ", utf8.RuneCountInString(head))
	var lines []string
	line := head
	for i, it := range items {
		if i < len(items)-1 {
			it += sep
		}
		if line != head && line != indent && utf8.RuneCountInString(line+strings.TrimRight(it, " ")) > width {
			lines = append(lines, strings.TrimRight(line, " "))
			line = indent
		}
		line += it
	}
	lines = append(lines, strings.TrimRight(line, " "))
	for i := range lines {
		lines[i] = fit(lines[i], width)
	}
	return lines
}

// layout aligns a table: the first column to the left, the others to the
// right, two spaces apart.
func layout(rows [][]string) []string {
	var ws []int
	for _, r := range rows {
		for i, c := range r {
			if i >= len(ws) {
				ws = append(ws, 0)
			}
			ws[i] = max(ws[i], utf8.RuneCountInString(c))
		}
	}
	out := make([]string, len(rows))
	for j, r := range rows {
		var b strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", ws[i]-utf8.RuneCountInString(c))
			if i == 0 {
				b.WriteString(c + pad)
			} else {
				b.WriteString("  " + pad + c)
			}
		}
		out[j] = b.String()
	}
	return out
}

func (r *Report) title() string {
	t := fmt.Sprintf("%s against %s %s", r.Scenario, r.TargetKind, r.Target)
	if r.Driver != "" {
		t += " [" + r.Driver + "]"
	}
	if r.Label != "" {
		t = r.Label + ": " + t
	}
	return t
}

// WriteTable prints the human summary, every line within width columns
// (cut with "…"; the JSON report has everything) except the evidence of a
// safety violation, which is printed whole.
func (r *Report) WriteTable(w io.Writer) {
	line := func(s string) { fmt.Fprintln(w, fit(s, width)) }
	line(r.title())
	if r.Mix != "" {
		for _, l := range wrapList("mix: ", strings.Split(r.Mix, ","), ",") {
			fmt.Fprintln(w, l)
		}
	}
	mode := fmt.Sprintf("closed loop, %d workers", r.Concurrency)
	if r.Mode == "open" {
		mode = fmt.Sprintf("open loop at %.0f/s, %d workers", r.Rate, r.Concurrency)
	}
	line(fmt.Sprintf("%s, %d user(s), %d keys", mode, r.Users, r.Keys))
	line(fmt.Sprintf("%.1fs measured after %.1fs warmup%s", r.DurationS, r.WarmupS, map[bool]string{true: " (INTERRUPTED)"}[r.Interrupted]))
	fmt.Fprintln(w)

	// Two tables, so that each fits width whatever the figures: counts
	// (op names are at most 15 columns, counts rarely above 12) and
	// latencies (at most 10 columns each: 600000.000 ms is the histogram's top).
	names := sortedOps(r.PerOp)
	rows := make([]*OpReport, 0, len(names)+1)
	for _, n := range names {
		rows = append(rows, r.PerOp[n])
	}
	if len(r.PerOp) != 1 {
		names = append(names, "all")
		rows = append(rows, &OpReport{Ops: r.Ops, OpsPerSec: r.OpsPerSec, Rejected: r.Rejected, Errors: r.Errors, Latency: r.Latency})
	}
	counts := [][]string{{"op", "ops", "ops/s", "rejected", "errors"}}
	lat := [][]string{{"latency ms", "p50", "p90", "p99", "p99.9", "max"}}
	ms := func(x float64) string { return strconv.FormatFloat(x, 'f', 3, 64) }
	for i, o := range rows {
		counts = append(counts, []string{names[i], strconv.FormatInt(o.Ops, 10), strconv.FormatFloat(o.OpsPerSec, 'f', 1, 64),
			strconv.FormatInt(o.Rejected, 10), strconv.FormatInt(o.Errors, 10)})
		l := o.Latency
		lat = append(lat, []string{names[i], ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max)})
	}
	for _, l := range layout(counts) {
		line(l)
	}
	fmt.Fprintln(w)
	for _, l := range layout(lat) {
		line(l)
	}
	fmt.Fprintln(w)
	if len(r.ErrorsBy) > 0 {
		for _, l := range wrapList("errors by status: ", strings.Split(fmtCounts(r.ErrorsBy), " "), " ") {
			fmt.Fprintln(w, l)
		}
	}
	if s := r.Safety; s != nil {
		switch {
		case s.NotChecked != "":
			line("safety: not checked: " + s.NotChecked)
		default:
			line(fmt.Sprintf("safety: %d lock operations on %d leases checked (slack %.0fms), %d violations",
				s.Checked, s.Leases, s.SlackMS, s.Violations))
		}
		if s.CutoffS > 0 {
			line(fmt.Sprintf("  (history kept up to +%.1fs to bound memory)", s.CutoffS))
		}
		for _, e := range s.Evidence {
			fmt.Fprintln(w, e)
		}
	}
	if s := r.Semaphore; s != nil {
		line(fmt.Sprintf("semaphores: %d operations on %d slots checked (slack %.0fms), at most %d of %d held at once, %d violations",
			s.Checked, s.Slots, s.SlackMS, s.MaxHeld, s.Limit, s.Violations))
		for _, e := range s.Evidence {
			fmt.Fprintln(w, e)
		}
	}
	if q := r.Queue; q != nil {
		l := q.HandOff
		line(fmt.Sprintf("queue: %d grants, %d hand-offs: release → next waiter's 200 p50 %s p99 %s max %s ms",
			q.Grants, q.HandOffs, ms(l.P50), ms(l.P99), ms(l.Max)))
		line(fmt.Sprintf("  fairness: %d grants overtaken by a request sent over %.0fms later", q.Overtaken, q.FIFOSlackMS))
	}
	c := r.ToolCPU
	line(fmt.Sprintf("tool cpu: %.2fs user + %.2fs sys = %.2f cores, %.1f µs per request",
		c.UserS, c.SysS, c.Cores, c.MicrosPerOp))
	if c := r.ServerCPU; c != nil {
		line(fmt.Sprintf("server cpu: %.2fs user + %.2fs sys = %.2f cores, %.1f µs per request",
			c.UserS, c.SysS, c.Cores, c.MicrosPerOp))
	}
	if r.Cleanup != nil {
		head, rest, _ := strings.Cut(r.Cleanup.String(), ": ")
		for _, l := range wrapList(head+": ", strings.Fields(rest), " ") {
			fmt.Fprintln(w, l)
		}
	}
	for _, f := range r.Failures {
		for _, l := range wrapList("FAILED: ", strings.Fields(f), " ") {
			fmt.Fprintln(w, l)
		}
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
	fmt.Fprintf(w, "A: %s\nB: %s\n\n", fit(a.title(), width-3), fit(b.title(), width-3))
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
