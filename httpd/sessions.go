package httpd

import (
	"math"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/octostore/octostore/actors"
	"github.com/valyala/fasthttp"
)

// Sessions: POST /sessions, POST /sessions/{id}/keepalive, DELETE
// /sessions/{id}, GET /sessions. A session is its creator's: another user's
// is 404, like one that does not exist. The admin key owns none (403 to
// create or keep one alive) but may close and list anybody's.

type sessionBody struct {
	TTL       field `json:"ttl_seconds"`
	LockDelay field `json:"lock_delay_seconds"`
}

// Bounds of a session's ttl_seconds and of lock_delay_seconds.
const (
	MinSessionTTLSeconds = 5
	MaxSessionTTLSeconds = 3600
	MaxLockDelaySeconds  = 60
)

var (
	errSessionTTL = invalid("ttl_seconds must be an integer number of seconds between 5 and 3600")
	errLockDelay  = invalid("lock_delay_seconds must be an integer number of seconds between 0 and 60")
	errSessionID  = invalid("session id must be a UUID")
	errSessionFmt = invalid("Invalid session_id format")
)

// sessionTTLField validates a session's ttl_seconds (5..3600).
func sessionTTLField(f *field) (time.Duration, error) {
	if err := f.present("ttl_seconds"); err != nil {
		return 0, err
	}
	v, err := f.Int("ttl_seconds", math.MinInt64, math.MaxInt64)
	if err != nil || v < MinSessionTTLSeconds || v > MaxSessionTTLSeconds {
		return 0, errSessionTTL
	}
	return time.Duration(v) * time.Second, nil
}

// lockDelayField validates the optional lock_delay_seconds (0..60; absent
// or null: 0).
func lockDelayField(f *field) (time.Duration, error) {
	return optionalSeconds(f, "lock_delay_seconds", MaxLockDelaySeconds, errLockDelay)
}

// canonicalUUID returns s as a canonical UUID (lower case), or false.
func canonicalUUID(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	if isCanonicalUUID(s) {
		return s, true
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

// sessionPathID validates the {id} path parameter.
func sessionPathID(ctx *fasthttp.RequestCtx) (string, error) {
	raw := pathParam(ctx)
	id, ok := canonicalUUID(raw)
	if !ok {
		return "", errSessionID
	}
	return id, nil
}

// sessionIDField validates the session_id of an acquire (a UUID); absent or
// null is "" (no session).
func sessionIDField(f *field) (string, error) {
	if !f.set() && !f.dup {
		return "", nil
	}
	s, err := f.String("session_id")
	if err != nil {
		return "", err
	}
	id, ok := canonicalUUID(s)
	if !ok {
		return "", errSessionFmt
	}
	return id, nil
}

func (s *Server) sessionCreate(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	var body sessionBody
	if err := decodeBody(ctx, &body); err != nil {
		return err
	}
	ttl, err := sessionTTLField(&body.TTL)
	if err != nil {
		return err
	}
	delay, err := lockDelayField(&body.LockDelay)
	if err != nil {
		return err
	}
	if err := noAdminWrites(p); err != nil {
		return err
	}
	r, err := s.sessions.Create(rq.ctx(), p.ID, ttl, delay)
	if err != nil {
		return err
	}
	b := append(make([]byte, 0, 160), `{"session_id":`...)
	b = appendString(b, r.ID)
	b = append(b, `,"ttl_seconds":`...)
	b = strconv.AppendInt(b, int64(r.TTL/time.Second), 10)
	b = append(b, `,"lock_delay_seconds":`...)
	b = strconv.AppendInt(b, int64(r.LockDelay/time.Second), 10)
	b = append(b, `,"expires_at":`...)
	b = appendTime(b, r.ExpiresAt)
	return writeOK(ctx, append(b, '}'))
}

func (s *Server) sessionKeepAlive(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	id, err := sessionPathID(ctx)
	if err != nil {
		return err
	}
	if err := noAdminWrites(p); err != nil {
		return err
	}
	r, err := s.sessions.KeepAlive(rq.ctx(), id, p.ID)
	if err != nil {
		return err
	}
	b := append(make([]byte, 0, 96), `{"session_id":`...)
	b = appendString(b, r.ID)
	b = append(b, `,"expires_at":`...)
	b = appendTime(b, r.ExpiresAt)
	return writeOK(ctx, append(b, '}'))
}

func (s *Server) sessionClose(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	id, err := sessionPathID(ctx)
	if err != nil {
		return err
	}
	n, err := s.sessions.Close(rq.ctx(), id, p.ID, p.Admin)
	if err != nil {
		return err
	}
	b := append(make([]byte, 0, 48), `{"status":"closed","released":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	return writeOK(ctx, append(b, '}'))
}

// sessionList answers the caller's live sessions from the session index;
// the admin key's listing has everybody's, each with its owner, unless
// ?owner=LOGIN narrows it (listScope, as for the other owned kinds).
func (s *Server) sessionList(ctx *fasthttp.RequestCtx, _ *request, p *Principal) error {
	owner, all, err := s.listScope(ctx, p)
	if err != nil {
		return err
	}
	q, err := listQuery(ctx)
	if err != nil {
		return err
	}
	const itemSize = 192
	reserved, err := s.pageBudget(q, itemSize)
	if err != nil {
		return err
	}
	defer s.answers.release(reserved)
	pg := s.sessions.ListPage(owner, q)
	return writePage(ctx, "sessions", pg, itemSize, false, func(st *actors.SessionState) (string, string) { return "", st.ID },
		func(b []byte, st *actors.SessionState) []byte {
			b = append(b, '{')
			b = s.appendOwner(b, all, st.Owner)
			b = append(b, `"session_id":`...)
			b = appendString(b, st.ID)
			b = append(b, `,"ttl_seconds":`...)
			b = strconv.AppendInt(b, int64(st.TTL/time.Second), 10)
			b = append(b, `,"lock_delay_seconds":`...)
			b = strconv.AppendInt(b, int64(st.LockDelay/time.Second), 10)
			b = append(b, `,"expires_at":`...)
			b = appendTime(b, st.ExpiresAt)
			b = appendNames(append(b, `,"locks":`...), st.Locks)
			b = appendNames(append(b, `,"semaphores":`...), st.Semaphores)
			return append(b, '}')
		})
}

// appendNames appends a JSON array of strings.
func appendNames(b []byte, names []string) []byte {
	b = append(b, '[')
	for i, n := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, n)
	}
	return append(b, ']')
}
