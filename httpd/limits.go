package httpd

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/actors/names"
	"github.com/valyala/fasthttp"
)

// Bounds of the check parameters.
const (
	MaxLimitRequests = 10000
	MaxLimitWindow   = 86400 // seconds
)

type limitBody struct {
	Max       field `json:"max_requests"`
	Window    field `json:"window_seconds"`
	Cost      field `json:"cost"`
	Algorithm field `json:"algorithm"`
}

const errAlgorithm = "algorithm must be " + actors.SlidingWindowName + " or " + actors.TokenBucketName

// params validates a check's parameters; at prefixes the field names in
// messages ("checks[2]." in a batch).
func (b *limitBody) params(at string) (actors.LimitParams, error) {
	max, err := b.Max.Int(at+"max_requests", 1, MaxLimitRequests)
	if err != nil {
		return actors.LimitParams{}, err
	}
	win, err := b.Window.Int(at+"window_seconds", 1, MaxLimitWindow)
	if err != nil {
		return actors.LimitParams{}, err
	}
	p := actors.LimitParams{Max: int(max), Window: time.Duration(win) * time.Second, Cost: 1}
	if b.Cost.seen {
		cost, err := b.Cost.Int(at+"cost", 1, max)
		if err != nil {
			return p, err
		}
		p.Cost = int(cost)
	}
	if b.Algorithm.seen {
		name, err := b.Algorithm.String(at + "algorithm")
		if err != nil {
			return p, err
		}
		alg, ok := actors.ParseAlgorithm(name)
		if !ok {
			return p, invalid(at + errAlgorithm)
		}
		p.Algorithm = alg
	}
	return p, nil
}

// valid reports whether fast-parsed parameters are in range.
func validParams(p actors.LimitParams) bool {
	return p.Max >= 1 && p.Max <= MaxLimitRequests && p.Window >= time.Second && p.Window <= MaxLimitWindow*time.Second &&
		p.Cost >= 1 && p.Cost <= p.Max
}

// checkParams reads the body of a check. The common shape is parsed
// without allocating; anything else (or anything invalid) goes through
// decodeBody for the exact malformed/unsupported/invalid answer.
func checkParams(ctx *fasthttp.RequestCtx) (actors.LimitParams, error) {
	if jsonContentType(ctx.Request.Header.ContentType()) {
		if p, ok := fastCheckBody(ctx.PostBody()); ok && validParams(p) {
			return p, nil
		}
	}
	var body limitBody
	if err := decodeBody(ctx, &body); err != nil {
		return actors.LimitParams{}, err
	}
	return body.params("")
}

// fastCheckBody parses exactly {"max_requests":N,"window_seconds":M} with
// optional "cost":C and "algorithm":"sliding_window"|"token_bucket" (any
// order, any JSON whitespace, plain integers). ok is false for anything
// else, including other keys, floats and escapes; the ranges are the
// caller's to check.
func fastCheckBody(b []byte) (p actors.LimitParams, ok bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return p, false
	}
	p.Cost = 1
	var seen uint8
	for i++; ; {
		i = skipWS(b, i)
		key, j, ok := fastString(b, i)
		if !ok {
			return p, false
		}
		i = skipWS(b, j)
		if i >= len(b) || b[i] != ':' {
			return p, false
		}
		i = skipWS(b, i+1)
		var bit uint8
		if string(key) == "algorithm" {
			name, j, ok := fastString(b, i)
			if !ok {
				return p, false
			}
			alg, known := actors.ParseAlgorithm(string(name))
			if !known {
				return p, false
			}
			p.Algorithm, bit, i = alg, 8, j
		} else {
			start := i
			for i < len(b) && b[i] >= '0' && b[i] <= '9' {
				i++
			}
			// 1..18 digits, no leading zero (not JSON), then a delimiter.
			if i == start || i-start > 18 || (b[start] == '0' && i-start > 1) {
				return p, false
			}
			var v int64
			for _, c := range b[start:i] {
				v = v*10 + int64(c-'0')
			}
			if v > 1<<31 { // out of every range: decodeBody names the field
				return p, false
			}
			switch string(key) {
			case "max_requests":
				p.Max, bit = int(v), 1
			case "window_seconds":
				p.Window, bit = time.Duration(v)*time.Second, 2
			case "cost":
				p.Cost, bit = int(v), 4
			default:
				return p, false
			}
		}
		if seen&bit != 0 { // given twice: decodeBody answers 422
			return p, false
		}
		seen |= bit
		i = skipWS(b, i)
		if i >= len(b) {
			return p, false
		}
		if b[i] == ',' {
			i++
			continue
		}
		if b[i] != '}' {
			return p, false
		}
		if skipWS(b, i+1) != len(b) || seen&3 != 3 {
			return p, false
		}
		return p, true
	}
}

// fastString reads a JSON string without escapes at b[i]: its bytes and
// the index after its closing quote.
func fastString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	j := i + 1
	for j < len(b) && b[j] != '"' && b[j] != '\\' {
		j++
	}
	if j >= len(b) || b[j] != '"' {
		return nil, 0, false
	}
	return b[i+1 : j], j + 1, true
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func (s *Server) limitCheck(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	name, err := limitNames.name(ctx)
	if err != nil {
		return err
	}
	params, err := checkParams(ctx)
	if err != nil {
		return err
	}
	owner, err := s.scope(ctx, p, true)
	if err != nil {
		return err
	}
	r, err := s.limits.Check(rq.ctx(), owner, name, params)
	if err != nil {
		return err
	}
	writeLimit(ctx, &r)
	return nil
}

func (s *Server) limitStatus(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	owner, name, err := s.target(limitNames, ctx, p, false)
	if err != nil {
		return err
	}
	r, err := s.limits.Status(rq.ctx(), owner, name)
	if err != nil {
		return err
	}
	writeLimit(ctx, &r)
	return nil
}

var (
	resetBody   = []byte(`{"reset":true}`)
	deletedBody = []byte(`{"deleted":true}`)
)

func (s *Server) limitReset(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	return s.deleteTarget(ctx, rq, p, limitNames, s.limits.Reset, resetBody)
}

// deleteTarget answers a DELETE of an owner-scoped resource: validate the
// name and the owner, call del, answer body.
func (s *Server) deleteTarget(ctx *fasthttp.RequestCtx, rq *request, p *Principal, k resourceKind,
	del func(ctx context.Context, owner, name string) error, body []byte) error {
	owner, name, err := s.target(k, ctx, p, true)
	if err != nil {
		return err
	}
	if err := del(rq.ctx(), owner, name); err != nil {
		return err
	}
	return writeOK(ctx, body)
}

// limitList includes every check acknowledged before the request (the
// write-behind counters are written first: actors.Limits.List).
func (s *Server) limitList(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	return writeListing(s, ctx, rq, p, "limits", s.limits.List, func(it *actors.LimitStatus) (string, string) { return it.Owner, it.Name }, 192, func(b []byte, l *actors.LimitStatus, all bool) []byte {
		b = s.appendOwner(append(b, '{'), all, l.Owner)
		b = append(b, `"name":`...)
		b = appendString(b, l.Name)
		b = append(b, `,"max_requests":`...)
		b = strconv.AppendInt(b, int64(l.Max), 10)
		b = append(b, `,"window_seconds":`...)
		b = strconv.AppendInt(b, int64(l.Window/time.Second), 10)
		b = append(b, `,"current_count":`...)
		b = strconv.AppendInt(b, int64(l.Count), 10)
		b = append(b, `,"remaining":`...)
		b = strconv.AppendInt(b, int64(l.Remaining), 10)
		b = append(b, `,"allowed":`...)
		b = strconv.AppendBool(b, l.Allowed)
		b = append(b, `,"algorithm":"`...)
		b = append(b, l.Algorithm.String()...)
		b = append(b, '"')
		b = append(b, `,"reset_at":`...)
		b = appendTime(b, l.ResetAt)
		return append(b, '}')
	})
}

// appendTimeMS is appendTime (RFC 3339, milliseconds, UTC) without the
// general layout interpreter: the hot path formats one per check.
func appendTimeMS(b []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		return appendTime(b, t)
	}
	hh, mm, ss := t.Clock()
	ms := t.Nanosecond() / 1e6
	b = append(b, '"',
		byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+int(mo)/10), byte('0'+int(mo)%10), '-', byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+hh/10), byte('0'+hh%10), ':', byte('0'+mm/10), byte('0'+mm%10), ':',
		byte('0'+ss/10), byte('0'+ss%10), '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z', '"')
	return b
}

// ceilSeconds rounds d up to whole seconds.
func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// Header names in fasthttp's canonical form, so that setting them skips
// normalisation (clients match header names case-insensitively).
var (
	hdrLimit      = []byte("Ratelimit-Limit")
	hdrRemaining  = []byte("Ratelimit-Remaining")
	hdrReset      = []byte("Ratelimit-Reset")
	hdrPolicy     = []byte("Ratelimit-Policy")
	hdrRetryAfter = []byte("Retry-After")
)

// writeLimit renders a check or status answer and the RateLimit headers
// (draft-ietf-httpapi-ratelimit-headers) without allocating.
func writeLimit(ctx *fasthttp.RequestCtx, r *actors.LimitReply) {
	var nb [24]byte
	h := &ctx.Response.Header
	h.SetCanonical(hdrLimit, strconv.AppendInt(nb[:0], int64(r.Max), 10))
	h.SetCanonical(hdrRemaining, strconv.AppendInt(nb[:0], int64(r.Remaining), 10))
	h.SetCanonical(hdrReset, strconv.AppendInt(nb[:0], ceilSeconds(r.ResetIn), 10))
	pol := strconv.AppendInt(nb[:0], int64(r.Max), 10)
	pol = append(pol, ";w="...)
	h.SetCanonical(hdrPolicy, strconv.AppendInt(pol, int64(r.Window/time.Second), 10))
	var buf [160]byte
	b, retry := appendDecision(buf[:0], r)
	if retry > 0 {
		h.SetCanonical(hdrRetryAfter, strconv.AppendInt(nb[:0], retry, 10))
	}
	writeRaw(ctx, fasthttp.StatusOK, b)
}

// appendDecision renders a check's answer, {"allowed","remaining",
// "reset_at","retry_after_seconds"?,"algorithm"}, and returns the
// retry_after_seconds it gave (0 when allowed).
func appendDecision(b []byte, r *actors.LimitReply) ([]byte, int64) {
	b = append(b, `{"allowed":`...)
	b = strconv.AppendBool(b, r.Allowed)
	b = append(b, `,"remaining":`...)
	b = strconv.AppendInt(b, int64(r.Remaining), 10)
	b = append(b, `,"reset_at":`...)
	b = appendTimeMS(b, r.ResetAt)
	var retry int64
	if !r.Allowed {
		retry = max(ceilSeconds(r.RetryAfter), 1)
		b = append(b, `,"retry_after_seconds":`...)
		b = strconv.AppendInt(b, retry, 10)
	}
	b = append(b, `,"algorithm":"`...)
	b = append(b, r.Algorithm.String()...)
	return append(b, `"}`...), retry
}

// Bounds of a batch of checks.
const MaxLimitBatch = 100

type batchBody struct {
	Checks field `json:"checks"`
}

type batchCheckBody struct {
	Name field `json:"name"`
	limitBody
}

// limitBatch answers POST /limits/check: every check of the batch, in
// order, each exactly as POST /limits/{name}/check would answer it at that
// point (actors.Limits.CheckBatch), as {"results":[…]}; a check refused on
// its own (the quota for a new limit) has {"name","error","status"} in its
// place. Every check is validated before any is applied: one bad check is
// 422 naming it (checks[3].cost) and nothing is checked.
func (s *Server) limitBatch(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	var body batchBody
	if err := decodeBody(ctx, &body); err != nil {
		return err
	}
	raws, err := array(&body.Checks, "checks", MaxLimitBatch)
	if err != nil {
		return err
	}
	if len(raws) == 0 {
		return invalid(fmt.Sprintf("checks must be an array of 1 to %d checks", MaxLimitBatch))
	}
	checks := make([]actors.LimitCheck, len(raws))
	for i, raw := range raws {
		var c batchCheckBody
		if err := object(raw, "checks", i, &c); err != nil {
			return err
		}
		at := fmt.Sprintf("checks[%d].", i)
		name, err := c.Name.String(at + "name")
		if err != nil {
			return err
		}
		if !names.Resource.Valid(name) {
			return invalid(at + "name: " + limitNames.what + " " + names.Resource.Requirement())
		}
		params, err := c.params(at)
		if err != nil {
			return err
		}
		checks[i] = actors.LimitCheck{Name: name, LimitParams: params}
	}
	owner, err := s.scope(ctx, p, true)
	if err != nil {
		return err
	}
	results, err := s.limits.CheckBatch(rq.ctx(), owner, checks)
	if err != nil {
		return err
	}
	b := make([]byte, 0, 16+len(results)*160)
	b = append(b, `{"results":[`...)
	for i := range results {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendString(b, checks[i].Name)
		if err := results[i].Err; err != nil {
			b = append(appendItemError(append(b, ','), err), '}')
			continue
		}
		d, _ := appendDecision(nil, &results[i].LimitReply)
		b = append(b, ',')
		b = append(b, d[1:]...)
	}
	return writeOK(ctx, append(b, `]}`...))
}
