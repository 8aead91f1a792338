package httpd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/valyala/fasthttp"
)

// Forwarding (cluster mode): a follower sends each request to the leader as
// it came (method, path, query, headers and body unchanged, one header
// added) and returns the leader's answer as it came (status, headers,
// body). One keep-alive pool per leader URL. Event streams are proxied
// chunk by chunk, and ended when the leader changes so that their clients
// reconnect to the new one.

// hdrForwardedBy names the nodes a request was forwarded by, one value per
// hop; a request is not forwarded more than maxHops times (a loop between
// two nodes that each believe the other leads ends there).
const (
	hdrForwardedBy = "X-Octostore-Forwarded-By"
	maxHops        = 2
)

// hops counts the forwarding hops a request has made.
func hops(ctx *fasthttp.RequestCtx) int {
	return len(ctx.Request.Header.PeekAll(hdrForwardedBy))
}

var (
	errForwardLost = actors.NewError(actors.CodeUnavailable,
		"the leader did not answer (it may have failed): the request may or may not have been applied; retry")
	errLeaderURL = actors.NewError(actors.CodeUnavailable, "the leader's advertised URL is not usable; retry later")
)

// forwarder holds one upstream (keep-alive pools) per leader URL.
type forwarder struct {
	node string
	cfg  ServerConfig
	cm   *clusterMetrics

	// mu guards ups and closed.
	mu     sync.Mutex
	ups    map[string]*upstream
	closed bool
}

// upstream is one leader URL: a pool for ordinary requests and one for
// event streams (whose responses never end), the open streams and every
// connection (to cut requests stuck at a leader that froze).
type upstream struct {
	hc, sc *fasthttp.HostClient
	addr   string // host:port of the leader's API

	// mu guards streams, conns and ended.
	mu      sync.Mutex
	streams map[fasthttp.ReadCloserWithError]struct{}
	conns   map[*trackedConn]struct{}
	ended   bool
}

// trackedConn is a connection to a leader that its upstream can close.
type trackedConn struct {
	net.Conn
	up   *upstream
	once sync.Once
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.up.mu.Lock()
		delete(c.up.conns, c)
		c.up.mu.Unlock()
	})
	return err
}

// staleGrace is how long requests in flight to a node that stopped leading
// may still finish (a deposed leader answers them, or sends them on) before
// their connections are cut: a leader that froze would hold them until the
// request timeout.
const staleGrace = time.Second

func newForwarder(node string, cfg ServerConfig, cm *clusterMetrics) *forwarder {
	return &forwarder{node: node, cfg: cfg, cm: cm, ups: map[string]*upstream{}}
}

// upstream returns the pools of the leader at apiURL.
func (fw *forwarder) upstream(apiURL string) (*upstream, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if up, ok := fw.ups[apiURL]; ok {
		return up, nil
	}
	if fw.closed {
		return nil, actors.ErrClosed
	}
	u, err := url.Parse(apiURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errLeaderURL
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	up := &upstream{addr: addr, streams: map[fasthttp.ReadCloserWithError]struct{}{}, conns: map[*trackedConn]struct{}{}}
	client := func(stream bool) *fasthttp.HostClient {
		return &fasthttp.HostClient{
			Addr:                          addr,
			IsTLS:                         u.Scheme == "https",
			NoDefaultUserAgentHeader:      true,
			DisablePathNormalizing:        true, // the path exactly as the client sent it
			DisableHeaderNamesNormalizing: true, // the headers too
			SecureErrorLogMessage:         true,
			MaxConns:                      fw.cfg.MaxInFlight,
			MaxIdleConnDuration:           fw.cfg.IdleTimeout / 2, // before the leader drops them
			MaxResponseBodySize:           64 << 20,
			ReadBufferSize:                fw.cfg.MaxHeaderBytes,
			StreamResponseBody:            stream,
			DialTimeout:                   up.dial,
			// Only reads are retried on a broken pooled connection: a write
			// that was sent may have been applied.
			RetryIfErr: func(req *fasthttp.Request, attempts int, err error) (bool, bool) {
				return false, attempts < 2 && (req.Header.IsGet() || req.Header.IsHead())
			},
		}
	}
	up.hc, up.sc = client(false), client(true)
	fw.ups[apiURL] = up
	return up, nil
}

// dial connects to the leader at addr, within a second at most (a leader
// that does not accept at once is gone), and tracks the connection: a
// change of leader closes it (end).
func (up *upstream) dial(addr string, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 || timeout > time.Second {
		timeout = time.Second
	}
	c, err := fasthttp.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, up: up}
	up.mu.Lock()
	ended := up.ended
	if !ended {
		up.conns[tc] = struct{}{}
	}
	up.mu.Unlock()
	if ended {
		c.Close()
		return nil, errLeaderChanged
	}
	return tc, nil
}

// retain keeps the pools of the leader at apiURL (when forwarding) and
// ends the streams and idle connections of every other one.
func (fw *forwarder) retain(apiURL string, forwarding bool) {
	fw.mu.Lock()
	var gone []*upstream
	for u, up := range fw.ups {
		if forwarding && u == apiURL {
			continue
		}
		gone = append(gone, up)
		delete(fw.ups, u)
	}
	fw.mu.Unlock()
	for _, up := range gone {
		up.end()
	}
}

// close ends every stream and refuses new upstreams.
func (fw *forwarder) close() {
	fw.mu.Lock()
	fw.closed = true
	fw.mu.Unlock()
	fw.retain("", false)
}

// end closes the upstream's open streams and idle connections at once,
// and after staleGrace every connection still open (requests stuck there
// then fail with 503, outcome unknown).
func (up *upstream) end() {
	up.mu.Lock()
	streams := up.streams
	up.streams = map[fasthttp.ReadCloserWithError]struct{}{}
	up.ended = true
	up.mu.Unlock()
	for s := range streams {
		_ = s.CloseWithError(errLeaderChanged)
	}
	up.hc.CloseIdleConnections()
	up.sc.CloseIdleConnections()
	time.AfterFunc(staleGrace, func() {
		up.mu.Lock()
		conns := make([]*trackedConn, 0, len(up.conns))
		for c := range up.conns {
			conns = append(conns, c)
		}
		up.mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
}

var errLeaderChanged = errors.New("the leader changed")

// notSent reports whether a forwarding error certainly happened before the
// request left: the leader could not be connected to.
func notSent(err error) bool {
	var op *net.OpError
	return errors.Is(err, fasthttp.ErrDialTimeout) || errors.Is(err, fasthttp.ErrNoFreeConns) || errors.Is(err, errLeaderChanged) ||
		errors.As(err, &op) && op.Op == "dial"
}

// forward sends ctx's request to the leader and answers with its answer.
// It returns false, having answered nothing, when the leader could not be
// reached (nothing was sent): the caller waits for the election and tries
// again. The request must have been admitted (its body read: handle).
//
// The request and the answer are not copied: ctx's own request goes to
// the leader, and the leader's answer is read into ctx's response, as
// fasthttp's reverse proxies do; only the forwarding headers are added.
func (f *Front) forward(ctx *fasthttp.RequestCtx, leader LeaderInfo, start, deadline time.Time) bool {
	up, err := f.fwd.upstream(leader.APIURL)
	if err != nil {
		writeCoded(ctx, actors.AsError(err))
		return true
	}
	if isEventStream(ctx) {
		req := fasthttp.AcquireRequest()
		ctx.Request.CopyTo(req)
		f.forwardHeaders(ctx, req)
		return f.fwd.stream(ctx, up, req)
	}
	if wait := waitOf(ctx); wait > 0 {
		return f.forwardWaiting(ctx, up, leader, wait, deadline)
	}
	if f.limit.n.Add(1) > f.limit.max {
		f.limit.n.Add(-1)
		overloaded.write(ctx)
		return true
	}
	defer f.limit.n.Add(-1)
	req := &ctx.Request
	f.forwardHeaders(ctx, req)
	// Connection: close is between the client and this node; the pooled
	// connection to the leader stays open.
	clientClose := req.Header.ConnectionClose()
	req.Header.ResetConnectionClose()
	t0 := time.Now()
	// The leader bounds the request by its own request timeout; give it
	// that long from now, and a second to answer.
	err = up.hc.DoTimeout(req, &ctx.Response, f.cfg.RequestTimeout+time.Second)
	if clientClose {
		req.Header.SetConnectionClose()
	}
	switch {
	case err == nil:
		f.cm.fwdOK.Observe(time.Since(t0).Seconds())
		if !clientClose {
			// The leader closing its connection to this node is no reason
			// to close the client's.
			ctx.Response.Header.ResetConnectionClose()
		}
		return true
	case notSent(err) && time.Now().Before(deadline):
		f.cm.fwdNone.Observe(time.Since(t0).Seconds())
		ctx.Response.Reset()
		return false
	default:
		f.cm.fwdErr.Observe(time.Since(t0).Seconds())
		ctx.Response.Reset()
		f.clog.Log(slog.LevelWarn, "forward to leader failed", "leader", leader.Name, "method", string(ctx.Method()),
			"route", forwardRoute(ctx), "reason", forwardErrReason(err))
		if notSent(err) {
			writeCoded(ctx, errNoLeader)
		} else {
			writeCoded(ctx, errForwardLost)
		}
		return true
	}
}

// waitOf is how long a request may wait at the leader for its turn: the
// wait_seconds of a waiting acquire (POST /locks/{name}/acquire or
// /semaphores/{name}/acquire, at most MaxWaitSeconds), 0 for any other
// request. The body has been read (admission). A body the leader will
// refuse counts as not waiting.
func waitOf(ctx *fasthttp.RequestCtx) time.Duration {
	p := ctx.Path()
	if !ctx.IsPost() || !bytes.HasSuffix(p, []byte("/acquire")) ||
		!bytes.HasPrefix(p, []byte("/locks/")) && !bytes.HasPrefix(p, []byte("/semaphores/")) {
		return 0
	}
	var body struct {
		Wait json.Number `json:"wait_seconds"`
	}
	if json.Unmarshal(ctx.PostBody(), &body) != nil {
		return 0
	}
	s, err := body.Wait.Float64()
	if err != nil || s <= 0 {
		return 0
	}
	return time.Duration(min(s, MaxWaitSeconds) * float64(time.Second))
}

// forwardWaiting forwards a waiting acquire, which the leader may answer
// only after wait (plus its request timeout), on a connection of its own:
// when the client leaves while it waits, this node closes that connection,
// and the leader, seeing its waiter gone, takes it out of the queue
// instead of granting a lock nobody would hear of (as it does for its own
// clients). It counts against the waiting bound (MaxWaiting), not the
// in-flight one. It returns false, having answered nothing, when the
// leader could not be connected to.
func (f *Front) forwardWaiting(ctx *fasthttp.RequestCtx, up *upstream, leader LeaderInfo, wait time.Duration, deadline time.Time) bool {
	if f.limit.waiting.Add(1) > f.limit.maxWaiting {
		f.limit.waiting.Add(-1)
		writeCoded(ctx, errTooManyWaiting)
		return true
	}
	defer f.limit.waiting.Add(-1)
	t0 := time.Now()
	c, err := up.dial(up.addr, time.Second)
	if err != nil {
		if time.Now().Before(deadline) {
			f.cm.fwdNone.Observe(time.Since(t0).Seconds())
			return false
		}
		writeCoded(ctx, errNoLeader)
		return true
	}
	defer c.Close()
	req := &ctx.Request
	f.forwardHeaders(ctx, req)
	clientClose := req.Header.ConnectionClose()
	req.Header.SetConnectionClose() // one exchange on this connection
	done := make(chan error, 1)
	go func() {
		bw := bufio.NewWriter(c)
		err := req.Write(bw)
		if err == nil {
			err = bw.Flush()
		}
		if err == nil {
			err = ctx.Response.ReadLimitBody(bufio.NewReaderSize(c, max(4096, f.cfg.MaxHeaderBytes)), 1<<20)
		}
		done <- err
	}()
	// Watch the client while the leader holds the request (peerClosed);
	// the watch ends before this returns (a read deadline in the past wakes
	// it; fasthttp sets its own before it reads the next request).
	client := ctx.Conn()
	watch := make(chan bool, 1)
	go func() { watch <- peerClosed(client) }()
	watching := true
	defer func() {
		if watching {
			_ = client.SetReadDeadline(time.Unix(1, 0))
			<-watch
			_ = client.SetReadDeadline(time.Time{})
		}
	}()
	timer := time.NewTimer(f.cfg.RequestTimeout + wait + time.Second)
	defer timer.Stop()
	for {
		select {
		case err = <-done:
		case gone := <-watch:
			watching = false
			if !gone {
				watch = nil // a pipelined request follows: the client is there
				continue
			}
			c.Close() // the leader's waiter leaves the queue
			<-done
			f.cm.fwdErr.Observe(time.Since(t0).Seconds())
			ctx.Response.Reset()
			writeCoded(ctx, errClientGone)
			return true
		case <-timer.C:
			c.Close()
			err = <-done
			if err == nil {
				err = fasthttp.ErrTimeout
			}
		}
		break
	}
	if !clientClose {
		req.Header.ResetConnectionClose()
	}
	if err != nil {
		f.cm.fwdErr.Observe(time.Since(t0).Seconds())
		ctx.Response.Reset()
		f.clog.Log(slog.LevelWarn, "forward to leader failed", "leader", leader.Name, "method", string(ctx.Method()),
			"route", forwardRoute(ctx), "reason", forwardErrReason(err))
		writeCoded(ctx, errForwardLost)
		return true
	}
	f.cm.fwdOK.Observe(time.Since(t0).Seconds())
	if !clientClose {
		ctx.Response.Header.ResetConnectionClose()
	}
	return true
}

// forwardErrReason names a forwarding error from a closed set for the log.
func forwardErrReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, errLeaderChanged):
		return "leader changed"
	case notSent(err):
		return "unreachable"
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, fasthttp.ErrTimeout):
		return "timeout"
	}
	return "connection lost"
}

// forwardHeaders sets the forwarding headers of req, the request of ctx
// or its copy: this node among the hops (once per node, however often the
// request is tried), and, with the cluster's forwarding key, the client's
// address. A client's own copies of the address headers never go on.
func (f *Front) forwardHeaders(ctx *fasthttp.RequestCtx, req *fasthttp.Request) {
	h := &req.Header
	ip := f.clientIP(ctx) // before the headers change: a peer's forwarded address
	h.Del(hdrClientAddr)
	h.Del(hdrForwardKey)
	if f.hasKey {
		var b [64]byte
		addr, _ := ip.AppendText(b[:0])
		h.SetBytesV(hdrClientAddr, addr)
		h.SetBytesV(hdrForwardKey, f.fwdKeyRaw)
	}
	if ctx.UserValue(forwardedKey) == nil {
		h.Add(hdrForwardedBy, f.node)
		ctx.SetUserValue(forwardedKey, true)
	}
}

// forwardedKey marks a request this node added itself to the hops of.
const forwardedKey = "octostore.forwarded"

// forwardRoute names a forwarded request's route for the log: its first
// path segment ("/locks"), never the rest of a path a client chose.
func forwardRoute(ctx *fasthttp.RequestCtx) string {
	p := ctx.Path()
	if i := bytes.IndexByte(p[min(1, len(p)):], '/'); i >= 0 {
		p = p[:i+1]
	}
	for _, r := range []string{"/locks", "/semaphores", "/sessions", "/limits", "/flags", "/config", "/ofrep", "/auth", "/admin",
		"/events", "/metrics", "/openapi.yaml"} {
		if string(p) == r {
			return r
		}
	}
	return "other"
}

// isEventStream reports an event-stream request: GET /events, GET
// /locks/{name}/watch or GET /config/{key}/watch, by route (a config key
// or flag named "watch" is not a stream; lock names and config keys have
// no '/').
func isEventStream(ctx *fasthttp.RequestCtx) bool {
	if !ctx.IsGet() {
		return false
	}
	p := ctx.Path()
	if string(p) == "/events" {
		return true
	}
	for _, kind := range [][]byte{[]byte("/locks/"), []byte("/config/")} {
		if rest, ok := bytes.CutPrefix(p, kind); ok {
			name, ok := bytes.CutSuffix(rest, []byte("/watch"))
			return ok && len(name) > 0 && bytes.IndexByte(name, '/') < 0
		}
	}
	return false
}

// stream proxies an event stream (req: the client's request with the
// forwarding headers, released here): the leader's status and headers,
// then its body chunk by chunk, flushed as it comes, until either side
// ends it (the leader ends a revoked token's stream with a final revoked
// event, which the client gets before its stream ends) or the leader
// changes (retain).
func (fw *forwarder) stream(ctx *fasthttp.RequestCtx, up *upstream, req *fasthttp.Request) bool {
	resp := fasthttp.AcquireResponse()
	t0 := time.Now()
	err := up.sc.Do(req, resp)
	fasthttp.ReleaseRequest(req)
	if err != nil {
		fasthttp.ReleaseResponse(resp)
		if notSent(err) {
			fw.cm.fwdNone.Observe(time.Since(t0).Seconds())
			return false
		}
		fw.cm.fwdErr.Observe(time.Since(t0).Seconds())
		writeCoded(ctx, errForwardLost)
		return true
	}
	fw.cm.fwdOK.Observe(time.Since(t0).Seconds())
	body, _ := resp.BodyStream().(fasthttp.ReadCloserWithError)
	resp.Header.CopyTo(&ctx.Response.Header)
	if body == nil || resp.StatusCode() != fasthttp.StatusOK {
		// An error answer: small, read whole.
		b, _ := io.ReadAll(io.LimitReader(resp.BodyStream(), 1<<20))
		ctx.Response.SetBody(b)
		fasthttp.ReleaseResponse(resp)
		return true
	}
	up.mu.Lock()
	if up.ended {
		_ = body.CloseWithError(errLeaderChanged) // ended while this stream started
	} else {
		up.streams[body] = struct{}{}
	}
	up.mu.Unlock()
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer func() {
			up.mu.Lock()
			delete(up.streams, body)
			up.mu.Unlock()
			_ = body.CloseWithError(nil)
			fasthttp.ReleaseResponse(resp)
		}()
		buf := make([]byte, 4096)
		for {
			n, err := body.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				if w.Flush() != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
	return true
}
