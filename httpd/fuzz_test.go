package httpd

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/actors/names"
	"github.com/valyala/fasthttp"
)

// Fuzz targets for every input parser of the HTTP layer. Seed corpora are
// in testdata/fuzz/<Target>; tools/fuzz.sh runs each target for a while:
//
//	go test ./httpd -run '^$' -fuzz '^FuzzDecodeBody$' -fuzztime 30s

// nameRE is the lock name rule as a regular expression: the handler's
// check (names.Lock) must agree with it on every input.
var nameRE = regexp.MustCompile(names.Lock.Pattern())

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"a", "lock-1_A", "", strings.Repeat("x", 128), strings.Repeat("x", 129), "..", "a/b", "a%2Fb", "é", "a\x00", " a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		_, err := validLockName(name)
		if got, want := err == nil, nameRE.MatchString(name); got != want {
			t.Fatalf("lockName(%q) accepted = %v, want %v", name, got, want)
		}
	})
}

// msgOf is the message of a validation error ("" for none).
func msgOf(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// answerOf is how errors.go answers err: status and body.
func answerOf(err error) (int, []byte) {
	var ctx fasthttp.RequestCtx
	s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s.writeErr(&ctx, err)
	return ctx.Response.StatusCode(), ctx.Response.Body()
}

// fuzzField runs check on every body field the fuzzer makes from the
// seeds (raw: the field's JSON as handlers see it).
func fuzzField(f *testing.F, seeds []string, check func(t *testing.T, fl *field, raw []byte)) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		fl, ok := asField(raw)
		if !ok {
			return
		}
		check(t, &fl, fl.raw)
	})
}

// asField decodes raw as the value of a body field, the way handlers get
// it (false: the body would have been rejected as invalid JSON).
func asField(raw []byte) (field, bool) {
	var v struct {
		X field `json:"x"`
	}
	body := append(append([]byte(`{"x":`), raw...), '}')
	if json.Unmarshal(body, &v) != nil {
		return field{}, false
	}
	return v.X, true
}

func FuzzFieldInt(f *testing.F) {
	fuzzField(f, []string{"60", "0", "-1", "3600", "3601", "1e3", "60.0", "60.5", `"60"`, "true", "null", "99999999999999999999", "-9223372036854775808", "1e400", "0x10", "", "[]"}, func(t *testing.T, fl *field, raw []byte) {
		v, err := fl.Int("ttl_seconds", 1, 3600)
		msg := msgOf(err)
		if msg == "" && (v < 1 || v > 3600) {
			t.Fatalf("Int(%q) accepted %d outside [1, 3600]", raw, v)
		}
		if msg != "" && !strings.Contains(msg, "ttl_seconds") {
			t.Fatalf("Int(%q): message %q does not name the field", raw, msg)
		}
		var n int64
		if err := json.Unmarshal(raw, &n); err == nil && n >= 1 && n <= 3600 && (msg != "" || v != n) {
			t.Fatalf("Int(%q) = %d, %q; want %d", raw, v, msg, n)
		}
	})
}

func FuzzFieldString(f *testing.F) {
	fuzzField(f, []string{`"abc"`, `""`, `"\u0000"`, `"\ud800"`, `"é"`, `5`, `null`, `"unterminated`, `["a"]`}, func(t *testing.T, fl *field, raw []byte) {
		s, err := fl.String("lease_id")
		msg := msgOf(err)
		if msg != "" {
			if !strings.Contains(msg, "lease_id") {
				t.Fatalf("String(%q): message %q does not name the field", raw, msg)
			}
			return
		}
		var want string
		if err := json.Unmarshal(raw, &want); err != nil || want != s {
			t.Fatalf("String(%q) = %q, but it decodes as %q (%v)", raw, s, want, err)
		}
	})
}

func FuzzFieldBool(f *testing.F) {
	fuzzField(f, []string{"true", "false", `"true"`, "1", "null", "TRUE"}, func(t *testing.T, fl *field, raw []byte) {
		b, err := fl.Bool("enabled")
		msg := msgOf(err)
		switch string(raw) {
		case "true", "false":
			if msg != "" || b != (string(raw) == "true") {
				t.Fatalf("Bool(%s) = %v, %q", raw, b, msg)
			}
		default:
			if msg == "" {
				t.Fatalf("Bool(%q) accepted", raw)
			}
		}
	})
}

func FuzzLeaseID(f *testing.F) {
	fuzzField(f, []string{`"6ba7b810-9dad-11d1-80b4-00c04fd430c8"`, `"6BA7B810-9DAD-11D1-80B4-00C04FD430C8"`, `"{6ba7b810-9dad-11d1-80b4-00c04fd430c8}"`,
		`"urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8"`, `"6ba7b8109dad11d180b400c04fd430c8"`, `""`, `123`, `"../../etc/passwd"`, `"6ba7b810-9dad-11d1-80b4-00c04fd430cg"`}, func(t *testing.T, fl *field, raw []byte) {
		lease, err := leaseField(fl)
		if err != nil {
			if st, body := answerOf(err); st != fasthttp.StatusUnprocessableEntity || !isJSONError(body) {
				t.Fatalf("lease %q rejected with %d %q", raw, st, body)
			}
			return
		}
		u, err := uuid.Parse(lease)
		if err != nil || u.String() != lease {
			t.Fatalf("lease %q accepted as %q, which is not a canonical UUID", raw, lease)
		}
	})
}

func isJSONError(b []byte) bool {
	var v struct {
		Error string `json:"error"`
	}
	return json.Unmarshal(b, &v) == nil && v.Error != ""
}

func FuzzDecodeBody(f *testing.F) {
	seeds := []struct{ ct, body string }{
		{"application/json", `{"ttl_seconds":60}`},
		{"application/json", `{"ttl_seconds":60,"ttl_seconds":61}`},
		{"application/json", `{"lease_id":"x","ttl_seconds":"60"}`},
		{"application/json", `[1,2]`},
		{"application/json", `{"a":1} {"b":2}`},
		{"application/json", `{`},
		{"application/json", ""},
		{"application/json", "\xff\xfe"},
		{"text/plain", `{"ttl_seconds":60}`},
		{"application/merge-patch+json", `{"ttl_seconds":1e3}`},
		{"", `null`},
		{"application/json; charset=utf-8", `{"ttl_seconds":{"$gt":1}}`},
	}
	for _, s := range seeds {
		f.Add(s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetContentType(ct)
		ctx.Request.SetBody(body)
		var v lockBody
		err := decodeBody(&ctx, &v)
		if err == nil {
			if ctx.Response.StatusCode() != 200 || len(ctx.Response.Body()) != 0 {
				t.Fatalf("decodeBody accepted but answered %d %q", ctx.Response.StatusCode(), ctx.Response.Body())
			}
			return
		}
		st, answer := answerOf(err)
		switch st {
		case 400, 415, 422:
		default:
			t.Fatalf("decodeBody(%q, %q) answered %d", ct, body, st)
		}
		if !isJSONError(answer) {
			t.Fatalf("decodeBody(%q, %q): body %q is not a JSON error", ct, body, answer)
		}
	})
}

func FuzzBearer(f *testing.F) {
	for _, s := range []string{"Bearer tok", "bearer tok", "BEARER  tok  ", "Basic abc", "Bearer", "Bearer ", "", "Bearertok", " Bearer\ttok", "Bearer tok tok2"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, h []byte) {
		tok := bearer(h)
		trimmed := bytes.TrimSpace(h)
		hasPrefix := len(trimmed) >= 7 && strings.EqualFold(string(trimmed[:7]), "bearer ")
		if !hasPrefix {
			if tok != nil {
				t.Fatalf("bearer(%q) = %q without a Bearer scheme", h, tok)
			}
			return
		}
		if want := bytes.TrimSpace(trimmed[7:]); !bytes.Equal(tok, want) {
			t.Fatalf("bearer(%q) = %q, want %q", h, tok, want)
		}
	})
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a", "\"\\", "\x00\x1f", "é\u2028\u2029", "\xff", "<script>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("appendString(%q) = %s: not JSON: %v", s, b, err)
		}
		if utf8.ValidString(s) && got != s {
			t.Fatalf("appendString(%q) decodes as %q", s, got)
		}
	})
}

// FuzzHandlers sends arbitrary requests through the whole handler chain
// (routing, auth, validation, actors, the database): no input may panic or
// answer 500, and every error is a JSON {error}.
func FuzzHandlers(f *testing.F) {
	seeds := []struct{ method, path, body string }{
		{"POST", "/locks/a/acquire", `{"ttl_seconds":60}`},
		{"POST", "/locks/a/renew", `{"ttl_seconds":60,"lease_id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8"}`},
		{"POST", "/locks/a/release", `{"lease_id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8"}`},
		{"GET", "/locks/a", ""},
		{"GET", "/locks", ""},
		{"GET", "/semaphores?limit=2&cursor=cG9vbC94", ""},
		{"POST", "/locks/..%2Fetc/acquire", `{"ttl_seconds":60}`},
		{"POST", "/locks/%00/acquire", `{"ttl_seconds":60}`},
		{"DELETE", "/locks/a", ""},
		{"PUT", "/config/k", `{"value":{"a":[1,2,{"b":null}]}}`},
		{"PUT", "/flags/f", `{"enabled":true,"percentage":50}`},
		{"POST", "/limits/l/check", `{"limit":10,"window_seconds":60}`},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, []byte(s.body))
	}
	a := MustStartTestServer(f, TestOptions{StaticTokens: map[string]string{"tokA": "alice"}, AdminKey: "adminkey"})
	handler := a.Handler()
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	f.Fuzz(func(t *testing.T, method, path string, body []byte) {
		var req fasthttp.Request
		req.Header.SetMethod(method)
		req.SetRequestURI(path)
		req.Header.Set("Authorization", "Bearer tokA")
		req.Header.SetContentType("application/json")
		req.SetBody(body)
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, remote, nil)
		handler(&ctx)
		st := ctx.Response.StatusCode()
		if st >= 500 && st != fasthttp.StatusServiceUnavailable {
			t.Fatalf("%s %q %q answered %d %q", method, path, body, st, ctx.Response.Body())
		}
		if st >= 400 && !isJSONError(ctx.Response.Body()) {
			t.Fatalf("%s %q %q answered %d with a non-JSON body %q", method, path, body, st, ctx.Response.Body())
		}
	})
}

var configKeyRE = regexp.MustCompile(names.ConfigKey.Pattern())

func FuzzValidConfigKey(f *testing.F) {
	for _, s := range []string{"app.timeout", ".", "..", "...", "a/b", "a%2Fb", "", strings.Repeat("k", 100), strings.Repeat("k", 101), "é", "a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		want := configKeyRE.MatchString(key) && key != "." && key != ".."
		if _, err := validConfigKey(key); (err == nil) != want {
			t.Fatalf("configKey(%q) accepted = %v, want %v", key, err == nil, want)
		}
	})
}

// ifMatchRule is the contract's If-Match rule (docs/openapi.yaml), checked
// independently of ifMatch: "*", N or "N", N canonical.
var ifMatchRule = regexp.MustCompile(`^(\*|0|[1-9][0-9]*|"(0|[1-9][0-9]*)")$`)

func FuzzIfMatch(f *testing.F) {
	for _, s := range []string{"", "0", "3", `"3"`, "*", "-1", `W/"3"`, `""`, `"`, "9223372036854775808", " 7 ", "1,2", "abc",
		"+1", "01", `"01"`, "00", " "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.Set("If-Match", h)
		v, given, err := ifMatch(&ctx)
		// What fasthttp keeps of the header value decides.
		sent := strings.TrimSpace(string(ctx.Request.Header.Peek("If-Match")))
		n, perr := strconv.ParseInt(strings.Trim(sent, `"`), 10, 64)
		valid := ifMatchRule.MatchString(sent) && (sent == "*" || perr == nil)
		if err != nil {
			if st, body := answerOf(err); st != fasthttp.StatusUnprocessableEntity || !isJSONError(body) {
				t.Fatalf("If-Match %q rejected with %d %q", h, st, body)
			}
			if valid {
				t.Fatalf("If-Match %q (kept as %q) refused: %v", h, sent, err)
			}
			return
		}
		if !given {
			t.Fatalf("If-Match %q (kept as %q): a present header was taken as no condition", h, sent)
		}
		if !valid {
			t.Fatalf("If-Match %q (kept as %q) accepted as %d", h, sent, v)
		}
		if sent != "*" && v != n || sent == "*" && v != actors.ExpectExists {
			t.Fatalf("If-Match %q accepted as %d", h, v)
		}
	})
}
