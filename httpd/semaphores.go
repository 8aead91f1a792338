package httpd

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/valyala/fasthttp"
)

// Semaphores: POST /semaphores/{name}/acquire, /renew, /release, GET
// /semaphores/{name} and GET /semaphores (the caller's held slots). Names follow the lock name rule and are one
// namespace for every user, like locks.

type semaphoreBody struct {
	lockBody
	Limit field `json:"limit"`
}

// MaxSemaphoreLimit bounds a semaphore's limit.
const MaxSemaphoreLimit = 10000

var errLimit = invalid("limit must be an integer between 1 and 10000")

func semaphoreRequest(ctx *fasthttp.RequestCtx) (string, semaphoreBody, error) {
	var body semaphoreBody
	name, err := lockName(ctx)
	if err == nil {
		err = decodeBody(ctx, &body)
	}
	return name, body, err
}

func (s *Server) semaphoreAcquire(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	name, body, err := semaphoreRequest(ctx)
	if err != nil {
		return err
	}
	if err := body.Limit.present("limit"); err != nil {
		return err
	}
	limit, err := body.Limit.Int("limit", 1, MaxSemaphoreLimit)
	if err != nil {
		return errLimit
	}
	h, err := holdFields(&body.lockBody)
	if err != nil {
		return err
	}
	meta, err := metadataField(&body.Metadata)
	if err != nil {
		return err
	}
	if err := noAdminWrites(p); err != nil {
		return err
	}
	req := actors.SemaphoreRequest{Caller: p.ID, HolderID: h.holderID, Limit: int(limit), TTL: h.ttl, Wait: h.wait, SessionID: h.sessionID,
		Metadata: meta}
	var g actors.SemaphoreGrant
	if h.wait > 0 {
		err = s.waiting(rq, h.wait, func(ctx context.Context) (func(context.Context), error) {
			if g, err = s.sems.Acquire(ctx, name, req); err != nil || !g.New {
				return nil, err
			}
			return func(ctx context.Context) { _ = s.sems.Release(ctx, name, req.Caller, g.Slot.LeaseID, false) }, nil
		})
	} else {
		g, err = s.sems.Acquire(rq.ctx(), name, req)
	}
	if err != nil {
		return err
	}
	status := "held"
	if g.New {
		status = "acquired"
	}
	return writeOK(ctx, appendSemaphoreGrant(make([]byte, 0, 320), status, name, p.Login, g))
}

// waiting runs a waiting call (a waiting acquire): out of the in-flight
// count and within the waiting bound while it waits, on a context that
// allows the wait and ends at shutdown. When the call granted something
// (undo is set) to a client that closed its connection meanwhile, undo
// gives it back at once (the actors do it when the close is noticed first).
func (s *Server) waiting(rq *request, wait time.Duration, call func(ctx context.Context) (undo func(context.Context), err error)) error {
	if err := s.limit.startWaiting(); err != nil {
		return err
	}
	defer s.limit.stopWaiting()
	undo, err := call(rq.waitCtx(wait))
	if err == nil && undo != nil && rq.clientGone() {
		ctx, cancel := context.WithTimeout(context.Background(), s.reqs.timeout)
		defer cancel()
		undo(ctx)
		return errClientGone
	}
	return err
}

func (s *Server) semaphoreRenew(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	name, body, err := semaphoreRequest(ctx)
	if err != nil {
		return err
	}
	lease, ttl, err := renewFields(&body.lockBody)
	if err != nil {
		return err
	}
	g, err := s.sems.Renew(rq.ctx(), name, p.ID, lease, ttl)
	if err != nil {
		return err
	}
	return writeOK(ctx, appendSemaphoreGrant(make([]byte, 0, 320), "held", name, p.Login, g))
}

var semaphoreReleasedBody = []byte(`{"status":"released","message":"Semaphore slot released"}`)

// semaphoreRelease frees a slot by its lease id (the admin key: anybody's).
func (s *Server) semaphoreRelease(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	name, err := lockName(ctx)
	if err != nil {
		return err
	}
	var body semaphoreBody
	if err := optionalBody(ctx, &body); err != nil {
		return err
	}
	lease, err := leaseField(&body.LeaseID)
	if err != nil {
		return err
	}
	if err := s.sems.Release(rq.ctx(), name, p.ID, lease, p.Admin); err != nil {
		return err
	}
	return writeOK(ctx, semaphoreReleasedBody)
}

// semaphoreStatus shows the held slots: lease, holder and session ids only
// of the caller's own slots (the admin key: every slot's).
func (s *Server) semaphoreStatus(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	name, err := lockName(ctx)
	if err != nil {
		return err
	}
	st, err := s.sems.Status(rq.ctx(), name)
	if err != nil {
		return err
	}
	b := append(make([]byte, 0, 128+len(st.Slots)*192), `{"name":`...)
	b = appendString(b, name)
	b = append(b, `,"limit":`...)
	b = strconv.AppendInt(b, int64(st.Limit), 10)
	b = append(b, `,"holders":[`...)
	for i, sl := range st.Slots {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendSlot(append(b, '{'), sl, s.auth.Login(sl.Holder), p.Admin || sl.Holder == p.ID)
	}
	b = append(b, `],"available":`...)
	b = strconv.AppendInt(b, int64(max(st.Limit-len(st.Slots), 0)), 10)
	b = append(b, `,"waiters":`...)
	b = strconv.AppendInt(b, int64(st.Waiters), 10)
	return writeOK(ctx, append(b, '}'))
}

// semaphoreList answers one page of the caller's held slots (the admin
// key: everyone's), by semaphore name, then lease id, from the per-user
// slot index (no actor is asked; paging.go). Every item is the caller's own
// slot (or the admin's view), so lease, holder and session ids are shown.
func (s *Server) semaphoreList(ctx *fasthttp.RequestCtx, _ *request, p *Principal) error {
	q, err := listQuery(ctx)
	if err != nil {
		return err
	}
	// The cursor's name is the last slot's SlotKey with '/' for the NUL
	// (a cursor's name is printable; semaphore names have no '/'). A
	// cursor without '/' (another listing's) is a position all the same.
	q.AfterName = strings.Replace(q.AfterName, "/", "\x00", 1)
	const itemSize = 320
	reserved, err := s.pageBudget(q, itemSize)
	if err != nil {
		return err
	}
	defer s.answers.release(reserved)
	var pg actors.Page[actors.HeldSlot]
	if p.Admin {
		pg = s.sems.ListAllPage(q)
	} else {
		pg = s.sems.ListPage(p.ID, q)
	}
	return writePage(ctx, "semaphores", pg, itemSize, false,
		func(sl *actors.HeldSlot) (string, string) { return "", sl.Name + "/" + sl.LeaseID },
		func(b []byte, sl *actors.HeldSlot) []byte {
			b = append(b, `{"name":`...)
			b = appendString(b, sl.Name)
			b = append(b, `,"limit":`...)
			b = strconv.AppendInt(b, int64(sl.Limit), 10)
			b = append(b, ',')
			return appendSlot(b, sl.SemaphoreSlot, s.auth.Login(sl.Holder), true)
		})
}

// appendSlot renders a slot's fields (lease, holder and session ids when
// own) and closes the object. holder is the login shown for sl.Holder (a
// user id).
func appendSlot(b []byte, sl actors.SemaphoreSlot, holder string, own bool) []byte {
	b = append(b, `"holder":`...)
	b = appendString(b, holder)
	if sl.Metadata != "" {
		b = append(b, `,"metadata":`...)
		b = appendString(b, sl.Metadata)
	}
	if own && sl.HolderID != "" {
		b = append(b, `,"holder_id":`...)
		b = appendString(b, sl.HolderID)
	}
	if own {
		b = append(b, `,"lease_id":`...)
		b = appendString(b, sl.LeaseID)
	}
	if own && sl.SessionID != "" {
		b = append(b, `,"session_id":`...)
		b = appendString(b, sl.SessionID)
	}
	b = append(b, `,"fencing_token":`...)
	b = strconv.AppendUint(b, sl.Token, 10)
	b = append(b, `,"expires_at":`...)
	b = appendTime(b, sl.ExpiresAt)
	return append(b, '}')
}

// appendSemaphoreGrant renders the answer of an acquire or renew to the
// holder, whose login is holder.
func appendSemaphoreGrant(b []byte, status, name, holder string, g actors.SemaphoreGrant) []byte {
	b = append(b, `{"status":"`...)
	b = append(b, status...)
	b = append(b, `","name":`...)
	b = appendString(b, name)
	b = append(b, `,"limit":`...)
	b = strconv.AppendInt(b, int64(g.Limit), 10)
	b = append(b, `,"holders":`...)
	b = strconv.AppendInt(b, int64(g.Holders), 10)
	b = append(b, ',')
	return appendSlot(b, g.Slot, holder, true)
}
