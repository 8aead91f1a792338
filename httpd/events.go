package httpd

import (
	"bufio"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/valyala/fasthttp"
)

// Server-sent events: GET /events and GET /locks/{name}/watch.
//
// Each stream is a fasthttp body stream writer (its own goroutine) that reads
// the caller's broker subscription and writes SSE frames, plus a goroutine
// that reads the connection only to notice at once when the client goes
// away. The subscription is closed whenever the writer returns: client gone,
// write error, lagged, or server shutdown.

// DefaultEventHeartbeat is how often an idle stream gets a ": ping" comment.
const DefaultEventHeartbeat = 15 * time.Second

// shutdownGrace bounds the final write of a stream at shutdown (the end of
// the chunked body); a client that does not read is cut off after it.
const shutdownGrace = 250 * time.Millisecond

// eventStreams serves the event endpoints and tracks open streams so that
// shutdown can end them.
type eventStreams struct {
	broker       *actors.Broker
	heartbeat    time.Duration
	writeTimeout time.Duration // per write; renewed before every flush

	// mu guards streams and stopped.
	mu      sync.Mutex
	streams map[*stream]struct{}
	stopped bool
	stop    chan struct{} // closed by close
}

// stream is one open event stream.
type stream struct {
	conn net.Conn
	sub  *actors.Subscription
	// mu guards ending and the connection's write deadline, so that the
	// short deadline set at shutdown is never replaced by a long one.
	mu     sync.Mutex
	ending bool
}

// routeEvents registers the event endpoints, served from broker (NewServer
// passes its configuration with the defaults filled in).
func (s *Server) routeEvents(broker *actors.Broker, heartbeat time.Duration, writeTimeout time.Duration) {
	if writeTimeout < 2*heartbeat {
		writeTimeout = 2 * heartbeat // a heartbeat always renews the deadline in time
	}
	s.events = &eventStreams{
		broker: broker, heartbeat: heartbeat, writeTimeout: writeTimeout,
		streams: map[*stream]struct{}{}, stop: make(chan struct{}),
	}
	s.r.GET("/events", s.authed(s.eventsAll))
	s.r.GET("/locks/{name}/watch", s.authed(s.lockWatch))
}

// closeStreams ends every open stream cleanly and refuses new ones. Call it
// before shutting the HTTP server down, which waits for open responses.
func (s *Server) closeStreams() {
	if s.events != nil {
		s.events.close()
	}
}

func (es *eventStreams) close() {
	es.mu.Lock()
	defer es.mu.Unlock()
	if es.stopped {
		return
	}
	es.stopped = true
	close(es.stop)
	for st := range es.streams {
		st.mu.Lock()
		st.ending = true
		_ = st.conn.SetWriteDeadline(time.Now().Add(shutdownGrace))
		st.mu.Unlock()
	}
}

func (es *eventStreams) add(st *stream) bool {
	es.mu.Lock()
	defer es.mu.Unlock()
	if es.stopped {
		return false
	}
	es.streams[st] = struct{}{}
	return true
}

func (es *eventStreams) remove(st *stream) {
	es.mu.Lock()
	delete(es.streams, st)
	es.mu.Unlock()
}

// eventKinds are the valid values of ?kind=.
var eventKinds = map[string]bool{"": true, "lock": true, "semaphore": true, "session": true, "flag": true, "config": true, "limit": true}

// maxPrefix bounds ?prefix= (names are at most 128 characters).
const maxPrefix = 256

var (
	errEventKind   = invalid("kind must be one of lock, semaphore, session, flag, config, limit")
	errEventPrefix = invalid("prefix must be at most 256 characters")
)

func (s *Server) eventsAll(ctx *fasthttp.RequestCtx, _ *request, p *Principal) error {
	q := ctx.QueryArgs()
	kind := string(q.Peek("kind"))
	if !eventKinds[kind] {
		return errEventKind
	}
	prefix := string(q.Peek("prefix"))
	if len(prefix) > maxPrefix {
		return errEventPrefix
	}
	sub, err := s.events.broker.Subscribe(actors.Filter{Kind: kind, Prefix: prefix, Login: p.Login, Admin: p.Admin})
	if err != nil {
		return err
	}
	return s.events.serve(ctx, sub, nil, nil)
}

func (s *Server) lockWatch(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	name, err := lockName(ctx)
	if err != nil {
		return err
	}
	// Subscribe first, then read the state: nothing that happens after the
	// read can be missed, and what the state already shows is skipped.
	sub, err := s.events.broker.Subscribe(actors.Filter{Kind: "lock", Name: name, Login: p.Login, Admin: p.Admin})
	if err != nil {
		return err
	}
	before := s.events.broker.Seq()
	st, err := s.locks.Status(rq.ctx(), name)
	if err != nil {
		sub.Close()
		return err
	}
	state := actors.Event{Seq: before, Type: actors.EventLockState, Kind: "lock", Name: name,
		FencingToken: st.Lock.Token, Time: st.At}
	if st.Held {
		state.Holder, state.HolderID, state.LeaseID, state.SessionID, state.ExpiresAt = st.Lock.Holder, st.Lock.HolderID, st.Lock.LeaseID, st.Lock.SessionID, st.Lock.ExpiresAt
		state.Metadata = st.Lock.Metadata
	}
	f := sub.Filter()
	state = f.Visible(state)
	return s.events.serve(ctx, sub, &state, func(e *actors.Event) bool { return staleForState(e, before, st.Held, st.Lock) })
}

// staleForState reports whether e is already reflected in a lock state read
// after the subscription started (events published before the read began,
// seq <= before, always are). Fencing tokens order grants; within one grant,
// a renewal is new only if it moves the expiry beyond the state's.
func staleForState(e *actors.Event, before uint64, held bool, l actors.LockRecord) bool {
	if e.Type == actors.EventLagged {
		return false
	}
	if e.Seq <= before {
		return true
	}
	if e.FencingToken != l.Token {
		return e.FencingToken < l.Token
	}
	if !held {
		return true // the state already shows this grant ended
	}
	switch e.Type {
	case actors.EventLockAcquired:
		return true
	case actors.EventLockRenewed:
		return !e.ExpiresAt.After(l.ExpiresAt)
	}
	return false // released or expired after the read
}

// serve answers with an event stream: first (if set), then the events of sub
// that skip does not reject. actors.ErrClosed once streams are closed.
func (es *eventStreams) serve(ctx *fasthttp.RequestCtx, sub *actors.Subscription, first *actors.Event, skip func(*actors.Event) bool) error {
	st := &stream{conn: ctx.Conn(), sub: sub}
	if !es.add(st) {
		sub.Close()
		return actors.ErrClosed
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.Response.Header.Set("X-Accel-Buffering", "no")
	ctx.SetConnectionClose() // the stream ends the connection
	// A deadline set by the handler is kept by fasthttp instead of its own
	// WriteTimeout for the whole response; the writer renews it per write.
	_ = ctx.SetWriteDeadline(time.Now().Add(es.writeTimeout))
	var hello []byte
	if first != nil {
		hello = appendSSE(make([]byte, 0, 512), first)
	} else {
		// Response headers go out with the first chunk: send one at once
		// so that the client knows it is subscribed.
		hello = []byte(": subscribed\n\n")
	}
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) { es.run(st, w, hello, skip) })
	return nil
}

var pingFrame = []byte(": ping\n\n")

// run is the stream writer. It returns when the client goes away, a write
// fails, the subscription ends (lagged, after writing the lagged event) or
// the server shuts down.
func (es *eventStreams) run(st *stream, w *bufio.Writer, hello []byte, skip func(*actors.Event) bool) {
	defer es.remove(st)
	defer st.sub.Close()
	gone := make(chan struct{})
	go watchConn(st.conn, gone)

	if !st.write(w, hello, es.writeTimeout) {
		return
	}
	tick := time.NewTicker(es.heartbeat)
	defer tick.Stop()
	var evs []actors.Event
	buf := make([]byte, 0, 1024)
	for {
		select {
		case <-st.sub.Ready():
			// Everything queued goes out in one flush.
			var done bool
			evs, done = st.sub.Take(evs[:0])
			buf = buf[:0]
			for i := range evs {
				if skip == nil || !skip(&evs[i]) {
					buf = appendSSE(buf, &evs[i])
				}
			}
			if len(buf) > 0 && !st.write(w, buf, es.writeTimeout) {
				return
			}
			if cap(buf) > 64<<10 {
				buf, evs = make([]byte, 0, 1024), nil // a burst is over
			}
			if done {
				return // lagged (its event written last) or broker closed
			}
		case <-tick.C:
			if !st.write(w, pingFrame, es.writeTimeout) {
				return
			}
		case <-gone:
			return
		case <-es.stop:
			return
		}
	}
}

// write sends b and flushes it to the connection under a fresh deadline.
func (st *stream) write(w *bufio.Writer, b []byte, timeout time.Duration) bool {
	st.mu.Lock()
	if st.ending {
		st.mu.Unlock()
		return false
	}
	_ = st.conn.SetWriteDeadline(time.Now().Add(timeout))
	st.mu.Unlock()
	if _, err := w.Write(b); err != nil {
		return false
	}
	return w.Flush() == nil
}

// watchConn reads the connection until it fails (the client closed it, or
// the server did after the stream) and then closes gone. Clients send
// nothing on an event stream, so whatever arrives is discarded.
func watchConn(c net.Conn, gone chan<- struct{}) {
	defer close(gone)
	_ = c.SetReadDeadline(time.Time{}) // fasthttp's ReadTimeout must not end the stream
	var b [64]byte
	for {
		if _, err := c.Read(b[:]); err != nil {
			return
		}
	}
}

// appendSSE appends e as one SSE frame.
func appendSSE(b []byte, e *actors.Event) []byte {
	b = append(b, "id: "...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, "\nevent: "...)
	b = append(b, e.Type...)
	b = append(b, "\ndata: "...)
	b = appendEventJSON(b, e)
	return append(b, "\n\n"...)
}

// appendEventJSON renders e as the one-line JSON of the event wire format;
// fields that do not apply (zero) are left out.
func appendEventJSON(b []byte, e *actors.Event) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"type":`...)
	b = appendString(b, e.Type)
	if e.Kind != "" {
		b = append(b, `,"kind":`...)
		b = appendString(b, e.Kind)
	}
	if e.Name != "" {
		b = append(b, `,"name":`...)
		b = appendString(b, e.Name)
	}
	if e.Owner != "" {
		b = append(b, `,"owner":`...)
		b = appendString(b, e.Owner)
	}
	if e.Holder != "" {
		b = append(b, `,"holder":`...)
		b = appendString(b, e.Holder)
	}
	if e.HolderID != "" {
		b = append(b, `,"holder_id":`...)
		b = appendString(b, e.HolderID)
	}
	if e.FencingToken != 0 {
		b = append(b, `,"fencing_token":`...)
		b = strconv.AppendUint(b, e.FencingToken, 10)
	}
	if e.LeaseID != "" {
		b = append(b, `,"lease_id":`...)
		b = appendString(b, e.LeaseID)
	}
	if e.SessionID != "" {
		b = append(b, `,"session_id":`...)
		b = appendString(b, e.SessionID)
	}
	if !e.ExpiresAt.IsZero() {
		b = append(b, `,"expires_at":`...)
		b = appendTime(b, e.ExpiresAt)
	}
	if !e.AvailableAt.IsZero() {
		b = append(b, `,"available_at":`...)
		b = appendTime(b, e.AvailableAt)
	}
	if e.Limit != 0 {
		b = append(b, `,"limit":`...)
		b = strconv.AppendInt(b, int64(e.Limit), 10)
	}
	if e.Metadata != "" {
		b = append(b, `,"metadata":`...)
		b = appendString(b, e.Metadata)
	}
	if e.Version != 0 {
		b = append(b, `,"version":`...)
		b = strconv.AppendInt(b, e.Version, 10)
	}
	if !e.Time.IsZero() {
		b = append(b, `,"time":"`...)
		b = e.Time.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	return append(b, '}')
}
