package main

// `octostore serve`: Main is the composition root of the server. It owns the
// serve configuration (one field per flag, built by serveFlags), opens
// persistence → actors → httpd in Run, and unwinds in reverse in Close
// (docs/architecture.md, "Wiring").

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/httpd"
	"github.com/octostore/octostore/persistence"
	"github.com/octostore/octostore/persistence/etcdstore"
	"github.com/urfave/cli/v2"
)

// ServeConfig configures `octostore serve`: one field per flag (serveFlags
// builds them). The knobs are kept in the configuration types of the
// packages that own them, so a zero field takes that package's default,
// the same value the flag shows.
type ServeConfig struct {
	Addr   string // listen address (host:port; port 0 picks a free one)
	DBPath string // SQLite database file
	// StaticTokens maps token → login (--static-tokens, then
	// --static-tokens-file).
	StaticTokens map[string]string
	AdminKey     string // key of the admin principal ("": none)
	// AllowWeakTokens lets an admin key or static token shorter than
	// MinSecretBytes be served on a non-loopback address (identity.go).
	AllowWeakTokens bool
	GitHub          httpd.GitHubOAuth // sign-in with GitHub (--github-*)
	LogLevel        slog.Level

	// Server: HTTP limits and timeouts (the request timeout too), event
	// heartbeat.
	Server httpd.ServerConfig
	// Actors: the idle timeout. Run supplies Store, Events, Logger and
	// (unless set) Now.
	Actors actors.Config
	// The resource kinds: locks and resources per user, config history,
	// the limit flush interval. Run supplies their stores.
	Locks      actors.LockConfig
	Sessions   actors.SessionConfig
	Limits     actors.LimitConfig
	Flags      actors.FlagConfig
	ConfigKeys actors.ConfigKeysConfig
	// Events: how far an event-stream subscriber may fall behind.
	Events actors.BrokerOptions

	MetricsAddr string // separate unauthenticated /metrics listener ("": none)
	PprofAddr   string // net/http/pprof listener, loopback only ("": none)

	// MemoryLimit is the Go heap's soft limit in bytes, set for the process
	// while the server runs (runtime/debug.SetMemoryLimit; memlimit.go).
	// 0: defaultMemoryLimit(), unless the GOMEMLIMIT environment variable
	// set one; negative: none.
	MemoryLimit int64

	// Cluster mode (--node with --cluster or --etcd-endpoints): the state
	// lives in etcd instead of DBPath (cluster_serve.go).
	Cluster ClusterConfig
}

// Main is a running (or starting, or stopped) octostore server: its
// configuration and every part Run opened, for Close to unwind.
type Main struct {
	Config ServeConfig

	// Stdout gets the "listening on" line and the dev token (default
	// os.Stdout); Logger the log (default text on stderr at
	// Config.LogLevel); Now is the clock of the database, the actors and
	// sign-in (default time.Now).
	Stdout io.Writer
	Logger *slog.Logger
	Now    func() time.Time

	// Opened by Run, in this order; nil until opened (Metrics is a registry
	// only: nothing to close).
	Listener        net.Listener
	Metrics         *httpd.Metrics
	DB              *persistence.DB
	Store           *persistence.Store  // the group-commit writer's owner
	stack                               // events broker, actors, authenticator, HTTP server (stack.go)
	GitHub          *httpd.GitHubSignIn // nil without GitHub sign-in
	MetricsListener *httpd.AuxServer    // nil without --metrics-addr
	Pprof           *httpd.AuxServer    // nil without --pprof-addr
	// Cluster is the node's etcd, election and front in cluster mode (nil
	// on a single node, which has DB, Store and the stack instead).
	Cluster *clusterNode

	// closers undo what Run opened, in the order it opened it.
	closers []closer
	// afterStep, in tests, runs after each step of Run; an error fails Run
	// there as if the step itself had failed.
	afterStep func(step string) error
}

type closer struct {
	what  string
	close func() error
}

// Run opens the server in dependency order and returns once it serves:
//
//	listener → metrics registry → database → writer → identity (static
//	tokens, dev token) → events broker → actor system + the four kinds +
//	their recovery → authenticator → GitHub sign-in → HTTP server →
//	metrics listener → pprof
//
// Each step registers its undo as soon as it has opened something, so when
// a step fails (or ctx is cancelled between steps) Run closes what it
// opened, in reverse, before returning the error. Close is then a no-op.
func (m *Main) Run(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			if cerr := m.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()
	if m.Now == nil {
		m.Now = time.Now
	}
	if m.Stdout == nil {
		m.Stdout = os.Stdout
	}
	if m.Logger == nil {
		m.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: m.Config.LogLevel}))
	}
	cfg := m.Config

	// The heap's limit first: it is the process's, and Close gives back the
	// one that was in force.
	if limit, set := memoryLimit(cfg.MemoryLimit); set {
		prev := debug.SetMemoryLimit(limit)
		if err := m.opened(ctx, "memory limit", func() error { debug.SetMemoryLimit(prev); return nil }); err != nil {
			return err
		}
	} else if err := m.opened(ctx, "memory limit", nil); err != nil {
		return err
	}

	// The listener first: a bad or busy address fails before the database
	// is touched. The HTTP server closes it on shutdown; until it serves,
	// this closer does.
	if m.Listener, err = net.Listen("tcp", cfg.Addr); err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	ln := m.Listener
	if err := m.opened(ctx, "listener", func() error {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	}); err != nil {
		return err
	}

	// The registry exists before the writer, whose batches it observes.
	m.Metrics = httpd.NewMetrics()

	if cfg.Cluster.Enabled() {
		if err := m.runCluster(ctx, ln); err != nil {
			return err
		}
		return m.openAux(ctx)
	}

	if m.DB, err = persistence.Open(cfg.DBPath); err != nil {
		return err
	}
	m.DB.Now = m.Now
	for _, f := range m.DB.Tightened {
		m.Logger.Warn("narrowed the permissions of a database file: group and others could read it", "file", f)
	}
	if err := m.opened(ctx, "database", m.DB.Close); err != nil {
		return err
	}

	w, err := persistence.NewWriter(m.DB, persistence.WriterOptions{})
	if err != nil {
		return err
	}
	w.OnBatch = m.Metrics.ObserveBatch // before the first write: the writer reads it only after an Enqueue
	m.Store = persistence.NewStore(m.DB, w)
	// Closing the store commits the writer's queue and stops its goroutine.
	if err := m.opened(ctx, "writer", m.Store.Close); err != nil {
		return err
	}

	if err := m.setupIdentity(ln.Addr()); err != nil {
		return err
	}
	if err := m.opened(ctx, "identity", nil); err != nil {
		return err
	}

	if err := m.stack.open(&m.Config, m.Store, m.Logger, m.Now, func(step string, undo func() error) error {
		return m.opened(ctx, step, undo)
	}); err != nil {
		return err
	}

	if m.GitHub, err = httpd.NewGitHubSignIn(cfg.GitHub, m.Now, m.Logger); err != nil {
		return err
	}
	var closeGitHub func() error
	if m.GitHub != nil {
		closeGitHub = noErr(m.GitHub.Close)
	}
	if err := m.opened(ctx, "github sign-in", closeGitHub); err != nil {
		return err
	}

	m.stack.newServer(&m.Config, m.Store, m.GitHub, m.Metrics, m.Logger, m.Now)
	m.Server.Serve(ln)
	if err := m.opened(ctx, "http server", m.Server.Shutdown); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "listening on http://%s\n", ln.Addr())

	return m.openAux(ctx)
}

// openAux opens the side listeners, when configured: metrics, then pprof.
func (m *Main) openAux(ctx context.Context) (err error) {
	cfg := m.Config
	shutdownTimeout := cfg.Server.ShutdownTimeout
	if shutdownTimeout <= 0 {
		shutdownTimeout = httpd.DefaultShutdownTimeout
	}
	if cfg.MetricsAddr != "" {
		if m.MetricsListener, err = httpd.ServeAux(cfg.MetricsAddr, httpd.MetricsHandler(m.Metrics)); err != nil {
			return fmt.Errorf("metrics listener on %s: %w", cfg.MetricsAddr, err)
		}
		ml := m.MetricsListener
		if err := m.opened(ctx, "metrics listener", func() error { return ml.Close(shutdownTimeout) }); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "metrics at http://%s/metrics\n", ml.Addr())
	}

	if cfg.PprofAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		if m.Pprof, err = httpd.ServeAux(cfg.PprofAddr, mux); err != nil {
			return fmt.Errorf("pprof listener on %s: %w", cfg.PprofAddr, err)
		}
		pp := m.Pprof
		if err := m.opened(ctx, "pprof", func() error { return pp.Close(shutdownTimeout) }); err != nil {
			return err
		}
	}
	return nil
}

// memoryLimit resolves ServeConfig.MemoryLimit: the limit to set, and
// whether to set one at all (not when the configuration leaves it to the
// default and GOMEMLIMIT already set the process's).
func memoryLimit(v int64) (int64, bool) {
	switch {
	case v < 0:
		return math.MaxInt64, true // no limit
	case v > 0:
		return v, true
	case os.Getenv("GOMEMLIMIT") != "":
		return 0, false
	}
	if d := defaultMemoryLimit(); d > 0 {
		return d, true
	}
	return math.MaxInt64, true
}

// opened records the undo of the step that has just succeeded (nil when it
// opened nothing) and says whether Run may go on.
func (m *Main) opened(ctx context.Context, step string, undo func() error) error {
	if undo != nil {
		m.closers = append(m.closers, closer{what: step, close: undo})
	}
	if m.afterStep != nil {
		if err := m.afterStep(step); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("start interrupted after %s: %w", step, err)
	}
	return nil
}

// noErr adapts a Close without a result.
func noErr(f func()) func() error { return func() error { f(); return nil } }

// Close unwinds whatever Run opened, in reverse: pprof, the metrics
// listener, the HTTP server (event streams end, in-flight requests finish,
// bounded by the shutdown timeout), GitHub sign-in, the authenticator, the
// actors and then the rate-limit flusher, the events broker, the writer
// (commits its queue), the database, the listener. It goes on past a failing
// step and returns every error. A second Close does nothing.
func (m *Main) Close() error {
	var errs []error
	for i := len(m.closers) - 1; i >= 0; i-- {
		c := m.closers[i]
		if err := c.close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", c.what, err))
		}
	}
	m.closers = nil
	return errors.Join(errs...)
}

// URL is http://ADDR of the API listener (after Run).
func (m *Main) URL() string { return "http://" + m.Listener.Addr().String() }

// serveCommand is `octostore serve`: parse the flags into a Main, Run it,
// wait for SIGINT or SIGTERM (main's signal context), Close it.
func serveCommand() *cli.Command {
	m := &Main{}
	return &cli.Command{
		Name:  "serve",
		Usage: "run the octostore server",
		Flags: serveFlags(&m.Config),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageErr(c, "takes no arguments, got %q", c.Args().First())
			}
			if err := m.Config.validate(); err != nil {
				return err
			}
			m.Stdout = c.App.Writer
			m.Logger = slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: m.Config.LogLevel}))
			if err := m.Run(c.Context); err != nil {
				return exitCode(exitFailure, err)
			}
			<-c.Context.Done()
			m.Logger.Info("shutting down")
			if err := m.Close(); err != nil {
				return exitCode(exitFailure, err)
			}
			m.Logger.Info("stopped cleanly")
			return nil
		},
	}
}

// validate checks what no single flag can: a GitHub configuration is whole
// (a usage error naming the missing flag, never quoting the secret).
func (cfg *ServeConfig) validate() error {
	if _, err := cfg.GitHub.WithDefaults(); err != nil {
		return exitCode(exitUsage, err)
	}
	if err := cfg.Cluster.validate(); err != nil {
		return exitCode(exitUsage, err)
	}
	return nil
}

// serveFlags builds every flag of `octostore serve`, each bound to its field
// of cfg, with its environment variables and its default from the package
// that owns the knob. A flag's Action checks and converts what was given
// (usage errors exit 2); it runs only for flags set on the command line or
// in the environment.
func serveFlags(cfg *ServeConfig) []cli.Flag {
	usage := func(format string, a ...any) error { return exitCode(exitUsage, fmt.Errorf(format, a...)) }
	positive := func(name string) func(*cli.Context, time.Duration) error {
		return func(_ *cli.Context, d time.Duration) error {
			if d <= 0 {
				return usage("--%s must be positive", name)
			}
			return nil
		}
	}
	// quota accepts -1 (no limit) or a positive count.
	positiveInt := func(name string) func(*cli.Context, int) error {
		return func(_ *cli.Context, v int) error {
			if v <= 0 {
				return usage("--%s must be positive", name)
			}
			return nil
		}
	}
	quota := func(name string) func(*cli.Context, int) error {
		return func(_ *cli.Context, v int) error {
			if v != -1 && v < 1 {
				return usage("--%s must be at least 1 (or -1 for no limit)", name)
			}
			return nil
		}
	}
	staticTokens := func() map[string]string {
		if cfg.StaticTokens == nil {
			cfg.StaticTokens = map[string]string{}
		}
		return cfg.StaticTokens
	}
	return []cli.Flag{
		&cli.StringFlag{Name: "addr", Value: "127.0.0.1:3000", Destination: &cfg.Addr, Usage: "listen address (host:port; port 0 picks a free one)", EnvVars: []string{"OCTOSTORE_ADDR", "BIND_ADDR"}},
		&cli.StringFlag{Name: "db", Value: "./octostore.db", Destination: &cfg.DBPath, Usage: "SQLite database file", EnvVars: []string{"OCTOSTORE_DB", "DATABASE_URL"},
			Action: func(_ *cli.Context, v string) error { cfg.DBPath = dbPath(v); return nil }},
		&cli.StringFlag{Name: "static-tokens", Usage: `fixed tokens "user:token,user2:token2"`, EnvVars: []string{"OCTOSTORE_STATIC_TOKENS", "STATIC_TOKENS"},
			Action: func(_ *cli.Context, v string) error {
				if err := parseStaticTokens(v, staticTokens()); err != nil {
					return usage("--static-tokens: %w", err)
				}
				return nil
			}},
		&cli.StringFlag{Name: "static-tokens-file", Usage: "file with one user:token per line", EnvVars: []string{"OCTOSTORE_STATIC_TOKENS_FILE"},
			Action: func(_ *cli.Context, p string) error {
				if p == "" {
					return nil
				}
				f, err := os.Open(p)
				if err != nil {
					return usage("--static-tokens-file: %w", err)
				}
				defer f.Close()
				if err := parseStaticTokensFile(f, staticTokens()); err != nil {
					return usage("--static-tokens-file %s: %w", p, err)
				}
				return nil
			}},
		&cli.StringFlag{Name: "admin-key", Destination: &cfg.AdminKey, Usage: "key of the admin principal (bearer or X-Admin-Key)", EnvVars: []string{"OCTOSTORE_ADMIN_KEY", "ADMIN_KEY"}},
		&cli.BoolFlag{Name: "allow-weak-tokens", Destination: &cfg.AllowWeakTokens, Usage: "serve an admin key or static token shorter than 16 bytes on a non-loopback address (refused otherwise; on loopback they are only warned about)", EnvVars: []string{"OCTOSTORE_ALLOW_WEAK_TOKENS"}},
		&cli.IntFlag{Name: "auth-failure-burst", Value: httpd.DefaultAuthFailureBurst, Destination: &cfg.Server.AuthFailureBurst, Usage: "failed authentications a client address may make in a row before it is answered 429 (-1: no throttle)", EnvVars: []string{"OCTOSTORE_AUTH_FAILURE_BURST"},
			Action: func(_ *cli.Context, v int) error {
				if v == 0 || v < -1 {
					return usage("--auth-failure-burst must be at least 1 (or -1: no throttle)")
				}
				return nil
			}},
		&cli.DurationFlag{Name: "auth-failure-interval", Value: httpd.DefaultAuthFailureInterval, Destination: &cfg.Server.AuthFailureInterval, Usage: "a throttled client address earns one more authentication attempt per interval", EnvVars: []string{"OCTOSTORE_AUTH_FAILURE_INTERVAL"},
			Action: positive("auth-failure-interval")},
		&cli.IntFlag{Name: "max-body-bytes", Value: httpd.DefaultMaxBodyBytes, Destination: &cfg.Server.MaxBodyBytes, Usage: "request body limit (413 beyond)", EnvVars: []string{"OCTOSTORE_MAX_BODY_BYTES"}},
		&cli.Int64Flag{Name: "max-body-memory", Value: httpd.DefaultMaxBodyMemory, Destination: &cfg.Server.MaxBodyMemory, Usage: "bytes of request bodies read or handled at once, counted as they arrive (503 + Retry-After beyond)", EnvVars: []string{"OCTOSTORE_MAX_BODY_MEMORY"},
			Action: func(_ *cli.Context, v int64) error {
				if v < 1 {
					return usage("--max-body-memory must be positive")
				}
				return nil
			}},
		&cli.IntFlag{Name: "max-locks-per-user", Value: actors.DefaultMaxLocksPerUser, Destination: &cfg.Locks.MaxPerUser, Usage: "active locks per user (403 beyond; -1: no limit)", EnvVars: []string{"OCTOSTORE_MAX_LOCKS_PER_USER"}},
		&cli.IntFlag{Name: "max-sessions-per-user", Value: actors.DefaultMaxSessionsPerUser, Destination: &cfg.Sessions.MaxPerUser, Usage: "sessions per user (403 beyond; -1: no limit)", EnvVars: []string{"OCTOSTORE_MAX_SESSIONS_PER_USER"},
			Action: quota("max-sessions-per-user")},
		&cli.DurationFlag{Name: "idle-timeout", Value: actors.DefaultIdleTimeout, Destination: &cfg.Actors.IdleTimeout, Usage: "passivate a resource actor after this long without requests", EnvVars: []string{"OCTOSTORE_IDLE_TIMEOUT"}},
		&cli.DurationFlag{Name: "lock-idle-timeout", Value: actors.DefaultLockIdleTimeout, Destination: &cfg.Locks.IdleTimeout, Usage: "passivate a held lock's actor after this long without requests (the hold lives on as a compact record; at most --idle-timeout)", EnvVars: []string{"OCTOSTORE_LOCK_IDLE_TIMEOUT"}},
		&cli.IntFlag{Name: "max-conns", Value: httpd.DefaultMaxConns, Destination: &cfg.Server.MaxConns, Usage: "concurrent connections at most", EnvVars: []string{"OCTOSTORE_MAX_CONNS"}},
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"OCTOSTORE_LOG_LEVEL"},
			Action: func(_ *cli.Context, v string) error {
				if err := cfg.LogLevel.UnmarshalText([]byte(v)); err != nil {
					return usage("--log-level: %w", err)
				}
				return nil
			}},

		// Sign-in with GitHub (docs/operations.md, "Sign in with GitHub").
		&cli.StringFlag{Name: "github-client-id", Usage: "client ID of the GitHub OAuth app (enables sign-in with GitHub)", EnvVars: []string{"OCTOSTORE_GITHUB_CLIENT_ID", "GITHUB_CLIENT_ID"},
			Action: func(_ *cli.Context, v string) error { cfg.GitHub.ClientID = strings.TrimSpace(v); return nil }},
		&cli.StringFlag{Name: "github-client-secret", Destination: &cfg.GitHub.ClientSecret, Usage: "client secret of the GitHub OAuth app (prefer the env var or --github-client-secret-file: flags show in ps)", EnvVars: []string{"OCTOSTORE_GITHUB_CLIENT_SECRET", "GITHUB_CLIENT_SECRET"}},
		&cli.StringFlag{Name: "github-client-secret-file", Usage: "file holding the client secret of the GitHub OAuth app", EnvVars: []string{"OCTOSTORE_GITHUB_CLIENT_SECRET_FILE"},
			Action: func(_ *cli.Context, p string) error {
				if p == "" {
					return nil
				}
				if cfg.GitHub.ClientSecret != "" {
					return usage("give --github-client-secret or --github-client-secret-file, not both")
				}
				b, err := os.ReadFile(p)
				if err != nil {
					return usage("--github-client-secret-file: %w", err)
				}
				if cfg.GitHub.ClientSecret = strings.TrimSpace(string(b)); cfg.GitHub.ClientSecret == "" {
					return usage("--github-client-secret-file %s is empty", p)
				}
				return nil
			}},
		&cli.StringFlag{Name: "github-redirect-url", Usage: "callback URL registered with the OAuth app: https://HOST/auth/github/callback", EnvVars: []string{"OCTOSTORE_GITHUB_REDIRECT_URL", "GITHUB_REDIRECT_URI"},
			Action: func(_ *cli.Context, v string) error { cfg.GitHub.RedirectURL = strings.TrimSpace(v); return nil }},
		&cli.StringFlag{Name: "github-auth-url", Value: httpd.DefaultGitHubAuthURL, Destination: &cfg.GitHub.AuthURL, Usage: "GitHub authorize endpoint (GitHub Enterprise: https://HOST/login/oauth/authorize)", EnvVars: []string{"OCTOSTORE_GITHUB_AUTH_URL"}},
		&cli.StringFlag{Name: "github-token-url", Value: httpd.DefaultGitHubTokenURL, Destination: &cfg.GitHub.TokenURL, Usage: "GitHub token endpoint (GitHub Enterprise: https://HOST/login/oauth/access_token)", EnvVars: []string{"OCTOSTORE_GITHUB_TOKEN_URL"}},
		&cli.StringFlag{Name: "github-api-url", Value: httpd.DefaultGitHubAPIURL, Destination: &cfg.GitHub.APIURL, Usage: "GitHub API base; the user is read from {api}/user (GitHub Enterprise: https://HOST/api/v3)", EnvVars: []string{"OCTOSTORE_GITHUB_API_URL"}},
		&cli.DurationFlag{Name: "github-timeout", Value: httpd.DefaultGitHubTimeout, Destination: &cfg.GitHub.Timeout, Usage: "bound on a sign-in's calls to GitHub (code exchange plus user fetch)", EnvVars: []string{"OCTOSTORE_GITHUB_TIMEOUT"},
			Action: positive("github-timeout")},

		// Limits that keep slow, idle or too many clients from exhausting
		// the server (docs/guarantees.md, "Overload").
		&cli.DurationFlag{Name: "read-timeout", Value: httpd.DefaultReadTimeout, Destination: &cfg.Server.ReadTimeout, Usage: "a request (line, headers and body) must arrive within this; slower clients are cut off", EnvVars: []string{"OCTOSTORE_READ_TIMEOUT"}},
		&cli.DurationFlag{Name: "write-timeout", Value: httpd.DefaultWriteTimeout, Destination: &cfg.Server.WriteTimeout, Usage: "a response must be written within this", EnvVars: []string{"OCTOSTORE_WRITE_TIMEOUT"}},
		&cli.DurationFlag{Name: "conn-idle-timeout", Value: httpd.DefaultConnIdleTimeout, Destination: &cfg.Server.IdleTimeout, Usage: "close keep-alive connections idle this long", EnvVars: []string{"OCTOSTORE_CONN_IDLE_TIMEOUT"}},
		&cli.IntFlag{Name: "max-inflight", Value: httpd.DefaultMaxInFlight, Destination: &cfg.Server.MaxInFlight, Usage: "requests handled at once (waiting acquires not counted); beyond it the server answers 503 + Retry-After", EnvVars: []string{"OCTOSTORE_MAX_INFLIGHT"}},
		&cli.IntFlag{Name: "max-waiting", Value: httpd.DefaultMaxWaiting, Destination: &cfg.Server.MaxWaiting, Usage: "waiting acquires (wait_seconds) in the whole server; beyond it 503 + Retry-After", EnvVars: []string{"OCTOSTORE_MAX_WAITING"},
			Action: positiveInt("max-waiting")},
		&cli.IntFlag{Name: "max-waiters-per-lock", Value: actors.DefaultMaxWaitersPerLock, Destination: &cfg.Locks.MaxWaiters, Usage: "waiting acquires queued on one lock; beyond it 429 + Retry-After", EnvVars: []string{"OCTOSTORE_MAX_WAITERS_PER_LOCK"},
			Action: positiveInt("max-waiters-per-lock")},
		&cli.IntFlag{Name: "max-header-bytes", Value: httpd.DefaultMaxHeaderBytes, Destination: &cfg.Server.MaxHeaderBytes, Usage: "request line and headers limit (431 beyond)", EnvVars: []string{"OCTOSTORE_MAX_HEADER_BYTES"}},
		&cli.DurationFlag{Name: "request-timeout", Value: httpd.DefaultRequestTimeout, Destination: &cfg.Server.RequestTimeout, Usage: "longest wait for a resource to answer (503 beyond)", EnvVars: []string{"OCTOSTORE_REQUEST_TIMEOUT"}},

		// Events and metrics (docs/operations.md, "Events and metrics").
		&cli.StringFlag{Name: "metrics-addr", Destination: &cfg.MetricsAddr, Usage: "also serve GET /metrics without authentication on this address (host:port; keep it on a private interface)", EnvVars: []string{"OCTOSTORE_METRICS_ADDR"}},
		&cli.DurationFlag{Name: "event-heartbeat", Value: httpd.DefaultEventHeartbeat, Destination: &cfg.Server.EventHeartbeat, Usage: `interval of ": ping" comments on idle event streams`, EnvVars: []string{"OCTOSTORE_EVENT_HEARTBEAT"},
			Action: positive("event-heartbeat")},
		&cli.IntFlag{Name: "event-buffer", Value: actors.DefaultEventBuffer, Destination: &cfg.Events.Buffer, Usage: "events an event-stream subscriber may fall behind before it is cut off with a lagged event", EnvVars: []string{"OCTOSTORE_EVENT_BUFFER"},
			Action: func(_ *cli.Context, v int) error {
				if v <= 0 {
					return usage("--event-buffer must be positive")
				}
				return nil
			}},
		&cli.IntFlag{Name: "max-streams-per-user", Value: httpd.DefaultMaxStreamsPerUser, Destination: &cfg.Server.MaxStreamsPerUser, Usage: "event streams one user (or the admin key) may have open at once (429 + Retry-After beyond)", EnvVars: []string{"OCTOSTORE_MAX_STREAMS_PER_USER"},
			Action: func(_ *cli.Context, v int) error {
				if v <= 0 {
					return usage("--max-streams-per-user must be positive")
				}
				return nil
			}},
		&cli.StringFlag{Name: "pprof-addr", Destination: &cfg.PprofAddr, Usage: "serve Go's net/http/pprof profiles on this address (loopback only; for profiling)", EnvVars: []string{"OCTOSTORE_PPROF_ADDR"},
			Action: func(_ *cli.Context, addr string) error {
				if addr == "" {
					return nil
				}
				host, _, err := net.SplitHostPort(addr)
				if err != nil {
					return exitCode(exitUsage, err)
				}
				if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
					return usage("--pprof-addr must be a loopback address")
				}
				return nil
			}},

		// Rate limits, feature flags and config keys: per-user quotas,
		// config history, and how often rate-limit counters are written.
		&cli.IntFlag{Name: "max-limits-per-user", Value: actors.DefaultMaxLimitsPerUser, Destination: &cfg.Limits.MaxPerUser, Usage: "rate limits per user (403 beyond; -1: no limit)", EnvVars: []string{"OCTOSTORE_MAX_LIMITS_PER_USER"},
			Action: quota("max-limits-per-user")},
		&cli.IntFlag{Name: "max-flags-per-user", Value: actors.DefaultMaxFlagsPerUser, Destination: &cfg.Flags.MaxPerUser, Usage: "feature flags per user (403 beyond; -1: no limit)", EnvVars: []string{"OCTOSTORE_MAX_FLAGS_PER_USER"},
			Action: quota("max-flags-per-user")},
		&cli.IntFlag{Name: "max-config-keys-per-user", Value: actors.DefaultMaxConfigKeysPerUser, Destination: &cfg.ConfigKeys.MaxPerUser, Usage: "config keys per user (403 beyond; -1: no limit)", EnvVars: []string{"OCTOSTORE_MAX_CONFIG_KEYS_PER_USER"},
			Action: quota("max-config-keys-per-user")},
		&cli.Int64Flag{Name: "memory-limit", Destination: &cfg.MemoryLimit, DefaultText: fmt.Sprintf("%d: 3/4 of the memory of the machine, or of its cgroup's limit", defaultMemoryLimit()),
			Usage: "soft limit of the Go heap in bytes: the garbage collector works harder as the heap nears it (-1: none; a GOMEMLIMIT in the environment is kept unless this flag is given)", EnvVars: []string{"OCTOSTORE_MEMORY_LIMIT"},
			Action: func(_ *cli.Context, v int64) error {
				if v == 0 {
					return usage("--memory-limit must be positive, or -1 for none")
				}
				return nil
			}},
		&cli.Int64Flag{Name: "max-answer-memory", Value: httpd.DefaultMaxAnswerMemory, Destination: &cfg.Server.MaxAnswerMemory, Usage: "bytes of large answers (config history pages) read or being written at once (503 + Retry-After beyond)", EnvVars: []string{"OCTOSTORE_MAX_ANSWER_MEMORY"},
			Action: func(_ *cli.Context, v int64) error {
				if v < 1 {
					return usage("--max-answer-memory must be positive")
				}
				return nil
			}},
		&cli.IntFlag{Name: "config-history", Value: actors.DefaultConfigHistory, Destination: &cfg.ConfigKeys.History, Usage: "versions kept per config key (older ones are pruned)", EnvVars: []string{"OCTOSTORE_CONFIG_HISTORY"},
			Action: func(_ *cli.Context, v int) error {
				if v < 1 {
					return usage("--config-history must be at least 1")
				}
				return nil
			}},
		&cli.DurationFlag{Name: "limit-flush-interval", Value: actors.DefaultLimitFlushInterval, Destination: &cfg.Limits.FlushInterval, Usage: "rate-limit counters are written behind, each changed limit at most once per interval; a kill -9 loses at most this much of them (0: with the next write batch)", EnvVars: []string{"OCTOSTORE_LIMIT_FLUSH_INTERVAL"},
			Action: func(_ *cli.Context, d time.Duration) error {
				switch {
				case d < 0:
					return usage("--limit-flush-interval must not be negative")
				case d == 0:
					cfg.Limits.FlushInterval = actors.LimitFlushEveryBatch
				}
				return nil
			}},

		// Cluster mode: three nodes on etcd (README "Three nodes",
		// docs/operations.md "Cluster mode"). --node turns it on.
		&cli.StringFlag{Name: "node", Destination: &cfg.Cluster.Node, Usage: "cluster mode: this node's name (its name in --cluster); the state lives in etcd instead of --db", EnvVars: []string{"OCTOSTORE_NODE"}},
		&cli.StringFlag{Name: "cluster", Destination: &cfg.Cluster.Peers, Usage: `cluster mode, embedded etcd: every member's peer URL, "n1=http://10.0.0.1:2380,n2=…" (the same on every node)`, EnvVars: []string{"OCTOSTORE_CLUSTER"}},
		&cli.StringFlag{Name: "cluster-state", Value: "new", Destination: &cfg.Cluster.State, Usage: "new: bootstrap the cluster of --cluster; existing: join a running cluster (after `octostore cluster member add`)", EnvVars: []string{"OCTOSTORE_CLUSTER_STATE"}},
		&cli.StringFlag{Name: "etcd-dir", Destination: &cfg.Cluster.EtcdDir, Usage: "the embedded etcd member's data directory (default ./NODE.etcd)", EnvVars: []string{"OCTOSTORE_ETCD_DIR"}},
		&cli.StringFlag{Name: "etcd-client-url", Value: defaultEtcdClientURL, Destination: &cfg.Cluster.EtcdClientURL, Usage: "where etcd clients (backup, cluster member, etcdctl) reach the embedded member; keep it private", EnvVars: []string{"OCTOSTORE_ETCD_CLIENT_URL"}},
		withAction(etcdEndpointsFlag(""), func(_ *cli.Context, v string) error { // external etcd, instead of --cluster
			cfg.Cluster.Endpoints = splitList(v)
			return nil
		}),
		&cli.StringFlag{Name: "advertise-url", Destination: &cfg.Cluster.AdvertiseURL, Usage: "the API URL the other nodes forward requests to (default http:// + the listen address)", EnvVars: []string{"OCTOSTORE_ADVERTISE_URL"}},
		&cli.DurationFlag{Name: "leader-ttl", Value: etcdstore.DefaultLeaderTTL, Destination: &cfg.Cluster.LeaderTTL, Usage: "the leader's session lease: a dead leader is replaced within about this long", EnvVars: []string{"OCTOSTORE_LEADER_TTL"}},
		&cli.IntFlag{Name: "max-txn-ops", Value: etcdstore.DefaultMaxTxnOps, Destination: &cfg.Cluster.MaxTxnOps, Usage: "writes per etcd transaction with --etcd-endpoints (at most the cluster's --max-txn-ops); an embedded member allows 1024", EnvVars: []string{"OCTOSTORE_MAX_TXN_OPS"},
			Action: func(_ *cli.Context, v int) error {
				if v < 8 {
					return usage("--max-txn-ops must be at least 8")
				}
				return nil
			}},
		&cli.IntFlag{Name: "txns-in-flight", Value: etcdstore.DefaultTxnsInFlight, Destination: &cfg.Cluster.TxnsInFlight, Usage: "the leader's etcd transactions in flight at once (1 to 4), each guarded by the one before it; more than 1 did not raise throughput in any measurement so far (docs/benchmarks.md, \"Cluster mode\")", EnvVars: []string{"OCTOSTORE_TXNS_IN_FLIGHT"},
			Action: func(_ *cli.Context, v int) error {
				if v < 1 || v > 4 {
					return usage("--txns-in-flight must be 1 to 4")
				}
				return nil
			}},
		&cli.BoolFlag{Name: "move-raft-leader", Value: true, Destination: &cfg.Cluster.MoveRaftLeader, Usage: "embedded etcd: after winning, hand etcd's Raft leadership to another member, so that the leader's death does not also cost an etcd election and a renewal of every lease (about 2.5 s off a failover for about 10% of throughput: docs/benchmarks.md, \"Cluster mode\"; --move-raft-leader=false to keep it)", EnvVars: []string{"OCTOSTORE_MOVE_RAFT_LEADER"}},
		&cli.UintFlag{Name: "etcd-heartbeat-ms", Value: 100, Destination: &cfg.Cluster.HeartbeatMs, Usage: "the embedded member's Raft heartbeat interval (ms)", EnvVars: []string{"OCTOSTORE_ETCD_HEARTBEAT_MS"}},
		&cli.UintFlag{Name: "etcd-election-ms", Value: 1000, Destination: &cfg.Cluster.ElectionMs, Usage: "the embedded member's Raft election timeout (ms; at least 5 × the heartbeat)", EnvVars: []string{"OCTOSTORE_ETCD_ELECTION_MS"}},
	}
}

// withAction sets f's Action.
func withAction(f *cli.StringFlag, action func(*cli.Context, string) error) *cli.StringFlag {
	f.Action = action
	return f
}

// defaultEtcdClientURL is --etcd-client-url's default: loopback only, etcd's
// usual port.
const defaultEtcdClientURL = "http://127.0.0.1:2379"

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// dbPath accepts a plain path or the URL forms upstream's DATABASE_URL uses
// (sqlite://PATH, sqlite:PATH, file:PATH); the query part of a URL is dropped.
func dbPath(v string) string {
	for _, p := range []string{"sqlite://", "sqlite:", "file:"} {
		if strings.HasPrefix(v, p) {
			v = strings.TrimPrefix(v, p)
			if i := strings.IndexByte(v, '?'); i >= 0 {
				v = v[:i]
			}
			break
		}
	}
	return v
}
