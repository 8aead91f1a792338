// Package httpd is octostore's HTTP API: a fasthttp server with one handler
// file per resource, one error → status map (errors.go) and bearer-token
// authentication (auth.go). Handlers validate input, then ask the resource's
// actor (package actors) and render its answer; they hold no state of their
// own besides the token cache.
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

// Server is the HTTP front of the runtime.
type Server struct {
	sys   *actors.System
	store *persistence.Store
	auth  *Authenticator
	oauth *githubOAuth // nil: GitHub sign-in not configured (501)
	log   *slog.Logger
	r     *router.Router
	srv   *fasthttp.Server
	ln    net.Listener
	done  chan error
	res   *actors.Resources // rate limits, flags, config (resources.go)

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
}

func newServer(sys *actors.System, store *persistence.Store, auth *Authenticator, log *slog.Logger, cfg ServerConfig) *Server {
	s := &Server{sys: sys, store: store, auth: auth, log: log, r: router.New(), done: make(chan error, 1)}
	s.r.SaveMatchedRoutePath = true // metrics label requests by route template
	s.r.RedirectTrailingSlash = false
	s.r.RedirectFixedPath = false
	s.r.HandleMethodNotAllowed = true
	s.r.HandleOPTIONS = false
	s.r.NotFound = func(ctx *fasthttp.RequestCtx) {
		writeError(ctx, fasthttp.StatusNotFound, "no such route: "+string(ctx.Path()))
	}
	s.r.MethodNotAllowed = func(ctx *fasthttp.RequestCtx) {
		dropOptionsFromAllow(ctx)
		writeError(ctx, fasthttp.StatusMethodNotAllowed, "method "+string(ctx.Method())+" not allowed on "+string(ctx.Path()))
	}
	s.r.PanicHandler = func(ctx *fasthttp.RequestCtx, v any) {
		s.log.Error("panic in handler", "path", string(ctx.Path()), "panic", v)
		writeError(ctx, fasthttp.StatusInternalServerError, "internal error")
	}
	s.r.GET("/health", s.health)
	s.routeLocks()
	s.routeLimits()
	s.routeFlags()
	s.routeConfig()
	s.routeAuth()
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
				writeError(ctx, fasthttp.StatusRequestEntityTooLarge, "request body too large")
			case errors.As(err, &small):
				writeError(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, "request headers too large")
			case isTimeout(err):
				writeError(ctx, fasthttp.StatusRequestTimeout, "request not received within the read timeout")
			default:
				writeError(ctx, fasthttp.StatusBadRequest, "malformed request")
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
func (s *Server) shutdown(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := s.srv.ShutdownWithContext(ctx)
	// fasthttp only closes the listeners Serve has registered: when shutdown
	// follows serve at once, Serve may not have started yet and would then
	// accept forever. Closing the listener ourselves ends it either way.
	s.ln.Close()
	<-s.done
	return err
}
