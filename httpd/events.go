package httpd

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/valyala/fasthttp"
)

// Server-sent events: GET /events, GET /locks/{name}/watch and
// GET /config/{key}/watch.
//
// Each stream is a fasthttp body stream writer (its own goroutine) that reads
// the caller's broker subscription and writes SSE frames, plus a goroutine
// that reads the connection only to notice at once when the client goes
// away. The subscription is closed whenever the writer returns: client gone,
// write error, lagged, revoked, or server shutdown.
//
// Streams are registered by the caller's token (so that a revoked or
// rotated token's streams end at once: revokeStreams) and counted per user
// (at most MaxStreamsPerUser open: 429 beyond), watches as any other.

// DefaultEventHeartbeat is how often an idle stream gets a ": ping" comment.
const DefaultEventHeartbeat = 15 * time.Second

// DefaultMaxStreamsPerUser is ServerConfig.MaxStreamsPerUser: the event
// streams one user (or the admin key) may have open at once.
const DefaultMaxStreamsPerUser = 16

// streamRetryAfter is the Retry-After of a stream refused at the cap: a
// slot frees only when one of the caller's own streams ends.
const streamRetryAfter = 5 * time.Second

// shutdownGrace bounds the final write of a stream at shutdown (the end of
// the chunked body); a client that does not read is cut off after it.
const shutdownGrace = 250 * time.Millisecond

// eventStreams serves the event endpoints and tracks open streams so that
// shutdown and revocation can end them.
type eventStreams struct {
	broker       *actors.Broker
	auth         *Authenticator // token re-checks (revocation) and the login shown for a user id
	heartbeat    time.Duration
	writeTimeout time.Duration // per write; renewed before every flush
	maxPerUser   int

	// mu guards streams, perUser, byToken and stopped.
	mu      sync.Mutex
	streams map[*stream]struct{}
	perUser map[string]int                    // open streams by Principal.ID
	byToken map[[32]byte]map[*stream]struct{} // open streams by token hash (not the admin key's)
	stopped bool
	stop    chan struct{} // closed by close
}

// stream is one open event stream.
type stream struct {
	conn  net.Conn
	sub   *actors.Subscription
	user  string   // the caller (Principal.ID)
	hash  [32]byte // the caller's token hash
	admin bool     // the admin key: not revocable, not in byToken
	// mu guards ending, closing and the connection's write deadline, so
	// that the short deadline set at shutdown or revocation is never
	// replaced by a long one.
	mu      sync.Mutex
	ending  bool // shutdown: write nothing more
	closing bool // revoked: the final frame goes out under the short deadline
}

// routeEvents registers the event endpoints, served from broker (NewServer
// passes its configuration with the defaults filled in), and asks auth to
// report token changes (revokeStreams).
func (s *Server) routeEvents(broker *actors.Broker, cfg ServerConfig) {
	writeTimeout := cfg.WriteTimeout
	if writeTimeout < 2*cfg.EventHeartbeat {
		writeTimeout = 2 * cfg.EventHeartbeat // a heartbeat always renews the deadline in time
	}
	s.events = &eventStreams{
		broker: broker, auth: s.auth, heartbeat: cfg.EventHeartbeat, writeTimeout: writeTimeout,
		maxPerUser: cfg.MaxStreamsPerUser,
		streams:    map[*stream]struct{}{}, perUser: map[string]int{}, byToken: map[[32]byte]map[*stream]struct{}{},
		stop: make(chan struct{}),
	}
	s.auth.onChange(s.events.revokeStreams)
	s.handle("GET", "/events", s.authed(s.eventsAll))
	s.handle("GET", "/locks/{name}/watch", s.authed(s.lockWatch))
	s.handle("GET", "/config/{key}/watch", s.authed(s.configWatch))
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

// open registers the stream of sub for p: actors.ErrClosed once streams
// are closed, a 429 (too_many_requests) when p has MaxStreamsPerUser open,
// errBadToken when p's token was revoked meanwhile. On error sub is closed.
//
// The token is checked again once the stream is registered: a revocation
// that committed after the request was authenticated either finds the
// stream registered (revokeStreams) or has dropped the token from the cache
// before this check, which then reads the database.
func (es *eventStreams) open(ctx *fasthttp.RequestCtx, p *Principal, sub *actors.Subscription) (*stream, error) {
	st := &stream{conn: ctx.Conn(), sub: sub, user: p.ID, hash: p.Hash, admin: p.Admin}
	if err := es.add(st); err != nil {
		sub.Close()
		return nil, err
	}
	if !es.auth.current(p) {
		es.remove(st)
		sub.Close()
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="octostore"`)
		return nil, errBadToken
	}
	return st, nil
}

func (es *eventStreams) add(st *stream) error {
	es.mu.Lock()
	defer es.mu.Unlock()
	if es.stopped {
		return actors.ErrClosed
	}
	if es.perUser[st.user] >= es.maxPerUser {
		return &actors.Error{Code: actors.CodeTooManyRequests, RetryAfter: streamRetryAfter,
			Message: fmt.Sprintf("too many event streams: at most %d open per user (serve --max-streams-per-user)", es.maxPerUser)}
	}
	es.perUser[st.user]++
	es.streams[st] = struct{}{}
	if !st.admin {
		set := es.byToken[st.hash]
		if set == nil {
			set = map[*stream]struct{}{}
			es.byToken[st.hash] = set
		}
		set[st] = struct{}{}
	}
	return nil
}

func (es *eventStreams) remove(st *stream) {
	es.mu.Lock()
	defer es.mu.Unlock()
	if _, ok := es.streams[st]; !ok {
		return
	}
	delete(es.streams, st)
	if es.perUser[st.user]--; es.perUser[st.user] <= 0 {
		delete(es.perUser, st.user)
	}
	if set := es.byToken[st.hash]; set != nil {
		delete(set, st)
		if len(set) == 0 {
			delete(es.byToken, st.hash)
		}
	}
}

// revokeStreams is the Authenticator's change hook: hash names a token
// rotated or revoked in this process, nil says the auth epoch moved (a
// change by another process: any token may be gone). Every open stream of
// the tokens concerned whose token no longer authenticates its caller ends
// at once with a revoked event. The tokens are looked up in the database,
// not the cache; one that cannot be read now is looked up again after
// PollInterval, for as long as it has streams.
func (es *eventStreams) revokeStreams(hash *[32]byte) {
	es.mu.Lock()
	if es.stopped {
		es.mu.Unlock()
		return
	}
	var hashes [][32]byte
	if hash != nil {
		if len(es.byToken[*hash]) > 0 {
			hashes = append(hashes, *hash)
		}
	} else {
		for h := range es.byToken {
			hashes = append(hashes, h)
		}
	}
	es.mu.Unlock()
	var retry [][32]byte
	for _, h := range hashes {
		uid, ok, err := es.auth.resolve(h)
		if err != nil {
			retry = append(retry, h)
			continue
		}
		es.mu.Lock()
		for st := range es.byToken[h] {
			if !ok || st.user != uid {
				st.revoke()
			}
		}
		es.mu.Unlock()
	}
	if len(retry) > 0 {
		time.AfterFunc(PollInterval, func() {
			for _, h := range retry {
				es.revokeStreams(&h)
			}
		})
	}
}

// revoke ends the stream with a revoked event, written under a short
// deadline (a client that does not read is cut off after shutdownGrace).
func (st *stream) revoke() {
	st.mu.Lock()
	st.closing = true
	_ = st.conn.SetWriteDeadline(time.Now().Add(shutdownGrace))
	st.mu.Unlock()
	st.sub.Revoke()
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
	f := actors.Filter{Kind: kind, Prefix: prefix, Login: p.ID, Admin: p.Admin}
	var sub *actors.Subscription
	var err error
	if last := ctx.Request.Header.Peek("Last-Event-ID"); len(last) > 0 {
		sub, err = s.events.broker.Resume(f, string(last))
	} else {
		sub, err = s.events.broker.Subscribe(f)
	}
	if err != nil {
		return err
	}
	st, err := s.events.open(ctx, p, sub)
	if err != nil {
		return err
	}
	return s.events.serve(ctx, st, nil, nil)
}

func (s *Server) lockWatch(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	name, err := lockName(ctx)
	if err != nil {
		return err
	}
	// Subscribe first, then read the state: nothing that happens after the
	// read can be missed, and what the state already shows is skipped. The
	// state is a fresh start, so a Last-Event-ID is not needed (nor read).
	sub, err := s.events.broker.Subscribe(actors.Filter{Kind: "lock", Name: name, Login: p.ID, Admin: p.Admin})
	if err != nil {
		return err
	}
	strm, err := s.events.open(ctx, p, sub)
	if err != nil {
		return err
	}
	before := sub.Position()
	st, err := s.locks.Status(rq.ctx(), name)
	if err != nil {
		s.events.remove(strm)
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
	return s.events.serve(ctx, strm, &state, func(e *actors.Event) bool { return staleForState(e, before, st.Held, st.Lock) })
}

// configWatch streams one config key of the caller's (the admin key:
// ?owner='s): first config.state, the key as it is (its version, value and
// description; or "exists": false), then every config.written (with the
// value) and config.deleted after it, in version order. As for a lock:
// subscribe first, then read the state, and drop the events the state
// already reflects.
func (s *Server) configWatch(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	owner, key, err := s.configTarget(ctx, p, false)
	if err != nil {
		return err
	}
	// The broker indexes this subscription under the owner's key alone
	// (Filter.Owner with Name): other keys' writes never look at it. Like a
	// lock watch it is one of the caller's streams (the per-user cap, ended
	// by revocation), numbered in the caller's scope; the state is a fresh
	// start, so a Last-Event-ID is not needed (nor read).
	sub, err := s.events.broker.Subscribe(actors.Filter{Kind: "config", Name: key, Owner: owner,
		Login: p.ID, Admin: p.Admin, Values: true})
	if err != nil {
		return err
	}
	strm, err := s.events.open(ctx, p, sub)
	if err != nil {
		return err
	}
	before := sub.Position()
	st, err := s.config.State(rq.ctx(), owner, key)
	if err != nil {
		s.events.remove(strm)
		sub.Close()
		return err
	}
	// The version of a deleted key is its last one (the next write is one
	// more); a key never written has none.
	live := st.Live()
	state := actors.Event{Seq: before, Type: actors.EventConfigState, Kind: "config", Name: key, Owner: owner,
		Version: st.Version, Exists: &live, Time: time.Now().UTC()}
	if live {
		state.Value, state.Description = actors.CompactJSON(st.Value), st.Description
	}
	return s.events.serve(ctx, strm, &state, func(e *actors.Event) bool { return staleForConfig(e, before, st) })
}

// staleForConfig reports whether e is already reflected in a config state
// read after the subscription started: everything published before the
// read began (seq <= before), a write of a version the state has reached,
// a delete the state shows.
func staleForConfig(e *actors.Event, before uint64, st actors.ConfigRecord) bool {
	switch {
	case e.Kind != "config": // lagged, revoked: always passed on
		return false
	case e.Seq <= before:
		return true
	case e.Type == actors.EventConfigDeleted:
		return !st.Live() && e.Version <= st.Version
	}
	return e.Version <= st.Version
}

// staleForState reports whether e is already reflected in a lock state read
// after the subscription started (events published before the read began,
// seq <= before, always are). Fencing tokens order grants; within one grant,
// a renewal is new only if it moves the expiry beyond the state's.
func staleForState(e *actors.Event, before uint64, held bool, l actors.LockRecord) bool {
	if e.Kind != "lock" { // lagged, revoked: always passed on
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

// serve answers with the event stream st (opened): first (if set), then the
// events of its subscription that skip does not reject.
func (es *eventStreams) serve(ctx *fasthttp.RequestCtx, st *stream, first *actors.Event, skip func(*actors.Event) bool) error {
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
		e := es.shown(*first)
		hello = appendSSE(make([]byte, 0, 512), es.broker, &e)
	} else {
		// Response headers go out with the first chunk: send one at once
		// so that the client knows it is subscribed.
		hello = []byte(": subscribed\n\n")
	}
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) { es.run(st, w, hello, skip) })
	return nil
}

// shown is e as a stream shows it: its owner and holder (user ids, as the
// broker filters them) as logins.
func (es *eventStreams) shown(e actors.Event) actors.Event {
	e.Owner, e.Holder = es.auth.Login(e.Owner), es.auth.Login(e.Holder)
	return e
}

var pingFrame = []byte(": ping\n\n")

// run is the stream writer. It returns when the client goes away, a write
// fails, the subscription ends (lagged or revoked, after writing that
// event) or the server shuts down.
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
					e := es.shown(evs[i])
					buf = appendSSE(buf, es.broker, &e)
				}
			}
			if len(buf) > 0 && !st.write(w, buf, es.writeTimeout) {
				return
			}
			if cap(buf) > 64<<10 {
				buf, evs = make([]byte, 0, 1024), nil // a burst is over
			}
			if done {
				return // lagged or revoked (its event written last) or broker closed
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

// write sends b and flushes it to the connection under a fresh deadline
// (the short one once the stream is revoked).
func (st *stream) write(w *bufio.Writer, b []byte, timeout time.Duration) bool {
	st.mu.Lock()
	if st.ending {
		st.mu.Unlock()
		return false
	}
	if !st.closing {
		_ = st.conn.SetWriteDeadline(time.Now().Add(timeout))
	}
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

// appendSSE appends e as one SSE frame. Its id is br's rendering of the
// event's number (Broker.ID), which Last-Event-ID gives back; lagged and
// revoked have none, so that a client that reconnects resumes after the
// last event it received.
func appendSSE(b []byte, br *actors.Broker, e *actors.Event) []byte {
	if e.Type != actors.EventLagged && e.Type != actors.EventRevoked {
		b = append(b, "id: "...)
		b = br.AppendID(b, e.Seq)
		b = append(b, '\n')
	}
	b = append(b, "event: "...)
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
	if e.Exists != nil {
		b = append(b, `,"exists":`...)
		b = strconv.AppendBool(b, *e.Exists)
	}
	if e.Value != nil {
		b = append(b, `,"value":`...)
		b = append(b, e.Value...) // compact JSON (actors.CompactJSON): one line
		b = append(b, `,"description":`...)
		b = appendString(b, e.Description)
	}
	if !e.Time.IsZero() {
		b = append(b, `,"time":"`...)
		b = e.Time.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	return append(b, '}')
}
