package httpd

import (
	"strconv"

	"github.com/octostore/octostore/actors"
	"github.com/valyala/fasthttp"
)

// MaxFlagSubject bounds the ?subject= of an evaluation.
const MaxFlagSubject = 1024

type flagBody struct {
	Enabled    field `json:"enabled"`
	Percentage field `json:"percentage"`
}

var (
	errSubjectTooLong = invalid("subject must be at most 1024 bytes")
	errPercentageNull = invalid("percentage must be an integer between 0 and 100; leave it out for no percentage")
)

func (s *Server) flagSet(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	name, err := flagNames.name(ctx)
	if err != nil {
		return err
	}
	var body flagBody
	if err := decodeBody(ctx, &body); err != nil {
		return err
	}
	enabled, err := body.Enabled.Bool("enabled")
	if err != nil {
		return err
	}
	// Without percentage the flag has none; null is refused rather than
	// taken as "none" (the contract's percentage is an integer or absent).
	pct := int64(actors.NoPercentage)
	if body.Percentage.seen {
		if pct, err = body.Percentage.Int("percentage", 0, 100); err != nil {
			if !body.Percentage.set() && !body.Percentage.dup {
				err = errPercentageNull
			}
			return err
		}
	}
	owner, err := s.scope(ctx, p, true)
	if err != nil {
		return err
	}
	f, err := s.flags.Put(rq.ctx(), owner, name, actors.FlagWrite{Enabled: enabled, Percentage: int(pct)})
	if err != nil {
		return err
	}
	return writeOK(ctx, s.appendFlag(make([]byte, 0, 160), f, false))
}

// flagGet evaluates the flag for ?subject= (default: the caller's login;
// for the admin key, the owner's). The hot path: the definition comes from
// the committed read view when the flag's actor is resident (no actor round
// trip, and then no request context either), no encoding/json, no copies of
// the subject.
func (s *Server) flagGet(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	owner, name, err := s.target(flagNames, ctx, p, false)
	if err != nil {
		return err
	}
	subject := ctx.QueryArgs().Peek("subject")
	if len(subject) > MaxFlagSubject {
		return errSubjectTooLong
	}
	st, ok := s.flags.Lookup(owner, name)
	if !ok {
		if st, err = s.flags.Get(rq.ctx(), owner, name); err != nil {
			return err
		}
	}
	if len(subject) == 0 {
		// The owner's login, not its id: bucketing is by login, as it was
		// before ids (docs/api.md), so rollouts do not move.
		subject = ownerLogin(ctx, p)
	}
	on, reason := st.Evaluate(owner, subject)
	var buf [192]byte
	b := append(buf[:0], `{"name":`...)
	b = appendString(b, name)
	b = append(b, `,"enabled":`...)
	b = strconv.AppendBool(b, on)
	b = append(b, `,"reason":"`...)
	b = append(b, reason...)
	b = append(b, `"}`...)
	return writeOK(ctx, b)
}

func (s *Server) flagDelete(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	return s.deleteTarget(ctx, rq, p, flagNames, s.flags.Delete, deletedBody)
}

// flagList is served from the database: every acknowledged write is
// committed, so it is there.
func (s *Server) flagList(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	return writeListing(s, ctx, rq, p, "flags", s.flags.List, func(it *actors.FlagRecord) string { return it.Owner }, 160, func(b []byte, f *actors.FlagRecord, all bool) []byte {
		return s.appendFlag(b, *f, all)
	})
}

// appendFlag renders a flag definition; percentage is left out when the
// flag has none (every flag answer: PUT, the listing).
func (s *Server) appendFlag(b []byte, f actors.FlagRecord, withOwner bool) []byte {
	b = append(b, '{')
	b = s.appendOwner(b, withOwner, f.Owner)
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
