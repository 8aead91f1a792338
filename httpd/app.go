package httpd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/actors/names"
	"github.com/octostore/octostore/persistence"
)

// Options configure a whole octostore server (what `octostore serve` runs).
type Options struct {
	Addr   string // listen address, e.g. 127.0.0.1:3000 or 127.0.0.1:0
	DBPath string

	// StaticTokens maps token → login (from --static-tokens and its file).
	StaticTokens map[string]string
	AdminKey     string
	// GitHub enables sign-in with GitHub when its client id and secret are set.
	GitHub GitHubOAuth

	MaxBodyBytes    int           // default 1 MiB
	MaxLocksPerUser int           // default 1000
	IdleTimeout     time.Duration // actor passivation (default 30s)
	RequestTimeout  time.Duration // actor answer deadline (default 10s)
	ShutdownTimeout time.Duration // graceful shutdown bound (default 10s)
	Server          ServerConfig  // zero fields take defaults

	// Rate limits, flags and config keys per user (0: default 10000, 1000,
	// 1000; negative: no cap), and config versions kept per key (default 100).
	MaxLimitsPerUser     int
	MaxFlagsPerUser      int
	MaxConfigKeysPerUser int
	ConfigHistory        int
	// LimitFlushInterval: rate-limit counters are written behind, each
	// changed limit at most once per interval (0: 10 ms,
	// actors.DefaultLimitFlushInterval; negative: with the next write batch).
	LimitFlushInterval time.Duration

	// Events and metrics (events.go, metrics.go, observe.go).
	EventBuffer    int           // events a subscriber may fall behind before it is cut off (default 1024)
	EventHeartbeat time.Duration // ": ping" interval on event streams (default 15s)
	MetricsAddr    string        // separate unauthenticated /metrics listener ("": none)

	Now    func() time.Time // clock (tests)
	Logger *slog.Logger     // default: text to Stderr
	Stdout io.Writer        // where the listening line and dev token go (default os.Stdout)
}

// App is a running server: database, writer, actor runtime, HTTP.
type App struct {
	opts   Options
	DB     *persistence.DB
	Store  *persistence.Store
	Sys    *actors.System
	Auth   *Authenticator
	server *Server
	addr   string
	log    *slog.Logger

	// The typed entry points of the resource kinds.
	Locks  *actors.Locks
	Limits *actors.Limits
	Flags  *actors.Flags
	Config *actors.ConfigKeys

	// Events fans committed state changes out to event streams; Metrics
	// is the Prometheus registry behind /metrics.
	Events  *actors.Broker
	Metrics *Metrics
}

// Start opens the database, recovers state and starts serving. It prints
// "listening on http://HOST:PORT" to opts.Stdout once connections are accepted.
func Start(opts Options) (*App, error) {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.MaxLocksPerUser == 0 {
		opts.MaxLocksPerUser = 1000
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 10 * time.Second
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var err error
	if opts.GitHub, err = opts.GitHub.WithDefaults(); err != nil {
		return nil, err
	}
	sc := &opts.Server
	if sc.ReadTimeout == 0 {
		sc.ReadTimeout = 30 * time.Second
	}
	if sc.WriteTimeout == 0 {
		sc.WriteTimeout = 30 * time.Second
	}
	if sc.IdleTimeout == 0 {
		sc.IdleTimeout = 120 * time.Second
	}
	if sc.MaxConns == 0 {
		sc.MaxConns = 16384
	}
	sc.MaxBodyBytes = opts.MaxBodyBytes
	sc.RequestTimeout = opts.RequestTimeout
	log := opts.Logger

	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", opts.Addr, err)
	}
	db, err := persistence.Open(opts.DBPath)
	if err != nil {
		ln.Close()
		return nil, err
	}
	db.Now = opts.Now
	w, err := persistence.NewWriter(db, persistence.WriterOptions{})
	if err != nil {
		db.Close()
		ln.Close()
		return nil, err
	}
	store := persistence.NewStore(db, w)
	a := &App{opts: opts, DB: db, Store: store, log: log}
	a.Events = actors.NewBroker(actors.BrokerOptions{Buffer: opts.EventBuffer})
	a.Metrics = NewMetrics()
	w.OnBatch = a.Metrics.ObserveBatch // set before the first write: the writer reads it only after an Enqueue
	fail := func(err error) (*App, error) {
		w.Close()
		db.Close()
		ln.Close()
		return nil, err
	}
	if err := a.setupIdentity(ln.Addr()); err != nil {
		return fail(err)
	}
	a.Sys = actors.NewSystem(actors.Config{
		Store: store, Now: opts.Now, IdleTimeout: opts.IdleTimeout, Logger: log, Events: a.Events,
	})
	a.registerKinds(store)
	if err := a.Sys.Recover(); err != nil {
		a.Sys.Close()
		a.Limits.Close()
		return fail(err)
	}
	a.Auth, err = newAuthenticator(store, opts.AdminKey)
	if err != nil {
		a.Sys.Close()
		a.Limits.Close()
		return fail(err)
	}
	a.server = newServer(Services{Locks: a.Locks, Limits: a.Limits, Flags: a.Flags, Config: a.Config}, store, a.Auth, log, opts.Server)
	a.server.oauth = newGitHubOAuth(opts.GitHub, opts.Now, log)
	a.observe()
	a.server.serve(ln)
	a.addr = ln.Addr().String()
	fmt.Fprintf(opts.Stdout, "listening on http://%s\n", a.addr)
	if opts.MetricsAddr != "" {
		maddr, err := a.Metrics.Serve(opts.MetricsAddr)
		if err != nil {
			a.Close()
			return nil, err
		}
		fmt.Fprintf(opts.Stdout, "metrics at http://%s/metrics\n", maddr)
	}
	return a, nil
}

// Addr is the address the server listens on (the real port for :0).
func (a *App) Addr() string { return a.addr }

// URL is http://Addr.
func (a *App) URL() string { return "http://" + a.addr }

// Close shuts down gracefully: stop accepting, finish in-flight requests,
// stop the actors, flush the writer, close the database.
func (a *App) Close() error {
	var errs []error
	a.server.closeStreams() // open event streams would hold the shutdown up
	if err := a.server.shutdown(a.opts.ShutdownTimeout); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	if err := a.Metrics.Close(a.opts.ShutdownTimeout); err != nil {
		errs = append(errs, fmt.Errorf("metrics listener shutdown: %w", err))
	}
	a.Events.Close()
	a.Auth.close()
	if a.server.oauth != nil {
		a.server.oauth.close()
	}
	a.Sys.Close()
	if err := a.Limits.Close(); err != nil {
		errs = append(errs, fmt.Errorf("write rate limit counters: %w", err))
	}
	errs = append(errs, a.Store.Close(), a.DB.Close())
	return errors.Join(errs...)
}

// registerKinds plugs the four resource kinds into the runtime: 0 takes a
// default, a negative quota means no cap, a negative flush interval writes
// counters with the next batch.
func (a *App) registerKinds(store *persistence.Store) {
	o := &a.opts
	def := func(v, d int) int {
		if v == 0 {
			return d
		}
		return v
	}
	flush := o.LimitFlushInterval
	if flush == 0 {
		flush = actors.DefaultLimitFlushInterval
	}
	a.Locks = actors.NewLocks(a.Sys, actors.LockConfig{Loader: store, MaxPerUser: o.MaxLocksPerUser})
	a.Limits = actors.NewLimits(a.Sys, actors.LimitConfig{Store: store, MaxPerUser: def(o.MaxLimitsPerUser, DefaultMaxLimitsPerUser), FlushInterval: flush})
	a.Flags = actors.NewFlags(a.Sys, actors.FlagConfig{Store: store, MaxPerUser: def(o.MaxFlagsPerUser, DefaultMaxFlagsPerUser)})
	a.Config = actors.NewConfigKeys(a.Sys, actors.ConfigKeysConfig{Store: store,
		MaxPerUser: def(o.MaxConfigKeysPerUser, DefaultMaxConfigKeysPerUser), History: def(o.ConfigHistory, DefaultConfigHistory)})
}

// setupIdentity syncs static tokens, and with no identity source at all
// creates a dev user and token (loopback only).
func (a *App) setupIdentity(addr net.Addr) error {
	now := a.opts.Now()
	static := map[[32]byte]string{}
	for tok, login := range a.opts.StaticTokens {
		static[persistence.HashToken(tok)] = login
	}
	if err := a.Store.Apply(persistence.SyncStaticTokens{Tokens: static, Now: now}); err != nil {
		return fmt.Errorf("store static tokens: %w", err)
	}
	if len(static) > 0 || a.opts.AdminKey != "" || a.opts.GitHub.Configured() {
		return nil
	}
	n, err := a.Store.CountTokens()
	if err != nil {
		return err
	}
	if n > 0 {
		return nil // tokens created earlier (dev, octostore token create, sign-in)
	}
	if !isLoopback(addr) {
		return errors.New("no identity source configured and the address is not loopback: " +
			"set --static-tokens (OCTOSTORE_STATIC_TOKENS), --static-tokens-file, GitHub OAuth (--github-client-id/--github-client-secret), " +
			"or create a token with `octostore token create --db PATH --user NAME`")
	}
	tok := persistence.NewToken()
	if err := a.Store.Apply(persistence.IssueToken{Login: "dev", Hash: persistence.HashToken(tok), Source: persistence.SourceDev, Now: now}); err != nil {
		return fmt.Errorf("create dev token: %w", err)
	}
	fmt.Fprintf(a.opts.Stdout, "no identity source configured: created user \"dev\" with token (shown once, stored hashed):\n  %s\n", tok)
	fmt.Fprintf(a.opts.Stdout, "try:\n  curl -s -X POST -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '{\"ttl_seconds\":30}' http://%s/locks/demo/acquire\n", tok, addr)
	return nil
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// ParseStaticTokens parses "alice:tokA,bob:tokB" into token → login.
func ParseStaticTokens(s string, into map[string]string) error {
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if err := addStatic(part, into); err != nil {
			return err
		}
	}
	return nil
}

// ParseStaticTokensFile reads one "user:token" per line (# comments).
func ParseStaticTokensFile(r io.Reader, into map[string]string) error {
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if err := addStatic(t, into); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
	}
	return sc.Err()
}

func addStatic(entry string, into map[string]string) error {
	user, tok, ok := strings.Cut(entry, ":")
	user, tok = strings.TrimSpace(user), strings.TrimSpace(tok)
	if !ok || user == "" || tok == "" {
		return errors.New(`static token entries must look like "user:token"`)
	}
	if !names.Login.Valid(user) {
		return fmt.Errorf("static token user %q: %s", user, names.Login.Requirement())
	}
	if prev, dup := into[tok]; dup && prev != user {
		return fmt.Errorf("the same static token is given for %q and %q", prev, user)
	}
	into[tok] = user
	return nil
}
