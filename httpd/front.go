package httpd

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// Cluster mode (issue 14): every node serves the API on its listener through
// a Front. Only the leader runs the actors: while this node leads, the Front
// hands each request to the Server of its term (Local); otherwise it
// forwards the request, unchanged, to the leader (forward.go). /health is
// answered by every node itself, and so is /cluster (cluster.go).
//
// A term's Server is built by NewServer like a single node's, but never
// serves a listener: Publish makes the Front use it, Withdraw stops that
// and drains it. Requests that the deposed term refused before applying
// anything (actors.ErrNotLeader) and reads answered after its lease could
// have expired are sent on to the next leader instead of being answered.

// LeaderInfo identifies the cluster's leader.
type LeaderInfo struct {
	Name   string    // node name (--node)
	APIURL string    // where it serves the API (--advertise-url)
	Since  time.Time // when it won, by its clock (zero if unknown)
}

// Leadership is what the Front needs of the election.
type Leadership interface {
	// Leader returns the current leader; ok is false while none is known.
	Leader() (info LeaderInfo, ok bool)
	// Changed returns a channel closed at the next change of Leader (take
	// it before reading Leader).
	Changed() <-chan struct{}
}

// Local is a leader term's stack as the Front serves it: the term's Server
// and the test of its lease.
type Local struct {
	Server *Server
	// Fresh reports whether the term's lease is certainly still alive
	// (etcdstore.Term.Fresh): checked after a read was answered, before the
	// answer leaves.
	Fresh func() bool
	// Done is closed when the term has ended (etcdstore.Term.Done).
	Done <-chan struct{}

	active  atomic.Int64  // requests inside Server's handler
	closing atomic.Bool   // Withdraw: no more requests
	idle    chan struct{} // capacity 1: "active reached 0 while closing"
}

func (l *Local) ended() bool {
	select {
	case <-l.Done:
		return true
	default:
		return false
	}
}

// enter counts a request in, unless the stack is being withdrawn.
func (l *Local) enter() bool {
	l.active.Add(1)
	if l.closing.Load() {
		l.exit()
		return false
	}
	return true
}

func (l *Local) exit() {
	if l.active.Add(-1) == 0 && l.closing.Load() {
		select {
		case l.idle <- struct{}{}:
		default:
		}
	}
}

// FrontConfig configures a Front.
type FrontConfig struct {
	Server ServerConfig // the listener's limits and timeouts, the request timeout
	Node   string       // this node's name (--node)
	// Auth is the node's own Authenticator, over the tokens every node
	// reads (etcdstore.Reader): it admits the requests this node forwards
	// before their bodies are read (admission.go), and GET /cluster.
	// Required. The leader's term authenticates every request again.
	Auth *Authenticator
	// ForwardKey is the cluster's forwarding key (etcdstore.ForwardKey):
	// this node sends it with the client's address of each request it
	// forwards, and believes the address of requests forwarded to it that
	// carry it (the term's Server too: Publish). Empty: no address is
	// passed on, and every client of a follower counts as the follower.
	ForwardKey []byte
	// Status reads the cluster's state for GET /cluster; ctx bounds it.
	Status func(ctx context.Context) (ClusterStatus, error)
	// Now is the clock of the client log's rate limits and of the auth
	// throttle (default time.Now).
	Now func() time.Time
}

// Front is a cluster node's HTTP server (see the top of this file). Its
// zero value is not usable: NewFront builds it.
type Front struct {
	cfg    ServerConfig
	node   string
	lead   Leadership
	log    *slog.Logger
	status func(ctx context.Context) (ClusterStatus, error)
	// admission admits forwarded requests and GET /cluster as a Server
	// admits its own (admission.go), with this node's budget and throttle.
	admission
	fwdKeyRaw []byte // sent with forwarded requests
	metrics   *Metrics
	cm        *clusterMetrics
	fwd       *forwarder
	limit     *inflight // forwarded requests
	srv       *fasthttp.Server

	local atomic.Pointer[Local]
	// mu guards localChanged.
	mu           sync.Mutex
	localChanged chan struct{} // closed and replaced at every Publish and Withdraw

	stop chan struct{} // closed by Shutdown: ends the leader watcher
	// watched is closed when the leader watcher has returned.
	watched chan struct{}
	ln      net.Listener
	done    chan error
}

// NewFront builds a node's front: lead says who leads, m gets the request
// metrics of the local stack and the cluster series (role, leader changes,
// forwarding, etcd transactions). Serve starts it. It panics without
// cfg.Auth (a wiring mistake).
func NewFront(cfg FrontConfig, lead Leadership, m *Metrics, log *slog.Logger) *Front {
	if cfg.Auth == nil {
		panic("httpd.NewFront: FrontConfig.Auth is nil")
	}
	sc := cfg.Server.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Front{cfg: sc, node: cfg.Node, lead: lead, log: log, metrics: m, status: cfg.Status,
		admission: newAdmission(sc, cfg.Auth, log, cfg.Now), fwdKeyRaw: cfg.ForwardKey,
		limit: newInflight(sc.MaxInFlight, sc.MaxWaiting), localChanged: make(chan struct{}),
		stop: make(chan struct{}), watched: make(chan struct{}), done: make(chan error, 1)}
	f.trustForwardKey(cfg.ForwardKey)
	f.cm = newClusterMetrics(m, f)
	f.fwd = newForwarder(cfg.Node, sc, f.cm)
	f.srv = newFastHTTP(sc, f.handle, f.clog)
	go f.watchLeader()
	return f
}

// Publish makes l the stack that serves requests (this node leads and has
// recovered its state).
func (f *Front) Publish(l *Local) {
	l.idle = make(chan struct{}, 1)
	// Before l serves: its Server believes the client addresses this
	// node's peers forward.
	l.Server.trustForwardKey(f.fwdKeyRaw)
	f.local.Store(l)
	f.signalLocal()
}

// Unpublish stops serving from l at once: new requests are forwarded or
// wait for a leader. Withdraw drains it afterwards.
func (f *Front) Unpublish(l *Local) {
	if f.local.CompareAndSwap(l, nil) {
		f.signalLocal()
	}
}

// Withdraw stops serving from l at once (Unpublish), then drains it: its event streams and waiting acquires end, requests
// inside its handler get timeout to finish, after which those still
// waiting for a resource are cancelled (503). The caller closes l's
// dependencies afterwards.
func (f *Front) Withdraw(l *Local, timeout time.Duration) {
	f.Unpublish(l)
	l.closing.Store(true)
	l.Server.closeStreams()
	l.Server.reqs.endWaits() // waiting acquires: 503 now (the term's queues end with it)
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		for l.active.Load() > 0 {
			select {
			case <-l.idle:
			case <-t.C:
				return l.active.Load() == 0
			}
		}
		return true
	}
	if !wait(timeout) {
		l.Server.reqs.shutdown() // the waiting requests end with 503 at once
		wait(timeout)
	}
	l.Server.reqs.shutdown()
	unobserve(l.Server, f.metrics)
}

func (f *Front) signalLocal() {
	f.mu.Lock()
	close(f.localChanged)
	f.localChanged = make(chan struct{})
	f.mu.Unlock()
}

func (f *Front) localChange() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.localChanged
}

// Serve accepts connections on ln in the background until Shutdown.
func (f *Front) Serve(ln net.Listener) {
	f.ln = ln
	go func() { f.done <- f.srv.Serve(ln) }()
}

// Shutdown ends the proxied event streams, stops accepting and waits (at
// most the shutdown timeout) for requests in flight. The local stack, if
// any, must have been withdrawn first.
func (f *Front) Shutdown() error {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	<-f.watched
	f.fwd.close()
	if f.ln == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.cfg.ShutdownTimeout)
	defer cancel()
	err := f.srv.ShutdownWithContext(ctx)
	f.ln.Close()
	<-f.done
	f.ln = nil
	return err
}

// Serving reports whether this node serves requests from its own stack
// now (it leads and has recovered).
func (f *Front) Serving() bool {
	l := f.local.Load()
	return l != nil && !l.ended()
}

// notLeaderKey marks a response answered with CodeNotLeader (errors.go).
const notLeaderKey = "octostore.notLeader"

func markNotLeader(ctx *fasthttp.RequestCtx) { ctx.SetUserValue(notLeaderKey, true) }

func isNotLeader(ctx *fasthttp.RequestCtx) bool {
	v, _ := ctx.UserValue(notLeaderKey).(bool)
	return v
}

var (
	errNoLeader = actors.NewError(actors.CodeUnavailable, "no leader: the cluster is electing one or has lost its quorum, retry later")
	errHops     = actors.NewError(actors.CodeUnavailable, "the leader moved while the request was forwarded, retry")
)

// handle is the Front's request handler.
func (f *Front) handle(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	switch string(path) {
	case "/health":
		f.health(ctx)
		return
	case "/cluster":
		f.clusterStatus(ctx)
		return
	}
	start := time.Now()
	deadline := start.Add(f.cfg.RequestTimeout)
	admitted := false
	var reserved int64
	defer func() {
		if reserved > 0 {
			f.bodies.release(reserved)
		}
	}()
	for {
		// Take the change channels before looking, so that no change
		// between the look and the wait is missed.
		leadChanged, localChanged := f.lead.Changed(), f.localChange()
		var termDone <-chan struct{}
		info, known := f.lead.Leader()
		if l := f.local.Load(); l != nil && !l.ended() {
			if f.serveLocal(l, ctx) {
				return
			}
			// Refused by a term that is ending: wait for it to end (or
			// for the next leader) before looking again.
			termDone = l.Done
		} else if known && info.Name != f.node && info.APIURL != "" {
			if hops(ctx) >= maxHops {
				writeCoded(ctx, errHops)
				return
			}
			if !admitted {
				// Admitted here as the leader would admit it: a request
				// that fails is answered by this node, and only an
				// admitted request's body is read (to forward it).
				var err error
				if reserved, err = f.admitForward(ctx); err != nil {
					writeCoded(ctx, actors.AsError(err))
					return
				}
				admitted = true
			}
			if f.forward(ctx, info, start, deadline) {
				return
			}
			// The leader could not be reached (nothing was sent): wait for
			// the election to notice, then try again.
		}
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-leadChanged:
		case <-localChanged:
		case <-termDone:
		case <-t.C:
			writeCoded(ctx, errNoLeader)
			return
		}
		t.Stop()
	}
}

// admitForward admits a request this node forwards (admission.go) and
// returns the bytes of the body budget its body holds. A request without
// credentials and without a body goes on unadmitted: the leader answers
// it (the public routes: sign-in, the contract; or a 401 or 404).
func (f *Front) admitForward(ctx *fasthttp.RequestCtx) (int64, error) {
	if !carriesCredential(ctx) && !hasUnreadBody(ctx) {
		return 0, nil
	}
	_, reserved, err := f.admit(ctx)
	return reserved, err
}

// serveLocal serves ctx from the term's stack and reports whether the
// answer stands. It does not when the term refused the request before
// applying anything (CodeNotLeader), or when a read or a rate-limit check
// (answered from memory, not from a commit) was answered after the term's
// lease could have expired: then a new leader may already have changed the
// state, so the answer is dropped and the request goes to that leader.
func (f *Front) serveLocal(l *Local, ctx *fasthttp.RequestCtx) bool {
	if !l.enter() {
		return false
	}
	l.Server.srv.Handler(ctx)
	l.exit()
	if isNotLeader(ctx) || (answeredFromMemory(ctx) && !l.Fresh()) {
		f.cm.refused.Inc()
		ctx.Response.Reset()
		ctx.ResetUserValues()
		return false
	}
	return true
}

// answeredFromMemory reports whether the answer to ctx depends on the
// leader's in-memory state alone: reads (GET, except the event streams,
// which follow commits), rate-limit checks (POST /limits/{name}/check and
// the batch POST /limits/check: answered before their write) and flag
// evaluations (POST /ofrep/v1/evaluate/flags[/{key}]).
func answeredFromMemory(ctx *fasthttp.RequestCtx) bool {
	if ctx.Response.IsBodyStream() {
		return false
	}
	if ctx.IsGet() || ctx.IsHead() {
		return true
	}
	if !ctx.IsPost() {
		return false
	}
	p := ctx.Path()
	return bytes.HasPrefix(p, []byte("/limits/")) && bytes.HasSuffix(p, []byte("/check")) ||
		bytes.HasPrefix(p, []byte("/ofrep/v1/evaluate/flags"))
}

// health answers /health: 200 while this node serves from its own stack
// with healthy storage, or knows another leader to forward to; 503 with
// Retry-After otherwise.
func (f *Front) health(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/plain; charset=utf-8")
	if l := f.local.Load(); l != nil && !l.ended() {
		if !l.Server.store.Healthy() {
			ctx.Response.Header.Set("Retry-After", "1")
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			ctx.SetBodyString("DEGRADED: storage writes are failing")
			return
		}
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.SetBodyString("OK")
		return
	}
	if info, ok := f.lead.Leader(); ok && info.Name != f.node {
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.SetBodyString("OK")
		return
	}
	ctx.Response.Header.Set("Retry-After", "1")
	ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	ctx.SetBodyString("NO LEADER: this node knows no leader to serve or forward to")
}

// watchLeader follows the election: it counts leader changes and ends the
// proxied streams and pooled connections to a node that no longer leads.
func (f *Front) watchLeader() {
	defer close(f.watched)
	var last string
	for {
		ch := f.lead.Changed()
		info, ok := f.lead.Leader()
		cur := ""
		if ok {
			cur = info.Name
		}
		if cur != "" && cur != last {
			if last != "" {
				f.cm.changes.Inc()
			}
			last = cur
		}
		f.fwd.retain(info.APIURL, ok && info.Name != f.node)
		select {
		case <-ch:
		case <-f.stop:
			return
		}
	}
}

// clusterMetrics are the cluster series: role, leader changes, forwarding
// and the etcd transactions of the leader's writer.
type clusterMetrics struct {
	changes  prometheus.Counter
	refused  prometheus.Counter
	forward  *prometheus.HistogramVec // result
	fwdOK    prometheus.Observer
	fwdErr   prometheus.Observer
	fwdNone  prometheus.Observer
	txn      prometheus.Histogram
	txnSize  prometheus.Histogram
	txnFails prometheus.Counter
}

func newClusterMetrics(m *Metrics, f *Front) *clusterMetrics {
	cm := &clusterMetrics{
		changes: prometheus.NewCounter(prometheus.CounterOpts{Name: "octostore_cluster_leader_changes_total",
			Help: "Changes of the cluster's leader seen by this node."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "octostore_cluster_refused_answers_total",
			Help: "Answers of this node's stack withheld because its term ended or its lease could have expired; the requests went to the next leader."}),
		forward: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "octostore_forward_duration_seconds",
			Help:    "Requests forwarded to the leader, by result (ok: the leader answered; unreachable: nothing sent; error: sent, no answer).",
			Buckets: LatencyBuckets}, []string{"result"}),
		txn: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "octostore_etcd_txn_duration_seconds",
			Help:    "Duration of one guarded etcd transaction of the leader's group-commit writer.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		txnSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "octostore_etcd_txn_writes",
			Help:    "Writes per etcd transaction of the leader's writer.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13)}),
		txnFails: prometheus.NewCounter(prometheus.CounterOpts{Name: "octostore_etcd_txn_failures_total",
			Help: "Failed etcd transactions (refused by the election guard, outcome unknown, etcd errors); each fails its writes."}),
	}
	cm.fwdOK, cm.fwdErr, cm.fwdNone = cm.forward.WithLabelValues("ok"), cm.forward.WithLabelValues("error"), cm.forward.WithLabelValues("unreachable")
	m.Registry.MustRegister(cm.changes, cm.refused, cm.forward, cm.txn, cm.txnSize, cm.txnFails)
	m.GaugeFunc("octostore_cluster_leader", "1 while this node leads and serves from its own stack, 0 otherwise.",
		func() float64 {
			if f.Serving() {
				return 1
			}
			return 0
		})
	m.GaugeFunc("octostore_cluster_leader_known", "1 while this node knows a leader (itself or another node).",
		func() float64 {
			if _, ok := f.lead.Leader(); ok {
				return 1
			}
			return 0
		})
	return cm
}

// ObserveTxn records one transaction of the leader's etcd writer
// (etcdstore.Options.OnBatch).
func (f *Front) ObserveTxn(size int, d time.Duration, err error) {
	f.cm.txn.Observe(d.Seconds())
	f.cm.txnSize.Observe(float64(size))
	if err != nil {
		f.cm.txnFails.Inc()
	}
}
