package httpd

import (
	"bytes"
	"context"
	"math"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/actors/names"
	"github.com/valyala/fasthttp"
)

var errLockName = invalid("lock name " + names.Lock.Requirement())

// lockName validates the {name} path parameter (names.Lock).
func lockName(ctx *fasthttp.RequestCtx) (string, error) { return validLockName(pathParam(ctx)) }

func validLockName(name string) (string, error) {
	if !names.Lock.Valid(name) {
		return "", errLockName
	}
	return name, nil
}

type lockBody struct {
	TTL       field `json:"ttl_seconds"`
	LeaseID   field `json:"lease_id"`
	HolderID  field `json:"holder_id"`
	Wait      field `json:"wait_seconds"`
	SessionID field `json:"session_id"`
	LockDelay field `json:"lock_delay_seconds"`
	Metadata  field `json:"metadata"`
}

// lockRequest validates the {name} path parameter and decodes the body.
func lockRequest(ctx *fasthttp.RequestCtx) (string, lockBody, error) {
	var body lockBody
	name, err := lockName(ctx)
	if err == nil {
		err = decodeBody(ctx, &body)
	}
	return name, body, err
}

// ttlField validates ttl_seconds: an integer, 1..3600. Each error names
// one cause: missing or repeated (field.present), not an integer, or out of
// range (the 0.2.2 message).
func ttlField(f *field) (time.Duration, error) {
	if err := f.present("ttl_seconds"); err != nil {
		return 0, err
	}
	v, err := f.Int("ttl_seconds", math.MinInt64, math.MaxInt64)
	if err != nil {
		return 0, errTTLNotInteger
	}
	if v < 1 || v > 3600 {
		return 0, errTTLRange
	}
	return time.Duration(v) * time.Second, nil
}

var (
	errTTLRange      = invalid("TTL must be between 1 and 3600 seconds")
	errTTLNotInteger = invalid("ttl_seconds must be an integer number of seconds between 1 and 3600")
)

// MaxWaitSeconds bounds wait_seconds of a waiting acquire.
const MaxWaitSeconds = 300

var errWait = invalid("wait_seconds must be an integer number of seconds between 0 and 300")

// waitField validates the optional wait_seconds of an acquire: an integer,
// 0..MaxWaitSeconds; absent or null is 0 (one attempt).
func waitField(f *field) (time.Duration, error) {
	return optionalSeconds(f, "wait_seconds", MaxWaitSeconds, errWait)
}

// optionalSeconds validates an optional field of whole seconds, 0..max:
// absent or null is 0; anything else out of range or not an integer is
// errBad (a field given twice is refused by present).
func optionalSeconds(f *field, name string, max int64, errBad error) (time.Duration, error) {
	if !f.set() && !f.dup {
		return 0, nil
	}
	if err := f.present(name); err != nil {
		return 0, err
	}
	v, err := f.Int(name, 0, max)
	if err != nil {
		return 0, errBad
	}
	return time.Duration(v) * time.Second, nil
}

var errHolderID = invalid("holder_id " + names.HolderID.Requirement())

// MaxMetadataBytes bounds the metadata of a hold.
const MaxMetadataBytes = 1024

var errMetadataLong = invalid("metadata must be at most 1024 bytes")

// metadataField validates the optional metadata of an acquire: a string of
// at most MaxMetadataBytes bytes, one line of text a terminal shows as it
// is (oneLineText, the rule of config descriptions); absent or null is nil
// (keep the hold's; none for a new grant).
func metadataField(f *field) (*string, error) {
	if !f.set() && !f.dup {
		return nil, nil
	}
	s, err := f.String("metadata")
	if err != nil {
		return nil, err
	}
	if len(s) > MaxMetadataBytes {
		return nil, errMetadataLong
	}
	if err := oneLineText("metadata", s); err != nil {
		return nil, err
	}
	return &s, nil
}

var errDelayAndSession = invalid("lock_delay_seconds is the session's for a lock held under a session (give it to POST /sessions)")

var errTTLAndSession = invalid("give ttl_seconds or session_id, not both: a lock held under a session lives as long as the session")

// holderIDField validates the optional holder_id of an acquire
// (names.HolderID); absent or null is "" (no holder id).
func holderIDField(f *field) (string, error) {
	if !f.set() && !f.dup {
		return "", nil
	}
	s, err := f.String("holder_id")
	if err != nil {
		return "", err
	}
	if !names.HolderID.Valid(s) {
		return "", errHolderID
	}
	return s, nil
}

var errLeaseFormat = invalid("Invalid lease_id format")

// leaseField validates lease_id (a canonical UUID) and normalises it.
func leaseField(f *field) (string, error) {
	s, err := f.String("lease_id")
	if err != nil {
		return "", err
	}
	if len(s) != 36 {
		return "", errLeaseFormat
	}
	if isCanonicalUUID(s) {
		return s, nil // already what u.String() would give: no second string
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return "", errLeaseFormat
	}
	return u.String(), nil
}

// isCanonicalUUID reports whether s is a UUID in its canonical text form
// (36 characters, lower-case hex, hyphens at 8, 13, 18 and 23), as
// uuid.UUID.String writes it.
func isCanonicalUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		switch c := s[i]; {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		default:
			return false
		}
	}
	return true
}

var errAdminOwnsNothing = actors.NewError(actors.CodeForbidden, "the admin key cannot own resources; use a user token")

// noAdminWrites refuses a write by the admin key to its own namespace: it
// owns nothing.
// hold are the validated fields every acquire of a hold (a lock or a
// semaphore slot) shares.
type hold struct {
	sessionID, holderID string
	ttl, wait           time.Duration // ttl 0 under a session
}

// holdFields validates body's session_id, ttl_seconds (required without a
// session, refused with one: errTTLAndSession), holder_id and
// wait_seconds, in that order (the first bad one is the one answered).
func holdFields(body *lockBody) (h hold, err error) {
	if h.sessionID, err = sessionIDField(&body.SessionID); err != nil {
		return h, err
	}
	switch {
	case h.sessionID == "":
		if h.ttl, err = ttlField(&body.TTL); err != nil {
			return h, err
		}
	case body.TTL.set() || body.TTL.dup:
		return h, errTTLAndSession
	}
	if h.holderID, err = holderIDField(&body.HolderID); err != nil {
		return h, err
	}
	h.wait, err = waitField(&body.Wait)
	return h, err
}

// renewFields validates a renewal's lease_id and ttl_seconds (locks and
// semaphore slots alike).
func renewFields(body *lockBody) (lease string, ttl time.Duration, err error) {
	if lease, err = leaseField(&body.LeaseID); err != nil {
		return "", 0, err
	}
	ttl, err = ttlField(&body.TTL)
	return lease, ttl, err
}

// optionalBody decodes a body that may be absent: none at all (or only
// whitespace) leaves v as it is, as if {} had been sent.
func optionalBody[T any](ctx *fasthttp.RequestCtx, v *T) error {
	if len(bytes.TrimSpace(ctx.PostBody())) == 0 {
		return nil
	}
	return decodeBody(ctx, v)
}

func noAdminWrites(p *Principal) error {
	if p.Admin {
		return errAdminOwnsNothing
	}
	return nil
}

func (s *Server) lockAcquire(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	name, body, err := lockRequest(ctx)
	if err != nil {
		return err
	}
	h, err := holdFields(&body)
	if err != nil {
		return err
	}
	delay, err := lockDelayField(&body.LockDelay)
	if err != nil {
		return err
	}
	if h.sessionID != "" && (body.LockDelay.set() || body.LockDelay.dup) {
		return errDelayAndSession
	}
	meta, err := metadataField(&body.Metadata)
	if err != nil {
		return err
	}
	if err := noAdminWrites(p); err != nil {
		return err
	}
	req := actors.LockRequest{Caller: p.ID, HolderID: h.holderID, TTL: h.ttl, Wait: h.wait, SessionID: h.sessionID, LockDelay: delay,
		Metadata: meta}
	var g actors.LockGrant
	if h.wait > 0 {
		g, err = s.acquireWaiting(rq, name, req)
	} else {
		g, err = s.locks.AcquireWith(rq.ctx(), name, req)
	}
	if err != nil {
		return err
	}
	status := "held"
	if g.New {
		status = "acquired"
	}
	return writeOK(ctx, appendLock(make([]byte, 0, 256), status, g.Lock, p.Login, true))
}

// acquireWaiting runs a waiting acquire (Server.waiting): a grant that
// arrives for a client who closed its connection meanwhile is released at
// once.
func (s *Server) acquireWaiting(rq *request, name string, req actors.LockRequest) (g actors.LockGrant, err error) {
	err = s.waiting(rq, req.Wait, func(ctx context.Context) (func(context.Context), error) {
		if g, err = s.locks.AcquireWith(ctx, name, req); err != nil || !g.New {
			return nil, err
		}
		return func(ctx context.Context) { _ = s.locks.Release(ctx, name, req.Caller, g.Lock.LeaseID) }, nil
	})
	return g, err
}

func (s *Server) lockRenew(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	name, body, err := lockRequest(ctx)
	if err != nil {
		return err
	}
	lease, ttl, err := renewFields(&body)
	if err != nil {
		return err
	}
	l, err := s.locks.Renew(rq.ctx(), name, p.ID, lease, ttl)
	if err != nil {
		return err
	}
	return writeOK(ctx, appendLock(make([]byte, 0, 256), "held", l, p.Login, true))
}

var releasedBody = []byte(`{"status":"released","message":"Lock released"}`)

// lockRelease releases the caller's lease; the admin key releases whatever
// lease is current (lease_id optional, and validated when given). The body
// is optional: none at all reads as {} (so the admin key may send none, and
// a user hears that lease_id is required).
func (s *Server) lockRelease(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	name, err := lockName(ctx)
	if err != nil {
		return err
	}
	var body lockBody
	if err := optionalBody(ctx, &body); err != nil {
		return err
	}
	var lease string
	if !p.Admin || body.LeaseID.set() {
		if lease, err = leaseField(&body.LeaseID); err != nil {
			return err
		}
	}
	if p.Admin {
		err = s.locks.ForceRelease(rq.ctx(), name)
	} else {
		err = s.locks.Release(rq.ctx(), name, p.ID, lease)
	}
	if err != nil {
		return err
	}
	return writeOK(ctx, releasedBody)
}

func (s *Server) lockStatus(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	name, err := lockName(ctx)
	if err != nil {
		return err
	}
	st, err := s.locks.Status(rq.ctx(), name)
	if err != nil {
		return err
	}
	if st.Delayed {
		b := append(make([]byte, 0, 192), `{"status":"delayed","name":`...)
		b = appendString(b, name)
		b = append(b, `,"holder":`...)
		b = appendString(b, s.auth.Login(st.Lock.DelayHolder))
		b = append(b, `,"expires_at":`...)
		b = appendTime(b, st.Lock.ExpiresAt)
		b = append(b, `,"available_at":`...)
		b = appendTime(b, st.Lock.AvailableAt)
		b = append(b, `,"waiters":`...)
		b = strconv.AppendInt(b, int64(st.Waiters), 10)
		b = append(b, `,"message":"Lock in lock-delay: its holder's hold expired"}`...)
		return writeOK(ctx, b)
	}
	if !st.Held {
		b := append(make([]byte, 0, 96), `{"status":"available","name":`...)
		b = appendString(b, name)
		b = append(b, `,"message":"Lock not currently held"}`...)
		return writeOK(ctx, b)
	}
	owner := p.Admin || st.Lock.Holder == p.ID
	b := appendLock(make([]byte, 0, 256), "held", st.Lock, s.auth.Login(st.Lock.Holder), owner)
	b = append(b[:len(b)-1], `,"waiters":`...)
	b = strconv.AppendInt(b, int64(st.Waiters), 10)
	return writeOK(ctx, append(b, '}'))
}

// lockList answers one page of the caller's held locks (the admin key:
// everyone's) by name, from the per-holder index (no scan; paging.go).
func (s *Server) lockList(ctx *fasthttp.RequestCtx, _ *request, p *Principal) error {
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
	var pg actors.Page[actors.LockRecord]
	if p.Admin {
		pg = s.locks.ListAllPage(q)
	} else {
		pg = s.locks.ListPage(p.ID, q)
	}
	return writePage(ctx, "locks", pg, itemSize, false, func(l *actors.LockRecord) (string, string) { return "", l.Name },
		func(b []byte, l *actors.LockRecord) []byte {
			return appendLockFields(append(b, '{'), *l, s.auth.Login(l.Holder), true)
		})
}

// appendLock renders a LockResponse; the lease id and the holder id only
// for its holder (and the admin). holder is the login shown for l.Holder (a
// user id).
func appendLock(b []byte, status string, l actors.LockRecord, holder string, withLease bool) []byte {
	b = append(b, `{"status":"`...)
	b = append(b, status...)
	b = append(b, `",`...)
	return appendLockFields(b, l, holder, withLease)
}

// appendLockFields renders name, lease_id (if withLease), fencing_token,
// expires_at, holder (the holder's login, given: l.Holder is its user id)
// and holder_id (if withLease and the grant had one), and closes the object.
func appendLockFields(b []byte, l actors.LockRecord, holder string, withLease bool) []byte {
	b = append(b, `"name":`...)
	b = appendString(b, l.Name)
	if withLease {
		b = append(b, `,"lease_id":`...)
		b = appendString(b, l.LeaseID)
	}
	b = append(b, `,"fencing_token":`...)
	b = strconv.AppendUint(b, l.Token, 10)
	b = append(b, `,"expires_at":`...)
	b = appendTime(b, l.ExpiresAt)
	b = append(b, `,"holder":`...)
	b = appendString(b, holder)
	if l.Metadata != "" {
		b = append(b, `,"metadata":`...)
		b = appendString(b, l.Metadata)
	}
	if withLease && l.HolderID != "" {
		b = append(b, `,"holder_id":`...)
		b = appendString(b, l.HolderID)
	}
	if withLease && l.SessionID != "" {
		b = append(b, `,"session_id":`...)
		b = appendString(b, l.SessionID)
	}
	return append(b, '}')
}
