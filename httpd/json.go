package httpd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/octostore/octostore/tools/jsonw"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
)

// decodeBody decodes a JSON request body into v. It answers (and returns
// false) for a body that is not JSON (400), has the wrong content type (415),
// has a value of the wrong type (422, naming the field), or spells a field's
// name in another case (422; foldedKey).
func decodeBody(ctx *fasthttp.RequestCtx, v any) bool {
	if !jsonContentType(ctx.Request.Header.ContentType()) {
		writeError(ctx, fasthttp.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return false
	}
	body := ctx.PostBody()
	if len(bytes.TrimSpace(body)) == 0 {
		writeError(ctx, fasthttp.StatusBadRequest, "request body must be a JSON object")
		return false
	}
	if !utf8.Valid(body) {
		writeError(ctx, fasthttp.StatusBadRequest, "request body is not valid UTF-8")
		return false
	}
	// json.Unmarshal, not a Decoder: it allocates no read buffer, and it
	// refuses trailing data after the object by itself.
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			field := te.Field
			if field == "" {
				writeError(ctx, fasthttp.StatusBadRequest, "request body must be a JSON object")
				return false
			}
			writeError(ctx, fasthttp.StatusUnprocessableEntity, fmt.Sprintf("%s must be %s", field, jsonTypeName(te.Type.Kind().String())))
		default:
			writeError(ctx, fasthttp.StatusBadRequest, "invalid JSON: "+err.Error())
		}
		return false
	}
	if msg := foldedKey(body, v); msg != "" { // field names are exact (jsonkeys.go)
		writeError(ctx, fasthttp.StatusUnprocessableEntity, msg)
		return false
	}
	return true
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

// Int parses the field as an integer in [min, max]. msg names the problem.
func (f *field) Int(name string, min, max int64) (v int64, msg string) {
	if f.dup {
		return 0, name + " is given more than once"
	}
	if !f.set() {
		return 0, name + " is required"
	}
	v, err := strconv.ParseInt(string(f.raw), 10, 64)
	if err != nil {
		if c := f.raw[0]; c == '-' || c >= '0' && c <= '9' {
			if fv, ferr := strconv.ParseFloat(string(f.raw), 64); ferr == nil && fv == float64(int64(fv)) && fv >= float64(min) && fv <= float64(max) {
				return int64(fv), "" // 60.0 or 6e1: an integer written as a float
			}
		}
		return 0, fmt.Sprintf("%s must be an integer between %d and %d", name, min, max)
	}
	if v < min || v > max {
		return 0, fmt.Sprintf("%s must be between %d and %d", name, min, max)
	}
	return v, ""
}

// String parses the field as a JSON string.
func (f *field) String(name string) (string, string) {
	if f.dup {
		return "", name + " is given more than once"
	}
	if !f.set() {
		return "", name + " is required"
	}
	if f.raw[0] != '"' {
		return "", name + " must be a string"
	}
	var s string
	if err := json.Unmarshal(f.raw, &s); err != nil {
		return "", name + " must be a valid string"
	}
	return s, ""
}

// Bool parses the field as a JSON boolean.
func (f *field) Bool(name string) (bool, string) {
	if f.dup {
		return false, name + " is given more than once"
	}
	if !f.set() {
		return false, name + " is required"
	}
	switch string(f.raw) {
	case "true":
		return true, ""
	case "false":
		return false, ""
	}
	return false, name + " must be a boolean"
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

// writeJSON marshals v with encoding/json (for the less hot responses).
func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(ctx, fasthttp.StatusInternalServerError, "encode response: "+err.Error())
		return
	}
	writeRaw(ctx, status, b)
}

func writeRaw(ctx *fasthttp.RequestCtx, status int, b []byte) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

func writeError(ctx *fasthttp.RequestCtx, status int, msg string) {
	b := make([]byte, 0, 32+len(msg))
	b = append(b, `{"error":`...)
	b = appendString(b, msg)
	b = append(b, '}')
	writeRaw(ctx, status, b)
}
