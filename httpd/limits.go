package httpd

import (
	"context"
	"strconv"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/valyala/fasthttp"
)

// Bounds of the check parameters.
const (
	MaxLimitRequests = 10000
	MaxLimitWindow   = 86400 // seconds
)

type limitBody struct {
	Max    field `json:"max_requests"`
	Window field `json:"window_seconds"`
}

// checkParams reads the body of a check. The common shape is parsed
// without allocating; anything else (or anything invalid) goes through
// decodeBody for the exact malformed/unsupported/invalid answer.
func checkParams(ctx *fasthttp.RequestCtx) (int, time.Duration, error) {
	if jsonContentType(ctx.Request.Header.ContentType()) {
		if max, win, ok := fastCheckBody(ctx.PostBody()); ok &&
			max >= 1 && max <= MaxLimitRequests && win >= 1 && win <= MaxLimitWindow {
			return int(max), time.Duration(win) * time.Second, nil
		}
	}
	var body limitBody
	if err := decodeBody(ctx, &body); err != nil {
		return 0, 0, err
	}
	max, err := body.Max.Int("max_requests", 1, MaxLimitRequests)
	if err != nil {
		return 0, 0, err
	}
	win, err := body.Window.Int("window_seconds", 1, MaxLimitWindow)
	if err != nil {
		return 0, 0, err
	}
	return int(max), time.Duration(win) * time.Second, nil
}

// fastCheckBody parses exactly {"max_requests":N,"window_seconds":M}
// (either order, any JSON whitespace, plain integers). ok is false for
// anything else, including other keys, floats and escapes.
func fastCheckBody(b []byte) (max, win int64, ok bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return 0, 0, false
	}
	var seen uint8
	for i++; ; {
		i = skipWS(b, i)
		if i >= len(b) || b[i] != '"' {
			return 0, 0, false
		}
		j := i + 1
		for j < len(b) && b[j] != '"' && b[j] != '\\' {
			j++
		}
		if j >= len(b) || b[j] != '"' {
			return 0, 0, false
		}
		key := b[i+1 : j]
		i = skipWS(b, j+1)
		if i >= len(b) || b[i] != ':' {
			return 0, 0, false
		}
		i = skipWS(b, i+1)
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		// 1..19 digits, no leading zero (not JSON), then a delimiter.
		if i == start || i-start > 18 || (b[start] == '0' && i-start > 1) {
			return 0, 0, false
		}
		var v int64
		for _, c := range b[start:i] {
			v = v*10 + int64(c-'0')
		}
		switch string(key) {
		case "max_requests":
			if seen&1 != 0 { // given twice: decodeBody answers 422
				return 0, 0, false
			}
			max, seen = v, seen|1
		case "window_seconds":
			if seen&2 != 0 {
				return 0, 0, false
			}
			win, seen = v, seen|2
		default:
			return 0, 0, false
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return 0, 0, false
		}
		if b[i] == ',' {
			i++
			continue
		}
		if b[i] != '}' {
			return 0, 0, false
		}
		if skipWS(b, i+1) != len(b) || seen != 3 {
			return 0, 0, false
		}
		return max, win, true
	}
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
	max, win, err := checkParams(ctx)
	if err != nil {
		return err
	}
	owner, err := s.scope(ctx, p, true)
	if err != nil {
		return err
	}
	r, err := s.limits.Check(rq.ctx(), owner, name, max, win)
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
	return writeListing(s, ctx, rq, p, "limits", s.limits.List, func(it *actors.LimitStatus) string { return it.Owner }, 192, func(b []byte, l *actors.LimitStatus, all bool) []byte {
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

	var buf [128]byte
	b := append(buf[:0], `{"allowed":`...)
	b = strconv.AppendBool(b, r.Allowed)
	b = append(b, `,"remaining":`...)
	b = strconv.AppendInt(b, int64(r.Remaining), 10)
	b = append(b, `,"reset_at":`...)
	b = appendTimeMS(b, r.ResetAt)
	if !r.Allowed {
		retry := ceilSeconds(r.RetryAfter)
		if retry < 1 {
			retry = 1
		}
		b = append(b, `,"retry_after_seconds":`...)
		b = strconv.AppendInt(b, retry, 10)
		h.SetCanonical(hdrRetryAfter, strconv.AppendInt(nb[:0], retry, 10))
	}
	b = append(b, '}')
	writeRaw(ctx, fasthttp.StatusOK, b)
}
