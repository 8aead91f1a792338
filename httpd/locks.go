package httpd

import (
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/octostore/octostore/actors"
	"github.com/valyala/fasthttp"
)

func (s *Server) routeLocks() {
	s.r.POST("/locks/{name}/acquire", s.authed(s.lockAcquire))
	s.r.POST("/locks/{name}/renew", s.authed(s.lockRenew))
	s.r.POST("/locks/{name}/release", s.authed(s.lockRelease))
	s.r.GET("/locks/{name}", s.authed(s.lockStatus))
	s.r.GET("/locks", s.authed(s.lockList))
}

// validName reports whether name matches ^[A-Za-z0-9_-]{1,max}$.
func validName(name string, max int) bool {
	if len(name) == 0 || len(name) > max {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// MaxLockName is the longest lock name.
const MaxLockName = 128

// lockName validates the {name} path parameter, answering 422 if invalid.
func lockName(ctx *fasthttp.RequestCtx) (string, bool) {
	name, _ := ctx.UserValue("name").(string)
	if !validName(name, MaxLockName) {
		writeError(ctx, fasthttp.StatusUnprocessableEntity, "lock name must match ^[A-Za-z0-9_-]{1,128}$")
		return "", false
	}
	return name, true
}

type lockBody struct {
	TTL     field `json:"ttl_seconds"`
	LeaseID field `json:"lease_id"`
}

// lockRequest validates the {name} path parameter and decodes the body,
// answering the error itself when either is bad.
func lockRequest(ctx *fasthttp.RequestCtx) (string, lockBody, bool) {
	var body lockBody
	name, ok := lockName(ctx)
	if !ok || !decodeBody(ctx, &body) {
		return "", body, false
	}
	return name, body, true
}

// ttlField validates ttl_seconds (an integer, 1..3600).
func ttlField(ctx *fasthttp.RequestCtx, f *field) (time.Duration, bool) {
	v, msg := f.Int("ttl_seconds", 1, 3600)
	if msg != "" {
		if f.set() {
			msg = "TTL must be between 1 and 3600 seconds: " + msg
		}
		writeError(ctx, fasthttp.StatusUnprocessableEntity, msg)
		return 0, false
	}
	return time.Duration(v) * time.Second, true
}

// leaseField validates lease_id (a canonical UUID) and normalises it.
func leaseField(ctx *fasthttp.RequestCtx, f *field) (string, bool) {
	s, msg := f.String("lease_id")
	if msg != "" {
		writeError(ctx, fasthttp.StatusUnprocessableEntity, msg)
		return "", false
	}
	if len(s) != 36 {
		writeError(ctx, fasthttp.StatusUnprocessableEntity, "Invalid lease_id format")
		return "", false
	}
	u, err := uuid.Parse(s)
	if err != nil {
		writeError(ctx, fasthttp.StatusUnprocessableEntity, "Invalid lease_id format")
		return "", false
	}
	return u.String(), true
}

func (s *Server) noAdminWrites(ctx *fasthttp.RequestCtx, p *Principal) bool {
	if p.Admin {
		writeError(ctx, fasthttp.StatusForbidden, "the admin key cannot own resources; use a user token")
		return false
	}
	return true
}

func (s *Server) lockAcquire(ctx *fasthttp.RequestCtx, p *Principal) {
	name, body, ok := lockRequest(ctx)
	if !ok {
		return
	}
	ttl, ok := ttlField(ctx, &body.TTL)
	if !ok || !s.noAdminWrites(ctx, p) {
		return
	}
	v, err := s.sys.Do(actors.Key{Kind: actors.KindLock, Name: name}, actors.AcquireLock{Caller: p.Login, TTL: ttl})
	if err != nil {
		s.writeErr(ctx, err)
		return
	}
	r := v.(actors.LockReply)
	status := "held"
	if r.Outcome == actors.LockAcquired {
		status = "acquired"
	}
	writeRaw(ctx, fasthttp.StatusOK, appendLock(make([]byte, 0, 256), status, r.Lock, true))
}

func (s *Server) lockRenew(ctx *fasthttp.RequestCtx, p *Principal) {
	name, body, ok := lockRequest(ctx)
	if !ok {
		return
	}
	lease, ok := leaseField(ctx, &body.LeaseID)
	if !ok {
		return
	}
	ttl, ok := ttlField(ctx, &body.TTL)
	if !ok {
		return
	}
	v, err := s.sys.Do(actors.Key{Kind: actors.KindLock, Name: name}, actors.RenewLock{Caller: p.Login, LeaseID: lease, TTL: ttl})
	if err != nil {
		s.writeErr(ctx, err)
		return
	}
	writeRaw(ctx, fasthttp.StatusOK, appendLock(make([]byte, 0, 256), "held", v.(actors.LockReply).Lock, true))
}

func (s *Server) lockRelease(ctx *fasthttp.RequestCtx, p *Principal) {
	name, body, ok := lockRequest(ctx)
	if !ok {
		return
	}
	var lease string
	if !p.Admin || body.LeaseID.set() {
		if lease, ok = leaseField(ctx, &body.LeaseID); !ok {
			return
		}
	}
	_, err := s.sys.Do(actors.Key{Kind: actors.KindLock, Name: name}, actors.ReleaseLock{Caller: p.Login, LeaseID: lease, Admin: p.Admin})
	if err != nil {
		s.writeErr(ctx, err)
		return
	}
	writeRaw(ctx, fasthttp.StatusOK, []byte(`{"status":"released","message":"Lock released"}`))
}

func (s *Server) lockStatus(ctx *fasthttp.RequestCtx, p *Principal) {
	name, ok := lockName(ctx)
	if !ok {
		return
	}
	v, err := s.sys.Do(actors.Key{Kind: actors.KindLock, Name: name}, actors.LockStatus{})
	if err != nil {
		s.writeErr(ctx, err)
		return
	}
	r := v.(actors.LockReply)
	if r.Outcome == actors.LockAvailable {
		b := append(make([]byte, 0, 96), `{"status":"available","name":`...)
		b = appendString(b, name)
		b = append(b, `,"message":"Lock not currently held"}`...)
		writeRaw(ctx, fasthttp.StatusOK, b)
		return
	}
	owner := p.Admin || r.Lock.Holder == p.Login
	writeRaw(ctx, fasthttp.StatusOK, appendLock(make([]byte, 0, 256), "held", r.Lock, owner))
}

func (s *Server) lockList(ctx *fasthttp.RequestCtx, p *Principal) {
	now := s.sys.Now()
	var locks []actors.LockRecord
	if p.Admin {
		locks = s.sys.Holdings.All(now)
	} else {
		locks = s.sys.Holdings.List(p.Login, now)
	}
	b := make([]byte, 0, 64+len(locks)*160)
	b = append(b, `{"locks":[`...)
	for i, l := range locks {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendString(b, l.Name)
		b = append(b, `,"lease_id":`...)
		b = appendString(b, l.LeaseID)
		b = append(b, `,"fencing_token":`...)
		b = strconv.AppendUint(b, l.Token, 10)
		b = append(b, `,"expires_at":`...)
		b = appendTime(b, l.ExpiresAt)
		b = append(b, `,"holder":`...)
		b = appendString(b, l.Holder)
		b = append(b, '}')
	}
	b = append(b, `],"total":`...)
	b = strconv.AppendInt(b, int64(len(locks)), 10)
	b = append(b, '}')
	writeRaw(ctx, fasthttp.StatusOK, b)
}

// appendLock renders a LockResponse; the lease id only for its holder.
func appendLock(b []byte, status string, l actors.LockRecord, withLease bool) []byte {
	b = append(b, `{"status":"`...)
	b = append(b, status...)
	b = append(b, `","name":`...)
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
	b = appendString(b, l.Holder)
	return append(b, '}')
}
