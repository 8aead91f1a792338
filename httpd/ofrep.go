package httpd

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/actors/names"
	"github.com/valyala/fasthttp"
)

// The OpenFeature Remote Evaluation Protocol (OFREP, open-feature/protocol
// service/openapi.yaml 0.3): the caller's flags for OpenFeature SDKs.
//
//	POST /ofrep/v1/evaluate/flags/{key}  one flag, for server-side providers
//	POST /ofrep/v1/evaluate/flags        every flag of the caller, with an ETag
//
// Both evaluate exactly as GET /flags/{name}?subject= does (the context's
// targetingKey is the subject, its other properties the attributes), from
// the same committed state. Evaluation errors have OFREP's shape
// ({"key","errorCode","errorDetails"}, rendered by errors.go); errors of the
// server around them (401, 403, 413, 415, 503, ...) have the house shape.

// OFREP error codes (OpenFeature's).
const (
	ofrepFlagNotFound        = "FLAG_NOT_FOUND"
	ofrepParseError          = "PARSE_ERROR"
	ofrepInvalidContext      = "INVALID_CONTEXT"
	ofrepTargetingKeyMissing = "TARGETING_KEY_MISSING"
)

// ofrepError is an OFREP evaluation failure: errors.go answers it 404
// (FLAG_NOT_FOUND) or 400 with {"key"?,"errorCode","errorDetails"}.
type ofrepError struct {
	key, code, details string
}

func (e *ofrepError) Error() string { return e.code + ": " + e.details }

// ofrepContext is an evaluation context: the targeting key and the other
// properties, kept raw until a rule reads one.
type ofrepContext struct {
	targetingKey []byte // nil or empty: none
	props        map[string]json.RawMessage
}

// attr is an actors.FlagContext.Attr over the context's properties: a
// string, number or boolean; null, objects and arrays are as absent.
func (c *ofrepContext) attr(name string) (actors.AttrValue, bool) {
	raw, ok := c.props[name]
	if !ok || len(raw) == 0 {
		return actors.AttrValue{}, false
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return actors.AttrValue{}, false
		}
		return actors.AttrValue{Str: s}, true
	case 't', 'f':
		return actors.AttrValue{Kind: actors.AttrBool, Bool: raw[0] == 't'}, true
	case 'n', '{', '[':
		return actors.AttrValue{}, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return actors.AttrValue{}, false // out of float64's range
	}
	return actors.AttrValue{Kind: actors.AttrNumber, Num: f}, true
}

// flagContext is the actors' view of c.
func (c *ofrepContext) flagContext() actors.FlagContext {
	fc := actors.FlagContext{Subject: c.targetingKey}
	if len(c.props) > 0 {
		fc.Attr = c.attr
	}
	return fc
}

// readOFREPContext reads the body {"context": {...}}: PARSE_ERROR when it
// is not a JSON object, INVALID_CONTEXT when context is missing or not an
// object, or targetingKey is not a string.
func readOFREPContext(ctx *fasthttp.RequestCtx, key string) (*ofrepContext, error) {
	if !jsonContentType(ctx.Request.Header.ContentType()) {
		return nil, errContentType
	}
	var body map[string]json.RawMessage
	b := ctx.PostBody()
	if len(bytes.TrimSpace(b)) == 0 || json.Unmarshal(b, &body) != nil || body == nil {
		return nil, &ofrepError{key, ofrepParseError, "the body must be a JSON object {\"context\": {...}}"}
	}
	raw, ok := body["context"]
	if !ok {
		return nil, &ofrepError{key, ofrepInvalidContext, "context is required"}
	}
	c := &ofrepContext{}
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &c.props) != nil {
		return nil, &ofrepError{key, ofrepInvalidContext, "context must be an object"}
	}
	if tk, ok := c.props["targetingKey"]; ok && string(tk) != "null" {
		var s string
		if len(tk) == 0 || tk[0] != '"' || json.Unmarshal(tk, &s) != nil {
			return nil, &ofrepError{key, ofrepInvalidContext, "targetingKey must be a string"}
		}
		if len(s) > MaxFlagSubject {
			return nil, &ofrepError{key, ofrepInvalidContext, "targetingKey must be at most 1024 bytes"}
		}
		c.targetingKey = []byte(s)
	}
	return c, nil
}

const errTargetingKeyMissing = "the flag splits subjects by targetingKey (a percentage or variant weights): give one"

// ofrepEvaluate evaluates one flag for c. A flag that needs the subject's
// bucket (SPLIT) and a context without targetingKey is
// TARGETING_KEY_MISSING; an unknown flag FLAG_NOT_FOUND.
func ofrepEvaluate(name string, st *actors.FlagState, c *ofrepContext) (actors.FlagResult, *ofrepError) {
	if !st.Found {
		return actors.FlagResult{}, &ofrepError{name, ofrepFlagNotFound, "flag " + strconv.Quote(name) + " not found"}
	}
	r := actors.EvaluateFlag(&st.Flag, true, c.flagContext())
	if r.Reason == actors.ReasonSplit && len(c.targetingKey) == 0 {
		return actors.FlagResult{}, &ofrepError{name, ofrepTargetingKeyMissing, errTargetingKeyMissing}
	}
	return r, nil
}

// appendOFREPResult renders a successful evaluation: key, value (left out
// when nothing is served: the SDK uses the code's default), reason,
// variant, metadata.
func appendOFREPResult(b []byte, key string, r *actors.FlagResult) []byte {
	b = append(b, `{"key":`...)
	b = appendString(b, key)
	if r.Variant != "" {
		b = append(b, `,"value":`...)
		b = append(b, r.Value...)
	}
	b = append(b, `,"reason":`...)
	b = appendString(b, r.Reason)
	if r.Variant != "" {
		b = append(b, `,"variant":`...)
		b = appendString(b, r.Variant)
	}
	return append(b, `,"metadata":{}}`...)
}

// appendOFREPError renders an evaluation failure.
func appendOFREPError(b []byte, e *ofrepError) []byte {
	b = append(b, '{')
	if e.key != "" {
		b = append(b, `"key":`...)
		b = appendString(b, e.key)
		b = append(b, ',')
	}
	b = append(b, `"errorCode":`...)
	b = appendString(b, e.code)
	b = append(b, `,"errorDetails":`...)
	b = appendString(b, e.details)
	return append(b, '}')
}

// ofrepFlag answers POST /ofrep/v1/evaluate/flags/{key}: the caller's
// flag (the admin key: ?owner='s), from the committed read view when the
// flag's actor is resident. A key that is not a valid flag name names no
// flag: FLAG_NOT_FOUND, with the rule in errorDetails.
func (s *Server) ofrepFlag(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	key := pathParam(ctx)
	owner, err := s.scope(ctx, p, false)
	if err != nil {
		return err
	}
	if !names.Resource.Valid(key) {
		return &ofrepError{key, ofrepFlagNotFound, "no flag can be named so: a flag name " + names.Resource.Requirement()}
	}
	c, err := readOFREPContext(ctx, key)
	if err != nil {
		return err
	}
	st, ok := s.flags.Lookup(owner, key)
	if !ok {
		if st, err = s.flags.Get(rq.ctx(), owner, key); err != nil {
			return err
		}
	}
	r, oerr := ofrepEvaluate(key, &st, c)
	if oerr != nil {
		return oerr
	}
	return writeOK(ctx, appendOFREPResult(make([]byte, 0, 128+len(key)+len(r.Value)), key, &r))
}

// ofrepBulk answers POST /ofrep/v1/evaluate/flags: every flag of the
// caller evaluated for one context, in name order, each a result or an
// evaluation failure. The ETag is a digest of the owner's user id, its flag
// definitions and the answer: it changes whenever any of the flags
// changes (created, replaced, deleted), and whenever the answer would; an
// If-None-Match naming it is answered 304 with no body.
func (s *Server) ofrepBulk(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	owner, err := s.scope(ctx, p, false)
	if err != nil {
		return err
	}
	c, err := readOFREPContext(ctx, "")
	if err != nil {
		return err
	}
	h := sha256.New()
	h.Write([]byte(owner)) // the owner's user id: one user's tags say nothing of another's
	h.Write([]byte{0})
	b := append(make([]byte, 0, 1024), `{"flags":[`...)
	var def []byte
	// The flags a page at a time (the answer holds them all, their records
	// only one page).
	q := actors.PageQuery{Limit: DefaultListLimit}
	n := 0
	for {
		pg, err := s.flags.List(rq.ctx(), owner, q)
		if err != nil {
			return err
		}
		for i := range pg.Items {
			st := actors.FlagState{Flag: pg.Items[i], Found: true}
			def = s.appendFlag(def[:0], st.Flag, false)
			h.Write(def)
			h.Write([]byte{'\n'})
			if n > 0 {
				b = append(b, ',')
			}
			n++
			r, oerr := ofrepEvaluate(st.Flag.Name, &st, c)
			if oerr != nil {
				b = appendOFREPError(b, oerr)
				continue
			}
			b = appendOFREPResult(b, st.Flag.Name, &r)
		}
		if !pg.More || len(pg.Items) == 0 {
			break
		}
		q.AfterName = pg.Items[len(pg.Items)-1].Name
	}
	b = append(b, `]}`...)
	h.Write([]byte{0})
	h.Write(b)
	var sum [sha256.Size]byte
	etag := make([]byte, 0, 36)
	etag = append(etag, '"')
	etag = hex.AppendEncode(etag, h.Sum(sum[:0])[:16])
	etag = append(etag, '"')
	ctx.Response.Header.SetBytesV(fasthttp.HeaderETag, etag)
	if noneMatch(ctx.Request.Header.Peek(fasthttp.HeaderIfNoneMatch), etag) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return nil
	}
	return writeOK(ctx, b)
}

// noneMatch reports whether an If-None-Match header (a list of entity
// tags, or *) names etag, by the weak comparison RFC 9110 prescribes for
// it (a W/ prefix is ignored).
func noneMatch(h, etag []byte) bool {
	for len(h) > 0 {
		var tag []byte
		tag, h, _ = bytes.Cut(h, []byte(","))
		tag = bytes.TrimSpace(tag)
		tag = bytes.TrimPrefix(tag, []byte("W/"))
		if string(tag) == "*" || bytes.Equal(tag, etag) {
			return true
		}
	}
	return false
}
