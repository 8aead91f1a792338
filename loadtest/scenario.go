package loadtest

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Scenarios are the single scenarios, in the order the help lists them;
// "mixed" runs a weighted mix of them.
var Scenarios = []string{"lock-cycle", "lock-contended", "lock-queue", "semaphore", "lock-status", "ratelimit-check", "flag-eval", "config-read", "config-write"}

// DefaultMix is the mix of "mixed" when no weights are given.
const DefaultMix = "lock-cycle=2,lock-contended=1,lock-status=2,ratelimit-check=3,flag-eval=3,config-read=2,config-write=1"

// Weight is one scenario of a mix.
type Weight struct {
	Scenario string
	Weight   int
}

// ParseMix parses "lock-cycle=5,flag-eval=3".
func ParseMix(s string) ([]Weight, error) {
	var out []Weight
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, ws, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("mix %q: want scenario=weight", part)
		}
		name = strings.TrimSpace(name)
		if !isScenario(name) {
			return nil, fmt.Errorf("mix: unknown scenario %q (known: %s)", name, strings.Join(Scenarios, ", "))
		}
		if seen[name] {
			return nil, fmt.Errorf("mix: %s given twice", name)
		}
		seen[name] = true
		w, err := strconv.Atoi(strings.TrimSpace(ws))
		if err != nil || w < 0 || w > 1000000 {
			return nil, fmt.Errorf("mix %q: weight must be an integer 0..1000000", part)
		}
		if w > 0 {
			out = append(out, Weight{name, w})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("mix %q: no scenario with a positive weight", s)
	}
	return out, nil
}

func isScenario(s string) bool {
	for _, n := range Scenarios {
		if n == s {
			return true
		}
	}
	return false
}

// scenario is one workload: its key space, its setup and one iteration.
type scenario struct {
	name    string
	names   []string
	lock    bool // records lock events for the safety checker
	queue   bool // records grants and releases for the hand-off figures (lock-queue)
	sem     bool // records semaphore grants and releases for the semaphore checker
	setup   func(r *run, s *scenario) error
	iterate func(w *worker, s *scenario, due time.Duration)
}

func defaultKeys(name string) int {
	switch name {
	case "lock-cycle":
		return 10000
	case "lock-contended", "lock-queue", "semaphore":
		return 4
	case "lock-status", "ratelimit-check":
		return 1000
	default: // flags and config keys count against per-user quotas (1,000 by default)
		return 100
	}
}

// keyPart names a scenario's resources after the run's prefix
// (Prefix(runID) + keyPart + number: "lt-1a2b3c4d-flag-17").
var keyPart = map[string]string{
	"lock-cycle":      "cycle-",
	"lock-contended":  "cont-",
	"lock-queue":      "queue-",
	"semaphore":       "sem-",
	"lock-status":     "status-",
	"ratelimit-check": "rl-",
	"flag-eval":       "flag-",
	"config-read":     "cfgr-",
	"config-write":    "cfgw-",
}

func makeNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

func newScenario(name string, cfg *Config) (*scenario, error) {
	keys := cfg.Keys
	if keys <= 0 {
		keys = defaultKeys(name)
	}
	s := &scenario{name: name}
	switch name {
	case "lock-cycle":
		// every worker cycles through its own share of the names.
		if keys < cfg.Concurrency {
			keys = cfg.Concurrency
		}
		s.lock, s.iterate = true, lockCycle
	case "lock-contended":
		s.lock, s.iterate = true, lockContended
	case "lock-queue":
		s.lock, s.queue, s.iterate = true, true, lockQueue
	case "semaphore":
		s.sem, s.iterate = true, semaphoreIter
	case "lock-status":
		s.setup, s.iterate = setupLockStatus, lockStatus
	case "ratelimit-check":
		s.iterate = limitCheck
	case "flag-eval":
		s.setup, s.iterate = setupFlags, flagEval
	case "config-read":
		s.setup, s.iterate = setupConfig, configRead
	case "config-write":
		s.iterate = configWrite
	default:
		return nil, fmt.Errorf("unknown scenario %q", name)
	}
	s.names = makeNames(Prefix(cfg.RunID)+keyPart[name], keys)
	return s, nil
}

// classify judges an answer: 200 is success, the listed statuses are
// expected refusals, everything else is an error.
func classify(st Status, rejected ...Status) class {
	if st == 200 {
		return classOK
	}
	for _, r := range rejected {
		if st == r {
			return classRejected
		}
	}
	return classError
}

// lock-cycle: acquire then release, each worker on names of its own.
func lockCycle(w *worker, s *scenario, due time.Duration) {
	per := len(s.names) / w.run.workers
	name := s.names[w.id*per+w.cycle%per]
	w.cycle++
	ttl := w.run.cfg.LockTTL
	t0 := w.now()
	rep, st := w.conn.Acquire(name, ttl)
	t1 := w.now()
	w.book(opAcquire, due, t1, st, classify(st))
	w.lockEvent(OpAcquire, name, LeaseID{}, rep, st, ttl, t0, t1)
	if st != 200 {
		return
	}
	st = w.conn.Release(name, rep.Lease)
	t2 := w.now()
	w.book(opRelease, t1, t2, st, classify(st))
	w.lockEvent(OpRelease, name, rep.Lease, LockReply{}, st, 0, t1, t2)
}

// lock-contended: every worker fights for a few names; a winner renews
// cfg.Renews times and releases, or with probability cfg.Abandon walks away
// and lets the lease expire. Losing (409) and finding the lease gone (404, as
// when a worker of the same user released the shared lease) are expected.
func lockContended(w *worker, s *scenario, due time.Duration) {
	name := s.names[w.rng.IntN(len(s.names))]
	ttl := w.run.cfg.LockTTL
	t0 := w.now()
	rep, st := w.conn.Acquire(name, ttl)
	t1 := w.now()
	w.book(opAcquire, due, t1, st, classify(st, 409))
	w.lockEvent(OpAcquire, name, LeaseID{}, rep, st, ttl, t0, t1)
	if st != 200 {
		return
	}
	for i := 0; i < w.run.cfg.Renews; i++ {
		t0 = w.now()
		var r LockReply
		r, st = w.conn.Renew(name, rep.Lease, ttl)
		t1 = w.now()
		w.book(opRenew, t0, t1, st, classify(st, 404))
		w.lockEvent(OpRenew, name, rep.Lease, r, st, ttl, t0, t1)
		if st != 200 {
			return
		}
	}
	if w.run.cfg.Abandon > 0 && w.rng.Float64() < w.run.cfg.Abandon {
		return
	}
	t0 = w.now()
	st = w.conn.Release(name, rep.Lease)
	t1 = w.now()
	w.book(opRelease, t0, t1, st, classify(st, 404))
	w.lockEvent(OpRelease, name, rep.Lease, LockReply{}, st, 0, t0, t1)
}

// lock-status: GET a lock's state; half of the names are held during the
// run (released by the run's cleanup).
func setupLockStatus(r *run, s *scenario) error {
	c, err := r.target.Conn(0)
	if err != nil {
		return err
	}
	defer c.Close()
	ttl := r.cfg.Warmup + r.cfg.Duration + time.Minute
	if ttl > time.Hour {
		ttl = time.Hour
	}
	for i := 0; i < len(s.names); i += 2 {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		if _, st := c.Acquire(s.names[i], ttl); st != 200 {
			return fmt.Errorf("lock-status setup: acquire %s: status %s", s.names[i], st)
		}
	}
	return nil
}

func lockStatus(w *worker, s *scenario, due time.Duration) {
	name := s.names[w.rng.IntN(len(s.names))]
	st := w.conn.LockStatus(name)
	w.book(opLockStatus, due, w.now(), st, classify(st))
}

// ratelimit-check: a check that is denied is an expected refusal.
func limitCheck(w *worker, s *scenario, due time.Duration) {
	name := s.names[w.rng.IntN(len(s.names))]
	allowed, st := w.conn.CheckLimit(name, w.run.cfg.LimitMax, w.run.cfg.LimitWindow, w.run.cfg.LimitAlgorithm)
	cl := classify(st)
	if cl == classOK && !allowed {
		cl = classRejected
	}
	w.book(opLimitCheck, due, w.now(), st, cl)
}

// flag-eval: every user's flags exist with a percentage rollout; subjects vary.
func setupFlags(r *run, s *scenario) error {
	for u := 0; u < r.target.Users(); u++ {
		c, err := r.target.Conn(u)
		if err != nil {
			return err
		}
		for _, n := range s.names {
			if err := r.ctx.Err(); err != nil {
				c.Close()
				return err
			}
			if st := c.SetFlag(n, r.cfg.FlagPercent); st != 200 {
				c.Close()
				return fmt.Errorf("flag-eval setup: set flag %s for user %d: status %s", n, u, st)
			}
		}
		c.Close()
	}
	return nil
}

var subjects = makeNames("user-", 1024)

func flagEval(w *worker, s *scenario, due time.Duration) {
	name := s.names[w.rng.IntN(len(s.names))]
	_, st := w.conn.EvalFlag(name, subjects[w.rng.IntN(len(subjects))])
	w.book(opFlagEval, due, w.now(), st, classify(st))
}

// config-read: every user's keys exist.
func setupConfig(r *run, s *scenario) error {
	for u := 0; u < r.target.Users(); u++ {
		c, err := r.target.Conn(u)
		if err != nil {
			return err
		}
		for _, n := range s.names {
			if err := r.ctx.Err(); err != nil {
				c.Close()
				return err
			}
			if st := c.WriteConfig(n, 0); st != 200 {
				c.Close()
				return fmt.Errorf("config-read setup: write %s for user %d: status %s", n, u, st)
			}
		}
		c.Close()
	}
	return nil
}

func configRead(w *worker, s *scenario, due time.Duration) {
	st := w.conn.ReadConfig(s.names[w.rng.IntN(len(s.names))])
	w.book(opConfigRead, due, w.now(), st, classify(st))
}

func configWrite(w *worker, s *scenario, due time.Duration) {
	w.seq++
	st := w.conn.WriteConfig(s.names[w.rng.IntN(len(s.names))], w.seq)
	w.book(opConfigWrite, due, w.now(), st, classify(st))
}

// mixNames lists the scenarios of a mix, sorted, for reports.
func mixNames(m []Weight) string {
	parts := make([]string, len(m))
	for i, w := range m {
		parts[i] = w.Scenario + "=" + strconv.Itoa(w.Weight)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
