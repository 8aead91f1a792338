// Package clienttest is an in-memory fake of the octostore HTTP API on
// net/http/httptest, for tests of code that uses the Go client (the client
// itself, the CLI, the TUI) without the real server.
//
// It implements the contract's semantics closely enough for clients: locks
// with leases, fencing tokens and expiry on an injectable clock, "already
// held" re-acquire per holder (user and holder_id), limits (a fixed window, with cost, whatever the algorithm), flags with rollout
// evaluation, versioned config with expected versions, token rotate/revoke,
// /health, /metrics and the SSE streams (/events and /locks/{name}/watch).
// It has no semaphores: GET /semaphores is an empty listing (paged and
// validated as the others), every other /semaphores path is 404.
// Intercept injects failures.
//
// All state is guarded by one mutex (Server.mu); SSE subscribers get events
// through buffered channels and are dropped with "lagged" when full.
package clienttest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/octostore/octostore/actors/names"
)

// Server is the fake. Create it with New; its URL is Server.URL.
type Server struct {
	*httptest.Server

	mu        sync.Mutex // guards everything below
	adminKey  string     // accepted as a bearer token or X-Admin-Key
	now       func() time.Time
	tokens    map[string]string // token -> user
	locks     map[string]*lock
	sessions  map[string]*session  // session id -> session
	queues    map[string][]*waiter // lock name -> waiting acquires, in arrival order
	fencing   map[string]uint64    // lock name -> last fencing token (survives release)
	limits    map[string]*limit    // owner/name
	flags     map[string]*flag     // owner/name
	configs   map[string]*cfg      // owner/key
	seq       uint64
	subs      map[*sub]struct{}
	intercept func(w http.ResponseWriter, r *http.Request) bool
	requests  map[string]int // "METHOD /path" -> count
}

type lock struct {
	name, holder, leaseID string
	holderID              string // the acquire's holder_id ("" none): the holder is (holder, holderID)
	sessionID             string // held under this session ("" for a TTL): expires with it
	metadata              string
	fencing               uint64
	expires               time.Time
}

// session is a session: its locks live until expires (moved by keepalives).
type session struct {
	id, user   string
	ttl, delay time.Duration
	expires    time.Time
}

// waiter is a waiting acquire (wait_seconds): handOff grants it the lock and
// sends it on got.
type waiter struct {
	holder, holderID string
	ttl              time.Duration
	got              chan *lock // capacity 1
}

type limit struct {
	name          string
	max, window   int
	algorithm     string // as the check named it ("": the default); counted as a fixed window whatever it is
	count         int
	windowStarted time.Time
}

type flag struct {
	Name       string    `json:"name"`
	Enabled    bool      `json:"enabled"`
	Percentage *int      `json:"percentage,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	Owner      string    `json:"owner,omitempty"`
}

type cfgVersion struct {
	Version     int64           `json:"version"`
	Value       json.RawMessage `json:"value"`
	Description string          `json:"description"`
	CreatedAt   time.Time       `json:"created_at"`
}

type cfg struct {
	key       string
	versions  []cfgVersion
	createdAt time.Time
}

type sub struct {
	ch     chan []byte
	kind   string
	prefix string
	lock   string // watch: only this lock
	user   string
	admin  bool
}

// New starts a fake server. tokens maps bearer tokens to user names
// (e.g. "tokA": "alice"). Close it when done.
func New(tokens map[string]string) *Server {
	s := &Server{
		now:      time.Now,
		tokens:   map[string]string{},
		locks:    map[string]*lock{},
		sessions: map[string]*session{},
		queues:   map[string][]*waiter{},
		fencing:  map[string]uint64{},
		limits:   map[string]*limit{},
		flags:    map[string]*flag{},
		configs:  map[string]*cfg{},
		subs:     map[*sub]struct{}{},
		requests: map[string]int{},
	}
	for k, v := range tokens {
		s.tokens[k] = v
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Close ends every event stream, then shuts the server down.
func (s *Server) Close() {
	s.mu.Lock()
	for sb := range s.subs {
		delete(s.subs, sb)
		close(sb.ch)
	}
	s.mu.Unlock()
	s.Server.Close()
}

// SetAdminKey sets the admin key (bearer token or X-Admin-Key).
func (s *Server) SetAdminKey(key string) {
	s.mu.Lock()
	s.adminKey = key
	s.mu.Unlock()
}

// SetNow replaces the server clock.
func (s *Server) SetNow(now func() time.Time) {
	s.mu.Lock()
	s.now = now
	s.mu.Unlock()
}

// Intercept installs f, called before every request; if it returns true it
// has written the response and the fake does nothing else. nil removes it.
func (s *Server) Intercept(f func(w http.ResponseWriter, r *http.Request) bool) {
	s.mu.Lock()
	s.intercept = f
	s.mu.Unlock()
}

// Requests returns how many requests "METHOD /path" has received.
func (s *Server) Requests(methodPath string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[methodPath]
}

// StealLock gives the lock to holder with a new lease and fencing token, as
// an admin override or an expiry followed by another client's acquire would.
// The previous holder's renewals then fail with 404.
func (s *Server) StealLock(name, holder string, ttl time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.grant(name, holder, "", ttl)
}

// ExpireLock drops the lock as if its TTL had passed.
func (s *Server) ExpireLock(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.locks[name]; ok {
		delete(s.locks, name)
		s.publish(map[string]any{"type": "lock.expired", "kind": "lock", "name": name, "owner": l.holder, "holder": l.holder, "fencing_token": l.fencing})
		s.handOff(name)
	}
}

// handOff grants the free lock name to the first waiter, if any. Caller
// holds mu.
func (s *Server) handOff(name string) {
	q := s.queues[name]
	if len(q) == 0 {
		return
	}
	w := q[0]
	if len(q) == 1 {
		delete(s.queues, name)
	} else {
		s.queues[name] = q[1:]
	}
	w.got <- s.grant(name, w.holder, w.holderID, w.ttl)
}

// leave takes w out of name's queue; false when it was no longer there
// (it was granted the lock). Caller holds mu.
func (s *Server) leave(name string, w *waiter) bool {
	q := s.queues[name]
	for i, x := range q {
		if x == w {
			s.queues[name] = append(q[:i:i], q[i+1:]...)
			if len(s.queues[name]) == 0 {
				delete(s.queues, name)
			}
			return true
		}
	}
	return false
}

// Holder returns the current holder of a lock ("" if free).
func (s *Server) Holder(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.liveLock(name); l != nil {
		return l.holder
	}
	return ""
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": msg})
}

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests[r.Method+" "+r.URL.Path]++
	f := s.intercept
	s.mu.Unlock()
	if f != nil && f(w, r) {
		return
	}
	if r.URL.Path == "/health" {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "OK")
		return
	}
	user, admin := s.auth(r)
	if user == "" && !admin {
		writeErr(w, http.StatusUnauthorized, "Invalid or missing authorization header")
		return
	}
	if admin && user == "" {
		user = "admin"
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if o := r.URL.Query().Get("owner"); r.URL.Query().Has("owner") && (parts[0] == "limits" || parts[0] == "flags" || parts[0] == "config") {
		switch {
		case admin:
			user = o // the admin key addresses another user's resources
		case o != user:
			writeErr(w, http.StatusForbidden, "only the admin key may address another user's resources")
			return
		}
	}
	var body map[string]json.RawMessage
	if r.Method == "POST" || r.Method == "PUT" {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if len(b) > 0 {
			if err := json.Unmarshal(b, &body); err != nil {
				writeErr(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
				return
			}
		}
	}
	switch {
	case parts[0] == "locks":
		s.serveLocks(w, r, parts, body, user, admin)
	case parts[0] == "sessions":
		s.serveSessions(w, r, parts, body, user, admin)
	case parts[0] == "semaphores" && len(parts) == 1 && r.Method == "GET":
		writePage(w, r, "semaphores", []map[string]any{}, func(map[string]any) string { return "" }) // no semaphores here
	case parts[0] == "limits":
		s.serveLimits(w, r, parts, body, user)
	case parts[0] == "flags":
		s.serveFlags(w, r, parts, body, user)
	case parts[0] == "config":
		s.serveConfig(w, r, parts, body, user)
	case parts[0] == "events" && r.Method == "GET":
		s.serveEvents(w, r, &sub{kind: r.URL.Query().Get("kind"), prefix: r.URL.Query().Get("prefix"), user: user, admin: admin}, "")
	case r.URL.Path == "/metrics":
		if !admin {
			writeErr(w, http.StatusForbidden, "admin only")
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, "# HELP octostore_up fake\n# TYPE octostore_up gauge\noctostore_up 1\n")
	case r.URL.Path == "/auth/token/rotate" && r.Method == "POST":
		tok := "octo_" + strings.ReplaceAll(newID(), "-", "")
		s.mu.Lock()
		delete(s.tokens, bearer(r))
		s.tokens[tok] = user
		s.mu.Unlock()
		w.Header().Set("Cache-Control", "no-store") // a token must not be cached
		writeJSON(w, 200, map[string]any{"token": tok})
	case r.URL.Path == "/auth/token" && r.Method == "DELETE":
		s.mu.Lock()
		delete(s.tokens, bearer(r))
		s.mu.Unlock()
		writeJSON(w, 200, map[string]any{"revoked": true})
	default:
		writeErr(w, http.StatusNotFound, "not found")
	}
}

func bearer(r *http.Request) string {
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
}

func (s *Server) auth(r *http.Request) (user string, admin bool) {
	tok := bearer(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.adminKey != "" && (tok == s.adminKey || r.Header.Get("X-Admin-Key") == s.adminKey) {
		admin = true
	}
	return s.tokens[tok], admin
}

// liveLock returns the unexpired lock, expiring it if due. Caller holds mu.
func (s *Server) liveLock(name string) *lock {
	l, ok := s.locks[name]
	if !ok {
		return nil
	}
	if l.sessionID != "" {
		if ss := s.liveSession(l.sessionID); ss != nil {
			l.expires = ss.expires
		} else if l.expires.After(s.now()) {
			l.expires = s.now()
		}
	}
	if !s.now().Before(l.expires) {
		delete(s.locks, name)
		s.publish(map[string]any{"type": "lock.expired", "kind": "lock", "name": name, "owner": l.holder, "holder": l.holder, "fencing_token": l.fencing})
		s.handOff(name)
		return s.locks[name]
	}
	return l
}

// grant gives name to (holder, holderID) with a fresh lease. Caller holds mu.
func (s *Server) grant(name, holder, holderID string, ttl time.Duration) *lock {
	s.fencing[name]++
	l := &lock{name: name, holder: holder, holderID: holderID, leaseID: newID(), fencing: s.fencing[name], expires: s.now().Add(ttl)}
	s.locks[name] = l
	ev := map[string]any{"type": "lock.acquired", "kind": "lock", "name": name, "owner": holder, "holder": holder,
		"fencing_token": l.fencing, "lease_id": l.leaseID, "expires_at": stamp(l.expires)}
	if holderID != "" {
		ev["holder_id"] = holderID
	}
	s.publish(ev)
	return l
}

// lockJSON renders a held lock; the lease and holder ids only when
// showLease (to the holder and the admin).
func lockJSON(status string, l *lock, showLease bool) map[string]any {
	m := map[string]any{"status": status, "name": l.name, "fencing_token": l.fencing,
		"expires_at": stamp(l.expires), "holder": l.holder}
	if l.metadata != "" {
		m["metadata"] = l.metadata
	}
	if showLease {
		m["lease_id"] = l.leaseID
		if l.holderID != "" {
			m["holder_id"] = l.holderID
		}
		if l.sessionID != "" {
			m["session_id"] = l.sessionID
		}
	}
	return m
}

// liveSession returns the live session id, or nil (expired sessions are
// dropped, their locks with them when next looked at). Caller holds mu.
func (s *Server) liveSession(id string) *session {
	ss := s.sessions[id]
	if ss == nil {
		return nil
	}
	if !s.now().Before(ss.expires) {
		delete(s.sessions, id)
		s.publish(map[string]any{"type": "session.expired", "kind": "session", "name": id, "owner": ss.user})
		return nil
	}
	return ss
}

// ExpireSession ends a session as if its TTL had passed without a
// keepalive: its locks expire.
func (s *Server) ExpireSession(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss := s.sessions[id]; ss != nil {
		ss.expires = s.now()
		s.liveSession(id)
		for name, l := range s.locks {
			if l.sessionID == id {
				s.liveLock(name)
			}
		}
	}
}

// stamp formats t as the server does: RFC 3339, UTC, milliseconds.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

func sessionJSON(ss *session) map[string]any {
	return map[string]any{"session_id": ss.id, "ttl_seconds": int(ss.ttl / time.Second),
		"lock_delay_seconds": int(ss.delay / time.Second), "expires_at": stamp(ss.expires)}
}

func (s *Server) serveSessions(w http.ResponseWriter, r *http.Request, parts []string, body map[string]json.RawMessage, user string, admin bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case len(parts) == 1 && r.Method == "POST":
		ttl, msg := intField(body, "ttl_seconds", 5, 3600)
		if msg != "" {
			writeErr(w, 422, msg)
			return
		}
		delay := 0
		if _, ok := body["lock_delay_seconds"]; ok {
			if delay, msg = intField(body, "lock_delay_seconds", 0, 60); msg != "" {
				writeErr(w, 422, msg)
				return
			}
		}
		ss := &session{id: newID(), user: user, ttl: time.Duration(ttl) * time.Second, delay: time.Duration(delay) * time.Second}
		ss.expires = s.now().Add(ss.ttl)
		s.sessions[ss.id] = ss
		writeJSON(w, 200, sessionJSON(ss))
	case len(parts) == 1 && r.Method == "GET":
		out := []map[string]any{}
		ids := make([]string, 0, len(s.sessions))
		for id := range s.sessions {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			ss := s.liveSession(id)
			if ss == nil || (!admin && ss.user != user) {
				continue
			}
			m := sessionJSON(ss)
			locks := []string{}
			for name, l := range s.locks {
				if l.sessionID == id {
					locks = append(locks, name)
				}
			}
			sort.Strings(locks)
			m["locks"] = locks
			if admin {
				m["owner"] = ss.user
			}
			out = append(out, m)
		}
		writeJSON(w, 200, map[string]any{"sessions": out, "total": len(out)})
	case len(parts) >= 2 && !uuidRe.MatchString(parts[1]):
		writeErr(w, 422, "session id must be a UUID")
	case len(parts) == 3 && parts[2] == "keepalive" && r.Method == "POST":
		ss := s.liveSession(parts[1])
		if ss == nil || ss.user != user {
			writeErr(w, 404, "Session not found or not owned by caller")
			return
		}
		ss.expires = s.now().Add(ss.ttl)
		writeJSON(w, 200, map[string]any{"session_id": ss.id, "expires_at": stamp(ss.expires)})
	case len(parts) == 2 && r.Method == "DELETE":
		ss := s.liveSession(parts[1])
		if ss == nil || (!admin && ss.user != user) {
			writeErr(w, 404, "Session not found or not owned by caller")
			return
		}
		delete(s.sessions, ss.id)
		n := 0
		for name, l := range s.locks {
			if l.sessionID == ss.id {
				delete(s.locks, name)
				s.publish(map[string]any{"type": "lock.released", "kind": "lock", "name": name, "owner": l.holder, "holder": l.holder, "fencing_token": l.fencing})
				s.handOff(name)
				n++
			}
		}
		s.publish(map[string]any{"type": "session.closed", "kind": "session", "name": ss.id, "owner": ss.user})
		writeJSON(w, 200, map[string]any{"status": "closed", "released": n})
	default:
		writeErr(w, 404, "not found")
	}
}

func intField(body map[string]json.RawMessage, name string, min, max int) (int, string) {
	raw, ok := body[name]
	if !ok {
		return 0, name + " is required"
	}
	n, err := strconv.Atoi(string(raw))
	if err != nil || n < min || n > max {
		return 0, fmt.Sprintf("%s must be an integer between %d and %d", name, min, max)
	}
	return n, ""
}

// strValue sets *dst to the string field name when the body has one.
func strValue(body map[string]json.RawMessage, name string, dst *string) {
	if v, ok := strField(body, name); ok {
		*dst = v
	}
}

func strField(body map[string]json.RawMessage, name string) (string, bool) {
	var v string
	raw, ok := body[name]
	if !ok || json.Unmarshal(raw, &v) != nil {
		return "", false
	}
	return v, true
}

func (s *Server) serveLocks(w http.ResponseWriter, r *http.Request, parts []string, body map[string]json.RawMessage, user string, admin bool) {
	if len(parts) == 1 {
		if r.Method != "GET" {
			writeErr(w, 405, "method not allowed")
			return
		}
		s.mu.Lock()
		out := []map[string]any{}
		names := make([]string, 0, len(s.locks))
		for n := range s.locks {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if l := s.liveLock(n); l != nil && (admin || l.holder == user) {
				m := map[string]any{"name": l.name, "lease_id": l.leaseID, "fencing_token": l.fencing, "expires_at": stamp(l.expires), "holder": l.holder}
				if l.holderID != "" {
					m["holder_id"] = l.holderID
				}
				if admin {
					m["owner"] = l.holder
				}
				out = append(out, m)
			}
		}
		s.mu.Unlock()
		writePage(w, r, "locks", out, func(m map[string]any) string { return m["name"].(string) })
		return
	}
	name := parts[1]
	if !names.Lock.Valid(name) {
		writeErr(w, 422, "lock name "+names.Lock.Requirement())
		return
	}
	if len(parts) == 3 && parts[2] == "watch" && r.Method == "GET" {
		s.serveEvents(w, r, &sub{kind: "lock", user: user, admin: admin, lock: name}, name)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case len(parts) == 2 && r.Method == "GET":
		l := s.liveLock(name)
		if l == nil {
			writeJSON(w, 200, map[string]any{"status": "available", "name": name, "message": "Lock not currently held"})
			return
		}
		m := lockJSON("held", l, admin || l.holder == user)
		m["waiters"] = len(s.queues[name])
		writeJSON(w, 200, m)
	case len(parts) == 3 && parts[2] == "fence" && r.Method == "GET":
		token, err := strconv.ParseUint(r.URL.Query().Get("token"), 10, 64)
		if err != nil {
			writeErr(w, 422, "token must be a fencing token: an integer from 0 to 18446744073709551615")
			return
		}
		if l := s.liveLock(name); l != nil && l.fencing == token {
			writeJSON(w, 200, map[string]any{"valid": true, "fencing_token": token, "holder": l.holder})
			return
		}
		writeJSON(w, 409, map[string]any{"error": "Fencing token is not the current grant's", "valid": false, "current_fencing_token": s.fencing[name]})
	case len(parts) == 3 && parts[2] == "acquire" && r.Method == "POST":
		var sessionID string
		ttl, msg := 0, ""
		if raw, ok := body["session_id"]; ok {
			if _, both := body["ttl_seconds"]; both {
				writeErr(w, 422, "give ttl_seconds or session_id, not both")
				return
			}
			if json.Unmarshal(raw, &sessionID) != nil || !uuidRe.MatchString(sessionID) {
				writeErr(w, 422, "Invalid session_id format")
				return
			}
			ss := s.liveSession(sessionID)
			if ss == nil || ss.user != user {
				writeErr(w, 404, "Session not found or not owned by caller")
				return
			}
			ttl = int(ss.expires.Sub(s.now()) / time.Second)
		} else if ttl, msg = intField(body, "ttl_seconds", 1, 3600); msg != "" {
			writeErr(w, 422, msg)
			return
		}
		var holderID string
		if raw, ok := body["holder_id"]; ok && string(raw) != "null" {
			if json.Unmarshal(raw, &holderID) != nil || !names.HolderID.Valid(holderID) {
				writeErr(w, 422, "holder_id "+names.HolderID.Requirement())
				return
			}
		}
		wait := 0
		if raw, ok := body["wait_seconds"]; ok && string(raw) != "null" {
			if wait, msg = intField(body, "wait_seconds", 0, 300); msg != "" {
				writeErr(w, 422, msg)
				return
			}
		}
		d := time.Duration(ttl) * time.Second
		l := s.liveLock(name)
		switch {
		case l == nil:
			l = s.grant(name, user, holderID, d)
			if sessionID != "" {
				l.sessionID, l.expires = sessionID, s.sessions[sessionID].expires
			}
			strValue(body, "metadata", &l.metadata)
			writeJSON(w, 200, lockJSON("acquired", l, true))
		case l.holder == user && l.holderID == holderID && l.sessionID == sessionID:
			strValue(body, "metadata", &l.metadata)
			if e := s.now().Add(d); e.After(l.expires) {
				l.expires = e
			}
			writeJSON(w, 200, lockJSON("held", l, true))
		case wait > 0:
			s.awaitTurn(w, r, name, &waiter{holder: user, holderID: holderID, ttl: d, got: make(chan *lock, 1)}, time.Duration(wait)*time.Second)
		default:
			writeJSON(w, 409, map[string]any{"error": "Lock already held", "lock": map[string]any{"name": name, "holder": l.holder, "expires_at": stamp(l.expires)}})
		}
	case len(parts) == 3 && (parts[2] == "renew" || parts[2] == "release") && r.Method == "POST":
		lease, ok := strField(body, "lease_id")
		if parts[2] == "release" && admin && !ok { // the admin key releases the current lease
			l := s.liveLock(name)
			if l == nil {
				writeErr(w, 404, "Lock not found or not owned by caller")
				return
			}
			delete(s.locks, name)
			s.publish(map[string]any{"type": "lock.released", "kind": "lock", "name": name, "owner": l.holder, "holder": l.holder, "fencing_token": l.fencing})
			s.handOff(name)
			writeJSON(w, 200, map[string]any{"status": "released", "message": "Lock released"})
			return
		}
		if !ok || !uuidRe.MatchString(lease) {
			writeErr(w, 422, "Invalid lease_id format")
			return
		}
		ttl := 0
		if parts[2] == "renew" {
			var msg string
			if ttl, msg = intField(body, "ttl_seconds", 1, 3600); msg != "" {
				writeErr(w, 422, msg)
				return
			}
		}
		l := s.liveLock(name)
		if l == nil || l.leaseID != lease || l.holder != user {
			writeErr(w, 404, "Lock not found or not owned by caller")
			return
		}
		if parts[2] == "release" {
			delete(s.locks, name)
			s.publish(map[string]any{"type": "lock.released", "kind": "lock", "name": name, "owner": user, "holder": user, "fencing_token": l.fencing})
			s.handOff(name)
			writeJSON(w, 200, map[string]any{"status": "released", "message": "Lock released"})
			return
		}
		if l.sessionID != "" {
			writeErr(w, 422, "this lock is held by a session: keep the session alive instead of renewing the lock")
			return
		}
		l.expires = s.now().Add(time.Duration(ttl) * time.Second)
		s.publish(map[string]any{"type": "lock.renewed", "kind": "lock", "name": name, "owner": user, "holder": user, "fencing_token": l.fencing, "expires_at": stamp(l.expires)})
		writeJSON(w, 200, lockJSON("held", l, true))
	default:
		writeErr(w, 404, "not found")
	}
}

// awaitTurn queues a waiting acquire and answers it when handOff grants it
// the lock (200), when its wait runs out (409), or not at all when the
// client goes away (a grant that raced that is released). The lock's
// expiry is checked on the fake's clock every few milliseconds, since
// nothing else drives it. Called with mu held; returns with mu held.
func (s *Server) awaitTurn(rw http.ResponseWriter, r *http.Request, name string, w *waiter, wait time.Duration) {
	s.queues[name] = append(s.queues[name], w)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Unlock()
		select {
		case l := <-w.got:
			s.mu.Lock()
			writeJSON(rw, 200, lockJSON("acquired", l, true))
			return
		case <-tick.C:
			s.mu.Lock()
			s.liveLock(name) // hands the lock off if it expired
			continue
		case <-deadline.C:
		case <-r.Context().Done():
		}
		s.mu.Lock()
		if !s.leave(name, w) {
			l := <-w.got // granted meanwhile
			if r.Context().Err() != nil {
				delete(s.locks, name)
				s.publish(map[string]any{"type": "lock.released", "kind": "lock", "name": name, "owner": l.holder, "holder": l.holder, "fencing_token": l.fencing})
				s.handOff(name)
				return
			}
			writeJSON(rw, 200, lockJSON("acquired", l, true))
			return
		}
		if r.Context().Err() != nil {
			return
		}
		l := s.liveLock(name)
		lk := map[string]any{"name": name, "holder": "", "expires_at": stamp(s.now())}
		if l != nil {
			lk["holder"], lk["expires_at"] = l.holder, stamp(l.expires)
		}
		writeJSON(rw, 409, map[string]any{"error": "Lock already held", "lock": lk})
		return
	}
}

func (s *Server) serveLimits(w http.ResponseWriter, r *http.Request, parts []string, body map[string]json.RawMessage, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	state := func(l *limit) map[string]any {
		if now.Sub(l.windowStarted) >= time.Duration(l.window)*time.Second {
			l.count, l.windowStarted = 0, now
		}
		alg := l.algorithm
		if alg == "" {
			alg = "sliding_window"
		}
		m := map[string]any{"allowed": l.count < l.max, "remaining": max(l.max-l.count, 0),
			"reset_at": stamp(l.windowStarted.Add(time.Duration(l.window) * time.Second)), "algorithm": alg}
		return m
	}
	// headers sets the RateLimit-* headers of a check or status answer.
	headers := func(l *limit) {
		reset := l.windowStarted.Add(time.Duration(l.window) * time.Second).Sub(now)
		h := w.Header()
		h.Set("RateLimit-Limit", strconv.Itoa(l.max))
		h.Set("RateLimit-Remaining", strconv.Itoa(max(l.max-l.count, 0)))
		h.Set("RateLimit-Reset", strconv.Itoa(int((reset+time.Second-1)/time.Second)))
		h.Set("RateLimit-Policy", strconv.Itoa(l.max)+";w="+strconv.Itoa(l.window))
	}
	switch {
	case len(parts) == 1 && r.Method == "GET":
		out := []map[string]any{}
		for k, l := range s.limits {
			if strings.HasPrefix(k, user+"/") {
				m := state(l)
				m["name"], m["max_requests"], m["window_seconds"], m["current_count"] = l.name, l.max, l.window, l.count
				out = append(out, m)
			}
		}
		writePage(w, r, "limits", out, func(m map[string]any) string { return m["name"].(string) })
	case len(parts) == 3 && parts[2] == "check" && r.Method == "POST":
		mx, msg := intField(body, "max_requests", 1, 10000)
		if msg == "" {
			var win int
			win, msg = intField(body, "window_seconds", 1, 86400)
			if msg == "" {
				cost := 1
				if _, given := body["cost"]; given {
					if cost, msg = intField(body, "cost", 1, mx); msg != "" {
						writeErr(w, 422, msg)
						return
					}
				}
				var alg string
				if raw, given := body["algorithm"]; given && (json.Unmarshal(raw, &alg) != nil || (alg != "sliding_window" && alg != "token_bucket")) {
					writeErr(w, 422, "algorithm must be sliding_window or token_bucket")
					return
				}
				k := user + "/" + parts[1]
				l := s.limits[k]
				if l == nil || l.max != mx || l.window != win || l.algorithm != alg {
					l = &limit{name: parts[1], max: mx, window: win, algorithm: alg, windowStarted: now}
					s.limits[k] = l
				}
				m := state(l)
				if l.count+cost <= l.max {
					l.count += cost
					m["allowed"], m["remaining"] = true, l.max-l.count
				} else {
					ra := int(l.windowStarted.Add(time.Duration(l.window)*time.Second).Sub(now)/time.Second) + 1
					m["allowed"], m["retry_after_seconds"] = false, ra
					w.Header().Set("Retry-After", strconv.Itoa(ra))
				}
				headers(l)
				writeJSON(w, 200, m)
				return
			}
		}
		writeErr(w, 422, msg)
	case len(parts) == 2 && (r.Method == "GET" || r.Method == "DELETE"):
		l := s.limits[user+"/"+parts[1]]
		if l == nil {
			writeErr(w, 404, "Rate limit not found")
			return
		}
		if r.Method == "DELETE" {
			l.count = 0
			writeJSON(w, 200, map[string]any{"reset": true})
			return
		}
		m := state(l)
		headers(l)
		writeJSON(w, 200, m)
	default:
		writeErr(w, 404, "not found")
	}
}

func (s *Server) serveFlags(w http.ResponseWriter, r *http.Request, parts []string, body map[string]json.RawMessage, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case len(parts) == 1 && r.Method == "GET":
		out := []*flag{}
		for k, f := range s.flags {
			if strings.HasPrefix(k, user+"/") {
				out = append(out, f)
			}
		}
		writePage(w, r, "flags", out, func(f *flag) string { return f.Name })
	case len(parts) == 2 && r.Method == "PUT":
		if !names.Resource.Valid(parts[1]) {
			writeErr(w, 422, "flag name "+names.Resource.Requirement())
			return
		}
		var en bool
		if raw, ok := body["enabled"]; !ok || json.Unmarshal(raw, &en) != nil {
			writeErr(w, 422, "enabled is required")
			return
		}
		k := user + "/" + parts[1]
		f := s.flags[k]
		if f == nil {
			f = &flag{Name: parts[1], CreatedAt: s.now().UTC()}
			s.flags[k] = f
		}
		f.Enabled, f.UpdatedAt, f.Percentage = en, s.now().UTC(), nil
		if raw, ok := body["percentage"]; ok {
			p, msg := intField(body, "percentage", 0, 100)
			if msg != "" || raw == nil {
				writeErr(w, 422, msg)
				return
			}
			f.Percentage = &p
		}
		s.publish(map[string]any{"type": "flag.set", "kind": "flag", "name": parts[1], "owner": user})
		writeJSON(w, 200, f)
	case len(parts) == 2 && r.Method == "GET":
		f := s.flags[user+"/"+parts[1]]
		switch {
		case f == nil:
			writeJSON(w, 200, map[string]any{"name": parts[1], "enabled": false, "reason": "FLAG_NOT_FOUND"})
		case !f.Enabled:
			writeJSON(w, 200, map[string]any{"name": parts[1], "enabled": false, "reason": "DISABLED"})
		case f.Percentage == nil || *f.Percentage >= 100:
			writeJSON(w, 200, map[string]any{"name": parts[1], "enabled": true, "reason": "STATIC"})
		default:
			h := fnv.New32a()
			io.WriteString(h, parts[1]+"/"+r.URL.Query().Get("subject"))
			writeJSON(w, 200, map[string]any{"name": parts[1], "enabled": int(h.Sum32()%100) < *f.Percentage, "reason": "SPLIT"})
		}
	case len(parts) == 2 && r.Method == "DELETE":
		k := user + "/" + parts[1]
		if s.flags[k] == nil {
			writeErr(w, 404, "Feature flag not found")
			return
		}
		delete(s.flags, k)
		s.publish(map[string]any{"type": "flag.deleted", "kind": "flag", "name": parts[1], "owner": user})
		writeJSON(w, 200, map[string]any{"deleted": true})
	default:
		writeErr(w, 404, "not found")
	}
}

func (s *Server) serveConfig(w http.ResponseWriter, r *http.Request, parts []string, body map[string]json.RawMessage, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	entry := func(c *cfg, v cfgVersion) map[string]any {
		return map[string]any{"key": c.key, "value": v.Value, "description": v.Description, "version": v.Version,
			"created_at": c.createdAt, "updated_at": v.CreatedAt}
	}
	// etag sets the version as the ETag of a config answer.
	etag := func(v cfgVersion) { w.Header().Set("ETag", `"`+strconv.FormatInt(v.Version, 10)+`"`) }
	if len(parts) >= 2 && !names.ConfigKey.Valid(parts[1]) {
		writeErr(w, 422, "config key "+names.ConfigKey.Requirement())
		return
	}
	var c *cfg
	if len(parts) >= 2 {
		c = s.configs[user+"/"+parts[1]]
	}
	switch {
	case len(parts) == 1 && r.Method == "GET":
		out := []map[string]any{}
		for k, c := range s.configs {
			if strings.HasPrefix(k, user+"/") {
				m := entry(c, c.versions[len(c.versions)-1])
				delete(m, "value")
				out = append(out, m)
			}
		}
		writePage(w, r, "configs", out, func(m map[string]any) string { return m["key"].(string) })
	case len(parts) == 2 && r.Method == "PUT":
		val, ok := body["value"]
		if !ok {
			writeErr(w, 422, "value is required")
			return
		}
		var cur int64
		if c != nil {
			cur = c.versions[len(c.versions)-1].Version
		}
		expected := int64(-1)
		if raw, ok := body["expected_version"]; ok {
			json.Unmarshal(raw, &expected)
		} else if h := r.Header.Get("If-Match"); h != "" {
			expected, _ = strconv.ParseInt(h, 10, 64)
		}
		if expected >= 0 && expected != cur {
			writeJSON(w, 409, map[string]any{"error": "version mismatch", "current_version": cur})
			return
		}
		desc, _ := strField(body, "description")
		if c == nil {
			c = &cfg{key: parts[1], createdAt: s.now().UTC()}
			s.configs[user+"/"+parts[1]] = c
		}
		v := cfgVersion{Version: cur + 1, Value: val, Description: desc, CreatedAt: s.now().UTC()}
		c.versions = append(c.versions, v)
		s.publish(map[string]any{"type": "config.written", "kind": "config", "name": parts[1], "owner": user, "version": v.Version})
		etag(v)
		writeJSON(w, 200, entry(c, v))
	case c == nil:
		writeErr(w, 404, "Config not found")
	case len(parts) == 2 && r.Method == "GET":
		v := c.versions[len(c.versions)-1]
		if q := r.URL.Query().Get("version"); q != "" {
			n, _ := strconv.ParseInt(q, 10, 64)
			if n < 1 || int(n) > len(c.versions) {
				writeErr(w, 404, "version not found")
				return
			}
			v = c.versions[n-1]
		}
		etag(v)
		writeJSON(w, 200, entry(c, v))
	case len(parts) == 3 && parts[2] == "history" && r.Method == "GET":
		// Pages, newest first, as the server gives them: ?limit= (10, at
		// most 100) and ?cursor= (the version to start below).
		limit, before := 10, int64(math.MaxInt64)
		q := r.URL.Query()
		if l := q.Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil || n < 1 || n > 100 {
				writeErr(w, 422, "limit must be an integer from 1 to 100")
				return
			}
			limit = n
		}
		if cur := q.Get("cursor"); cur != "" {
			n, err := strconv.ParseInt(strings.TrimPrefix(cur, "fake-"), 10, 64)
			if err != nil || n < 1 || !strings.HasPrefix(cur, "fake-") {
				writeErr(w, 422, "cursor is not one this server gave")
				return
			}
			before = n
		}
		page := []cfgVersion{}
		var next string
		for i := len(c.versions) - 1; i >= 0; i-- {
			if v := c.versions[i]; v.Version < before {
				if len(page) == limit {
					next = fmt.Sprint("fake-", page[len(page)-1].Version)
					break
				}
				page = append(page, v)
			}
		}
		out := map[string]any{"versions": page}
		if next != "" {
			out["next_cursor"] = next
		}
		writeJSON(w, 200, out)
	case len(parts) == 2 && r.Method == "DELETE":
		delete(s.configs, user+"/"+parts[1])
		s.publish(map[string]any{"type": "config.deleted", "kind": "config", "name": parts[1], "owner": user})
		writeJSON(w, 200, map[string]any{"deleted": true})
	default:
		writeErr(w, 404, "not found")
	}
}

// publish sends an event to every matching subscriber. Caller holds mu.
func (s *Server) publish(ev map[string]any) {
	s.seq++
	ev["seq"] = s.seq
	ev["time"] = s.now().UTC().Format(time.RFC3339Nano)
	for sb := range s.subs {
		if sb.kind != "" && sb.kind != ev["kind"] {
			continue
		}
		name, _ := ev["name"].(string)
		if sb.lock != "" && sb.lock != name || sb.prefix != "" && !strings.HasPrefix(name, sb.prefix) {
			continue
		}
		if !sb.admin && ev["kind"] != "lock" && ev["owner"] != sb.user {
			continue
		}
		out := ev
		if _, ok := ev["lease_id"]; ok && !sb.admin && ev["holder"] != sb.user {
			out = make(map[string]any, len(ev))
			for k, v := range ev {
				if k != "lease_id" && k != "holder_id" {
					out[k] = v
				}
			}
		}
		b, _ := json.Marshal(out)
		frame := fmt.Appendf(nil, "id: %d\nevent: %s\ndata: %s\n\n", s.seq, ev["type"], b)
		select {
		case sb.ch <- frame:
		default:
			// Slow subscriber: tell it and drop it.
			delete(s.subs, sb)
			select {
			case sb.ch <- []byte("event: lagged\ndata: {\"type\":\"lagged\"}\n\n"):
			default:
			}
			close(sb.ch)
		}
	}
}

// Publish injects a raw event (a JSON object with at least "type" and
// "kind") into the streams.
func (s *Server) Publish(ev map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.publish(ev)
}

// Subscribers returns the number of open event streams.
func (s *Server) Subscribers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request, sb *sub, watch string) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeErr(w, 500, "no flusher")
		return
	}
	sb.ch = make(chan []byte, 256)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(200)
	s.mu.Lock()
	if watch != "" {
		st := map[string]any{"type": "lock.state", "kind": "lock", "name": watch}
		if l := s.liveLock(watch); l != nil {
			st["holder"], st["owner"], st["fencing_token"] = l.holder, l.holder, l.fencing
			st["expires_at"] = stamp(l.expires)
		}
		s.seq++
		st["seq"], st["time"] = s.seq, s.now().UTC().Format(time.RFC3339Nano)
		b, _ := json.Marshal(st)
		fmt.Fprintf(w, "id: %d\nevent: lock.state\ndata: %s\n\n", s.seq, b)
	}
	s.subs[sb] = struct{}{}
	s.mu.Unlock()
	io.WriteString(w, ": ping\n\n")
	fl.Flush()
	defer func() {
		s.mu.Lock()
		if _, ok := s.subs[sb]; ok {
			delete(s.subs, sb)
		}
		s.mu.Unlock()
	}()
	for {
		select {
		case <-r.Context().Done():
			return
		case f, ok := <-sb.ch:
			if !ok {
				return
			}
			w.Write(f)
			fl.Flush()
		}
	}
}

// writePage answers one page of a listing as the real server does
// (docs/api.md, "Listings"): items sorted by name, ?limit= (default 1,000,
// 1..10,000 else 422), ?cursor= (here: the last name, base64url; anything
// else 422), "total" and "next_cursor" while items remain.
func writePage[T any](w http.ResponseWriter, r *http.Request, key string, items []T, name func(T) string) {
	sort.Slice(items, func(i, j int) bool { return name(items[i]) < name(items[j]) })
	q := r.URL.Query()
	limit := 1000
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > 10000 {
			writeErr(w, 422, "limit must be an integer from 1 to 10000")
			return
		}
		limit = n
	}
	page := items
	if q.Has("cursor") {
		after, err := base64.RawURLEncoding.DecodeString(q.Get("cursor"))
		if err != nil || len(after) == 0 {
			writeErr(w, 422, "cursor is not one this server gave (take next_cursor from the previous page)")
			return
		}
		i := sort.Search(len(items), func(i int) bool { return name(items[i]) > string(after) })
		page = items[i:]
	}
	out := map[string]any{"total": len(items)}
	if len(page) > limit {
		page = page[:limit]
		out["next_cursor"] = base64.RawURLEncoding.EncodeToString([]byte(name(page[limit-1])))
	}
	out[key] = page
	writeJSON(w, 200, out)
}
