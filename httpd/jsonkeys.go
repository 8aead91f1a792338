package httpd

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
)

// foldedName returns the json name of a field of the struct type t (the
// fields of embedded structs included, as encoding/json sees them) that key
// equals only case-insensitively, or "".
func foldedName(t reflect.Type, key []byte) string {
	for f := range t.NumField() {
		sf := t.Field(f)
		tag := sf.Tag.Get("json")
		if sf.Anonymous && tag == "" && sf.Type.Kind() == reflect.Struct {
			if name := foldedName(sf.Type, key); name != "" {
				return name
			}
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name != "" && name != "-" && string(key) != name && bytes.EqualFold(key, []byte(name)) {
			return name
		}
	}
	return ""
}

// foldedKey checks the top-level keys of body, a valid JSON text, against
// the json tags of the struct v points to. encoding/json matches keys to
// fields case-insensitively, so {"TTL_SECONDS": 5} would be taken as
// ttl_seconds; the API spells its field names exactly (docs/openapi.yaml).
// A key that equals a field's name only case-insensitively (as
// bytes.EqualFold, encoding/json's own rule, has it) gives the 422 message;
// "" means every key is either exact or unknown (unknown keys are ignored).
// It does not allocate unless a key is written with escapes.
func foldedKey(body []byte, v any) string {
	t := reflect.TypeOf(v)
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return ""
	}
	t = t.Elem()
	i := skipWS(body, 0)
	if i >= len(body) || body[i] != '{' {
		return "" // null: every field is missing
	}
	i++
	for {
		i = skipWS(body, i)
		if i >= len(body) || body[i] != '"' {
			return "" // '}': the end (the text is valid JSON)
		}
		end, escaped := stringEnd(body, i)
		key := body[i+1 : end-1]
		if escaped {
			var s string
			if json.Unmarshal(body[i:end], &s) != nil {
				return ""
			}
			key = []byte(s)
		}
		if name := foldedName(t, key); name != "" {
			return "field names are case-sensitive: " + quoteKey(key) + " is not " + name
		}
		i = skipWS(body, end)
		if i >= len(body) || body[i] != ':' {
			return ""
		}
		i = skipValue(body, skipWS(body, i+1))
		i = skipWS(body, i)
		if i >= len(body) || body[i] != ',' {
			return ""
		}
		i++
	}
}

// quoteKey quotes a key for a message, as JSON.
func quoteKey(k []byte) string { return string(appendString(nil, string(k))) }

// stringEnd returns the index just past the JSON string starting at i (a
// quote), and whether it contains escapes.
func stringEnd(b []byte, i int) (end int, escaped bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j + 1, escaped
		}
	}
	return len(b), escaped
}

// skipValue returns the index just past the JSON value starting at i.
func skipValue(b []byte, i int) int {
	depth := 0
	for i < len(b) {
		switch c := b[i]; c {
		case '"':
			i, _ = stringEnd(b, i)
			if depth == 0 {
				return i
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i // the end of the enclosing object
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',':
			if depth == 0 {
				return i
			}
		}
		i++
	}
	return i
}
