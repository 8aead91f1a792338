package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/octostore/octostore/tools/keepreading"
	"github.com/valyala/fasthttp"
)

// Client talks to one octostore server. It is safe for concurrent use.
type Client struct {
	scheme, host, prefix string // from the base URL; prefix has no trailing slash
	baseURL              string // scheme://host+prefix, for net/http streams

	auth     atomic.Pointer[string] // "Bearer <token>", or nil for none
	adminKey string

	hc      *fasthttp.HostClient
	sse     *http.Client
	timeout time.Duration

	retries                int
	backoffMin, backoffMax time.Duration
	userAgent              string
	ownerQuery             string // "owner=LOGIN" (WithOwner) or ""
}

// Option configures a Client.
type Option func(*Client)

// WithTimeout bounds each unary request attempt (default 10s). A context
// deadline that is earlier wins.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithRetries sets how many times a retryable call is retried (default 3;
// 0 disables retries).
func WithRetries(n int) Option { return func(c *Client) { c.retries = n } }

// WithBackoff sets the exponential backoff bounds between retries (default
// 50ms doubling up to 2s, with jitter).
func WithBackoff(min, max time.Duration) Option {
	return func(c *Client) { c.backoffMin, c.backoffMax = min, max }
}

// WithHTTPClient sets the net/http client used for event streams. It must not
// have a Timeout (streams are long-lived); cancel the context instead.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.sse = hc } }

// WithHostClient replaces the fasthttp.HostClient used for unary calls. Its
// Addr and IsTLS must match the base URL.
func WithHostClient(hc *fasthttp.HostClient) Option { return func(c *Client) { c.hc = hc } }

// WithTransport sets the fasthttp transport under unary calls (default
// fasthttp.DefaultTransport): every request and answer passes through it.
// Tests use it to check each exchange against the API contract
// (httpd/apitest.FastTransport). Apply it after WithHostClient, if both.
func WithTransport(rt fasthttp.RoundTripper) Option { return func(c *Client) { c.hc.Transport = rt } }

// WithMaxConns sets the connection pool size for unary calls (default 512).
func WithMaxConns(n int) Option { return func(c *Client) { c.hc.MaxConns = n } }

// WithAdminKey sends the admin key in X-Admin-Key on every request.
func WithAdminKey(key string) Option { return func(c *Client) { c.adminKey = key } }

// WithOwner makes every call on an owner-scoped resource (rate limits,
// flags, config) address login's: it adds ?owner=LOGIN to the request. The
// admin key owns nothing and needs it for every call on one resource (403
// or 422 without it); on a listing it narrows the admin's view (every
// user's, each item with its Owner) to login's. A user token may name only
// its own login (403 otherwise). Locks are not owner-scoped: lock calls are
// unchanged.
func WithOwner(login string) Option {
	return func(c *Client) {
		c.ownerQuery = ""
		if login != "" {
			c.ownerQuery = "owner=" + url.QueryEscape(login)
		}
	}
}

// owned adds the ?owner= of WithOwner to path (which may have a query).
func (c *Client) owned(path string) string {
	return path + c.ownerSuffix(strings.Contains(path, "?"))
}

// ownerSuffix is "?owner=LOGIN" ("&owner=LOGIN" after a query), or "" without
// WithOwner.
func (c *Client) ownerSuffix(afterQuery bool) string {
	switch {
	case c.ownerQuery == "":
		return ""
	case afterQuery:
		return "&" + c.ownerQuery
	}
	return "?" + c.ownerQuery
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client for the server at baseURL (e.g. "http://127.0.0.1:3000")
// that authenticates with the bearer token (may be empty for /health).
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("parse base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("base URL %q: scheme must be http or https", baseURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("base URL %q: missing host", baseURL)
	}
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	c := &Client{
		scheme:     u.Scheme,
		host:       u.Host,
		prefix:     strings.TrimSuffix(u.EscapedPath(), "/"),
		timeout:    10 * time.Second,
		retries:    3,
		backoffMin: 50 * time.Millisecond,
		backoffMax: 2 * time.Second,
		userAgent:  "octostore-go-client",
		sse:        &http.Client{},
		hc: &fasthttp.HostClient{
			Addr:                      addr,
			IsTLS:                     u.Scheme == "https",
			MaxConns:                  fasthttp.DefaultMaxConnsPerHost,
			MaxIdleConnDuration:       30 * time.Second,
			MaxIdemponentCallAttempts: 2, // one immediate retry of GET/PUT on a stale keep-alive connection
			NoDefaultUserAgentHeader:  true,
			DisablePathNormalizing:    true,
			// A server that refuses a body before reading it (413, or 401
			// for a missing token) answers and closes while the body is
			// still being written: read that answer rather than report the
			// write's EPIPE / ECONNRESET.
			DialTimeout: keepreading.DialTimeout(fasthttp.DialTimeout),
		},
	}
	c.baseURL = c.scheme + "://" + c.host + c.prefix
	c.SetToken(token)
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// SetToken replaces the bearer token used by later calls.
func (c *Client) SetToken(token string) {
	if token == "" {
		c.auth.Store(nil)
		return
	}
	s := "Bearer " + token
	c.auth.Store(&s)
}

// Token returns the current bearer token.
func (c *Client) Token() string {
	if p := c.auth.Load(); p != nil {
		return strings.TrimPrefix(*p, "Bearer ")
	}
	return ""
}

// BaseURL returns the server URL the client was created with (without a
// trailing slash).
func (c *Client) BaseURL() string { return c.baseURL }

// CloseIdleConnections closes idle keep-alive connections.
func (c *Client) CloseIdleConnections() {
	c.hc.CloseIdleConnections()
	c.sse.CloseIdleConnections()
}

// exchange is one pooled request/response pair. When a cancelled call
// abandons a request still in flight, the exchange is not returned to the
// pool: the goroutine running it drops it when the request ends.
type exchange struct {
	req      fasthttp.Request
	resp     fasthttp.Response
	done     chan error
	orphaned bool // set by the caller goroutine only
	scratch  []byte
}

var exchangePool = sync.Pool{New: func() any { return &exchange{done: make(chan error, 1)} }}

// start takes an exchange from the pool and fills in method, URL and headers.
// The path parts are appended to the base prefix as they are (callers escape
// path segments with seg).
func (c *Client) start(method string, path ...string) *exchange {
	x := exchangePool.Get().(*exchange)
	x.orphaned = false
	b := x.scratch[:0]
	b = append(b, c.scheme...)
	b = append(b, "://"...)
	b = append(b, c.host...)
	b = append(b, c.prefix...)
	for _, p := range path {
		b = append(b, p...)
	}
	x.req.SetRequestURIBytes(b)
	x.scratch = b
	x.req.Header.SetMethod(method)
	if p := c.auth.Load(); p != nil {
		x.req.Header.Set(fasthttp.HeaderAuthorization, *p)
	}
	if c.adminKey != "" {
		x.req.Header.Set("X-Admin-Key", c.adminKey)
	}
	if c.userAgent != "" {
		x.req.Header.SetUserAgent(c.userAgent)
	}
	x.req.Header.Set(fasthttp.HeaderAccept, "application/json")
	return x
}

// setJSON sets body as the request body.
func (x *exchange) setJSON(body []byte) {
	x.req.Header.SetContentType("application/json")
	x.req.SetBody(body)
}

func (c *Client) finish(x *exchange) {
	if x.orphaned {
		return
	}
	x.req.Reset()
	x.resp.Reset()
	if cap(x.scratch) > 4096 {
		x.scratch = nil
	}
	exchangePool.Put(x)
}

// send performs the exchange with retries. On success (any HTTP status below
// 400) the response is in x.resp; an HTTP error status is returned as a typed
// error. idempotent marks calls that may be retried after they were sent.
func (c *Client) send(ctx context.Context, x *exchange, idempotent bool) error {
	for attempt := 0; ; attempt++ {
		err := c.roundTrip(ctx, x)
		var status int
		if err == nil {
			status = x.resp.StatusCode()
			if status < 400 {
				return nil
			}
			err = decodeError(status, x.resp.Body(), string(x.resp.Header.Peek(fasthttp.HeaderRetryAfter)))
		}
		if attempt >= c.retries || !c.retryable(err, status, idempotent) {
			return err
		}
		wait := c.backoff(attempt)
		if ra := RetryAfter(err); ra > wait {
			if ra > c.backoffMax {
				return err // the server asks for more patience than we have
			}
			wait = ra
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (c *Client) retryable(err error, status int, idempotent bool) bool {
	var te *TransportError
	if errors.As(err, &te) {
		return te.NotSent || idempotent
	}
	if !idempotent {
		return false
	}
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// backoff returns the jittered wait before retry number attempt+1: a random
// duration in [d/2, d) with d = backoffMin * 2^attempt capped at backoffMax.
func (c *Client) backoff(attempt int) time.Duration {
	return jitter(c.backoffMin, c.backoffMax, attempt)
}

func jitter(min, max time.Duration, attempt int) time.Duration {
	d := min
	for i := 0; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half)
}

// roundTrip runs one attempt, honouring ctx. A context that can never be
// cancelled takes the direct path (no goroutine).
func (c *Client) roundTrip(ctx context.Context, x *exchange) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	deadline := time.Now().Add(c.timeout)
	ctxDL, hasCtxDL := ctx.Deadline()
	if hasCtxDL && ctxDL.Before(deadline) {
		deadline = ctxDL
	}
	var err error
	if ctx.Done() == nil {
		err = c.hc.DoDeadline(&x.req, &x.resp, deadline)
	} else {
		go func() { x.done <- c.hc.DoDeadline(&x.req, &x.resp, deadline) }()
		select {
		case err = <-x.done:
		case <-ctx.Done():
			x.orphaned = true
			return ctx.Err()
		}
	}
	if err == nil {
		return nil
	}
	if hasCtxDL && !time.Now().Before(ctxDL) {
		return context.DeadlineExceeded
	}
	return &TransportError{Op: string(x.req.Header.Method()) + " " + string(x.req.URI().Path()), NotSent: notSent(err), Err: err}
}
