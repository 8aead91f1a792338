package httpd

import (
	"bytes"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/octostore/octostore/actors"
	"github.com/valyala/fasthttp"
)

func (s *Server) routeConfig() {
	s.r.PUT("/config/{key}", s.authed(s.configSet))
	s.r.GET("/config/{key}", s.authed(s.configGet))
	s.r.DELETE("/config/{key}", s.authed(s.configDelete))
	s.r.GET("/config/{key}/history", s.authed(s.configHistory))
	s.r.GET("/config", s.authed(s.configList))
}

// Limits of config writes. The value limit is checked here: the server's
// body limit (1 MiB by default) is larger.
const (
	MaxConfigValue       = 100 << 10 // bytes of JSON, as sent
	MaxConfigDescription = 500       // characters
)

// rawJSON keeps a body field's JSON exactly as sent; unlike field, an
// explicit null is a value. dup: the field was given more than once.
type rawJSON struct {
	raw []byte
	dup bool
}

// UnmarshalJSON implements json.Unmarshaler; it never fails (the decoder has
// already checked the syntax).
func (r *rawJSON) UnmarshalJSON(b []byte) error {
	r.dup = r.raw != nil
	r.raw = append([]byte(nil), b...)
	return nil
}

type configBody struct {
	Value           rawJSON `json:"value"`
	Description     field   `json:"description"`
	ExpectedVersion field   `json:"expected_version"`
}

// configKey validates the {key} path parameter, answering 422 if invalid.
func configKey(ctx *fasthttp.RequestCtx) (string, bool) {
	key, _ := ctx.UserValue("key").(string)
	if !validConfigKey(key) {
		writeError(ctx, fasthttp.StatusUnprocessableEntity, "config key must match ^[a-zA-Z0-9._-]{1,100}$ (and not be . or ..)")
		return "", false
	}
	return key, true
}

// ifMatch parses the If-Match header: a version ("3" or the ETag "\"3\"";
// 0 = create only) or "*" (the key must exist). ok is false after a 422.
func ifMatch(ctx *fasthttp.RequestCtx) (expected int64, given, ok bool) {
	h := bytes.TrimSpace(ctx.Request.Header.Peek(fasthttp.HeaderIfMatch))
	if len(h) == 0 {
		return actors.ExpectAny, false, true
	}
	if string(h) == "*" {
		return actors.ExpectExists, true, true
	}
	if len(h) >= 2 && h[0] == '"' && h[len(h)-1] == '"' {
		h = h[1 : len(h)-1]
	}
	v, err := strconv.ParseInt(string(h), 10, 64)
	if err != nil || v < 0 {
		writeError(ctx, fasthttp.StatusUnprocessableEntity, `If-Match must be a version number (0: create only) or "*"`)
		return 0, false, false
	}
	return v, true, true
}

func (s *Server) configSet(ctx *fasthttp.RequestCtx, p *Principal) {
	key, ok := configKey(ctx)
	if !ok {
		return
	}
	expected, fromHeader, ok := ifMatch(ctx)
	if !ok {
		return
	}
	var body configBody
	if !decodeBody(ctx, &body) {
		return
	}
	if body.Value.raw == nil {
		writeError(ctx, fasthttp.StatusUnprocessableEntity, "value is required")
		return
	}
	if body.Value.dup {
		writeError(ctx, fasthttp.StatusUnprocessableEntity, "value is given more than once")
		return
	}
	if len(body.Value.raw) > MaxConfigValue {
		writeError(ctx, fasthttp.StatusRequestEntityTooLarge, "value is too large: at most 102400 bytes of JSON")
		return
	}
	op := actors.SetConfig{Value: body.Value.raw, Expected: expected}
	if body.Description.set() {
		d, msg := body.Description.String("description")
		if msg == "" && utf8.RuneCountInString(d) > MaxConfigDescription {
			msg = "description must be at most 500 characters"
		}
		if msg != "" {
			writeError(ctx, fasthttp.StatusUnprocessableEntity, msg)
			return
		}
		op.Description, op.SetDescription = d, true
	}
	if body.ExpectedVersion.set() {
		v, msg := body.ExpectedVersion.Int("expected_version", 0, math.MaxInt64)
		if msg != "" {
			writeError(ctx, fasthttp.StatusUnprocessableEntity, msg)
			return
		}
		if fromHeader && v != expected {
			writeError(ctx, fasthttp.StatusUnprocessableEntity, "expected_version and If-Match disagree")
			return
		}
		op.Expected = v
	}
	owner, ok := s.scope(ctx, p, true)
	if !ok {
		return
	}
	v, err := s.sys.Do(actors.Key{Kind: actors.KindConfig, Owner: owner, Name: key}, op)
	if err != nil {
		s.writeErr(ctx, err)
		return
	}
	writeConfig(ctx, v.(actors.ConfigReply).Config)
}

func (s *Server) configGet(ctx *fasthttp.RequestCtx, p *Principal) {
	owner, key, ok := s.configTarget(ctx, p, false)
	if !ok {
		return
	}
	if q := ctx.QueryArgs(); q.Has("version") {
		n, err := strconv.ParseInt(string(q.Peek("version")), 10, 64)
		if err != nil || n < 1 {
			writeError(ctx, fasthttp.StatusUnprocessableEntity, "version must be a positive integer")
			return
		}
		// Past versions are read from the database: every acknowledged
		// write is committed.
		c, found, err := s.store.ConfigVersion(owner, key, n)
		if err != nil {
			s.writeErr(ctx, err)
			return
		}
		if !found {
			writeError(ctx, fasthttp.StatusNotFound, "config key or version not found")
			return
		}
		writeConfig(ctx, c)
		return
	}
	v, err := s.sys.Do(actors.Key{Kind: actors.KindConfig, Owner: owner, Name: key}, actors.GetConfig{})
	if err != nil {
		s.writeErr(ctx, err)
		return
	}
	writeConfig(ctx, v.(actors.ConfigReply).Config)
}

func (s *Server) configDelete(ctx *fasthttp.RequestCtx, p *Principal) {
	owner, key, ok := s.configTarget(ctx, p, true)
	if !ok {
		return
	}
	if _, err := s.sys.Do(actors.Key{Kind: actors.KindConfig, Owner: owner, Name: key}, actors.DeleteConfig{}); err != nil {
		s.writeErr(ctx, err)
		return
	}
	writeRaw(ctx, fasthttp.StatusOK, []byte(`{"deleted":true}`))
}

func (s *Server) configHistory(ctx *fasthttp.RequestCtx, p *Principal) {
	owner, key, ok := s.configTarget(ctx, p, false)
	if !ok {
		return
	}
	versions, found, err := s.store.ConfigHistory(owner, key)
	if err != nil {
		s.writeErr(ctx, err)
		return
	}
	if !found {
		s.writeErr(ctx, actors.ErrConfigNotFound)
		return
	}
	size := 16
	for i := range versions {
		size += 96 + len(versions[i].Value) + len(versions[i].Description)
	}
	b := make([]byte, 0, size)
	b = append(b, `{"versions":[`...)
	for i := range versions {
		c := &versions[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"version":`...)
		b = strconv.AppendInt(b, c.Version, 10)
		b = append(b, `,"value":`...)
		b = append(b, c.Value...)
		b = append(b, `,"description":`...)
		b = appendString(b, c.Description)
		b = append(b, `,"created_at":`...)
		b = appendTime(b, c.UpdatedAt)
		b = append(b, '}')
	}
	b = append(b, `]}`...)
	writeRaw(ctx, fasthttp.StatusOK, b)
}

// configList is served from the database: every acknowledged write is
// committed, so it is there.
func (s *Server) configList(ctx *fasthttp.RequestCtx, p *Principal) {
	owner, all, ok := s.listScope(ctx, p)
	if !ok {
		return
	}
	keys, err := s.store.ListConfig(owner)
	if err != nil {
		s.writeErr(ctx, err)
		return
	}
	b := make([]byte, 0, 16+len(keys)*160)
	b = append(b, `{"configs":[`...)
	for i := range keys {
		c := &keys[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		b = appendOwner(b, all, c.Owner)
		b = append(b, `"key":`...)
		b = appendString(b, c.Key)
		b = append(b, `,"description":`...)
		b = appendString(b, c.Description)
		b = append(b, `,"version":`...)
		b = strconv.AppendInt(b, c.Version, 10)
		b = append(b, `,"created_at":`...)
		b = appendTime(b, c.CreatedAt)
		b = append(b, `,"updated_at":`...)
		b = appendTime(b, c.UpdatedAt)
		b = append(b, '}')
	}
	b = append(b, `]}`...)
	writeRaw(ctx, fasthttp.StatusOK, b)
}

// writeConfig renders a config key at one version, the value exactly as it
// was sent, and its version as the ETag (usable in If-Match).
func writeConfig(ctx *fasthttp.RequestCtx, c actors.ConfigRecord) {
	var nb [24]byte
	etag := append(nb[:0], '"')
	etag = strconv.AppendInt(etag, c.Version, 10)
	ctx.Response.Header.SetBytesV(fasthttp.HeaderETag, append(etag, '"'))
	b := make([]byte, 0, 128+len(c.Key)+len(c.Value)+len(c.Description))
	b = append(b, `{"key":`...)
	b = appendString(b, c.Key)
	b = append(b, `,"value":`...)
	b = append(b, c.Value...)
	b = append(b, `,"description":`...)
	b = appendString(b, c.Description)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, c.Version, 10)
	b = append(b, `,"created_at":`...)
	b = appendTime(b, c.CreatedAt)
	b = append(b, `,"updated_at":`...)
	b = appendTime(b, c.UpdatedAt)
	b = append(b, '}')
	writeRaw(ctx, fasthttp.StatusOK, b)
}

// configTarget validates the {key} path parameter and resolves whose key it
// is (write: the request changes it), answering the error itself.
func (s *Server) configTarget(ctx *fasthttp.RequestCtx, p *Principal, write bool) (owner, key string, ok bool) {
	if key, ok = configKey(ctx); !ok {
		return "", "", false
	}
	owner, ok = s.scope(ctx, p, write)
	return owner, key, ok
}
