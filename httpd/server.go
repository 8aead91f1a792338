// Package httpd is octostore's HTTP API: a fasthttp server with one handler
// file per resource, one table of routes (routes.go), one error → status
// map (errors.go) and bearer-token authentication (auth.go). Handlers
// validate input, call the resource kind's typed entry point
// (actors.Locks, Limits, Flags, ConfigKeys) with the request's context
// (reqctx.go: request timeout, shutdown, client gone) and render its
// answer; they hold no state of their own besides the token cache.
//
// Errors: a handler returns an error (coded: actors.Error) instead of
// answering it, and errors.go alone turns it into a status and a body.
package httpd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/fasthttp/router"
	"github.com/octostore/octostore/actors"
	"github.com/valyala/fasthttp"
)

// Server is the HTTP front of the runtime. NewServer builds it from its
// dependencies, which the caller has opened (cmd/octostore Main.Run) and
// closes after Shutdown; the Server itself owns only its router, its
// event streams and the fasthttp server.
type Server struct {
	locks    *actors.Locks
	sessions *actors.Sessions
	sems     *actors.Semaphores
	limits   *actors.Limits
	flags    *actors.Flags
	config   *actors.ConfigKeys
	store    Storage // health, tokens, sign-in
	// admission: the authenticator, the auth throttle, the client log and
	// the body budget (admission.go).
	admission
	oauth   *githubOAuth // nil: GitHub sign-in not configured (501)
	log     *slog.Logger
	answers *byteBudget // bytes of large answers in flight (config.go: history pages)
	reqs    *requestContexts
	// limit bounds the requests in flight (--max-inflight, applied per
	// route: routes.go) and the waiting acquires (overload.go).
	limit *inflight
	r     *router.Router
	fast  map[string][]*routeInfo // method → routes (handle, dispatch)
	srv   *fasthttp.Server

	// events serves /events and the watches, metrics /metrics
	// (events.go, metrics.go).
	events  *eventStreams
	metrics *Metrics

	shutdownTimeout time.Duration
	ln              net.Listener // set by Serve
	done            chan error   // Serve's result
}

// Deps are what a Server serves from. Every field but GitHub and Logger is
// required. They are opened before NewServer and closed after
// Server.Shutdown by whoever opened them; the Server never closes them.
type Deps struct {
	// The typed entry points of the resource kinds (registered with Sys,
	// which has recovered: actors.System.Recover).
	Locks      *actors.Locks
	Sessions   *actors.Sessions
	Semaphores *actors.Semaphores
	Limits     *actors.Limits
	Flags      *actors.Flags
	Config     *actors.ConfigKeys
	// Sys is read only by the live-actors gauge; handlers call the kinds.
	Sys    *actors.System
	Store  Storage        // tokens, sign-in, the health of writes
	Auth   *Authenticator // bearer tokens and the admin key
	GitHub *GitHubSignIn  // sign-in with GitHub; nil: not configured (501)
	Events *actors.Broker // /events, /locks/{name}/watch, /config/{key}/watch
	// Metrics labels every request and serves /metrics; NewServer also
	// points the scrape-time gauges of Sys, Events and Store at this
	// Server's runtime (registered once per Metrics: in cluster mode each
	// leader term's Server takes them over).
	Metrics *Metrics
	Logger  *slog.Logger // default: discard
	// Now is the clock of the log's rate limits (default time.Now).
	Now func() time.Time
}

// ServerConfig tunes the HTTP server. Zero fields take the defaults below.
type ServerConfig struct {
	MaxBodyBytes int // request body limit (413 beyond; DefaultMaxBodyBytes)
	// MaxBodyMemory bounds the bytes of request bodies read or handled at
	// once: a body that does not fit is answered 503 + Retry-After unread
	// (DefaultMaxBodyMemory; body.go).
	MaxBodyMemory int64
	// MaxAnswerMemory bounds the bytes of large answers (config history
	// pages) read or being written at once: a page that does not fit is
	// answered 503 + Retry-After (DefaultMaxAnswerMemory; config.go).
	MaxAnswerMemory int64
	ReadTimeout     time.Duration // whole request, headers and body (DefaultReadTimeout)
	WriteTimeout    time.Duration // a response (DefaultWriteTimeout)
	IdleTimeout     time.Duration // keep-alive connections (DefaultConnIdleTimeout)
	MaxConns        int           // concurrent connections (DefaultMaxConns)
	// MaxInFlight bounds requests being handled at once; beyond it the
	// server answers 503 + Retry-After at once (DefaultMaxInFlight).
	// Waiting acquires do not count while they wait.
	MaxInFlight int
	// MaxWaiting bounds the waiting acquires (wait_seconds) of the whole
	// server; beyond it 503 + Retry-After (DefaultMaxWaiting).
	MaxWaiting int
	// MaxHeaderBytes is the request line + headers limit (431 beyond;
	// DefaultMaxHeaderBytes).
	MaxHeaderBytes int
	// EventHeartbeat is the interval of ": ping" comments on idle event
	// streams (DefaultEventHeartbeat).
	EventHeartbeat time.Duration
	// MaxStreamsPerUser bounds the event streams one user (or the admin
	// key) has open at once; beyond it a stream is refused with 429 and
	// Retry-After (DefaultMaxStreamsPerUser, events.go).
	MaxStreamsPerUser int
	// ShutdownTimeout bounds how long Shutdown waits for in-flight requests
	// (DefaultShutdownTimeout); requests still waiting then end with 503.
	ShutdownTimeout time.Duration
	// RequestTimeout bounds how long a request waits for its resource (503
	// beyond; DefaultRequestTimeout, reqctx.go).
	RequestTimeout time.Duration
	// AuthFailureBurst is how many failed authentications a client address
	// may make in a row; beyond it, it earns one more attempt every
	// AuthFailureInterval and is answered 429 + Retry-After meanwhile
	// (DefaultAuthFailureBurst, DefaultAuthFailureInterval; throttle.go).
	// A negative burst turns the throttle off.
	AuthFailureBurst    int
	AuthFailureInterval time.Duration
}

// Defaults of ServerConfig (and of the `octostore serve` flags that set
// it). DefaultMaxInFlight is in overload.go, DefaultEventHeartbeat and
// DefaultMaxStreamsPerUser in events.go.
const (
	DefaultMaxBodyBytes    = 1 << 20
	DefaultReadTimeout     = 30 * time.Second
	DefaultWriteTimeout    = 30 * time.Second
	DefaultConnIdleTimeout = 120 * time.Second
	DefaultMaxConns        = 16384
	DefaultMaxHeaderBytes  = 8192
	DefaultShutdownTimeout = 10 * time.Second
)

// withDefaults fills the zero fields (and the non-positive sizes, the
// in-flight bound, the heartbeat and the shutdown bound).
func (c ServerConfig) withDefaults() ServerConfig {
	orDefault := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	positive := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	positive(&c.MaxBodyBytes, DefaultMaxBodyBytes)
	if c.MaxBodyMemory <= 0 {
		c.MaxBodyMemory = DefaultMaxBodyMemory
	}
	if c.MaxAnswerMemory <= 0 {
		c.MaxAnswerMemory = DefaultMaxAnswerMemory
	}
	orDefault(&c.ReadTimeout, DefaultReadTimeout)
	orDefault(&c.WriteTimeout, DefaultWriteTimeout)
	orDefault(&c.IdleTimeout, DefaultConnIdleTimeout)
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	positive(&c.MaxInFlight, DefaultMaxInFlight)
	positive(&c.MaxWaiting, DefaultMaxWaiting)
	positive(&c.MaxHeaderBytes, DefaultMaxHeaderBytes)
	if c.EventHeartbeat <= 0 {
		c.EventHeartbeat = DefaultEventHeartbeat
	}
	positive(&c.MaxStreamsPerUser, DefaultMaxStreamsPerUser)
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.AuthFailureBurst == 0 {
		c.AuthFailureBurst = DefaultAuthFailureBurst
	}
	orDefault(&c.AuthFailureInterval, DefaultAuthFailureInterval)
	return c
}

// NewServer builds the server: every route, the event streams, request
// metrics and the scrape-time gauges. It panics if a required dependency is
// missing (a wiring mistake, not a runtime condition). Serve starts it.
func NewServer(cfg ServerConfig, deps Deps) *Server {
	for name, missing := range map[string]bool{
		"Locks": deps.Locks == nil, "Sessions": deps.Sessions == nil, "Semaphores": deps.Semaphores == nil, "Limits": deps.Limits == nil, "Flags": deps.Flags == nil, "Config": deps.Config == nil,
		"Sys": deps.Sys == nil, "Store": deps.Store == nil,
		"Auth": deps.Auth == nil, "Events": deps.Events == nil, "Metrics": deps.Metrics == nil,
	} {
		if missing {
			panic("httpd.NewServer: Deps." + name + " is nil")
		}
	}
	cfg = cfg.withDefaults()
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		locks: deps.Locks, sessions: deps.Sessions, sems: deps.Semaphores, limits: deps.Limits, flags: deps.Flags, config: deps.Config,
		store: deps.Store, admission: newAdmission(cfg, deps.Auth, log, deps.Now), oauth: deps.GitHub.flow(), log: log,
		reqs: newRequestContexts(cfg.RequestTimeout), limit: newInflight(cfg.MaxInFlight, cfg.MaxWaiting), r: router.New(),
		shutdownTimeout: cfg.ShutdownTimeout, done: make(chan error, 1),
	}
	s.answers = &byteBudget{max: cfg.MaxAnswerMemory}
	// Requests are labelled by route template (metrics, log) by s.handle,
	// without the router's SaveMatchedRoutePath (it allocates per request).
	s.r.RedirectTrailingSlash = false
	s.r.RedirectFixedPath = false
	s.r.HandleMethodNotAllowed = true
	s.r.HandleOPTIONS = false
	s.r.NotFound = func(ctx *fasthttp.RequestCtx) {
		s.writeErr(ctx, actors.NewError(actors.CodeNotFound, "no such route: "+string(ctx.Path())))
	}
	s.r.MethodNotAllowed = func(ctx *fasthttp.RequestCtx) {
		dropOptionsFromAllow(ctx)
		s.writeErr(ctx, actors.NewError(actors.CodeMethodNotAllowed, "method "+string(ctx.Method())+" not allowed on "+string(ctx.Path())))
	}
	s.r.PanicHandler = func(ctx *fasthttp.RequestCtx, v any) {
		s.clog.Log(slog.LevelError, "panic in handler", "route", route(ctx), "panic", fmt.Sprint(v))
		writeCoded(ctx, actors.NewError(actors.CodeInternal, "internal error"))
	}
	s.handle("GET", "/health", s.health)
	s.routes()
	s.routeOpenAPI()
	s.routeEvents(deps.Events, cfg)
	s.routeMetrics(deps.Metrics)
	observe(deps, s.limit)
	s.srv = newFastHTTP(cfg, deps.Metrics.Instrument(s.dispatch), s.clog)
	return s
}

// newFastHTTP is the fasthttp server of cfg around h: the limits, timeouts
// and the answers to requests that never reach a handler; fasthttp's own
// log lines go through clog. NewServer and, in cluster mode, NewFront serve
// through it.
func newFastHTTP(cfg ServerConfig, h fasthttp.RequestHandler, clog *clientLog) *fasthttp.Server {
	return &fasthttp.Server{
		Handler: h,
		Name:    "octostore",
		// Bodies are streamed and read by readBody (body.go), after the
		// credentials are checked: fasthttp reads at most preReadBody bytes
		// of one before the handler runs, whatever its Content-Length.
		StreamRequestBody:             true,
		MaxRequestBodySize:            preReadBody,
		ReadTimeout:                   cfg.ReadTimeout,
		WriteTimeout:                  cfg.WriteTimeout,
		IdleTimeout:                   cfg.IdleTimeout,
		Concurrency:                   cfg.MaxConns,
		ReadBufferSize:                cfg.MaxHeaderBytes, // also the request header size limit (431 beyond)
		DisableHeaderNamesNormalizing: false,
		NoDefaultServerHeader:         false,
		NoDefaultDate:                 true,
		CloseOnShutdown:               true,
		// fasthttp's own error lines (malformed requests) quote the request
		// bytes by default, which may include an Authorization header; some
		// quote header values even so, which fasthttpLogger withholds.
		SecureErrorLogMessage: true,
		Logger:                fasthttpLogger{clog},
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			var small *fasthttp.ErrSmallBuffer
			switch {
			case errors.Is(err, fasthttp.ErrBodyTooLarge):
				writeCoded(ctx, actors.NewError(actors.CodeTooLarge, "request body too large"))
			case errors.As(err, &small):
				writeCoded(ctx, actors.NewError(actors.CodeHeadersTooLarge, "request headers too large"))
			case isTimeout(err):
				writeCoded(ctx, actors.NewError(actors.CodeReadTimeout, "request not received within the read timeout"))
			default:
				writeCoded(ctx, actors.NewError(actors.CodeMalformed, "malformed request"))
			}
		},
	}
}

func (s *Server) health(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/plain; charset=utf-8")
	if !s.store.Healthy() {
		ctx.Response.Header.Set("Retry-After", "1")
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString("DEGRADED: storage writes are failing")
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetBodyString("OK")
}

// Serve accepts connections on ln in the background until Shutdown, which
// closes ln. Call it once.
func (s *Server) Serve(ln net.Listener) {
	s.ln = ln
	go func() { s.done <- s.srv.Serve(ln) }()
}

// Shutdown ends the event streams, answers the waiting acquires 503 at
// once (they leave their queues), stops accepting, and waits (at most
// ServerConfig.ShutdownTimeout) for in-flight requests; requests still
// waiting for a resource then are cancelled (cause actors.ErrClosed: 503 at
// once) and the request contexts' reaper stops. It does nothing more if
// Serve was never called or Shutdown already ran.
func (s *Server) Shutdown() error {
	if s.ln == nil {
		s.reqs.shutdown()
		return nil
	}
	s.closeStreams()  // open event streams would hold the shutdown up
	s.reqs.endWaits() // so would waiting acquires
	ctx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout)
	defer cancel()
	err := s.srv.ShutdownWithContext(ctx)
	s.reqs.shutdown()
	// fasthttp only closes the listeners Serve has registered: when shutdown
	// follows serve at once, Serve may not have started yet and would then
	// accept forever. Closing the listener ourselves ends it either way.
	s.ln.Close()
	<-s.done
	s.ln = nil
	return err
}

// GitHubSignIn is sign-in with GitHub, ready to serve /auth/github: the
// validated configuration and its own HTTP client to GitHub (oauth.go).
type GitHubSignIn struct{ g *githubOAuth }

// NewGitHubSignIn validates cfg (GitHubOAuth.WithDefaults) and builds the
// sign-in service; it returns nil, nil when cfg does not configure GitHub
// sign-in. now is the clock of state expiry and issued tokens; log gets the
// warnings about clear-text URLs. Close releases its connections to GitHub.
func NewGitHubSignIn(cfg GitHubOAuth, now func() time.Time, log *slog.Logger) (*GitHubSignIn, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	if !cfg.Configured() {
		return nil, nil
	}
	return &GitHubSignIn{g: newGitHubOAuth(cfg, now, log)}, nil
}

// Close closes the idle connections to GitHub.
func (s *GitHubSignIn) Close() { s.g.close() }

// flow is the sign-in service, nil when s is nil (not configured).
func (s *GitHubSignIn) flow() *githubOAuth {
	if s == nil {
		return nil
	}
	return s.g
}
