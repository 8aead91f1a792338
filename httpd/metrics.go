package httpd

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/router"
	"github.com/octostore/octostore/actors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/valyala/fasthttp"
)

// Metrics is the server's Prometheus registry and the instruments on the
// request and commit paths. Scrape-time values (live actors, held locks,
// subscribers, …) are read by collector functions when /metrics is served.
//
// Per request the cost is two clock readings, one map lookup of the route
// template (a copy-on-write map: no lock) and two atomic pointer loads of
// pre-resolved label children; nothing is allocated once a route, method
// and status have been seen.
type Metrics struct {
	// Registry holds every octostore metric plus the Go and process collectors.
	Registry *prometheus.Registry

	requests      *prometheus.CounterVec   // route, method, code
	latency       *prometheus.HistogramVec // route, method
	batchSize     prometheus.Histogram
	commitSeconds prometheus.Histogram
	sqliteErrors  prometheus.Counter

	routes atomic.Pointer[map[string]*routeMetrics]
	mu     sync.Mutex // serialises additions to routes and to a route's methods and codes

	// observed is the runtime the scrape-time gauges read (observe.go);
	// nil while there is none (a follower in cluster mode).
	observed    atomic.Pointer[observedRuntime]
	observeOnce sync.Once
}

// The method label is one of a few fixed values.
const (
	methodGET = iota
	methodPOST
	methodPUT
	methodDELETE
	methodOther
	numMethods
)

var methodNames = [numMethods]string{"GET", "POST", "PUT", "DELETE", "other"}

func methodIndex(m []byte) int {
	switch string(m) { // no allocation: the compiler compares in place
	case "GET":
		return methodGET
	case "POST":
		return methodPOST
	case "PUT":
		return methodPUT
	case "DELETE":
		return methodDELETE
	}
	return methodOther
}

type routeMetrics struct {
	route   string
	methods [numMethods]atomic.Pointer[methodMetrics]
}

type methodMetrics struct {
	route, method string
	latency       prometheus.Observer
	codes         [600]atomic.Pointer[counterRef] // by status code (0 for anything out of range)
}

type counterRef struct{ c prometheus.Counter }

// unmatchedRoute labels requests that matched no route (404 and 405).
const unmatchedRoute = "unmatched"

// LatencyBuckets are the upper bounds (seconds) of the request latency
// histogram: 50µs doubling up to ~6.5s.
var LatencyBuckets = prometheus.ExponentialBuckets(0.00005, 2, 18)

// NewMetrics builds the registry with the request and writer instruments.
func NewMetrics() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "octostore_http_requests_total",
		Help: "HTTP requests by route template, method and status code.",
	}, []string{"route", "method", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "octostore_http_request_duration_seconds",
		Help:    "HTTP request latency by route template and method (for event streams: until the stream starts).",
		Buckets: LatencyBuckets,
	}, []string{"route", "method"})
	m.batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "octostore_writer_batch_size",
		Help:    "Writes per group-commit transaction.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 13), // 1 .. 4096
	})
	m.commitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "octostore_writer_commit_duration_seconds",
		Help:    "Duration of one group commit (apply the batch, COMMIT, fsync).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 100µs .. ~3.3s
	})
	m.sqliteErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "octostore_sqlite_errors_total",
		Help: "Failed write batches (SQLite errors); each fails every write of its batch.",
	})
	m.Registry.MustRegister(m.requests, m.latency, m.batchSize, m.commitSeconds, m.sqliteErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	empty := map[string]*routeMetrics{}
	m.routes.Store(&empty)
	return m
}

// ObserveBatch records one writer batch (persistence.Writer.OnBatch).
func (m *Metrics) ObserveBatch(size int, d time.Duration, err error) {
	m.batchSize.Observe(float64(size))
	m.commitSeconds.Observe(d.Seconds())
	if err != nil {
		m.sqliteErrors.Inc()
	}
}

// matchedRouteKey is the user value key of a request's route (a
// *routeInfo: Server.handle sets it, routeOf reads it), boxed once, so
// that setting and looking it up do not allocate. It is the router's own
// key (router.MatchedRoutePathParam), which nothing else uses.
var matchedRouteKey any = router.MatchedRoutePathParam

// Instrument wraps the server's handler. Requests are labelled by route
// template (routeOf: Server.handle).
func (m *Metrics) Instrument(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		start := time.Now()
		next(ctx)
		d := time.Since(start)
		route := unmatchedRoute
		if ri := routeOf(ctx); ri != nil {
			route = ri.label
		}
		mm := m.method(m.route(route), methodIndex(ctx.Method()))
		mm.latency.Observe(d.Seconds())
		m.code(mm, ctx.Response.StatusCode()).Inc()
	}
}

func (m *Metrics) route(route string) *routeMetrics {
	if r := (*m.routes.Load())[route]; r != nil {
		return r
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.routes.Load()
	if r := old[route]; r != nil {
		return r
	}
	next := make(map[string]*routeMetrics, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	r := &routeMetrics{route: route}
	next[route] = r
	m.routes.Store(&next)
	return r
}

func (m *Metrics) method(r *routeMetrics, i int) *methodMetrics {
	if mm := r.methods[i].Load(); mm != nil {
		return mm
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if mm := r.methods[i].Load(); mm != nil {
		return mm
	}
	mm := &methodMetrics{route: r.route, method: methodNames[i], latency: m.latency.WithLabelValues(r.route, methodNames[i])}
	r.methods[i].Store(mm)
	return mm
}

func (m *Metrics) code(mm *methodMetrics, status int) prometheus.Counter {
	if status < 0 || status >= len(mm.codes) {
		status = 0
	}
	if c := mm.codes[status].Load(); c != nil {
		return c.c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := mm.codes[status].Load(); c != nil {
		return c.c
	}
	c := &counterRef{c: m.requests.WithLabelValues(mm.route, mm.method, strconv.Itoa(status))}
	mm.codes[status].Store(c)
	return c.c
}

// GaugeFunc registers a gauge read at scrape time.
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// CounterFunc registers a counter read at scrape time.
func (m *Metrics) CounterFunc(name, help string, f func() float64) {
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
}

// contentType is the Prometheus text exposition format.
var contentType = expfmt.NewFormat(expfmt.TypeTextPlain)

// Write renders the registry in the text exposition format.
func (m *Metrics) Write(w *bytes.Buffer) error {
	mfs, err := m.Registry.Gather()
	if err != nil && len(mfs) == 0 {
		return err
	}
	enc := expfmt.NewEncoder(w, contentType)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return nil
}

// routeMetrics registers GET /metrics on the API port, for the admin only.
func (s *Server) routeMetrics(m *Metrics) {
	s.metrics = m
	s.handle("GET", "/metrics", s.authed(s.serveMetrics))
}

var errMetricsAdminOnly = actors.NewError(actors.CodeForbidden, "metrics are only available to the admin principal")

func (s *Server) serveMetrics(ctx *fasthttp.RequestCtx, _ *request, p *Principal) error {
	if !p.Admin {
		return errMetricsAdminOnly
	}
	var buf bytes.Buffer
	if err := s.metrics.Write(&buf); err != nil {
		return actors.Wrap(actors.CodeInternal, "gather metrics failed", err) // logged by writeErr
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType(string(contentType))
	ctx.SetBody(buf.Bytes())
	return nil
}

// MetricsHandler serves GET /metrics from m's registry without
// authentication: for the separate metrics listener (serve --metrics-addr,
// on a private interface), never for the API port.
func MetricsHandler(m *Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	return mux
}

// AuxServer is a plain net/http server on an address of its own, for the
// side endpoints kept off the API port: the metrics listener
// (MetricsHandler) and pprof.
type AuxServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{} // closed when Serve has returned
}

// ServeAux listens on addr and serves h there in the background until Close.
func ServeAux(addr string, h http.Handler) (*AuxServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	a := &AuxServer{
		srv:  &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(a.done)
		_ = a.srv.Serve(ln) // ErrServerClosed after Close
	}()
	return a, nil
}

// Addr is the address the server accepts on (the real port for :0).
func (a *AuxServer) Addr() net.Addr { return a.ln.Addr() }

// Close stops accepting and waits at most timeout for requests in progress
// (then cuts them off); it returns once the serving goroutine has ended.
func (a *AuxServer) Close(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := a.srv.Shutdown(ctx)
	if err != nil {
		a.srv.Close()
	}
	<-a.done
	return err
}
