package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/octostore/octostore/loadtest"
	"github.com/urfave/cli/v2"
)

const loadtestDescription = `Drives a server with one scenario at a fixed concurrency (closed loop,
--concurrency N) or at a fixed arrival rate (open loop, --rate R, latency
measured from each request's due time so a stalling server is not hidden).
On a terminal it shows progress on stderr (elapsed, ops/s, errors); at the
end it prints a table, or the report as JSON with --json; --out FILE writes
the JSON report, and --compare A.json B.json prints B relative to A.

Everything a run creates is named lt-RUNID-… (RUNID: 8 random hex digits)
and deleted at the end, also after Ctrl-C (a second Ctrl-C skips that):
held locks are released, rate limits, flags and config keys deleted, Redis
keys removed. --keep leaves them.

The run fails (exit 1, reasons on stderr) when more than --max-error-rate of
its requests were errors, when it was interrupted, when the lock safety
check found a violation or could check nothing (no lease was granted), or
when the cleanup left something behind.

Scenarios:
  lock-cycle       acquire then release, each worker on names of its own
  lock-contended   workers fight over a few names (--keys), renew, release
  lock-queue       workers wait their turn for a few locks (--keys) in the
                   server's queue (wait_seconds), hold (--hold), release;
                   reports the hand-off latency and grant-order fairness
  semaphore        workers take slots of a few semaphores (--keys, --sem-limit
                   slots each), waiting in the queue, hold (--hold), release;
                   the semaphore checker proves never more than the limit held
  lock-status      GET a lock (half of the names held)
  ratelimit-check  POST /limits/NAME/check
  flag-eval        GET /flags/NAME?subject=S
  config-read      GET /config/KEY
  config-write     PUT /config/KEY
  mixed            a weighted mix (--mix lock-cycle=5,flag-eval=3)

The lock scenarios record every acknowledged grant, renew and release and
check them for safety (no two holders at once, fencing tokens increasing,
nothing succeeding on an expired, released or replaced lease); a violation
prints its evidence and the run fails.

--target redis://HOST:PORT runs lock-cycle, lock-contended, lock-status and
ratelimit-check against Redis the way its users do (SET NX PX, compare-and-
delete and compare-and-pexpire scripts, a sliding-window sorted-set script).`

func loadtestCommand() *cli.Command {
	var subs []*cli.Command
	for _, name := range append(append([]string{}, loadtest.Scenarios...), "mixed") {
		name := name
		subs = append(subs, &cli.Command{
			Name:      name,
			Usage:     "run the " + name + " scenario",
			ArgsUsage: " ",
			Flags:     loadtestFlags(),
			Action:    leafAction(func(c *cli.Context, _ []string) error { return loadtestRun(c, name) }),
		})
	}
	subs = append(subs, &cli.Command{
		Name:  "noop-server",
		Usage: "serve canned answers for every API route (the fasthttp ceiling for benchmarks)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:0", Usage: "listen address"},
		},
		Action: leafAction(func(c *cli.Context, _ []string) error {
			if err := loadtest.ServeNoop(c.Context, c.String("addr"), c.App.Writer); err != nil {
				return exitCode(exitFailure, err)
			}
			return nil
		}),
	})
	subs = append(subs, &cli.Command{
		Name:      "bench-table",
		Usage:     "print markdown tables (goals and ratios) for reports labelled octostore, redis-always, redis-none, noop",
		ArgsUsage: "REPORT.json...",
		Hidden:    true,
		Action: leafAction(func(c *cli.Context, args []string) error {
			var reps []*loadtest.Report
			for _, p := range args {
				r, err := loadtest.ReadReport(p)
				if err != nil {
					return exitCode(exitUsage, err)
				}
				reps = append(reps, r)
			}
			loadtest.BenchTable(c.App.Writer, reps)
			return nil
		}),
	})
	flags := append(loadtestFlags(),
		&cli.StringFlag{Name: "scenario", Usage: "scenario to run (or give it as a subcommand)"},
		&cli.StringFlag{Name: "compare", Usage: "compare two reports: --compare A.json B.json"},
	)
	return &cli.Command{
		Name:        "loadtest",
		Usage:       "measure throughput, latency and lock safety (octostore or Redis)",
		ArgsUsage:   "SCENARIO [flags] | --compare A.json B.json",
		Description: loadtestDescription,
		Subcommands: subs,
		Flags:       flags,
		Action: func(c *cli.Context) error {
			if a := c.String("compare"); a != "" {
				if c.NArg() != 1 {
					return exitCode(exitUsage, errors.New("--compare takes two reports: --compare A.json B.json"))
				}
				return loadtestCompare(c, a, c.Args().First())
			}
			if s := c.String("scenario"); s != "" {
				return loadtestRun(c, s)
			}
			return groupAction(c)
		},
	}
}

// loadtestFlags builds fresh flag values for one command (urfave/cli flags
// must not be shared between commands).
func loadtestFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "url", Value: defaultURL, EnvVars: []string{"OCTOSTORE_URL"}, Usage: "server URL"},
		&cli.StringSliceFlag{Name: "token", EnvVars: []string{"OCTOSTORE_TOKEN"}, Usage: "bearer token; repeat to spread workers over several users"},
		tokenFileFlag(), // one more user's token
		&cli.StringFlag{Name: "target", Usage: "target instead of --url: http(s)://HOST:PORT, redis://HOST:PORT or etcd://HOST:PORT (etcd's lock recipe, lock-cycle only)"},
		&cli.StringFlag{Name: "out", Usage: "write the report as JSON to `FILE`"},
		jsonFlag(), // the report
		&cli.StringFlag{Name: "max-error-rate", Value: "1%", Usage: "fail the run when more of its requests than this were errors (1%, 0.5%, 0)"},
		&cli.BoolFlag{Name: "keep", Usage: "leave what the run created (named lt-RUNID-…) instead of deleting it"},
		&cli.StringFlag{Name: "label", Usage: "name for this run in reports"},
		&cli.IntFlag{Name: "concurrency", Aliases: []string{"c"}, Value: 64, Usage: "workers, each with its own connection"},
		&cli.Float64Flag{Name: "rate", Usage: "open loop: iterations per second (0: closed loop)"},
		&cli.DurationFlag{Name: "duration", Aliases: []string{"d"}, Value: 10 * time.Second, Usage: "measured time"},
		&cli.DurationFlag{Name: "warmup", Value: time.Second, Usage: "time before measuring (not counted)"},
		&cli.IntFlag{Name: "keys", Usage: "key space (0: the scenario's default)"},
		&cli.StringFlag{Name: "mix", Value: loadtest.DefaultMix, Usage: "weights for mixed"},
		&cli.StringFlag{Name: "driver", Value: loadtest.DriverClient, Usage: "octostore driver: client (tools/client) or raw (minimal fasthttp)"},
		&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "per-request timeout"},
		&cli.DurationFlag{Name: "lock-ttl", Value: 10 * time.Second, Usage: "TTL of acquires and renews"},
		&cli.IntFlag{Name: "renews", Value: 1, Usage: "lock-contended: renews per hold (-1: none)"},
		&cli.Float64Flag{Name: "abandon", Usage: "lock-contended: fraction of holds left to expire instead of released"},
		&cli.DurationFlag{Name: "queue-wait", Value: 30 * time.Second, Usage: "lock-queue: wait_seconds of each waiting acquire (at most 5m)"},
		&cli.DurationFlag{Name: "hold", Usage: "lock-queue, semaphore: how long a grant is held before its release"},
		&cli.IntFlag{Name: "sem-limit", Value: 3, Usage: "semaphore: the semaphores' limit (1..10000)"},
		&cli.IntFlag{Name: "limit-max", Value: 100, Usage: "ratelimit-check: max_requests"},
		&cli.DurationFlag{Name: "limit-window", Value: time.Second, Usage: "ratelimit-check: window"},
		&cli.StringFlag{Name: "limit-algorithm", Usage: "ratelimit-check: sliding_window or token_bucket (octostore only; default: the server's)"},
		&cli.BoolFlag{Name: "redis-fencing", Usage: "redis: atomic SET NX PX + INCR script that hands out fencing tokens"},
		&cli.Int64Flag{Name: "max-iterations", Usage: "stop after this many iterations (0: time only)"},
		&cli.DurationFlag{Name: "slack", Value: 100 * time.Millisecond, Usage: "safety checker: allowed clock difference to the server"},
		&cli.Int64Flag{Name: "safety-max-events", Value: 4_000_000, Usage: "lock operations kept for the safety checker"},
		&cli.Uint64Flag{Name: "seed", Usage: "random seed (0: random)"},
		&cli.IntFlag{Name: "server-pid", Usage: "also report the CPU used by this local process (the server under test)"},
		&cli.StringFlag{Name: "cpuprofile", Usage: "write the load generator's own CPU profile to `FILE`", Hidden: true},
	}
}

func loadtestTarget(c *cli.Context) (loadtest.Target, error) {
	addr := c.String("target")
	if addr == "" {
		addr = c.String("url")
	}
	switch {
	case strings.HasPrefix(addr, "redis://") || strings.HasPrefix(addr, "rediss://"):
		return loadtest.NewRedisTarget(addr, loadtest.RedisOptions{
			Fencing: c.Bool("redis-fencing"), PoolSize: c.Int("concurrency") + 8, Timeout: c.Duration("timeout")})
	case strings.HasPrefix(addr, "etcd://"):
		return loadtest.NewEtcdTarget(addr, loadtest.EtcdOptions{Timeout: c.Duration("timeout"), TTL: c.Duration("lock-ttl")})
	case strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://"):
		var tokens []string
		for _, t := range c.StringSlice("token") {
			if t = strings.TrimSpace(t); t != "" {
				tokens = append(tokens, t)
			}
		}
		if f := c.String("token-file"); f != "" {
			t, err := readTokenFile(f)
			if err != nil {
				return nil, err
			}
			tokens = append(tokens, t)
		}
		return loadtest.NewHTTPTarget(addr, tokens, loadtest.HTTPOptions{
			Driver: c.String("driver"), MaxConns: c.Int("concurrency") + 8, Timeout: c.Duration("timeout")})
	}
	return nil, fmt.Errorf("target %q: want http(s)://HOST:PORT, redis://HOST:PORT or etcd://HOST:PORT", addr)
}

func loadtestRun(c *cli.Context, scenario string) error {
	if c.NArg() > 0 {
		return exitCode(exitUsage, fmt.Errorf("unexpected arguments: %s", strings.Join(c.Args().Slice(), " ")))
	}
	maxErrors, err := loadtest.ParseErrorRate(c.String("max-error-rate"))
	if err != nil {
		return exitCode(exitUsage, err)
	}
	cfg := loadtest.Config{
		Scenario:        scenario,
		Concurrency:     c.Int("concurrency"),
		Rate:            c.Float64("rate"),
		Duration:        c.Duration("duration"),
		Warmup:          c.Duration("warmup"),
		Keys:            c.Int("keys"),
		LockTTL:         c.Duration("lock-ttl"),
		Renews:          c.Int("renews"),
		Abandon:         c.Float64("abandon"),
		QueueWait:       c.Duration("queue-wait"),
		Hold:            c.Duration("hold"),
		SemLimit:        c.Int("sem-limit"),
		LimitMax:        c.Int("limit-max"),
		LimitWindow:     c.Duration("limit-window"),
		LimitAlgorithm:  c.String("limit-algorithm"),
		MaxIterations:   c.Int64("max-iterations"),
		Slack:           c.Duration("slack"),
		SafetyMaxEvents: c.Int64("safety-max-events"),
		Seed:            c.Uint64("seed"),
		ServerPID:       c.Int("server-pid"),
		Keep:            c.Bool("keep"),
	}
	if scenario == "mixed" {
		mix, err := loadtest.ParseMix(c.String("mix"))
		if err != nil {
			return exitCode(exitUsage, err)
		}
		cfg.Mix = mix
	} else if !isLoadtestScenario(scenario) {
		return exitCode(exitUsage, fmt.Errorf("unknown scenario %q (known: %s, mixed)", scenario, strings.Join(loadtest.Scenarios, ", ")))
	}
	if cfg.Concurrency < 1 || cfg.Rate < 0 || cfg.Duration <= 0 || cfg.Warmup < 0 || cfg.Abandon < 0 || cfg.Abandon > 1 ||
		cfg.QueueWait <= 0 || cfg.QueueWait > 5*time.Minute || cfg.Hold < 0 || cfg.SemLimit < 1 || cfg.SemLimit > 10000 {
		return exitCode(exitUsage, errors.New("need --concurrency >= 1, --rate >= 0, --duration > 0, --warmup >= 0, 0 <= --abandon <= 1, 0 < --queue-wait <= 5m, --hold >= 0, 1 <= --sem-limit <= 10000"))
	}
	target, err := loadtestTarget(c)
	var ee *exitError
	if errors.As(err, &ee) {
		return err // the token file's own exit code
	}
	if err != nil {
		return exitCode(exitUsage, err)
	}
	defer target.Close()
	if err := target.Ping(); err != nil {
		return exitCode(exitUnavailable, fmt.Errorf("target not reachable: %w", err))
	}
	if a, ok := target.(interface{ CheckAuth() error }); ok {
		if err := a.CheckAuth(); errors.Is(err, loadtest.ErrAuth) {
			return exitCode(exitAuth, err)
		} else if err != nil {
			return exitCode(exitUnavailable, err)
		}
	}
	cfg.Target = target
	if f, ok := c.App.ErrWriter.(*os.File); ok {
		cfg.Progress = loadtest.Terminal(f)
	} else if c.App.ErrWriter == nil {
		cfg.Progress = loadtest.Terminal(os.Stderr)
	}
	abort, stopSignals := loadtest.InterruptAgain()
	defer stopSignals()
	cfg.Abort = abort
	if path := c.String("cpuprofile"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return exitCode(exitUsage, err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return exitCode(exitFailure, err)
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := loadtest.Run(c.Context, cfg)
	if errors.Is(err, loadtest.ErrUnsupported) {
		return exitCode(exitUsage, err)
	}
	if err != nil {
		return exitCode(exitFailure, err)
	}
	rep.Label = c.String("label")
	failures := rep.Judge(maxErrors)
	if c.Bool("json") {
		if err := rep.EncodeJSON(c.App.Writer); err != nil {
			return exitCode(exitFailure, err)
		}
	} else {
		rep.WriteTable(c.App.Writer)
	}
	if path := c.String("out"); path != "" {
		if err := rep.WriteJSON(path); err != nil {
			return exitCode(exitFailure, fmt.Errorf("write report: %w", err))
		}
	}
	if len(failures) > 0 {
		return exitCode(exitFailure, errors.New(strings.Join(failures, "; ")))
	}
	return nil
}

func isLoadtestScenario(s string) bool {
	for _, n := range loadtest.Scenarios {
		if n == s {
			return true
		}
	}
	return false
}

func loadtestCompare(c *cli.Context, a, b string) error {
	ra, err := loadtest.ReadReport(a)
	if err != nil {
		return exitCode(exitUsage, err)
	}
	rb, err := loadtest.ReadReport(b)
	if err != nil {
		return exitCode(exitUsage, err)
	}
	loadtest.Compare(c.App.Writer, ra, rb)
	return nil
}
