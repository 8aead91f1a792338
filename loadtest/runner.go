package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// ErrUnsupported: the target cannot run the scenario (flags and config on Redis).
var ErrUnsupported = errors.New("unsupported scenario")

// Config describes one run.
type Config struct {
	Scenario    string   // one of Scenarios, or "mixed"
	Mix         []Weight // for "mixed"; nil: DefaultMix
	Target      Target
	Concurrency int           // workers (each with its own connection); default 64
	Rate        float64       // > 0: open loop at this many iterations per second
	Duration    time.Duration // measured part; default 10s
	Warmup      time.Duration // run before measuring; its requests are not counted
	Keys        int           // key space; 0: the scenario's default

	LockTTL     time.Duration // TTL of acquires and renews; default 10s
	Renews      int           // lock-contended: renews per hold; default 1 (-1: none)
	Abandon     float64       // lock-contended: fraction of holds left to expire
	LimitMax    int           // ratelimit-check: max_requests; default 100
	LimitWindow time.Duration // ratelimit-check: window; default 1s
	// LimitAlgorithm is ratelimit-check's algorithm: "" (the server's
	// default, sliding_window) or "token_bucket" (octostore targets only).
	LimitAlgorithm string
	FlagPercent    int           // flag-eval: rollout percentage; default 50
	QueueWait      time.Duration // lock-queue: wait_seconds of each waiting acquire; default 30s (at most the run's end)
	Hold           time.Duration // lock-queue, semaphore: how long a grant is held before its release; default 0
	SemLimit       int           // semaphore: the semaphores' limit; default 3

	MaxIterations   int64         // 0: bounded by time only
	SafetyMaxEvents int64         // lock events kept for the checker; default 4,000,000
	Slack           time.Duration // checker clock slack; default 100ms

	ServerPID int // when set, also report this local process's CPU (the server's)

	// RunID names everything the run creates: Prefix(RunID) + …; default 8
	// random hex digits.
	RunID string
	// Keep leaves what the run created instead of deleting it at the end.
	Keep bool
	// CleanupTimeout bounds the cleanup at the end of the run, which also
	// runs when ctx was cancelled (an interrupted run); default 30s.
	CleanupTimeout time.Duration
	// Abort, when it closes, cuts the cleanup short (a second Ctrl-C).
	Abort <-chan struct{}

	// Progress is a terminal on which one status line (elapsed, ops/s,
	// errors, p99) is rewritten every ProgressEvery; nil: none. Pass it only
	// a terminal (see Terminal): a pipe or file gets nothing.
	Progress      io.Writer
	ProgressEvery time.Duration // default 1s
	Seed          uint64        // worker RNG seed; 0: random
}

func (c *Config) defaults() error {
	if c.Target == nil {
		return errors.New("no target")
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 64
	}
	if c.Concurrency > 10000 {
		return errors.New("concurrency must be at most 10000")
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		return errors.New("rate must be a positive number")
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Warmup < 0 {
		return errors.New("warmup must not be negative")
	}
	if c.LockTTL <= 0 {
		c.LockTTL = 10 * time.Second
	}
	if c.Renews == 0 {
		c.Renews = 1
	} else if c.Renews < 0 {
		c.Renews = 0
	}
	if c.Abandon < 0 || c.Abandon > 1 {
		return errors.New("abandon must be between 0 and 1")
	}
	if c.LimitMax <= 0 {
		c.LimitMax = 100
	}
	if c.LimitWindow <= 0 {
		c.LimitWindow = time.Second
	}
	if c.QueueWait <= 0 {
		c.QueueWait = 30 * time.Second
	}
	if c.SemLimit <= 0 {
		c.SemLimit = 3
	}
	if c.SemLimit > 10000 {
		return errors.New("semaphore limit must be at most 10000")
	}
	if c.QueueWait > 300*time.Second {
		return errors.New("queue wait must be at most 5m (the server's wait_seconds bound)")
	}
	if c.Hold < 0 {
		return errors.New("hold must not be negative")
	}
	if c.FlagPercent <= 0 || c.FlagPercent > 100 {
		c.FlagPercent = 50
	}
	if c.SafetyMaxEvents <= 0 {
		c.SafetyMaxEvents = 4_000_000
	}
	if c.Slack <= 0 {
		c.Slack = 100 * time.Millisecond
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = time.Second
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64()
	}
	if c.RunID == "" {
		c.RunID = newRunID()
	}
	if !validRunID(c.RunID) {
		return fmt.Errorf("run id %q: want 1 to 16 letters, digits or _", c.RunID)
	}
	if c.CleanupTimeout <= 0 {
		c.CleanupTimeout = 30 * time.Second
	}
	return nil
}

// run is the state of one Run shared by its workers (read-only once they start).
type run struct {
	cfg         *Config
	ctx         context.Context // the caller's: setup stops when it ends
	prefix      string          // Prefix(cfg.RunID)
	target      Target
	scenarios   []*scenario
	pick        []int // cumulative weights, parallel to scenarios
	workers     int
	measureFrom time.Duration
	measureTo   time.Duration
	log         *eventLog // nil when no lock scenario runs
	queue       bool      // lock-queue runs: workers record grants and releases
	sem         bool      // the semaphore scenario runs: workers record its events
	semMax      int64     // semaphore events each worker keeps (memory bound)
	perConn     bool      // each connection is its own lock holder (Redis)
	stopped     atomic.Bool
}

// worker owns everything it touches while the run goes.
type worker struct {
	id     int
	user   int
	holder int32 // Owner in lock events
	conn   Conn
	rng    *rand.Rand
	clk    Clock
	run    *run
	stats  *workerStats
	events []LockEvent
	queue  []queueRec // lock-queue's grants and releases
	sems   []SemEvent // the semaphore scenario's operations
	seq    int64
	cycle  int
}

func (w *worker) now() time.Duration { return w.clk.Now() }

// book records one answered request that was due (or started) at start.
func (w *worker) book(o op, start, end time.Duration, st Status, cl class) {
	w.stats.record(o, start, end, st, cl, start >= w.run.measureFrom && start < w.run.measureTo)
}

// lockEvent records a lock operation for the safety checker. lease is the
// lease operated on (renew, release); for an acquire it comes from rep.
func (w *worker) lockEvent(kind OpKind, name string, lease LeaseID, rep LockReply, st Status, ttl, t0, t1 time.Duration) {
	w.lockEventAs(w.holder, kind, name, lease, rep, st, ttl, t0, t1)
}

// lockEventAs is lockEvent with the holder (Owner) given.
func (w *worker) lockEventAs(owner int32, kind OpKind, name string, lease LeaseID, rep LockReply, st Status, ttl, t0, t1 time.Duration) {
	if w.run.log == nil {
		return
	}
	e := LockEvent{Lock: name, Kind: kind, TTL: ttl, Invoke: t0, Ack: t1, Owner: owner, Worker: int32(w.id), Lease: lease}
	switch {
	case st == 200:
		e.Outcome = OutcomeOK
		if kind == OpAcquire {
			e.Lease, e.Held = rep.Lease, rep.Held
		}
		e.Token = rep.Token
	case st == StatusTransport || st == StatusBadReply || st >= 500:
		e.Outcome = OutcomeUnknown
	default:
		e.Outcome = OutcomeRejected
	}
	w.run.log.add(&w.events, e, t1)
}

func (w *worker) iterate(due time.Duration) {
	r := w.run
	s := r.scenarios[0]
	if len(r.scenarios) > 1 {
		x := w.rng.IntN(r.pick[len(r.pick)-1])
		for i, c := range r.pick {
			if x < c {
				s = r.scenarios[i]
				break
			}
		}
	}
	s.iterate(w, s, due)
}

// Run executes the configured load and returns its report. The report is
// returned (with partial figures) also when ctx is cancelled mid-run. At the
// end, also after a cancelled ctx or a failed setup, it deletes what the run
// created (every name starting with Prefix(cfg.RunID)) unless cfg.Keep; the
// report's Cleanup says how that went (a failed setup's error mentions a
// cleanup that did not complete).
func Run(ctx context.Context, cfg Config) (rep *Report, err error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	r := &run{cfg: &cfg, ctx: ctx, prefix: Prefix(cfg.RunID), target: cfg.Target, workers: cfg.Concurrency}
	if pc, ok := cfg.Target.(interface{ PerConnHolder() bool }); ok {
		r.perConn = pc.PerConnHolder()
	}
	mix := []Weight{{cfg.Scenario, 1}}
	if cfg.Scenario == "mixed" {
		mix = cfg.Mix
		if mix == nil {
			mix, _ = ParseMix(DefaultMix)
		}
	} else if !isScenario(cfg.Scenario) {
		return nil, fmt.Errorf("unknown scenario %q", cfg.Scenario)
	}
	if cfg.LimitAlgorithm != "" && cfg.LimitAlgorithm != "sliding_window" && cfg.LimitAlgorithm != "token_bucket" {
		return nil, fmt.Errorf("limit algorithm %q: want sliding_window or token_bucket", cfg.LimitAlgorithm)
	}
	if cfg.LimitAlgorithm == "token_bucket" && cfg.Target.Kind() == "redis" {
		return nil, fmt.Errorf("%w: the redis target's ratelimit-check is a sliding window", ErrUnsupported)
	}
	total := 0
	for _, m := range mix {
		if !cfg.Target.Supports(m.Scenario) {
			return nil, fmt.Errorf("%w: target %s cannot run scenario %s", ErrUnsupported, cfg.Target.Kind(), m.Scenario)
		}
		s, err := newScenario(m.Scenario, &cfg)
		if err != nil {
			return nil, err
		}
		if s.lock && r.log == nil {
			r.log = newEventLog(cfg.SafetyMaxEvents)
		}
		r.queue = r.queue || s.queue
		r.sem = r.sem || s.sem
		total += m.Weight
		r.scenarios = append(r.scenarios, s)
		r.pick = append(r.pick, total)
	}

	// From here on the run may have created something: clean up on every
	// way out, after the workers' connections are closed (defers run last
	// in first out).
	defer func() {
		c := r.cleanup(ctx)
		switch {
		case rep != nil:
			rep.Cleanup = c
		case c != nil && !c.Complete():
			err = fmt.Errorf("%w (%s)", err, c)
		}
	}()
	for _, s := range r.scenarios {
		if s.setup != nil {
			if err := s.setup(r, s); err != nil {
				return nil, err
			}
		}
	}

	r.semMax = cfg.SafetyMaxEvents / int64(cfg.Concurrency)
	workers := make([]*worker, cfg.Concurrency)
	for i := range workers {
		user := i % cfg.Target.Users()
		c, err := cfg.Target.Conn(user)
		if err != nil {
			for _, w := range workers[:i] {
				w.conn.Close()
			}
			return nil, err
		}
		holder := int32(user)
		if r.perConn {
			holder = int32(i)
		}
		workers[i] = &worker{id: i, user: user, holder: holder, conn: c, run: r,
			rng: rand.New(rand.NewPCG(cfg.Seed, uint64(i))), stats: newWorkerStats()}
	}
	defer func() {
		for _, w := range workers {
			w.conn.Close()
		}
	}()

	r.measureFrom, r.measureTo = cfg.Warmup, cfg.Warmup+cfg.Duration
	runCtx, cancel := context.WithDeadline(ctx, time.Now().Add(r.measureTo+time.Second))
	defer cancel()
	t0 := time.Now()
	clk := realClock{t0: t0, done: runCtx.Done()}
	maxIter := int64(math.MaxInt64)
	if cfg.MaxIterations > 0 {
		maxIter = (cfg.MaxIterations + int64(cfg.Concurrency) - 1) / int64(cfg.Concurrency)
	}
	stop := func() bool { return runCtx.Err() != nil }
	cpu0 := readCPU()
	var srv0 cpuTimes
	srvErr := errors.New("no server pid")
	if cfg.ServerPID > 0 {
		srv0, srvErr = procCPU(cfg.ServerPID)
	}

	progDone := make(chan struct{})
	var progWG sync.WaitGroup
	if cfg.Progress != nil {
		progWG.Add(1)
		ticker := time.NewTicker(cfg.ProgressEvery)
		go func() {
			defer progWG.Done()
			defer ticker.Stop()
			r.progress(workers, clk, ticker.C, progDone)
		}()
	}

	var tickets atomic.Int64
	sched := Schedule{Start: 0, End: r.measureTo, Rate: cfg.Rate}
	var wg sync.WaitGroup
	for _, w := range workers {
		w.clk = clk
		wg.Add(1)
		go func() {
			defer wg.Done()
			if cfg.Rate > 0 {
				runOpenLoop(clk, sched, &tickets, maxIter, stop, w.iterate)
			} else {
				runClosedLoop(clk, r.measureTo, maxIter, stop, w.iterate)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	cpu := readCPU().sub(cpu0)
	close(progDone)
	progWG.Wait()

	measured := elapsed - cfg.Warmup
	if measured > cfg.Duration {
		measured = cfg.Duration
	}
	rep = r.report(workers, measured, elapsed, cpu)
	if srvErr == nil {
		if srv1, err := procCPU(cfg.ServerPID); err == nil {
			c := cpuReport(srv1.sub(srv0), elapsed, rep.Ops, measured)
			rep.ServerCPU = &c
		}
	}
	if ctx.Err() != nil {
		rep.Interrupted = true
	}
	return rep, nil
}

// progress rewrites one terminal line at every tick (every
// cfg.ProgressEvery) until done closes, then ends it; the line's time and
// phase come from clk.
func (r *run) progress(workers []*worker, clk Clock, ticks <-chan time.Time, done <-chan struct{}) {
	h := hdrhistogram.New(histMin, histMax, 2)
	var prev int64
	var prevAt time.Duration // the start of the run: clk counts from it
	out := r.cfg.Progress
	for {
		select {
		case <-done:
			fmt.Fprint(out, "\r\033[K")
			return
		case <-ticks:
		}
		now := clk.Now()
		var n, errs int64
		h.Reset()
		for _, w := range workers {
			n += w.stats.done.Load()
			errs += w.stats.errs.Load()
			w.stats.takeInterval(h)
		}
		rate := float64(n-prev) / (now - prevAt).Seconds()
		prev, prevAt = n, now
		fmt.Fprintf(out, "\r\033[K%s", progressLine(now, r.measureTo, rate, errs, float64(h.ValueAtQuantile(99))/1000, now < r.measureFrom))
	}
}

// progressLine is the status line: elapsed of total, throughput of the last
// interval, errors so far, p99 of the last interval (ms); at most 80 columns.
func progressLine(elapsed, total time.Duration, rate float64, errs int64, p99ms float64, warmup bool) string {
	s := fmt.Sprintf("%.1fs of %.1fs  %.0f ops/s  %d errors  p99 %.3f ms", elapsed.Seconds(), total.Seconds(), rate, errs, p99ms)
	if warmup {
		s += "  (warmup)"
	}
	return fit(s, 80)
}

// report merges the workers' figures and runs the safety checker.
func (r *run) report(workers []*worker, measured, elapsed time.Duration, cpu cpuTimes) *Report {
	var per [numOps]*opStats
	for _, w := range workers {
		for o, s := range w.stats.ops {
			if s == nil {
				continue
			}
			if per[o] == nil {
				per[o] = newOpStats()
			}
			per[o].merge(s)
		}
	}
	all := newOpStats()
	rep := &Report{
		Scenario:    r.cfg.Scenario,
		RunID:       r.cfg.RunID,
		Target:      r.target.Addr(),
		TargetKind:  r.target.Kind(),
		Concurrency: r.cfg.Concurrency,
		Users:       r.target.Users(),
		DurationS:   measured.Seconds(),
		WarmupS:     r.cfg.Warmup.Seconds(),
		Mode:        "closed",
		PerOp:       map[string]*OpReport{},
		Started:     time.Now().Add(-elapsed).UTC().Truncate(time.Millisecond),
		Host:        hostInfo(),
	}
	if d, ok := r.target.(interface{ Driver() string }); ok {
		rep.Driver = d.Driver()
	}
	if f, ok := r.target.(interface{ Fencing() bool }); ok && f.Fencing() {
		rep.Driver = "go-redis+fencing"
	} else if r.target.Kind() == "redis" {
		rep.Driver = "go-redis"
	}
	if r.cfg.Scenario == "mixed" {
		rep.Mix = mixNames(mixOf(r))
	}
	if r.cfg.Rate > 0 {
		rep.Mode, rep.Rate = "open", r.cfg.Rate
	}
	keys := 0
	for _, s := range r.scenarios {
		keys += len(s.names)
	}
	rep.Keys = keys
	for o, s := range per {
		if s == nil {
			continue
		}
		all.merge(s)
		rep.PerOp[op(o).String()] = opReport(s, measured)
	}
	a := opReport(all, measured)
	rep.Ops, rep.OpsPerSec, rep.Errors, rep.Rejected = a.Ops, a.OpsPerSec, a.Errors, a.Rejected
	rep.ErrorsBy, rep.Latency = a.ErrorsBy, a.Latency
	rep.ToolCPU = cpuReport(cpu, elapsed, a.Ops, measured)

	if r.sem {
		var evs []SemEvent
		opt := CheckOptions{Slack: r.cfg.Slack}
		for _, w := range workers {
			if n := len(w.sems); int64(n) >= r.semMax && n > 0 {
				// This worker stopped recording (memory bound): check only
				// the part of the run before its last kept operation.
				if c := w.sems[n-1].Invoke; opt.Cutoff == 0 || c < opt.Cutoff {
					opt.Cutoff = c
				}
			}
			evs = append(evs, w.sems...)
			w.sems = nil
		}
		res := CheckSemaphores(evs, opt)
		rep.Semaphore = &res
	}
	if r.queue {
		var recs []queueRec
		for _, w := range workers {
			recs = append(recs, w.queue...)
			w.queue = nil
		}
		rep.Queue = queueReport(recs, r.measureFrom, r.measureTo)
	}
	if r.log != nil {
		var n int
		for _, w := range workers {
			n += len(w.events)
		}
		events := make([]LockEvent, 0, n)
		for _, w := range workers {
			events = append(events, w.events...)
			w.events = nil
		}
		res := Check(events, CheckOptions{Slack: r.cfg.Slack, Cutoff: r.log.Cutoff()})
		rep.Safety = &SafetyReport{Checked: res.Checked, Leases: res.Leases, Violations: res.Violations,
			SlackMS: float64(r.cfg.Slack) / 1e6}
		if c := r.log.Cutoff(); c > 0 {
			rep.Safety.CutoffS = c.Seconds()
		}
		for _, v := range res.Details {
			rep.Safety.Evidence = append(rep.Safety.Evidence, v.String())
		}
		if res.Leases == 0 {
			rep.Safety.NotChecked = "no lease was granted"
		}
	}
	return rep
}

func mixOf(r *run) []Weight {
	out := make([]Weight, len(r.scenarios))
	prev := 0
	for i, s := range r.scenarios {
		out[i] = Weight{s.name, r.pick[i] - prev}
		prev = r.pick[i]
	}
	return out
}

func opReport(s *opStats, measured time.Duration) *OpReport {
	o := &OpReport{
		Ops:      s.ok + s.rejected + s.errors,
		OK:       s.ok,
		Rejected: s.rejected,
		Errors:   s.errors,
		ErrorsBy: map[string]int64{},
		Latency:  latencyOf(s.hist),
	}
	if measured > 0 {
		o.OpsPerSec = float64(o.Ops) / measured.Seconds()
	}
	for k, v := range s.errorsBy {
		o.ErrorsBy[k.String()] = v
	}
	return o
}

func latencyOf(h *hdrhistogram.Histogram) Latency {
	ms := func(us int64) float64 { return math.Round(float64(us)) / 1000 }
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		P50:  ms(h.ValueAtQuantile(50)),
		P90:  ms(h.ValueAtQuantile(90)),
		P99:  ms(h.ValueAtQuantile(99)),
		P999: ms(h.ValueAtQuantile(99.9)),
		Max:  ms(h.Max()),
		Mean: math.Round(h.Mean()) / 1000,
	}
}

// validRunID: the id goes into resource names (locks, limits, flags, config
// keys, Redis keys), so it is kept to characters every one of them accepts.
func validRunID(id string) bool {
	if len(id) == 0 || len(id) > 16 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
