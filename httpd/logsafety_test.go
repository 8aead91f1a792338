package httpd_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd"
	"github.com/octostore/octostore/persistence"
)

// jsonLog collects a server's log as JSON lines (slog.NewJSONHandler).
type jsonLog struct{ authLogBuf }

func (l *jsonLog) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// lines returns the lines with message msg.
func (l *jsonLog) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// rawExchange sends raw on a fresh connection and reads the answer until
// the server closes the connection (or 10 s pass).
func rawExchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}

// statusLine is the first line of an HTTP answer.
func statusLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

// TestClientCausedLogLinesAreRateLimited (issue 12, item 5): whatever an
// unauthenticated client sends, each kind of line it can cause is written
// at most once per second, and the next line says how many were left out:
// malformed requests, sign-in callbacks with a bad state, bad tokens,
// connections refused at --max-conns. The clock is frozen, so "once per
// second" is exactly once until it moves. Before, every malformed request
// and every bad callback added a line (42 MB in 10 s).
func TestClientCausedLogLinesAreRateLimited(t *testing.T) {
	gh := newFakeGitHub(t)
	clock := httpd.NewTestClock(time.Now())
	logs := &jsonLog{}
	const maxConns = 8
	e := startAuthApp(t, gh, func(o *httpd.TestOptions) {
		o.Now = clock.Now
		o.Logger = logs.logger()
		o.Server.AuthFailureBurst = -1 // every bad token is answered 401 and logged (the throttle has its own line)
	})
	// A second server with a small --max-conns and a log of its own (on the
	// first one, connections closing still count for a moment and would make
	// the other kinds' requests be refused).
	cappedLogs := &jsonLog{}
	capped := startAuthApp(t, nil, func(o *httpd.TestOptions) {
		o.Now = clock.Now
		o.Logger = cappedLogs.logger()
		o.Server.MaxConns = maxConns
		o.Server.ReadTimeout = 20 * time.Second
	})
	addr := e.app.Addr()
	const n = 60
	kinds := map[string]func(){
		"http: bad request or connection": func() {
			if got := statusLine(rawExchange(t, addr, "GARBAGE\r\n\r\n")); !strings.Contains(got, " 400 ") {
				t.Fatalf("garbage request answered %q", got)
			}
		},
		"github sign-in refused: state unknown, expired or already used": func() {
			got := rawExchange(t, addr, "GET /auth/github/callback?state=forged&code=x HTTP/1.1\r\nHost: x\r\n"+
				"Cookie: octostore_oauth_state=forged\r\nConnection: close\r\n\r\n")
			if !strings.Contains(statusLine(got), " 401 ") {
				t.Fatalf("forged callback answered %q", statusLine(got))
			}
		},
		"rejected bearer token": func() {
			got := rawExchange(t, addr, "GET /locks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer guess\r\nConnection: close\r\n\r\n")
			if !strings.Contains(statusLine(got), " 401 ") {
				t.Fatalf("bad token answered %q", statusLine(got))
			}
		},
	}
	for msg, send := range kinds {
		for i := 0; i < n; i++ {
			send()
		}
		if got := logs.lines(t, msg); len(got) != 1 {
			t.Fatalf("%d requests of one kind wrote %d lines %q, want 1 while the clock stands still", n, len(got), msg)
		}
	}
	// Connections beyond --max-conns: hold the cap, then knock.
	var hold []net.Conn
	for i := 0; i < maxConns; i++ {
		c, err := net.Dial("tcp", capped.app.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /health HTTP/1.1\r\nHost: x\r\n") // a started request keeps its worker busy
		hold = append(hold, c)
	}
	refused := 0
	deadline := time.Now().Add(10 * time.Second)
	for refused < n && time.Now().Before(deadline) {
		if got := rawExchange(t, capped.app.Addr(), "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); !strings.Contains(statusLine(got), " 200 ") {
			refused++
		}
	}
	const refusedMsg = "http: connection refused: --max-conns reached"
	if refused < 2 {
		t.Fatalf("only %d connections were refused at the cap", refused)
	}
	if got := cappedLogs.lines(t, refusedMsg); len(got) != 1 {
		t.Fatalf("%d refused connections wrote %d lines, want 1", refused, len(got))
	}
	for _, c := range hold {
		c.Close()
	}

	// A second later the next line of each kind says what was left out.
	clock.Add(2 * time.Second)
	for msg, send := range kinds {
		send()
		got := logs.lines(t, msg)
		if len(got) != 2 || got[1]["suppressed"] != float64(n-1) {
			t.Fatalf("after a second, %q lines: %v, want a second one with suppressed=%d", msg, got, n-1)
		}
	}
	if got := cappedLogs.lines(t, refusedMsg); len(got) != 1 {
		t.Fatalf("refused-connection lines: %v", got)
	}
}

// TestNoCredentialInAnyLogLine (issue 13 §2, fault 1): requests whose
// Authorization header, X-Admin-Key, request line or query carry a
// credential and are malformed in the ways clients get wrong (a stray \v or
// \r at the end of the header value, no colon after Authorization, a
// control character in the URI, a bad Content-Length) are refused, and no
// log line, at debug level, ever contains the credential. The clock moves
// between requests so that every line is written, none suppressed. Before,
// fasthttp's "invalid header value" error quoted the header, token included,
// in a WARN line.
func TestNoCredentialInAnyLogLine(t *testing.T) {
	clock := httpd.NewTestClock(time.Now())
	logs := &jsonLog{}
	e := startAuthApp(t, nil, func(o *httpd.TestOptions) {
		o.Now = clock.Now
		o.Logger = logs.logger()
	})
	tok := e.staticToken("alice")
	secret := persistence.NewToken() // never valid: a guessed or mistyped credential
	for name, raw := range map[string]string{
		"stray \\v":            "GET /locks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\v\r\n\r\n",
		"stray \\r":            "GET /locks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\r\n\r\n",
		"no colon":             "GET /locks HTTP/1.1\r\nHost: x\r\nAuthorization Bearer " + tok + "\r\n\r\n",
		"no colon, stray \\v":  "GET /locks HTTP/1.1\r\nHost: x\r\nAuthorization Bearer " + tok + "\v\r\n\r\n",
		"bad content length":   "PUT /config/k HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\nContent-Length: zz\r\n\r\n",
		"admin key, stray \\v": "GET /locks HTTP/1.1\r\nHost: x\r\nX-Admin-Key: " + tok + "\v\r\n\r\n",
		"wrong admin key":      "GET /locks HTTP/1.1\r\nHost: x\r\nX-Admin-Key: " + secret + "\r\nConnection: close\r\n\r\n",
		"wrong token":          "GET /locks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nConnection: close\r\n\r\n",
		"token in the query":   "GET /locks?access_token=" + tok + "\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
		"token in a bad path":  "GET /locks/" + tok + "/\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
		"token in the body": fmt.Sprintf("PUT /config/k HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
			len(tok)+12, `{"value":"`+tok+`"}`),
		"token as a path name": "POST /locks/" + secret + "/acquire HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
	} {
		clock.Add(2 * time.Second)
		got := statusLine(rawExchange(t, e.app.Addr(), raw))
		if !strings.Contains(got, " 4") {
			t.Errorf("%s: answered %q, want a 4xx", name, got)
		}
	}
	e.close(t) // every line is written before the server has closed
	all := logs.String()
	for _, cred := range []string{tok, secret, strings.TrimPrefix(secret, persistence.TokenPrefix)} {
		if strings.Contains(all, cred) {
			t.Fatalf("the log quotes a credential:\n%s", all)
		}
	}
	if !strings.Contains(all, "http: bad request or connection") || !strings.Contains(all, "rejected X-Admin-Key") {
		t.Fatalf("the refused requests were not logged at all (the test would prove nothing):\n%s", all)
	}
	// The log names what it can without the request's bytes.
	sc := bufio.NewScanner(strings.NewReader(all))
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"path"`) {
			t.Fatalf("a log line carries a raw path: %s", sc.Text())
		}
	}
}
