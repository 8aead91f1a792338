// Package httpd is octostore's HTTP API: a fasthttp server with one handler
// file per resource, one error → status map (errors.go) and bearer-token
// authentication (auth.go). Handlers validate input, call the resource
// kind's typed entry point (actors.Locks, Limits, Flags, ConfigKeys) with
// the request's context (reqctx.go: request timeout, shutdown, client
// gone) and render its answer; they hold no state of their own besides the
// token cache.
//
// Errors: a handler returns an error (coded: actors.Error) instead of
// answering it, and errors.go alone turns it into a status and a body.
package httpd

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/fasthttp/router"
	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/persistence"
	"github.com/valyala/fasthttp"
)

// Services are the typed entry points of the resource kinds the API
// serves.
type Services struct {
	Locks  *actors.Locks
	Limits *actors.Limits
	Flags  *actors.Flags
	Config *actors.ConfigKeys
}

// Server is the HTTP front of the runtime.
type Server struct {
	locks  *actors.Locks
	limits *actors.Limits
	flags  *actors.Flags
	config *actors.ConfigKeys
	store  *persistence.Store // health, tokens, sign-in
	auth   *Authenticator
	oauth  *githubOAuth // nil: GitHub sign-in not configured (501)
	log    *slog.Logger
	reqs   *requestContexts
	r      *router.Router
	srv    *fasthttp.Server
	ln     net.Listener
	done   chan error

	// events serves /events and /locks/{name}/watch, metrics /metrics
	// (events.go, metrics.go; set by App.observe before serving).
	events  *eventStreams
	metrics *Metrics
}

// ServerConfig tunes the HTTP server.
type ServerConfig struct {
	MaxBodyBytes int           // request body limit (413 beyond)
	ReadTimeout  time.Duration // whole request, headers and body
	WriteTimeout time.Duration
	IdleTimeout  time.Duration // keep-alive connections
	MaxConns     int           // concurrent connections
	// MaxInFlight bounds requests being handled at once; beyond it the
	// server answers 503 + Retry-After at once (default DefaultMaxInFlight).
	MaxInFlight int
	// MaxHeaderBytes is the request line + headers limit (431 beyond;
	// default 8192).
	MaxHeaderBytes int
	// RequestTimeout bounds how long a request waits for its resource (503
	// beyond; default DefaultRequestTimeout).
	RequestTimeout time.Duration
}

func newServer(svc Services, store *persistence.Store, auth *Authenticator, log *slog.Logger, cfg ServerConfig) *Server {
	s := &Server{locks: svc.Locks, limits: svc.Limits, flags: svc.Flags, config: svc.Config,
		store: store, auth: auth, log: log, reqs: newRequestContexts(cfg.RequestTimeout), r: router.New(), done: make(chan error, 1)}
	s.r.SaveMatchedRoutePath = true // metrics label requests by route template
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
		s.log.Error("panic in handler", "path", string(ctx.Path()), "panic", v)
		writeCoded(ctx, actors.NewError(actors.CodeInternal, "internal error"))
	}
	s.r.GET("/health", s.health)
	s.routes()
	s.routeOpenAPI()
	s.srv = &fasthttp.Server{
		Handler:                       newInflight(cfg.MaxInFlight).wrap(s.r.Handler),
		Name:                          "octostore",
		MaxRequestBodySize:            cfg.MaxBodyBytes,
		ReadTimeout:                   cfg.ReadTimeout,
		WriteTimeout:                  cfg.WriteTimeout,
		IdleTimeout:                   cfg.IdleTimeout,
		Concurrency:                   cfg.MaxConns,
		ReadBufferSize:                headerLimit(cfg.MaxHeaderBytes), // also the request header size limit (431 beyond)
		DisableHeaderNamesNormalizing: false,
		NoDefaultServerHeader:         false,
		NoDefaultDate:                 true,
		CloseOnShutdown:               true,
		// fasthttp's own error lines (malformed requests) quote the request
		// bytes by default, which may include an Authorization header.
		SecureErrorLogMessage: true,
		Logger:                fasthttpLogger{log},
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
	return s
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

// serve accepts connections on ln until shutdown.
func (s *Server) serve(ln net.Listener) {
	s.ln = ln
	go func() { s.done <- s.srv.Serve(ln) }()
}

// shutdown stops accepting, waits for in-flight requests, then returns.
// Requests still waiting when timeout runs out have their contexts
// cancelled (cause actors.ErrClosed): they answer 503 at once.
func (s *Server) shutdown(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := s.srv.ShutdownWithContext(ctx)
	s.reqs.shutdown()
	// fasthttp only closes the listeners Serve has registered: when shutdown
	// follows serve at once, Serve may not have started yet and would then
	// accept forever. Closing the listener ourselves ends it either way.
	s.ln.Close()
	<-s.done
	return err
}
