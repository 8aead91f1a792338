package httpd

import (
	"strconv"

	"github.com/octostore/octostore/actors"
	"github.com/valyala/fasthttp"
)

func (s *Server) routeFlags() {
	s.r.PUT("/flags/{name}", s.authed(s.flagSet))
	s.r.GET("/flags/{name}", s.authed(s.flagGet))
	s.r.DELETE("/flags/{name}", s.authed(s.flagDelete))
	s.r.GET("/flags", s.authed(s.flagList))
}

// MaxFlagSubject bounds the ?subject= of an evaluation.
const MaxFlagSubject = 1024

type flagBody struct {
	Enabled    field `json:"enabled"`
	Percentage field `json:"percentage"`
}

func (s *Server) flagSet(ctx *fasthttp.RequestCtx, p *Principal) {
	name, ok := pathName(ctx, "flag name")
	if !ok {
		return
	}
	var body flagBody
	if !decodeBody(ctx, &body) {
		return
	}
	enabled, msg := body.Enabled.Bool("enabled")
	if msg != "" {
		writeError(ctx, fasthttp.StatusUnprocessableEntity, msg)
		return
	}
	// Without percentage the flag has none; null is refused rather than
	// taken as "none" (the contract's percentage is an integer or absent).
	pct := int64(actors.NoPercentage)
	if body.Percentage.seen {
		if pct, msg = body.Percentage.Int("percentage", 0, 100); msg != "" {
			if !body.Percentage.set() && !body.Percentage.dup {
				msg = "percentage must be an integer between 0 and 100; leave it out for no percentage"
			}
			writeError(ctx, fasthttp.StatusUnprocessableEntity, msg)
			return
		}
	}
	owner, ok := s.scope(ctx, p, true)
	if !ok {
		return
	}
	v, err := s.sys.Do(actors.Key{Kind: actors.KindFlag, Owner: owner, Name: name}, actors.SetFlag{Enabled: enabled, Percentage: int(pct)})
	if err != nil {
		s.writeErr(ctx, err)
		return
	}
	f := v.(actors.FlagReply).Flag
	writeRaw(ctx, fasthttp.StatusOK, appendFlag(make([]byte, 0, 160), f, false))
}

// flagGet evaluates the flag for ?subject= (default: the caller's login;
// for the admin key, the owner's). The hot path: the definition comes from
// the committed read view when the flag's actor is resident (no actor round
// trip), no encoding/json, no copies of the subject.
func (s *Server) flagGet(ctx *fasthttp.RequestCtx, p *Principal) {
	name, ok := pathName(ctx, "flag name")
	if !ok {
		return
	}
	owner, ok := s.scope(ctx, p, false)
	if !ok {
		return
	}
	subject := ctx.QueryArgs().Peek("subject")
	if len(subject) > MaxFlagSubject {
		writeError(ctx, fasthttp.StatusUnprocessableEntity, "subject must be at most 1024 bytes")
		return
	}
	r, ok := s.res.LookupFlag(owner, name)
	if !ok {
		v, err := s.sys.Do(actors.Key{Kind: actors.KindFlag, Owner: owner, Name: name}, actors.GetFlag{})
		if err != nil {
			s.writeErr(ctx, err)
			return
		}
		r = v.(actors.FlagReply)
	}
	var on bool
	var reason string
	if len(subject) == 0 {
		var sb [maxLogin]byte
		on, reason = actors.EvaluateFlag(r.Flag, r.Found, append(sb[:0], owner...))
	} else {
		on, reason = actors.EvaluateFlag(r.Flag, r.Found, subject)
	}
	var buf [192]byte
	b := append(buf[:0], `{"name":`...)
	b = appendString(b, name)
	b = append(b, `,"enabled":`...)
	b = strconv.AppendBool(b, on)
	b = append(b, `,"reason":"`...)
	b = append(b, reason...)
	b = append(b, `"}`...)
	writeRaw(ctx, fasthttp.StatusOK, b)
}

func (s *Server) flagDelete(ctx *fasthttp.RequestCtx, p *Principal) {
	name, ok := pathName(ctx, "flag name")
	if !ok {
		return
	}
	owner, ok := s.scope(ctx, p, true)
	if !ok {
		return
	}
	if _, err := s.sys.Do(actors.Key{Kind: actors.KindFlag, Owner: owner, Name: name}, actors.DeleteFlag{}); err != nil {
		s.writeErr(ctx, err)
		return
	}
	writeRaw(ctx, fasthttp.StatusOK, []byte(`{"deleted":true}`))
}

// flagList is served from the database: every acknowledged write is
// committed, so it is there.
func (s *Server) flagList(ctx *fasthttp.RequestCtx, p *Principal) {
	owner, all, ok := s.listScope(ctx, p)
	if !ok {
		return
	}
	flags, err := s.store.ListFlags(owner)
	if err != nil {
		s.writeErr(ctx, err)
		return
	}
	b := make([]byte, 0, 16+len(flags)*160)
	b = append(b, `{"flags":[`...)
	for i := range flags {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendFlag(b, flags[i], all)
	}
	b = append(b, `]}`...)
	writeRaw(ctx, fasthttp.StatusOK, b)
}

// appendFlag renders a flag definition; percentage is left out when the
// flag has none (every flag answer: PUT, the listing).
func appendFlag(b []byte, f actors.FlagRecord, withOwner bool) []byte {
	b = append(b, '{')
	b = appendOwner(b, withOwner, f.Owner)
	b = append(b, `"name":`...)
	b = appendString(b, f.Name)
	b = append(b, `,"enabled":`...)
	b = strconv.AppendBool(b, f.Enabled)
	if f.Percentage != actors.NoPercentage {
		b = append(b, `,"percentage":`...)
		b = strconv.AppendInt(b, int64(f.Percentage), 10)
	}
	b = append(b, `,"created_at":`...)
	b = appendTime(b, f.CreatedAt)
	b = append(b, `,"updated_at":`...)
	b = appendTime(b, f.UpdatedAt)
	return append(b, '}')
}
