package httpd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

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

// decodeBody decodes a JSON request body into v. It fails for a body that
// is not JSON (malformed), has the wrong content type (unsupported media),
// has a value of the wrong type (invalid, naming the field), or spells a
// field's name in another case (invalid; foldedKey).
func decodeBody(ctx *fasthttp.RequestCtx, v any) error {
	if !jsonContentType(ctx.Request.Header.ContentType()) {
		return errContentType
	}
	body := ctx.PostBody()
	if len(bytes.TrimSpace(body)) == 0 {
		return errNotObject
	}
	if !utf8.Valid(body) {
		return errNotUTF8
	}
	// json.Unmarshal, not a Decoder: it allocates no read buffer, and it
	// refuses trailing data after the object by itself.
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			return actors.NewError(actors.CodeMalformed, "invalid JSON: "+err.Error())
		}
		if te.Field == "" {
			return errNotObject
		}
		return invalid(fmt.Sprintf("%s must be %s", te.Field, jsonTypeName(te.Type.Kind().String())))
	}
	if msg := foldedKey(body, v); msg != "" { // field names are exact (jsonkeys.go)
		return invalid(msg)
	}
	return nil
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
	var s string
	if err := json.Unmarshal(f.raw, &s); err != nil {
		return "", invalid(name + " must be a valid string")
	}
	return s, nil
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

// writeListing answers an owner-scoped listing: the items of the owner
// listScope resolves, under key, each rendered by item (all: admin
// listings name each item's owner). list orders them by owner (user id),
// then name; an admin listing of every owner is ordered by the owners'
// logins instead (ownerOf gives an item's owner), then name.
func writeListing[T any](s *Server, ctx *fasthttp.RequestCtx, rq *request, p *Principal, key string,
	list func(ctx context.Context, owner string) ([]T, error), ownerOf func(*T) string,
	itemSize int, item func(b []byte, it *T, all bool) []byte) error {
	owner, all, err := s.listScope(ctx, p)
	if err != nil {
		return err
	}
	items, err := list(rq.ctx(), owner)
	if err != nil {
		return err
	}
	if owner == "" {
		sort.SliceStable(items, func(i, j int) bool { return s.auth.Login(ownerOf(&items[i])) < s.auth.Login(ownerOf(&items[j])) })
	}
	b := appendList(make([]byte, 0, 32+len(items)*itemSize), key, items, func(b []byte, it *T) []byte { return item(b, it, all) })
	return writeOK(ctx, append(b, '}'))
}

// writeOK answers 200 with the JSON b.
func writeOK(ctx *fasthttp.RequestCtx, b []byte) error {
	writeRaw(ctx, fasthttp.StatusOK, b)
	return nil
}

func writeRaw(ctx *fasthttp.RequestCtx, status int, b []byte) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}
