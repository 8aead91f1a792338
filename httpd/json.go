package httpd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/tools/jsonw"
	"github.com/valyala/fasthttp"
)

// Errors of request bodies.
var (
	errContentType = actors.NewError(actors.CodeUnsupportedMedia, "Content-Type must be application/json")
	errNotObject   = actors.NewError(actors.CodeMalformed, "request body must be a JSON object")
	errNotUTF8     = actors.NewError(actors.CodeMalformed, "request body is not valid UTF-8")
)

// decodeBody decodes a JSON request body into *v. It fails for a body that
// is not JSON (malformed), has the wrong content type (unsupported media),
// has a value of the wrong type (invalid, naming the field), or spells a
// field's name in another case (invalid; foldedKey).
//
// The common body, a flat object whose keys are exactly the json tags of
// T's fields, all of type field, with plain values, is decoded without
// encoding/json and without allocating (decodeFlat); anything else goes
// through encoding/json, with the same result (FuzzDecodeFlat compares the
// two). v does not escape: the caller's body struct stays on its stack.
func decodeBody[T any](ctx *fasthttp.RequestCtx, v *T) error {
	if !jsonContentType(ctx.Request.Header.ContentType()) {
		return errContentType
	}
	body := ctx.PostBody()
	if decodeFlat(body, v) {
		return nil
	}
	return decodeJSON(body, v)
}

// decodeJSON is decodeBody's general path (after the content type check),
// through encoding/json.
func decodeJSON[T any](body []byte, v *T) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errNotObject
	}
	if !utf8.Valid(body) {
		return errNotUTF8
	}
	// Decoded into a value of its own and copied: v itself never reaches
	// encoding/json, so it need not live on the heap. json.Unmarshal, not a
	// Decoder: it allocates no read buffer, and it refuses trailing data
	// after the object by itself.
	tmp := new(T)
	if err := json.Unmarshal(body, tmp); err != nil {
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			return actors.NewError(actors.CodeMalformed, "invalid JSON: "+err.Error())
		}
		if te.Field == "" {
			return errNotObject
		}
		return invalid(fmt.Sprintf("%s must be %s", te.Field, jsonTypeName(te.Type.Kind().String())))
	}
	if msg := foldedKey(body, tmp); msg != "" { // field names are exact (jsonkeys.go)
		return invalid(msg)
	}
	*v = *tmp
	return nil
}

// flatFields describes a body struct decodeFlat can fill: every field is
// a field with a json tag (name and byte offset); nil when the struct has
// any other field.
type flatField struct {
	name string
	off  uintptr
}

var flatTypes sync.Map // reflect.Type → []flatField (nil: not flat)

var fieldType = reflect.TypeFor[field]()

func flatFieldsOf(t reflect.Type) []flatField {
	if f, ok := flatTypes.Load(t); ok {
		return f.([]flatField)
	}
	var fs []flatField
	if t.Kind() == reflect.Struct {
		for i := range t.NumField() {
			sf := t.Field(i)
			name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			if sf.Type != fieldType || name == "" || name == "-" {
				fs = nil
				break
			}
			fs = append(fs, flatField{name: name, off: sf.Offset})
		}
	}
	flatTypes.Store(t, fs)
	return fs
}

// decodeFlat decodes body into *v when it is a flat JSON object of plain
// values and every key is exactly the json tag of one of T's fields (all
// of type field): numbers, strings of printable ASCII without escapes,
// true, false and null, and nothing but JSON whitespace around them. It
// reports false, having changed nothing, for anything else: encoding/json
// decides then (unknown keys, keys in another case, escapes, non-ASCII,
// nested values, malformed JSON). What it stores is what
// field.UnmarshalJSON would have been given, except that raw aliases body
// (valid while the request is handled; the accessors copy what they keep).
func decodeFlat[T any](body []byte, v *T) bool {
	fs := flatFieldsOf(reflect.TypeFor[T]())
	if fs == nil {
		return false
	}
	var out T
	i := skipWS(body, 0)
	if i >= len(body) || body[i] != '{' {
		return false
	}
	i = skipWS(body, i+1)
	if i < len(body) && body[i] == '}' {
		if skipWS(body, i+1) != len(body) {
			return false
		}
		*v = out
		return true
	}
	for {
		if i >= len(body) || body[i] != '"' {
			return false
		}
		j := i + 1
		for j < len(body) && body[j] != '"' && body[j] != '\\' && body[j] >= 0x20 && body[j] < 0x7f {
			j++
		}
		if j >= len(body) || body[j] != '"' {
			return false
		}
		key := body[i+1 : j]
		var f *field
		for k := range fs {
			if string(key) == fs[k].name {
				f = (*field)(unsafe.Add(unsafe.Pointer(&out), fs[k].off))
				break
			}
		}
		if f == nil {
			return false
		}
		i = skipWS(body, j+1)
		if i >= len(body) || body[i] != ':' {
			return false
		}
		i = skipWS(body, i+1)
		end := plainValueEnd(body, i)
		if end < 0 {
			return false
		}
		f.dup = f.seen
		f.seen = true
		if string(body[i:end]) == "null" {
			f.raw = nil
		} else {
			f.raw = body[i:end:end]
		}
		i = skipWS(body, end)
		if i >= len(body) {
			return false
		}
		if body[i] == '}' {
			if skipWS(body, i+1) != len(body) {
				return false
			}
			*v = out
			return true
		}
		if body[i] != ',' {
			return false
		}
		i = skipWS(body, i+1)
	}
}

// plainValueEnd returns the index just past the plain JSON value at i (a
// number, a string of printable ASCII without escapes, true, false, null),
// or -1.
func plainValueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		j := i + 1
		for j < len(b) && b[j] != '"' && b[j] != '\\' && b[j] >= 0x20 && b[j] < 0x7f {
			j++
		}
		if j >= len(b) || b[j] != '"' {
			return -1
		}
		return j + 1
	case c == '-' || c >= '0' && c <= '9':
		return numberEnd(b, i)
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
			return i + len(lit)
		}
	}
	return -1
}

// numberEnd returns the index just past the JSON number at i, or -1 when
// what is there is not one (RFC 8259: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?).
func numberEnd(b []byte, i int) int {
	digits := func(i int) int { // index after a run of at least one digit, or -1
		j := i
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
	if b[i] == '-' {
		i++
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if i = digits(i); i < 0 {
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if i = digits(i + 1); i < 0 {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i = digits(i); i < 0 {
			return -1
		}
	}
	return i
}

func jsonTypeName(kind string) string {
	switch kind {
	case "int", "int64", "int32", "uint64", "uint32":
		return "an integer"
	case "bool":
		return "a boolean"
	case "string":
		return "a string"
	case "ptr":
		return "a valid value"
	}
	return "of a different type"
}

// jsonContentType accepts application/json (any parameters), application/*+json,
// a missing header, and curl's default form type (curl -d '{...}').
func jsonContentType(ct []byte) bool {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = bytes.TrimSpace(ct)
	switch {
	case len(ct) == 0:
		return true
	case bytes.EqualFold(ct, []byte("application/json")):
		return true
	case bytes.EqualFold(ct, []byte("application/x-www-form-urlencoded")):
		return true
	case len(ct) > 17 && bytes.HasPrefix(bytes.ToLower(ct), []byte("application/")) && bytes.HasSuffix(bytes.ToLower(ct), []byte("+json")):
		return true
	}
	return false
}

// field holds one JSON value of a request body as raw bytes, so that a
// value of the wrong type is reported as 422 naming the field (not as a
// decoding failure). A missing field and null are both "not set". A field
// given twice ({"a":1,"a":2}) is rejected by every accessor (422) rather
// than silently taking the last value.
type field struct {
	raw       []byte
	seen, dup bool
}

// UnmarshalJSON implements json.Unmarshaler; it never fails.
func (f *field) UnmarshalJSON(b []byte) error {
	f.dup = f.seen
	f.seen = true
	if string(b) == "null" {
		f.raw = nil
		return nil
	}
	f.raw = append(f.raw[:0], b...)
	return nil
}

// set reports whether the field was given (and not null).
func (f *field) set() bool { return f != nil && f.raw != nil }

// present is the check every accessor starts with: the field is given,
// once.
func (f *field) present(name string) error {
	if f.dup {
		return invalid(name + " is given more than once")
	}
	if !f.set() {
		return invalid(name + " is required")
	}
	return nil
}

// Int parses the field as an integer in [min, max]; the error (invalid)
// names the problem.
func (f *field) Int(name string, min, max int64) (int64, error) {
	if err := f.present(name); err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(string(f.raw), 10, 64)
	if err != nil {
		if c := f.raw[0]; c == '-' || c >= '0' && c <= '9' {
			if fv, ferr := strconv.ParseFloat(string(f.raw), 64); ferr == nil && fv == float64(int64(fv)) && fv >= float64(min) && fv <= float64(max) {
				return int64(fv), nil // 60.0 or 6e1: an integer written as a float
			}
		}
		return 0, invalid(fmt.Sprintf("%s must be an integer between %d and %d", name, min, max))
	}
	if v < min || v > max {
		return 0, invalid(fmt.Sprintf("%s must be between %d and %d", name, min, max))
	}
	return v, nil
}

// String parses the field as a JSON string.
func (f *field) String(name string) (string, error) {
	if err := f.present(name); err != nil {
		return "", err
	}
	if f.raw[0] != '"' {
		return "", invalid(name + " must be a string")
	}
	if n := len(f.raw); n >= 2 && f.raw[n-1] == '"' && plainASCII(f.raw[1:n-1]) {
		return string(f.raw[1 : n-1]), nil // what json.Unmarshal gives, at the cost of the copy alone
	}
	var s string
	if err := json.Unmarshal(f.raw, &s); err != nil {
		return "", invalid(name + " must be a valid string")
	}
	return s, nil
}

// plainASCII reports whether b holds printable ASCII only, without quotes
// or backslashes: the contents of a JSON string that decodes to itself.
func plainASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// Bool parses the field as a JSON boolean.
func (f *field) Bool(name string) (bool, error) {
	if err := f.present(name); err != nil {
		return false, err
	}
	switch string(f.raw) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, invalid(name + " must be a boolean")
}

// --- a tiny allocation-free JSON appender for the hot responses ---

const timeLayout = "2006-01-02T15:04:05.000Z07:00"

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, timeLayout)
	return append(b, '"')
}

// appendString appends s as a JSON string (tools/jsonw).
func appendString(b []byte, str string) []byte { return jsonw.AppendString(b, str) }

// writeJSON answers 200 with v marshalled by encoding/json (for the less
// hot responses).
func writeJSON(ctx *fasthttp.RequestCtx, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	writeRaw(ctx, fasthttp.StatusOK, b)
	return nil
}

// appendList appends `{"key":[item,…]` (the object is left open for what
// follows, e.g. `,"total":3`): each item rendered by item, braces included.
func appendList[T any](b []byte, key string, items []T, item func(b []byte, it *T) []byte) []byte {
	b = append(b, `{"`...)
	b = append(b, key...)
	b = append(b, `":[`...)
	for i := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = item(b, &items[i])
	}
	return append(b, ']')
}

// writeListing answers one page of an owner-scoped listing (paging.go):
// the items of the owner listScope resolves, under key, each rendered by
// item (all: admin listings name each item's owner), in the order list
// gives (owner, then name); pos is an item's position.
func writeListing[T any](s *Server, ctx *fasthttp.RequestCtx, rq *request, p *Principal, key string,
	list func(ctx context.Context, owner string, q actors.PageQuery) (actors.Page[T], error), pos func(*T) (owner, name string),
	itemSize int, item func(b []byte, it *T, all bool) []byte) error {
	owner, all, err := s.listScope(ctx, p)
	if err != nil {
		return err
	}
	q, err := listQuery(ctx)
	if err != nil {
		return err
	}
	reserved, err := s.pageBudget(q, itemSize)
	if err != nil {
		return err
	}
	defer s.answers.release(reserved)
	pg, err := list(rq.ctx(), owner, q)
	if err != nil {
		return err
	}
	return writePage(ctx, key, pg, itemSize, owner == "", pos, func(b []byte, it *T) []byte { return item(b, it, all) })
}

// writeOK answers 200 with the JSON b.
// scratch lends answers a buffer to render into (writeOK copies it into
// the response): a rendered body costs no allocation once the pool is warm.
var scratch = bufferPool{max: 64 << 10}

// bufferPool is a pool of byte buffers; buffers that grew beyond max are
// not kept.
type bufferPool struct {
	p   sync.Pool
	max int
}

// get returns an empty buffer.
func (bp *bufferPool) get() *[]byte {
	if b, ok := bp.p.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 512)
	return &b
}

// put gives b back (store the grown slice in *b first).
func (bp *bufferPool) put(b *[]byte) {
	if cap(*b) > bp.max {
		return
	}
	*b = (*b)[:0]
	bp.p.Put(b)
}

func writeOK(ctx *fasthttp.RequestCtx, b []byte) error {
	writeRaw(ctx, fasthttp.StatusOK, b)
	return nil
}

func writeRaw(ctx *fasthttp.RequestCtx, status int, b []byte) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}
