package httpd

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/actors/names"
	"github.com/octostore/octostore/persistence"
	"github.com/valyala/fasthttp"
	"golang.org/x/oauth2"
)

// Sign-in with GitHub (OAuth 2.0 authorization code flow with PKCE).
//
//	GET /auth/github            302 to GitHub's authorize URL with a fresh
//	                            state; the state is bound to the browser by
//	                            an HttpOnly, SameSite=Lax cookie, and kept
//	                            server-side (bounded, expiring, single use).
//	GET /auth/github/callback   state == cookie and known → exchange the code
//	                            (bounded time) → GET {api}/user → create or
//	                            update the user by GitHub id → new token.
//
// Nothing secret is ever logged or put in an error message: not the code,
// the state, GitHub's access token, the client secret or the issued token.
// The GitHub access token is used once to read the user and then dropped.

// GitHubOAuth configures sign-in with GitHub. It is enabled when ClientID
// and ClientSecret are set.
type GitHubOAuth struct {
	ClientID     string
	ClientSecret string
	// RedirectURL is the callback URL registered with the OAuth app, e.g.
	// https://octostore.example.com/auth/github/callback. Required.
	RedirectURL string
	AuthURL     string        // default DefaultGitHubAuthURL
	TokenURL    string        // default DefaultGitHubTokenURL
	APIURL      string        // default DefaultGitHubAPIURL; the user is read from {APIURL}/user
	Timeout     time.Duration // bound on the code exchange plus the user fetch (default DefaultGitHubTimeout)
	// MaxTokensPerUser bounds the sign-in tokens a user keeps: signing in
	// beyond it revokes the user's oldest sign-in tokens (default 50).
	MaxTokensPerUser int
}

// GitHub's endpoints (override them for GitHub Enterprise Server).
const (
	DefaultGitHubAuthURL  = "https://github.com/login/oauth/authorize"
	DefaultGitHubTokenURL = "https://github.com/login/oauth/access_token"
	DefaultGitHubAPIURL   = "https://api.github.com"
	DefaultGitHubTimeout  = 10 * time.Second
)

const (
	oauthStateTTL      = 5 * time.Minute // how long a browser has to come back from GitHub
	maxPendingStates   = 10000           // sign-ins in progress at once (signinstates.go)
	maxPendingPerAddr  = 8               // sign-ins in progress from one client address (or IPv6 /64)
	maxGitHubExchanges = 64              // callbacks talking to GitHub at once
	maxGitHubBody      = 1 << 20
)

// Configured reports whether GitHub sign-in is enabled.
func (g GitHubOAuth) Configured() bool { return g.ClientID != "" && g.ClientSecret != "" }

// WithDefaults validates g and fills in the defaults (NewGitHubSignIn calls it).
func (g GitHubOAuth) WithDefaults() (GitHubOAuth, error) {
	if g.ClientID == "" && g.ClientSecret == "" {
		return g, nil
	}
	if g.ClientID == "" || g.ClientSecret == "" {
		return g, errors.New("GitHub sign-in needs both --github-client-id and --github-client-secret")
	}
	if g.RedirectURL == "" {
		return g, errors.New("GitHub sign-in needs --github-redirect-url (GITHUB_REDIRECT_URI): " +
			"the callback URL registered with the OAuth app, e.g. https://HOST/auth/github/callback")
	}
	if g.AuthURL == "" {
		g.AuthURL = DefaultGitHubAuthURL
	}
	if g.TokenURL == "" {
		g.TokenURL = DefaultGitHubTokenURL
	}
	if g.APIURL == "" {
		g.APIURL = DefaultGitHubAPIURL
	}
	g.APIURL = strings.TrimRight(g.APIURL, "/")
	if g.Timeout <= 0 {
		g.Timeout = DefaultGitHubTimeout
	}
	if g.MaxTokensPerUser <= 0 {
		g.MaxTokensPerUser = 50
	}
	for _, u := range []struct{ flag, v string }{
		{"--github-redirect-url", g.RedirectURL}, {"--github-auth-url", g.AuthURL},
		{"--github-token-url", g.TokenURL}, {"--github-api-url", g.APIURL},
	} {
		p, err := url.Parse(u.v)
		if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" || p.User != nil || p.Fragment != "" {
			return g, fmt.Errorf("%s must be an absolute http(s) URL without credentials, got %q", u.flag, u.v)
		}
	}
	return g, nil
}

// githubOAuth is the running sign-in service.
type githubOAuth struct {
	cfg    GitHubOAuth
	oc     *oauth2.Config
	client *http.Client // separate from everything else; never the hot path
	now    func() time.Time
	log    *slog.Logger
	clog   *clientLog // the lines of sign-ins, which anyone can make fail

	secure     bool   // the redirect URL is https: the state cookie is Secure
	cookieName string // __Host- prefixed when secure
	cookiePath string

	states *pendingStates
	slots  chan struct{} // bounds concurrent exchanges with GitHub
}

func newGitHubOAuth(cfg GitHubOAuth, now func() time.Time, log *slog.Logger) *githubOAuth {
	if !cfg.Configured() {
		return nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = cfg.Timeout
	tr.MaxIdleConnsPerHost = 4
	g := &githubOAuth{
		cfg: cfg,
		oc: &oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			RedirectURL:  cfg.RedirectURL,
			Scopes:       []string{"read:user"},
			// In the body, as GitHub documents; never auto-detect, which
			// would retry a failed exchange and spend the one-time code twice.
			Endpoint: oauth2.Endpoint{AuthURL: cfg.AuthURL, TokenURL: cfg.TokenURL, AuthStyle: oauth2.AuthStyleInParams},
		},
		client: &http.Client{Transport: tr, Timeout: cfg.Timeout},
		now:    now,
		log:    log,
		clog:   newClientLog(log, now),
		states: newPendingStates(maxPendingStates, maxPendingPerAddr),
		slots:  make(chan struct{}, maxGitHubExchanges),
	}
	g.secure = strings.HasPrefix(strings.ToLower(cfg.RedirectURL), "https:")
	if g.secure {
		// __Host-: only settable over https by this host, for path / —
		// a sibling subdomain cannot plant a state cookie.
		g.cookieName, g.cookiePath = "__Host-octostore_oauth_state", "/"
	} else {
		g.cookieName, g.cookiePath = "octostore_oauth_state", "/auth/github"
	}
	if !g.secure {
		if u, err := url.Parse(cfg.RedirectURL); err == nil && !isLoopbackHost(u.Hostname()) {
			log.Warn("GitHub redirect URL is not https: tokens and sign-in codes travel in clear text", "redirect_url", cfg.RedirectURL)
		}
	}
	if strings.HasPrefix(strings.ToLower(cfg.TokenURL), "http:") {
		if u, err := url.Parse(cfg.TokenURL); err == nil && !isLoopbackHost(u.Hostname()) {
			log.Warn("GitHub token URL is not https: the client secret travels in clear text", "token_url", cfg.TokenURL)
		}
	}
	return g
}

func (g *githubOAuth) close() { g.client.CloseIdleConnections() }

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func randomState() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Sign-in errors that do not depend on the request.
var (
	errGitHubNotConfigured = actors.NewError(actors.CodeNotImplemented,
		"GitHub sign-in is not configured on this server (set --github-client-id, --github-client-secret and --github-redirect-url)")
	errExchangesFull = &actors.Error{Code: actors.CodeUnavailable,
		Message: "too many sign-ins in progress, retry later", RetryAfter: 5 * time.Second}
	errNoState    = actors.NewError(actors.CodeMalformed, "missing state parameter: start again at /auth/github")
	errNoCookie   = actors.NewError(actors.CodeMalformed, "missing sign-in cookie: start again at /auth/github in the same browser")
	errStateOther = actors.NewError(actors.CodeUnauthorized, "OAuth state does not match this browser's sign-in: start again at /auth/github")
	errStateStale = actors.NewError(actors.CodeUnauthorized, "OAuth state is unknown, expired or already used: start again at /auth/github")
	errNoCode     = actors.NewError(actors.CodeMalformed, "missing code parameter: start again at /auth/github")
)

// githubStart is GET /auth/github.
func (s *Server) githubStart(ctx *fasthttp.RequestCtx) error {
	g := s.oauth
	if g == nil {
		return errGitHubNotConfigured
	}
	now := g.now()
	state, verifier := randomState(), oauth2.GenerateVerifier()
	g.states.add(state, pendingState{verifier: verifier, expires: now.Add(oauthStateTTL)}, s.clientIP(ctx), now)
	c := g.stateCookie(state)
	c.SetMaxAge(int(oauthStateTTL / time.Second))
	ctx.Response.Header.SetCookie(c)
	fasthttp.ReleaseCookie(c)
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("Location", g.oc.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)))
	ctx.SetStatusCode(fasthttp.StatusFound)
	return nil
}

func (g *githubOAuth) stateCookie(value string) *fasthttp.Cookie {
	c := fasthttp.AcquireCookie()
	c.SetKey(g.cookieName)
	c.SetValue(value)
	c.SetPath(g.cookiePath)
	c.SetHTTPOnly(true)
	c.SetSecure(g.secure)
	c.SetSameSite(fasthttp.CookieSameSiteLaxMode)
	return c
}

func (g *githubOAuth) clearCookie(ctx *fasthttp.RequestCtx) {
	c := g.stateCookie("")
	c.SetExpire(fasthttp.CookieExpireDelete)
	ctx.Response.Header.SetCookie(c)
	fasthttp.ReleaseCookie(c)
}

// githubUser is what octostore reads from GitHub.
type githubUser struct {
	ID        int64  `json:"id"`
	Login     string `json:"login"`
	AvatarURL string `json:"avatar_url"`
}

// githubCallback is GET /auth/github/callback?code&state.
func (s *Server) githubCallback(ctx *fasthttp.RequestCtx) error {
	g := s.oauth
	if g == nil {
		return errGitHubNotConfigured
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	args := ctx.QueryArgs()
	state := args.Peek("state")
	cookie := ctx.Request.Header.Cookie(g.cookieName)
	switch {
	case len(state) == 0:
		return errNoState
	case len(cookie) == 0:
		return errNoCookie
	case subtle.ConstantTimeCompare(state, cookie) != 1:
		s.clog.Log(slog.LevelWarn, "github sign-in refused: state does not match the browser's cookie", "remote", s.clientIP(ctx).String())
		return errStateOther
	}
	g.clearCookie(ctx)
	pending, ok := g.states.take(string(state), g.now())
	if !ok {
		s.clog.Log(slog.LevelWarn, "github sign-in refused: state unknown, expired or already used", "remote", s.clientIP(ctx).String())
		return errStateStale
	}
	if e := args.Peek("error"); len(e) > 0 {
		return actors.NewError(actors.CodeUnauthorized, "GitHub sign-in was not completed: "+safeCode(string(e)))
	}
	code := string(args.Peek("code"))
	if code == "" {
		return errNoCode
	}
	select {
	case g.slots <- struct{}{}:
		defer func() { <-g.slots }()
	default:
		return errExchangesFull
	}
	user, err := g.identify(code, pending.verifier)
	if err != nil {
		return err
	}
	raw, err := s.signIn(user)
	if err != nil {
		return err
	}
	type userJSON struct {
		Login     string `json:"login"`
		AvatarURL string `json:"avatar_url"`
	}
	return writeJSON(ctx, struct {
		Token string   `json:"token"`
		User  userJSON `json:"user"`
	}{raw, userJSON{user.Login, user.AvatarURL}})
}

// identify exchanges the code and reads the GitHub user, within cfg.Timeout.
// Its errors are coded (upstream, unauthorized) with messages safe to show,
// and logged through g.clog (anyone can make a sign-in fail).
func (g *githubOAuth) identify(code, verifier string) (githubUser, error) {
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.Timeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, g.client)
	secrets := []string{code, verifier, g.cfg.ClientSecret}
	tok, err := g.oc.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		cerr, detail := g.classify(ctx, err, "exchanging the sign-in code")
		g.clog.Log(slog.LevelWarn, "github sign-in failed: token exchange", "status", statusOf(cerr.Code), "reason", redact(detail, secrets...))
		return githubUser{}, cerr
	}
	secrets = append(secrets, tok.AccessToken)
	u, cerr, detail := g.fetchUser(ctx, tok.AccessToken)
	if cerr != nil {
		g.clog.Log(slog.LevelWarn, "github sign-in failed: read user", "status", statusOf(cerr.Code), "reason", redact(detail, secrets...))
		return u, cerr
	}
	return u, nil
}

// classify turns an exchange error into a coded error for the client and a
// detail for the log. It never uses the error's text when GitHub answered
// (oauth2's errors quote the response body).
func (g *githubOAuth) classify(ctx context.Context, err error, doing string) (*actors.Error, string) {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return actors.Errorf(actors.CodeUpstream, "GitHub did not answer within %s while %s; try again", g.cfg.Timeout, doing), "timeout"
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		code, st := safeCode(re.ErrorCode), 0
		if re.Response != nil {
			st = re.Response.StatusCode
		}
		detail := fmt.Sprintf("http %d, error %s", st, code)
		switch {
		case re.ErrorCode == "incorrect_client_credentials" || re.ErrorCode == "redirect_uri_mismatch" || re.ErrorCode == "unsupported_grant_type":
			g.clog.Log(slog.LevelError, "GitHub rejected this server's OAuth app settings: check --github-client-id, --github-client-secret and --github-redirect-url", "error", code)
			return actors.NewError(actors.CodeUpstream, "GitHub rejected this server's OAuth app settings ("+code+"); tell the operator"), detail
		case re.ErrorCode != "":
			return actors.NewError(actors.CodeUnauthorized, "GitHub refused the sign-in code ("+code+"): start again at /auth/github"), detail
		case st >= 400 && st < 500:
			return actors.Errorf(actors.CodeUnauthorized, "GitHub refused the sign-in code (HTTP %d): start again at /auth/github", st), detail
		}
		return actors.Errorf(actors.CodeUpstream, "GitHub answered HTTP %d while %s; try again", st, doing), detail
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return actors.NewError(actors.CodeUpstream, "could not reach GitHub while "+doing+"; try again"), ue.Err.Error()
	}
	return actors.NewError(actors.CodeUpstream, "unexpected answer from GitHub while "+doing), err.Error()
}

// fetchUser reads {api}/user with GitHub's access token.
func (g *githubOAuth) fetchUser(ctx context.Context, accessToken string) (u githubUser, cerr *actors.Error, detail string) {
	const doing = "reading the GitHub user"
	unexpected := actors.NewError(actors.CodeUpstream, "unexpected answer from GitHub while "+doing)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.cfg.APIURL+"/user", nil)
	if err != nil {
		return u, actors.NewError(actors.CodeUpstream, "bad --github-api-url"), err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("User-Agent", "octostore")
	resp, err := g.client.Do(req)
	if err != nil {
		cerr, detail := g.classify(ctx, err, doing)
		return u, cerr, detail
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxGitHubBody))
	resp.Body.Close()
	if err != nil {
		cerr, detail := g.classify(ctx, err, doing)
		return u, cerr, detail
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return u, actors.NewError(actors.CodeUnauthorized, "GitHub refused the access token: start again at /auth/github"), "http 401"
	case resp.StatusCode != http.StatusOK:
		return u, actors.Errorf(actors.CodeUpstream, "GitHub answered HTTP %d while %s; try again", resp.StatusCode, doing),
			fmt.Sprintf("http %d", resp.StatusCode)
	}
	if err := json.Unmarshal(body, &u); err != nil {
		return u, unexpected, "user is not JSON"
	}
	if u.ID <= 0 || !names.Login.Valid(u.Login) {
		return u, unexpected, "user without a valid id or login"
	}
	u.AvatarURL = safeAvatar(u.AvatarURL)
	return u, nil, ""
}

// signIn creates or updates the user by GitHub id and issues a new token,
// in one persistence operation (persistence.Store.SignIn: the account
// policy lives there), then drops the tokens it revoked or renamed from the
// token cache.
func (s *Server) signIn(u githubUser) (string, error) {
	g := s.oauth
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.Timeout)
	defer cancel()
	r, err := s.store.SignIn(ctx, persistence.GitHubUser{ID: u.ID, Login: u.Login, AvatarURL: u.AvatarURL}, g.cfg.MaxTokensPerUser)
	if err != nil {
		if actors.ErrorCode(err) == actors.CodeConflict {
			s.clog.Log(slog.LevelWarn, "github sign-in refused: login belongs to another account", "login", u.Login, "github_id", u.ID)
		}
		return "", err
	}
	for _, h := range r.Stale {
		s.auth.Invalidate(h)
	}
	for _, t := range r.Revoked {
		s.log.Info("revoked oldest sign-in token", "user", u.Login, "fingerprint", t.Fingerprint())
	}
	if r.RenamedFrom != "" {
		s.auth.Renamed() // answers show the new login for the user's locks and resources at once
		s.log.Info("github user renamed", "old_login", r.RenamedFrom, "login", u.Login, "github_id", u.ID)
	}
	s.log.Info("github sign-in", "user", u.Login, "github_id", u.ID, "fingerprint", persistence.Fingerprint(r.Hash))
	return r.Token, nil
}

// safeCode keeps an OAuth error code printable and short: [a-z0-9_.-].
func safeCode(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			b[i] = '?'
		}
	}
	if len(b) == 0 {
		return "unknown error"
	}
	return string(b)
}

// safeAvatar keeps an avatar URL only if it is a plain http(s) URL.
func safeAvatar(s string) string {
	if len(s) > 1024 {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return ""
	}
	return s
}

// redact removes secrets from a log detail, as a last line of defence.
func redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "[REDACTED]")
		}
	}
	return s
}
