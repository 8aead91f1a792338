package httpd_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd"
	"github.com/octostore/octostore/httpd/apitest"
	"github.com/octostore/octostore/tools/servertest"
	"github.com/valyala/fasthttp"
)

// authLogBuf is a goroutine-safe log sink.
type authLogBuf = servertest.Buffer

// authEnv is a real server (httpd.StartTestServer: 127.0.0.1:0, temp database) with
// GitHub sign-in pointed at a fake GitHub, and its captured output.
type authEnv struct {
	app      *httpd.TestServer
	gh       *fakeGitHub
	logs     *authLogBuf // every slog line, at debug level
	stdout   *authLogBuf
	dbPath   string
	adminKey string
	static   map[string]string // token → login
	closed   bool
}

const testRedirectURL = "http://localhost:3000/auth/github/callback"

// startAuthApp starts the server; gh may be nil (GitHub not configured).
func startAuthApp(t *testing.T, gh *fakeGitHub, mod func(o *httpd.TestOptions)) *authEnv {
	t.Helper()
	e := &authEnv{
		gh: gh, logs: &authLogBuf{}, stdout: &authLogBuf{},
		dbPath:   filepath.Join(t.TempDir(), "db"),
		adminKey: "admin-key-" + authRandHex(12),
		static: map[string]string{
			"static-alice-" + authRandHex(12): "alice",
			"static-bob-" + authRandHex(12):   "bob",
		},
	}
	o := httpd.TestOptions{
		DBPath:       e.dbPath,
		StaticTokens: e.static,
		AdminKey:     e.adminKey,
		Stdout:       e.stdout,
		Logger:       slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if gh != nil {
		o.GitHub = httpd.GitHubOAuth{
			ClientID: gh.clientID, ClientSecret: gh.clientSecret, RedirectURL: testRedirectURL,
			AuthURL: gh.authURL(), TokenURL: gh.tokenURL(), APIURL: gh.apiURL(),
		}
	}
	if mod != nil {
		mod(&o)
	}
	app, err := httpd.StartTestServer(t, o)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	e.app = app
	t.Cleanup(func() { e.close(t) })
	return e
}

func (e *authEnv) close(t *testing.T) {
	t.Helper()
	if e.closed {
		return
	}
	e.closed = true
	if err := e.app.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
}

func (e *authEnv) staticToken(login string) string {
	for tok, l := range e.static {
		if l == login {
			return tok
		}
	}
	panic("no static token for " + login)
}

// authBrowser never follows redirects: the tests look at each hop.
var authBrowser = &http.Client{
	Timeout:       30 * time.Second, // far above any bound the server promises
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

type authReply struct {
	status int
	header http.Header
	body   []byte
}

func (r authReply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

func (r authReply) errMsg(t *testing.T) string {
	t.Helper()
	s, _ := r.json(t)["error"].(string)
	if s == "" {
		t.Fatalf("no error message in %s", r.body)
	}
	return s
}

// authCall sends a request to the server under test, checked against
// docs/openapi.yaml; hdr holds extra headers ("Cookie", "X-Admin-Key" …).
func authCall(t *testing.T, method, u, token string, body string, hdr ...string) authReply {
	t.Helper()
	return browserCall(t, apitest.Client(t, authBrowser), method, u, token, body, hdr...)
}

// browserCall sends a request with hc (authCall for the server; authBrowser
// itself for the fake GitHub, which the contract does not describe).
func browserCall(t *testing.T, hc *http.Client, method, u, token string, body string, hdr ...string) authReply {
	t.Helper()
	resp, b := httpd.HTTPCall(t, hc, method, u, token, body, hdr...)
	return authReply{resp.StatusCode, resp.Header, b}
}

// begin is GET /auth/github: the state cookie and GitHub's authorize URL.
func (e *authEnv) begin(t *testing.T) (*http.Cookie, *url.URL) {
	t.Helper()
	r := authCall(t, "GET", e.app.URL()+"/auth/github", "", "")
	if r.status != http.StatusFound {
		t.Fatalf("GET /auth/github: %d %s", r.status, r.body)
	}
	loc, err := url.Parse(r.header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	resp := http.Response{Header: r.header}
	cs := resp.Cookies()
	if len(cs) != 1 {
		t.Fatalf("want one state cookie, got %v", r.header["Set-Cookie"])
	}
	return cs[0], loc
}

// authorize plays GitHub's authorize page (the fake signs in at once) and
// returns the query GitHub sends the authBrowser back with (code, state).
func (e *authEnv) authorize(t *testing.T, loc *url.URL) url.Values {
	t.Helper()
	r := browserCall(t, authBrowser, "GET", loc.String(), "", "")
	if r.status != http.StatusFound {
		t.Fatalf("fake authorize: %d %s", r.status, r.body)
	}
	back, err := url.Parse(r.header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if got := back.Scheme + "://" + back.Host + back.Path; got != testRedirectURL {
		t.Fatalf("GitHub sends the authBrowser back to %s, want the registered %s", got, testRedirectURL)
	}
	return back.Query()
}

// callback is GET /auth/github/callback on this server (where the
// registered redirect URL leads the authBrowser).
func (e *authEnv) callback(t *testing.T, q url.Values, cookie *http.Cookie) authReply {
	t.Helper()
	var hdr []string
	if cookie != nil {
		hdr = []string{"Cookie", cookie.Name + "=" + cookie.Value}
	}
	return authCall(t, "GET", e.app.URL()+"/auth/github/callback?"+q.Encode(), "", "", hdr...)
}

// signIn runs the whole authBrowser flow and returns the new token.
func (e *authEnv) signIn(t *testing.T) string {
	t.Helper()
	cookie, loc := e.begin(t)
	r := e.callback(t, e.authorize(t, loc), cookie)
	if r.status != http.StatusOK {
		t.Fatalf("callback: %d %s", r.status, r.body)
	}
	tok, _ := r.json(t)["token"].(string)
	if !strings.HasPrefix(tok, "octo_") {
		t.Fatalf("callback token %q", tok)
	}
	return tok
}

func (e *authEnv) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := e.app.DB.ReadDB().QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// locksOf answers GET /locks with token.
func (e *authEnv) locksStatus(t *testing.T, token string) int {
	t.Helper()
	return authCall(t, "GET", e.app.URL()+"/locks", token, "").status
}

func TestGitHubSignInFlow(t *testing.T) {
	gh := newFakeGitHub(t)
	e := startAuthApp(t, gh, nil)

	// 1. Redirect to GitHub with everything the authorize endpoint needs.
	cookie, loc := e.begin(t)
	q := loc.Query()
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != gh.authURL() {
		t.Fatalf("redirect to %s, want %s", got, gh.authURL())
	}
	for k, want := range map[string]string{"client_id": gh.clientID, "redirect_uri": testRedirectURL, "scope": "read:user",
		"response_type": "code", "code_challenge_method": "S256"} {
		if q.Get(k) != want {
			t.Errorf("authorize %s = %q, want %q", k, q.Get(k), want)
		}
	}
	if len(q.Get("state")) < 40 || q.Get("state") != cookie.Value {
		t.Fatalf("state %q must be long, random and equal to the cookie %q", q.Get("state"), cookie.Value)
	}
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.MaxAge <= 0 || cookie.MaxAge > 900 ||
		cookie.Secure || !strings.HasPrefix("/auth/github/callback", cookie.Path) {
		t.Fatalf("state cookie %+v: want HttpOnly, SameSite=Lax, short Max-Age, a path covering the callback, not Secure over http", cookie)
	}
	if _, loc2 := e.begin(t); loc2.Query().Get("state") == q.Get("state") {
		t.Fatal("two sign-ins got the same state")
	}

	// 2. GitHub sends the authBrowser back; the callback issues a token.
	back := e.authorize(t, loc)
	r := e.callback(t, back, cookie)
	if r.status != http.StatusOK {
		t.Fatalf("callback: %d %s", r.status, r.body)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("callback Cache-Control %q, want no-store", r.header.Get("Cache-Control"))
	}
	var signed struct {
		Token string `json:"token"`
		User  struct {
			Login     string `json:"login"`
			AvatarURL string `json:"avatar_url"`
		} `json:"user"`
	}
	if err := json.Unmarshal(r.body, &signed); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(signed.Token, "octo_") || len(signed.Token) != len("octo_")+43 ||
		signed.User.Login != "octocat" || signed.User.AvatarURL != "https://avatars.example.com/u/583231" {
		t.Fatalf("callback answer %s", r.body)
	}
	tok1 := signed.Token

	// 3. The token works on /locks.
	if r := authCall(t, "POST", e.app.URL()+"/locks/gh-demo/acquire", tok1, `{"ttl_seconds":60}`); r.status != http.StatusOK {
		t.Fatalf("acquire with the sign-in token: %d %s", r.status, r.body)
	}

	// 4. Replaying the callback (same code, state and cookie) is refused and
	// creates nothing.
	users, tokens := e.count(t, "users"), e.count(t, "tokens")
	if r := e.callback(t, back, cookie); r.status != http.StatusUnauthorized {
		t.Fatalf("replayed callback: %d %s, want 401", r.status, r.body)
	}
	if e.count(t, "users") != users || e.count(t, "tokens") != tokens {
		t.Fatal("a replayed callback created a user or token")
	}

	// 5. Each sign-in issues one more token; both work.
	tok2 := e.signIn(t)
	if tok2 == tok1 || e.locksStatus(t, tok1) != 200 || e.locksStatus(t, tok2) != 200 {
		t.Fatal("a second sign-in must add a token, not replace the first")
	}
	if e.count(t, "users") != users {
		t.Fatal("a second sign-in of the same GitHub user created another user")
	}

	// 6. Rotate: the new token works at once, the old one is refused at once.
	r = authCall(t, "POST", e.app.URL()+"/auth/token/rotate", tok1, "")
	if r.status != http.StatusOK {
		t.Fatalf("rotate: %d %s", r.status, r.body)
	}
	tok3, _ := r.json(t)["token"].(string)
	if !strings.HasPrefix(tok3, "octo_") || tok3 == tok1 {
		t.Fatalf("rotated token %q", tok3)
	}
	if st := e.locksStatus(t, tok1); st != http.StatusUnauthorized {
		t.Fatalf("old token after rotation: %d, want 401", st)
	}
	lr := authCall(t, "GET", e.app.URL()+"/locks", tok3, "")
	if lr.status != http.StatusOK || !bytes.Contains(lr.body, []byte(`"gh-demo"`)) {
		t.Fatalf("new token must act for the same user: %d %s", lr.status, lr.body)
	}
	if r := authCall(t, "POST", e.app.URL()+"/auth/token/rotate", tok1, ""); r.status != http.StatusUnauthorized {
		t.Fatalf("rotating the old token again: %d, want 401", r.status)
	}

	// 7. Revoke: the calling token stops working at once; others stay.
	r = authCall(t, "DELETE", e.app.URL()+"/auth/token", tok3, "")
	if r.status != http.StatusOK || string(r.body) != `{"revoked":true}` {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	if st := e.locksStatus(t, tok3); st != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d, want 401", st)
	}
	if st := e.locksStatus(t, tok2); st != http.StatusOK {
		t.Fatalf("the user's other token after revoking one: %d", st)
	}

	// 8. Nothing secret reached the logs, the stdout or the database.
	secrets := append(gh.secrets(), tok1, tok2, tok3, e.adminKey)
	for tok := range e.static {
		secrets = append(secrets, tok)
	}
	assertNoSecrets(t, e, secrets)
}

// assertNoSecrets fails if any secret appears in the captured logs and
// stdout, in any text or blob column of any table, or in the database files.
func assertNoSecrets(t *testing.T, e *authEnv, secrets []string) {
	t.Helper()
	if len(secrets) < 5 {
		t.Fatalf("only %d secrets to look for", len(secrets))
	}
	// Database rows, through SQL (every column of every table).
	cells, tables := 0, map[string]bool{}
	httpd.EachRow(t, e.app.DB.ReadDB(), nil, func(tb string, cols []string, vals []any) {
		tables[tb] = true
		for i, v := range vals {
			var s string
			switch v := v.(type) {
			case string:
				s = v
			case []byte:
				s = string(v)
			default:
				continue
			}
			cells++
			for _, sec := range secrets {
				if strings.Contains(s, sec) {
					t.Errorf("table %s column %s holds a secret (%.8s…)", tb, cols[i], sec)
				}
			}
		}
	})
	if len(tables) < 3 {
		t.Fatalf("rows in tables %v only", tables)
	}
	if cells == 0 {
		t.Fatal("scanned no text cells")
	}
	logs := e.logs.String() + e.stdout.String()
	if !strings.Contains(logs, "github sign-in") {
		t.Fatalf("the log has no sign-in line; is it captured?\n%s", logs)
	}
	for _, sec := range secrets {
		if strings.Contains(logs, sec) {
			t.Errorf("a secret (%.8s…) appears in the logs", sec)
		}
	}
	// The raw files, after a clean close (WAL included if it is left).
	e.close(t)
	matches, _ := filepath.Glob(e.dbPath + "*")
	if len(matches) == 0 {
		t.Fatal("no database files")
	}
	for _, p := range matches {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, sec := range secrets {
			if bytes.Contains(b, []byte(sec)) {
				t.Errorf("database file %s holds a secret (%.8s…)", filepath.Base(p), sec)
			}
		}
	}
}

// TestGitHubSignInFailures: whatever goes wrong, no user or token is created
// and the answer says what to do.
func TestGitHubSignInFailures(t *testing.T) {
	gh := newFakeGitHub(t)
	e := startAuthApp(t, gh, nil)
	cases := []struct {
		name   string
		setup  func(f *fakeGitHub)
		mangle func(t *testing.T, q url.Values, c *http.Cookie) (url.Values, *http.Cookie)
		status int
		msg    string
	}{
		{"wrong state", nil, func(t *testing.T, q url.Values, c *http.Cookie) (url.Values, *http.Cookie) {
			q.Set("state", q.Get("state")+"x")
			return q, c
		}, 401, "does not match"},
		{"state of another sign-in", nil, func(t *testing.T, q url.Values, c *http.Cookie) (url.Values, *http.Cookie) {
			other, _ := e.begin(t)
			return q, other // the attacker's own state and cookie do not match the victim's code's state
		}, 401, "does not match"},
		{"missing cookie", nil, func(t *testing.T, q url.Values, c *http.Cookie) (url.Values, *http.Cookie) { return q, nil }, 400, "cookie"},
		{"missing state", nil, func(t *testing.T, q url.Values, c *http.Cookie) (url.Values, *http.Cookie) {
			q.Del("state")
			return q, c
		}, 400, "state"},
		{"state and cookie forged alike", nil, func(t *testing.T, q url.Values, c *http.Cookie) (url.Values, *http.Cookie) {
			q.Set("state", "forged-state-value")
			c.Value = "forged-state-value"
			return q, c
		}, 401, "unknown"},
		{"missing code", nil, func(t *testing.T, q url.Values, c *http.Cookie) (url.Values, *http.Cookie) {
			q.Del("code")
			return q, c
		}, 400, "code"},
		{"user denied access", nil, func(t *testing.T, q url.Values, c *http.Cookie) (url.Values, *http.Cookie) {
			q.Del("code")
			q.Set("error", "access_denied")
			return q, c
		}, 401, "access_denied"},
		{"github rejects the code", func(f *fakeGitHub) { f.tokenError = "bad_verification_code" }, nil, 401, "bad_verification_code"},
		{"github rejects the app", func(f *fakeGitHub) { f.tokenError = "incorrect_client_credentials" }, nil, 502, "operator"},
		{"github token endpoint down", func(f *fakeGitHub) { f.tokenStatus = 503 }, nil, 502, "503"},
		{"github user endpoint refuses", func(f *fakeGitHub) { f.userStatus = 401 }, nil, 401, "access token"},
		{"github user endpoint down", func(f *fakeGitHub) { f.userStatus = 500 }, nil, 502, "500"},
		{"github user without login", func(f *fakeGitHub) { f.user.Login = "" }, nil, 502, "unexpected"},
		{"github user with a hostile login", func(f *fakeGitHub) { f.user.Login = "../admin" }, nil, 502, "unexpected"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gh.set(func(f *fakeGitHub) {
				f.tokenError, f.tokenStatus, f.userStatus = "", 0, 0
				f.user = fakeGHUser{ID: 1, Login: "mallory", AvatarURL: "https://avatars.example.com/u/1"}
			})
			if tc.setup != nil {
				gh.set(tc.setup)
			}
			users, tokens := e.count(t, "users"), e.count(t, "tokens")
			cookie, loc := e.begin(t)
			q := e.authorize(t, loc)
			if tc.mangle != nil {
				q, cookie = tc.mangle(t, q, cookie)
			}
			r := e.callback(t, q, cookie)
			if r.status != tc.status {
				t.Fatalf("status %d %s, want %d", r.status, r.body, tc.status)
			}
			if msg := r.errMsg(t); !strings.Contains(msg, tc.msg) {
				t.Fatalf("error %q should mention %q", msg, tc.msg)
			}
			if e.count(t, "users") != users || e.count(t, "tokens") != tokens {
				t.Fatal("a failed sign-in created a user or token")
			}
		})
	}
	// The same code once more with a fresh state: GitHub refuses a code
	// twice, so does octostore.
	gh.set(func(f *fakeGitHub) {
		f.tokenError, f.tokenStatus, f.userStatus = "", 0, 0
		f.user = fakeGHUser{ID: 2, Login: "replayer"}
	})
	cookie, loc := e.begin(t)
	q := e.authorize(t, loc)
	if r := e.callback(t, q, cookie); r.status != http.StatusOK {
		t.Fatalf("sign-in: %d %s", r.status, r.body)
	}
	cookie2, loc2 := e.begin(t)
	q.Set("state", loc2.Query().Get("state"))
	tokens := e.count(t, "tokens")
	if r := e.callback(t, q, cookie2); r.status != http.StatusUnauthorized || !strings.Contains(r.errMsg(t), "bad_verification_code") {
		t.Fatalf("replayed code with a fresh state: %d %s, want 401", r.status, r.body)
	}
	if e.count(t, "tokens") != tokens {
		t.Fatal("a replayed code created a token")
	}
	// No failure logged a code or secret either.
	logs := e.logs.String()
	for _, sec := range gh.secrets() {
		if strings.Contains(logs, sec) {
			t.Errorf("a secret (%.8s…) appears in the logs", sec)
		}
	}
}

// TestGitHubSignInTimeout: a GitHub that never answers costs a bounded wait
// and a clear 502, and creates nothing.
func TestGitHubSignInTimeout(t *testing.T) {
	gh := newFakeGitHub(t)
	e := startAuthApp(t, gh, func(o *httpd.TestOptions) { o.GitHub.Timeout = 200 * time.Millisecond })
	gh.set(func(f *fakeGitHub) { f.block = make(chan struct{}) }) // released in the fake's Cleanup
	cookie, loc := e.begin(t)
	q := e.authorize(t, loc)
	// The test client waits 30 s at most: the server must answer well before.
	r := e.callback(t, q, cookie)
	if r.status != http.StatusBadGateway || !strings.Contains(r.errMsg(t), "did not answer within 200ms") {
		t.Fatalf("callback with a stuck GitHub: %d %s, want 502 naming the bound", r.status, r.body)
	}
	if e.count(t, "users") != 2 || e.count(t, "tokens") != 2 { // the two static users and tokens
		t.Fatal("a timed-out sign-in created a user or token")
	}
}

func TestGitHubNotConfigured(t *testing.T) {
	e := startAuthApp(t, nil, nil)
	for _, p := range []string{"/auth/github", "/auth/github/callback?code=x&state=y"} {
		r := authCall(t, "GET", e.app.URL()+p, "", "")
		if r.status != http.StatusNotImplemented || !strings.Contains(r.errMsg(t), "not configured") {
			t.Fatalf("GET %s without GitHub configured: %d %s, want 501", p, r.status, r.body)
		}
		if r.header.Get("Set-Cookie") != "" {
			t.Fatalf("GET %s set a cookie while not configured", p)
		}
	}
}

// TestGitHubStateExpires: a state older than its lifetime is refused.
func TestGitHubStateExpires(t *testing.T) {
	gh := newFakeGitHub(t)
	var offset atomic.Int64
	base := time.Now()
	e := startAuthApp(t, gh, func(o *httpd.TestOptions) {
		o.Now = func() time.Time { return base.Add(time.Duration(offset.Load())) }
	})
	cookie, loc := e.begin(t)
	q := e.authorize(t, loc)
	offset.Store(int64(11 * time.Minute))
	if r := e.callback(t, q, cookie); r.status != http.StatusUnauthorized || !strings.Contains(r.errMsg(t), "expired") {
		t.Fatalf("callback after the state expired: %d %s, want 401", r.status, r.body)
	}
	offset.Store(0)
	e.signIn(t) // and a fresh one works
}

// TestGitHubSignInNotLockedOutByOneAddress (issue 12, item 6): one client
// address starts more sign-ins than the server keeps in all (10,050 GET
// /auth/github, sent through the handler as from 192.0.2.1: fast, and from
// an address the test does not use otherwise); another client then signs
// in over the network as usual. Before, the flood filled the global cap of
// pending states for ten minutes and every sign-in got 503.
func TestGitHubSignInNotLockedOutByOneAddress(t *testing.T) {
	gh := newFakeGitHub(t)
	e := startAuthApp(t, gh, nil)
	h := e.app.Handler()
	flooder := &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 4242}
	for i := 0; i < 10050; i++ {
		var req fasthttp.Request
		req.SetRequestURI("http://x/auth/github")
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, flooder, nil)
		h(&ctx)
		if st := ctx.Response.StatusCode(); st != http.StatusFound {
			t.Fatalf("flood request %d: %d %s", i, st, ctx.Response.Body())
		}
	}
	e.signIn(t) // from 127.0.0.1
}

// TestGitHubSecureCookie: with an https redirect URL the state cookie is
// Secure and __Host- prefixed.
func TestGitHubSecureCookie(t *testing.T) {
	gh := newFakeGitHub(t)
	e := startAuthApp(t, gh, func(o *httpd.TestOptions) {
		o.GitHub.RedirectURL = "https://octostore.example.com/auth/github/callback"
	})
	cookie, _ := e.begin(t)
	if !cookie.Secure || !strings.HasPrefix(cookie.Name, "__Host-") || cookie.Path != "/" || !cookie.HttpOnly {
		t.Fatalf("state cookie %+v: want Secure, __Host- prefix, path /", cookie)
	}
}

// TestGitHubLoginTaken: a GitHub login equal to a local user's login is not
// merged into that user (that would hand the local user's resources over).
func TestGitHubLoginTaken(t *testing.T) {
	gh := newFakeGitHub(t)
	e := startAuthApp(t, gh, nil)
	gh.set(func(f *fakeGitHub) { f.user = fakeGHUser{ID: 77, Login: "alice"} }) // alice is a static user
	cookie, loc := e.begin(t)
	r := e.callback(t, e.authorize(t, loc), cookie)
	if r.status != http.StatusConflict || !strings.Contains(r.errMsg(t), "already used") {
		t.Fatalf("sign-in as a local user's login: %d %s, want 409", r.status, r.body)
	}
	if e.count(t, "tokens") != 2 {
		t.Fatal("a refused sign-in created a token")
	}
}

// TestGitHubRenameAndTokenCap: a renamed GitHub user keeps one account (by
// id) and every token follows the new login; beyond MaxTokensPerUser
// sign-ins the oldest sign-in token is revoked.
func TestGitHubRenameAndTokenCap(t *testing.T) {
	gh := newFakeGitHub(t)
	e := startAuthApp(t, gh, func(o *httpd.TestOptions) { o.GitHub.MaxTokensPerUser = 2 })
	gh.set(func(f *fakeGitHub) { f.user = fakeGHUser{ID: 9, Login: "old-name"} })
	t1 := e.signIn(t)
	if r := authCall(t, "POST", e.app.URL()+"/locks/rn/acquire", t1, `{"ttl_seconds":60}`); r.status != 200 {
		t.Fatalf("acquire: %d %s", r.status, r.body)
	}
	gh.set(func(f *fakeGitHub) { f.user.Login = "new-name" })
	t2 := e.signIn(t)
	// t1 was cached as old-name; it must now act as new-name. The lock it
	// took as old-name shows its holder's login now: new-name.
	r := authCall(t, "GET", e.app.URL()+"/locks/rn", t1, "")
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"holder":"new-name"`)) || !bytes.Contains(r.body, []byte(`"lease_id"`)) {
		t.Fatalf("lock status: %d %s", r.status, r.body)
	}
	if r := authCall(t, "POST", e.app.URL()+"/locks/rn2/acquire", t1, `{"ttl_seconds":60}`); r.status != 200 ||
		!bytes.Contains(r.body, []byte(`"holder":"new-name"`)) {
		t.Fatalf("the old token after a rename must act as the new login: %d %s", r.status, r.body)
	}
	if e.count(t, "users") != 3 {
		t.Fatal("a rename created a second user")
	}
	t3 := e.signIn(t) // third sign-in with a cap of 2: t1 goes
	if e.locksStatus(t, t1) != http.StatusUnauthorized || e.locksStatus(t, t2) != 200 || e.locksStatus(t, t3) != 200 {
		t.Fatal("beyond the cap the oldest sign-in token must be revoked, the others kept")
	}
}

// TestGitHubLoginReuseInheritsNothing is the takeover of issue 12, item 1:
// GitHub account 3001 (login gh1) writes config (two versions), a flag and
// a limit and holds a lock; it renames itself gh1-renamed and signs in
// again: everything is still its own, under the new login. Then another
// account, 3002, registers the freed login gh1 and signs in: it sees none
// of 3001's data, cannot touch its lock, and gets no lease id. Before user
// ids, resources were keyed by login and 3002 read all of it.
func TestGitHubLoginReuseInheritsNothing(t *testing.T) {
	gh := newFakeGitHub(t)
	e := startAuthApp(t, gh, nil)
	u := e.app.URL()
	must := func(r authReply, status int, what string) authReply {
		t.Helper()
		if r.status != status {
			t.Fatalf("%s: %d %s, want %d", what, r.status, r.body, status)
		}
		return r
	}
	gh.set(func(f *fakeGitHub) { f.user = fakeGHUser{ID: 3001, Login: "gh1"} })
	t1 := e.signIn(t)
	must(authCall(t, "PUT", u+"/config/settings", t1, `{"value":{"v":1}}`), 200, "config v1")
	must(authCall(t, "PUT", u+"/config/settings", t1, `{"value":{"v":2},"description":"secret"}`), 200, "config v2")
	must(authCall(t, "PUT", u+"/flags/beta", t1, `{"enabled":true}`), 200, "flag")
	must(authCall(t, "POST", u+"/limits/api/check", t1, `{"max_requests":10,"window_seconds":60}`), 200, "limit")
	lease, _ := must(authCall(t, "POST", u+"/locks/gh1-lock/acquire", t1, `{"ttl_seconds":600}`), 200, "lock").json(t)["lease_id"].(string)

	// The rename carries everything along.
	gh.set(func(f *fakeGitHub) { f.user.Login = "gh1-renamed" })
	t2 := e.signIn(t)
	for _, tok := range []string{t1, t2} {
		if v := must(authCall(t, "GET", u+"/config/settings", tok, ""), 200, "config after rename").json(t)["version"]; v != 2.0 {
			t.Fatalf("config after the rename: version %v", v)
		}
		if vs := must(authCall(t, "GET", u+"/config/settings/history", tok, ""), 200, "history after rename").json(t)["versions"].([]any); len(vs) != 2 {
			t.Fatalf("history after the rename: %d versions", len(vs))
		}
		if !bytes.Contains(must(authCall(t, "GET", u+"/flags", tok, ""), 200, "flags").body, []byte(`"beta"`)) {
			t.Fatal("the flag is gone after the rename")
		}
		must(authCall(t, "GET", u+"/limits/api", tok, ""), 200, "limit after rename")
		st := must(authCall(t, "GET", u+"/locks/gh1-lock", tok, ""), 200, "lock after rename").json(t)
		if st["holder"] != "gh1-renamed" || st["lease_id"] != lease {
			t.Fatalf("the lock after the rename: %v", st)
		}
	}

	// Another account takes the freed login: a new user, owning nothing.
	gh.set(func(f *fakeGitHub) { f.user = fakeGHUser{ID: 3002, Login: "gh1"} })
	t3 := e.signIn(t)
	must(authCall(t, "GET", u+"/config/settings", t3, ""), 404, "the new gh1 reads the old gh1's config")
	must(authCall(t, "GET", u+"/config/settings/history", t3, ""), 404, "the new gh1 reads the old gh1's history")
	must(authCall(t, "GET", u+"/limits/api", t3, ""), 404, "the new gh1 reads the old gh1's limit")
	if f := must(authCall(t, "GET", u+"/flags/beta", t3, ""), 200, "flag").json(t); f["enabled"] != false || f["reason"] != "FLAG_NOT_FOUND" {
		t.Fatalf("the new gh1 evaluates the old gh1's flag: %v", f)
	}
	for _, path := range []string{"/config", "/flags", "/limits", "/locks"} {
		r := must(authCall(t, "GET", u+path, t3, ""), 200, "listing "+path)
		if bytes.Contains(r.body, []byte("settings")) || bytes.Contains(r.body, []byte("beta")) ||
			bytes.Contains(r.body, []byte(`"api"`)) || bytes.Contains(r.body, []byte("gh1-lock")) {
			t.Fatalf("GET %s as the new gh1 lists the old gh1's resources: %s", path, r.body)
		}
	}
	st := must(authCall(t, "GET", u+"/locks/gh1-lock", t3, ""), 200, "lock").json(t)
	if st["holder"] != "gh1-renamed" || st["lease_id"] != nil {
		t.Fatalf("the new gh1 sees the lock as %v, want held by gh1-renamed without a lease id", st)
	}
	if r := authCall(t, "POST", u+"/locks/gh1-lock/release", t3, `{"lease_id":"`+lease+`"}`); r.status == 200 {
		t.Fatalf("the new gh1 released the old gh1's lock: %s", r.body)
	}
	if r := authCall(t, "POST", u+"/locks/gh1-lock/acquire", t3, `{"ttl_seconds":60}`); r.status != 409 ||
		!bytes.Contains(r.body, []byte(`"holder":"gh1-renamed"`)) {
		t.Fatalf("the new gh1 acquiring the old gh1's lock: %d %s, want 409 held by gh1-renamed", r.status, r.body)
	}
	// The new gh1's own writes are its own; the renamed user's are intact.
	must(authCall(t, "PUT", u+"/config/settings", t3, `{"value":"mine"}`), 200, "the new gh1's config")
	if v := must(authCall(t, "GET", u+"/config/settings", t2, ""), 200, "config").json(t)["version"]; v != 2.0 {
		t.Fatalf("the new gh1's write changed gh1-renamed's key: version %v", v)
	}
	// The admin sees both, each under the login its owner has now.
	r := must(authCall(t, "GET", u+"/config", "", "", "X-Admin-Key", e.adminKey), 200, "admin listing")
	var list struct {
		Configs []struct{ Owner, Key string } `json:"configs"`
	}
	if err := json.Unmarshal(r.body, &list); err != nil {
		t.Fatal(err)
	}
	owners := map[string]bool{}
	for _, c := range list.Configs {
		owners[c.Owner] = true
	}
	if len(list.Configs) != 2 || !owners["gh1"] || !owners["gh1-renamed"] {
		t.Fatalf("admin listing %s, want settings of gh1 and of gh1-renamed", r.body)
	}
	must(authCall(t, "GET", u+"/config/settings?owner=gh1-renamed", "", "", "X-Admin-Key", e.adminKey), 200, "admin ?owner=gh1-renamed")
	must(authCall(t, "GET", u+"/flags/beta?owner=nobody-has-this", "", "", "X-Admin-Key", e.adminKey), 422, "admin ?owner= of no user")
}

// TestGitHubConfigValidation: half a configuration is refused at start.
func TestGitHubConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    httpd.GitHubOAuth
		want string
	}{
		{"id without secret", httpd.GitHubOAuth{ClientID: "x", RedirectURL: testRedirectURL}, "client-secret"},
		{"secret without id", httpd.GitHubOAuth{ClientSecret: "s3cr3t", RedirectURL: testRedirectURL}, "client-id"},
		{"no redirect url", httpd.GitHubOAuth{ClientID: "x", ClientSecret: "s3cr3t"}, "redirect-url"},
		{"relative redirect url", httpd.GitHubOAuth{ClientID: "x", ClientSecret: "s3cr3t", RedirectURL: "/auth/github/callback"}, "redirect-url"},
		{"bad api url", httpd.GitHubOAuth{ClientID: "x", ClientSecret: "s3cr3t", RedirectURL: testRedirectURL, APIURL: "ftp://h"}, "api-url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := httpd.StartTestServer(t, httpd.TestOptions{GitHub: tc.g})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start: %v, want an error naming %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Fatalf("error quotes the secret: %v", err)
			}
		})
	}
}
