package httpd

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/actors/names"
	"github.com/octostore/octostore/tools/termtext"
	"github.com/valyala/fasthttp"
)

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

var (
	errConfigKey        = invalid("config key " + names.ConfigKey.Requirement())
	errIfMatch          = invalid(`If-Match must be "*", a version N or "N" (N a decimal without sign or leading zeros; 0: the key must not exist), given once`)
	errValueRequired    = invalid("value is required")
	errValueDup         = invalid("value is given more than once")
	errValueTooLarge    = actors.NewError(actors.CodeTooLarge, "value is too large: at most 102400 bytes of JSON")
	errDescriptionLong  = invalid("description must be at most 500 characters")
	errExpectedMismatch = invalid("expected_version and If-Match disagree")
	errVersionParam     = invalid("version must be a positive integer")
)

// descriptionText refuses a description holding a character a terminal
// acts on instead of showing (termtext.Unsafe: controls, line breaks, C1,
// bidi overrides): it is shown by the CLI, the TUI and anything else that
// lists config, and it is one line of text.
func descriptionText(d string) error { return oneLineText("description", d) }

// oneLineText refuses, naming field, a text holding a character a terminal
// acts on instead of showing (termtext.Unsafe): the rule of every text the
// server stores to be shown to people (config descriptions, metadata).
func oneLineText(field, d string) error {
	i := termtext.Index(d)
	if i < 0 {
		return nil
	}
	r, _ := utf8.DecodeRuneInString(d[i:])
	return invalid(fmt.Sprintf("%s must not contain control or bidirectional formatting characters (U+%04X at character %d)",
		field, r, utf8.RuneCountInString(d[:i])+1))
}

// configKey validates the {key} path parameter (names.ConfigKey).
func configKey(ctx *fasthttp.RequestCtx) (string, error) { return validConfigKey(pathParam(ctx)) }

func validConfigKey(key string) (string, error) {
	if !names.ConfigKey.Valid(key) {
		return "", errConfigKey
	}
	return key, nil
}

// ifMatch parses the If-Match header of a config write (PUT, DELETE or
// POST rollback).
// Absent: no condition (given false). Present, it must be exactly one of
// "*" (the key must exist), a version N or its ETag "N" (0: the key must not
// exist), N a canonical decimal (no sign, no leading zero unless it is "0",
// at most MaxInt64). Anything else, an empty value or more than one header
// included, is errIfMatch (422): a condition the server cannot read is never
// taken as no condition, nor as another version.
func ifMatch(ctx *fasthttp.RequestCtx) (expected int64, given bool, err error) {
	all := ctx.Request.Header.PeekAll(fasthttp.HeaderIfMatch)
	switch len(all) {
	case 0:
		return actors.ExpectAny, false, nil
	case 1:
	default:
		return 0, false, errIfMatch
	}
	h := bytes.TrimSpace(all[0])
	if string(h) == "*" {
		return actors.ExpectExists, true, nil
	}
	if len(h) >= 2 && h[0] == '"' && h[len(h)-1] == '"' {
		h = h[1 : len(h)-1]
	}
	v, ok := canonicalVersion(h)
	if !ok {
		return 0, false, errIfMatch
	}
	return v, true, nil
}

// canonicalVersion parses b as a canonical non-negative decimal: digits
// only, no leading zero unless b is "0", at most math.MaxInt64.
func canonicalVersion(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 1 && b[0] == '0' {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	return v, err == nil
}

// configWrite validates the body of a config write, with the condition of
// the If-Match header (expected, given) if any.
func configWrite(ctx *fasthttp.RequestCtx, expected int64, fromHeader bool) (actors.ConfigWrite, error) {
	var body configBody
	if err := decodeBody(ctx, &body); err != nil {
		return actors.ConfigWrite{}, err
	}
	switch {
	case body.Value.raw == nil:
		return actors.ConfigWrite{}, errValueRequired
	case body.Value.dup:
		return actors.ConfigWrite{}, errValueDup
	case len(body.Value.raw) > MaxConfigValue:
		return actors.ConfigWrite{}, errValueTooLarge
	}
	w := actors.ConfigWrite{Value: body.Value.raw, Expected: expected}
	if body.Description.set() {
		d, err := body.Description.String("description")
		if err == nil && utf8.RuneCountInString(d) > MaxConfigDescription {
			err = errDescriptionLong
		}
		if err == nil {
			err = descriptionText(d)
		}
		if err != nil {
			return actors.ConfigWrite{}, err
		}
		w.Description, w.SetDescription = d, true
	}
	var err error
	if w.Expected, err = bodyCondition(&body.ExpectedVersion, expected, fromHeader); err != nil {
		return actors.ConfigWrite{}, err
	}
	return w, nil
}

// bodyCondition merges a body's expected_version with the If-Match
// condition (expected; fromHeader: given): either alone is the condition,
// both must agree (422 otherwise); null is the same as absent.
func bodyCondition(f *field, expected int64, fromHeader bool) (int64, error) {
	if !f.set() {
		return expected, nil
	}
	v, err := f.Int("expected_version", 0, math.MaxInt64)
	if err != nil {
		return 0, err
	}
	if fromHeader && v != expected {
		return 0, errExpectedMismatch
	}
	return v, nil
}

func (s *Server) configSet(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	key, err := configKey(ctx)
	if err != nil {
		return err
	}
	expected, fromHeader, err := ifMatch(ctx)
	if err != nil {
		return err
	}
	w, err := configWrite(ctx, expected, fromHeader)
	if err != nil {
		return err
	}
	owner, err := s.scope(ctx, p, true)
	if err != nil {
		return err
	}
	c, err := s.config.Put(rq.ctx(), owner, key, w)
	if err != nil {
		return err
	}
	return writeConfig(ctx, c)
}

type rollbackBody struct {
	Version         field `json:"version"`
	ExpectedVersion field `json:"expected_version"`
}

// configRollback answers POST /config/{key}/rollback {"version": N}: a new
// version (current + 1) with version N's value and description, durable
// when answered; If-Match / expected_version as for PUT (409 when it does
// not hold); 404 for a key that does not exist or a version not kept.
func (s *Server) configRollback(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	key, err := configKey(ctx)
	if err != nil {
		return err
	}
	expected, fromHeader, err := ifMatch(ctx)
	if err != nil {
		return err
	}
	var body rollbackBody
	if err := decodeBody(ctx, &body); err != nil {
		return err
	}
	n, err := body.Version.Int("version", 1, math.MaxInt64)
	if err != nil {
		return err
	}
	if expected, err = bodyCondition(&body.ExpectedVersion, expected, fromHeader); err != nil {
		return err
	}
	owner, err := s.scope(ctx, p, true)
	if err != nil {
		return err
	}
	c, err := s.config.Rollback(rq.ctx(), owner, key, n, expected)
	if err != nil {
		return err
	}
	return writeConfig(ctx, c)
}

// configGet reads the current version, or ?version=N (a past one, from
// the database: every acknowledged write is committed).
func (s *Server) configGet(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	owner, key, err := s.configTarget(ctx, p, false)
	if err != nil {
		return err
	}
	var c actors.ConfigRecord
	if q := ctx.QueryArgs(); !q.Has("version") {
		c, err = s.config.Get(rq.ctx(), owner, key)
	} else if n, perr := strconv.ParseInt(string(q.Peek("version")), 10, 64); perr != nil || n < 1 {
		return errVersionParam
	} else {
		c, err = s.config.Version(rq.ctx(), owner, key, n)
	}
	if err != nil {
		return err
	}
	return writeConfig(ctx, c)
}

// configDelete deletes the key, on the condition of If-Match if given (as
// for a write: 409 with current_version when it does not hold).
func (s *Server) configDelete(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	owner, key, err := s.configTarget(ctx, p, true)
	if err != nil {
		return err
	}
	expected, _, err := ifMatch(ctx)
	if err != nil {
		return err
	}
	if err := s.config.DeleteIf(rq.ctx(), owner, key, expected); err != nil {
		return err
	}
	return writeOK(ctx, deletedBody)
}

// History pages (issue 12, item 8): GET /config/{key}/history answers at
// most ?limit= versions (default DefaultHistoryPage, at most
// MaxHistoryPage), newest first, and a next_cursor while older ones remain;
// ?cursor= continues after the page that gave it. A page's memory is taken
// from the answer budget (--max-answer-memory) before it is read, at the
// most it can be, and given back when it has been written; a page over
// streamHistoryAbove bytes is written to the connection version by version
// instead of being rendered whole first.
const (
	DefaultHistoryPage = 10
	MaxHistoryPage     = 100
	// DefaultMaxAnswerMemory is the default bound on the bytes of large
	// answers in flight (ServerConfig.MaxAnswerMemory).
	DefaultMaxAnswerMemory = 64 << 20
	// maxVersionBytes is the most one version of a page can hold in memory:
	// its value, its description (500 characters, up to 4 bytes each) and
	// the rest of its record.
	maxVersionBytes    = MaxConfigValue + 4*MaxConfigDescription + 128
	streamHistoryAbove = 64 << 10
)

var (
	errHistoryLimit  = invalid("limit must be an integer from 1 to 100")
	errHistoryCursor = invalid("cursor is not one this server gave (take next_cursor from the previous page)")
	errAnswerBudget  = &actors.Error{Code: actors.CodeOverloaded,
		Message: "server overloaded: too many large answers in flight, retry later"}
)

// historyPage parses ?limit= and ?cursor=: the page size, and the version
// the page starts below (0: from the newest).
func historyPage(ctx *fasthttp.RequestCtx) (limit int, before int64, err error) {
	q := ctx.QueryArgs()
	limit = DefaultHistoryPage
	if q.Has("limit") {
		n, perr := strconv.Atoi(string(q.Peek("limit")))
		if perr != nil || n < 1 || n > MaxHistoryPage {
			return 0, 0, errHistoryLimit
		}
		limit = n
	}
	if q.Has("cursor") {
		if before = parseHistoryCursor(q.Peek("cursor")); before < 1 {
			return 0, 0, errHistoryCursor
		}
	}
	return limit, before, nil
}

// The cursor is opaque to clients: "v" and the version the next page starts
// below, base64url-encoded without padding.
func historyCursor(version int64) string {
	return base64.RawURLEncoding.EncodeToString(strconv.AppendInt([]byte{'v'}, version, 10))
}

func parseHistoryCursor(c []byte) int64 {
	b, err := base64.RawURLEncoding.DecodeString(string(c))
	if err != nil || len(b) < 2 || b[0] != 'v' {
		return 0
	}
	v, err := strconv.ParseInt(string(b[1:]), 10, 64)
	if err != nil || v < 1 || strconv.FormatInt(v, 10) != string(b[1:]) {
		return 0
	}
	return v
}

func (s *Server) configHistory(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	owner, key, err := s.configTarget(ctx, p, false)
	if err != nil {
		return err
	}
	limit, before, err := historyPage(ctx)
	if err != nil {
		return err
	}
	reserved := int64(limit) * maxVersionBytes
	if !s.answers.reserve(reserved) {
		return errAnswerBudget
	}
	versions, more, err := s.config.History(rq.ctx(), owner, key, before, limit)
	if err != nil {
		s.answers.release(reserved)
		return err
	}
	// Keep what the page holds, give the rest back.
	size := int64(64)
	for i := range versions {
		size += 128 + int64(len(versions[i].Value)) + 6*int64(len(versions[i].Description))
	}
	if size < reserved {
		s.answers.release(reserved - size)
		reserved = size
	}
	var next string
	if more && len(versions) > 0 {
		next = historyCursor(versions[len(versions)-1].Version)
	}
	if size <= streamHistoryAbove {
		b := appendHistory(make([]byte, 0, size), versions, next)
		s.answers.release(reserved)
		return writeOK(ctx, b)
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer s.answers.release(reserved)
		writeHistory(w, versions, next)
	})
	return nil
}

// appendHistory renders a history page: {"versions":[…],"next_cursor":…}.
func appendHistory(b []byte, versions []actors.ConfigRecord, next string) []byte {
	b = append(b, `{"versions":[`...)
	for i := range versions {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendVersion(b, &versions[i])
	}
	b = append(b, ']')
	if next != "" {
		b = append(b, `,"next_cursor":`...)
		b = appendString(b, next)
	}
	return append(b, '}')
}

// writeHistory writes a history page to w version by version: the page's
// values are never copied into one answer.
func writeHistory(w *bufio.Writer, versions []actors.ConfigRecord, next string) {
	buf := make([]byte, 0, 512)
	w.WriteString(`{"versions":[`)
	for i := range versions {
		c := &versions[i]
		buf = buf[:0]
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"version":`...)
		buf = strconv.AppendInt(buf, c.Version, 10)
		buf = append(buf, `,"value":`...)
		if _, err := w.Write(buf); err != nil {
			return
		}
		if _, err := w.Write(c.Value); err != nil {
			return
		}
		buf = appendVersionTail(buf[:0], c)
		if _, err := w.Write(buf); err != nil {
			return
		}
		versions[i].Value = nil // written: its memory may go before the page ends
	}
	buf = append(buf[:0], ']')
	if next != "" {
		buf = append(buf, `,"next_cursor":`...)
		buf = appendString(buf, next)
	}
	w.Write(append(buf, '}'))
}

func appendVersion(b []byte, c *actors.ConfigRecord) []byte {
	b = append(b, `{"version":`...)
	b = strconv.AppendInt(b, c.Version, 10)
	b = append(b, `,"value":`...)
	b = append(b, c.Value...)
	return appendVersionTail(b, c)
}

// appendVersionTail renders a history version's description and
// created_at, and closes it.
func appendVersionTail(b []byte, c *actors.ConfigRecord) []byte {
	b = append(b, `,"description":`...)
	b = appendString(b, c.Description)
	b = append(b, `,"created_at":`...)
	b = appendTime(b, c.UpdatedAt)
	return append(b, '}')
}

// configList is served from the database: every acknowledged write is
// committed, so it is there.
func (s *Server) configList(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	return writeListing(s, ctx, rq, p, "configs", s.config.List, func(it *actors.ConfigRecord) (string, string) { return it.Owner, it.Key }, 160, func(b []byte, c *actors.ConfigRecord, all bool) []byte {
		b = s.appendOwner(append(b, '{'), all, c.Owner)
		b = append(b, `"key":`...)
		b = appendString(b, c.Key)
		return appendConfigTail(b, c)
	})
}

// writeConfig answers a config key at one version, the value exactly as it
// was sent, and its version as the ETag (usable in If-Match).
func writeConfig(ctx *fasthttp.RequestCtx, c actors.ConfigRecord) error {
	var nb [24]byte
	etag := append(nb[:0], '"')
	etag = strconv.AppendInt(etag, c.Version, 10)
	ctx.Response.Header.SetBytesV(fasthttp.HeaderETag, append(etag, '"'))
	bp := scratch.get()
	defer scratch.put(bp)
	b := append(*bp, `{"key":`...)
	b = appendString(b, c.Key)
	b = append(b, `,"value":`...)
	b = append(b, c.Value...)
	*bp = appendConfigTail(b, &c)
	return writeOK(ctx, *bp)
}

// appendConfigTail renders description, version, created_at and
// updated_at, and closes the object.
func appendConfigTail(b []byte, c *actors.ConfigRecord) []byte {
	b = append(b, `,"description":`...)
	b = appendString(b, c.Description)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, c.Version, 10)
	b = append(b, `,"created_at":`...)
	b = appendTime(b, c.CreatedAt)
	b = append(b, `,"updated_at":`...)
	b = appendTime(b, c.UpdatedAt)
	return append(b, '}')
}

// configTarget validates the {key} path parameter and resolves whose key it
// is (write: the request changes it).
func (s *Server) configTarget(ctx *fasthttp.RequestCtx, p *Principal, write bool) (owner, key string, err error) {
	if key, err = configKey(ctx); err != nil {
		return "", "", err
	}
	owner, err = s.scope(ctx, p, write)
	return owner, key, err
}
