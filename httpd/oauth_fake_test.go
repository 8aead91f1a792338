package httpd_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// fakeGitHub implements the three GitHub endpoints octostore uses: the
// authorize redirect, the code exchange (one-time codes, PKCE checked, the
// client secret checked) and GET /user. Its behaviour can be switched per
// test.
type fakeGitHub struct {
	srv          *httptest.Server
	clientID     string
	clientSecret string

	mu sync.Mutex // guards everything below
	// user is who signs in at the authorize endpoint.
	user fakeGHUser
	// codes: code → its grant; deleted when exchanged (one-time).
	codes map[string]fakeGrant
	// access tokens handed out → user.
	access map[string]fakeGHUser
	// tokenError makes the token endpoint answer with this OAuth error code
	// (HTTP 200, form-encoded, as GitHub does).
	tokenError string
	// tokenStatus makes the token endpoint answer with this HTTP status.
	tokenStatus int
	// userStatus makes /user answer with this HTTP status.
	userStatus int
	// block makes the token endpoint wait until it is closed.
	block chan struct{}
	// seen records every secret value that crossed the fake (codes, access
	// tokens), so tests can look for them in logs and the database.
	seen []string
	// exchanges counts token endpoint calls.
	exchanges int
}

type fakeGHUser struct {
	ID        int64  `json:"id"`
	Login     string `json:"login"`
	AvatarURL string `json:"avatar_url"`
}

type fakeGrant struct {
	user        fakeGHUser
	redirectURI string
	challenge   string
}

func newFakeGitHub(t *testing.T) *fakeGitHub {
	t.Helper()
	f := &fakeGitHub{
		clientID:     "Iv1.fakeclientid",
		clientSecret: "fake-client-secret-" + authRandHex(16),
		user:         fakeGHUser{ID: 583231, Login: "octocat", AvatarURL: "https://avatars.example.com/u/583231"},
		codes:        map[string]fakeGrant{},
		access:       map[string]fakeGHUser{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/oauth/authorize", f.authorize)
	mux.HandleFunc("POST /login/oauth/access_token", f.token)
	mux.HandleFunc("GET /api/v3/user", f.getUser)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		f.mu.Lock()
		if f.block != nil {
			close(f.block) // release blocked handlers before the server closes
			f.block = nil
		}
		f.mu.Unlock()
		f.srv.Close()
	})
	return f
}

func authRandHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (f *fakeGitHub) authURL() string  { return f.srv.URL + "/login/oauth/authorize" }
func (f *fakeGitHub) tokenURL() string { return f.srv.URL + "/login/oauth/access_token" }
func (f *fakeGitHub) apiURL() string   { return f.srv.URL + "/api/v3" }

func (f *fakeGitHub) set(fn func(f *fakeGitHub)) {
	f.mu.Lock()
	fn(f)
	f.mu.Unlock()
}

func (f *fakeGitHub) secrets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string{f.clientSecret}, f.seen...)
}

// authorize signs the configured user in at once and redirects back.
func (f *fakeGitHub) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != f.clientID || q.Get("response_type") != "code" || q.Get("state") == "" ||
		q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		http.Error(w, "bad authorize request", http.StatusBadRequest)
		return
	}
	code := "ghcode" + authRandHex(10)
	f.mu.Lock()
	f.codes[code] = fakeGrant{user: f.user, redirectURI: q.Get("redirect_uri"), challenge: q.Get("code_challenge")}
	f.seen = append(f.seen, code)
	f.mu.Unlock()
	back, _ := url.Parse(q.Get("redirect_uri"))
	bq := back.Query()
	bq.Set("code", code)
	bq.Set("state", q.Get("state"))
	back.RawQuery = bq.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (f *fakeGitHub) token(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.exchanges++
	block, tokErr, tokStatus := f.block, f.tokenError, f.tokenStatus
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-r.Context().Done():
		}
		return
	}
	if tokStatus != 0 {
		http.Error(w, "upstream trouble", tokStatus)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	fail := func(code string) {
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		w.Write([]byte(url.Values{"error": {code}, "error_description": {"The code passed is incorrect or expired."}}.Encode()))
	}
	if tokErr != "" {
		fail(tokErr)
		return
	}
	if r.PostForm.Get("client_id") != f.clientID || r.PostForm.Get("client_secret") != f.clientSecret {
		fail("incorrect_client_credentials")
		return
	}
	code := r.PostForm.Get("code")
	f.mu.Lock()
	g, ok := f.codes[code]
	delete(f.codes, code) // one-time
	f.mu.Unlock()
	if !ok || g.redirectURI != r.PostForm.Get("redirect_uri") {
		fail("bad_verification_code")
		return
	}
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
		fail("bad_verification_code")
		return
	}
	at := "gho_" + authRandHex(18)
	f.mu.Lock()
	f.access[at] = g.user
	f.seen = append(f.seen, at)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	w.Write([]byte(url.Values{"access_token": {at}, "token_type": {"bearer"}, "scope": {"read:user"}}.Encode()))
}

func (f *fakeGitHub) getUser(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	st := f.userStatus
	u, ok := f.access[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	f.mu.Unlock()
	switch {
	case st != 0:
		http.Error(w, `{"message":"trouble"}`, st)
	case !ok:
		http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
	default:
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(u)
	}
}
