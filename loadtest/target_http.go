package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/octostore/octostore/tools/client"
	"github.com/octostore/octostore/tools/keepreading"
	"github.com/valyala/fasthttp"
)

// HTTP drivers for octostore (and for the no-op server, which answers the
// same routes).
//
//   - "client": the project's Go client (tools/client), as applications use it.
//   - "raw": a minimal fasthttp driver that writes request bodies into a
//     per-connection buffer and picks the few fields it needs out of the
//     answers without decoding them, so that the load generator costs as
//     little CPU as possible (compare tool_cpu in the reports of the two).
const (
	DriverClient = "client"
	DriverRaw    = "raw"
)

// HTTPOptions configure an HTTP target.
type HTTPOptions struct {
	Driver   string        // DriverClient (default) or DriverRaw
	MaxConns int           // connection pool size; default 512
	Timeout  time.Duration // per request; default 10s
}

type httpTarget struct {
	base    string // scheme://host+prefix, no trailing slash
	addr    string // for the report
	tokens  []string
	opt     HTTPOptions
	hc      *fasthttp.HostClient // raw driver
	clients []*client.Client     // client driver, one per user
}

// NewHTTPTarget returns a target for the octostore server at baseURL; the
// workers are spread over tokens (one user per token).
func NewHTTPTarget(baseURL string, tokens []string, opt HTTPOptions) (Target, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("parse URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("URL %q: want http://HOST:PORT", baseURL)
	}
	if len(tokens) == 0 {
		tokens = []string{""}
	}
	if opt.Driver == "" {
		opt.Driver = DriverClient
	}
	if opt.MaxConns <= 0 {
		opt.MaxConns = 512
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 10 * time.Second
	}
	t := &httpTarget{
		base:   u.Scheme + "://" + u.Host + strings.TrimSuffix(u.EscapedPath(), "/"),
		addr:   u.Scheme + "://" + u.Host + strings.TrimSuffix(u.EscapedPath(), "/"),
		tokens: tokens,
		opt:    opt,
	}
	switch opt.Driver {
	case DriverRaw:
		addr := u.Host
		if u.Port() == "" {
			port := "80"
			if u.Scheme == "https" {
				port = "443"
			}
			addr = net.JoinHostPort(u.Hostname(), port)
		}
		t.hc = &fasthttp.HostClient{
			Addr:                     addr,
			IsTLS:                    u.Scheme == "https",
			MaxConns:                 opt.MaxConns,
			MaxIdleConnDuration:      30 * time.Second,
			NoDefaultUserAgentHeader: true,
			DisablePathNormalizing:   true,
			DialTimeout:              keepreading.DialTimeout(fasthttp.DialTimeout), // an early answer is read, not lost to EPIPE
		}
	case DriverClient:
		for _, tok := range tokens {
			c, err := client.New(t.base, tok, client.WithRetries(0), client.WithTimeout(opt.Timeout),
				client.WithMaxConns(opt.MaxConns), client.WithUserAgent("octostore-loadtest"))
			if err != nil {
				return nil, err
			}
			t.clients = append(t.clients, c)
		}
	default:
		return nil, fmt.Errorf("unknown driver %q (want %s or %s)", opt.Driver, DriverClient, DriverRaw)
	}
	return t, nil
}

func (t *httpTarget) Kind() string            { return "octostore" }
func (t *httpTarget) Addr() string            { return t.addr }
func (t *httpTarget) Supports(sc string) bool { return true }
func (t *httpTarget) Users() int              { return len(t.tokens) }
func (t *httpTarget) Driver() string          { return t.opt.Driver }
func (t *httpTarget) Close() error            { t.closeIdle(); return nil }
func (t *httpTarget) String() string          { return t.addr }

// ErrAuth: the server refused a token.
var ErrAuth = errors.New("token refused")

// CheckAuth makes one authenticated request (GET /locks) per token, so that a
// missing or wrong token fails before the run instead of as every request.
func (t *httpTarget) CheckAuth() error {
	for i, tok := range t.tokens {
		var req fasthttp.Request
		var resp fasthttp.Response
		req.SetRequestURI(t.base + "/locks")
		req.Header.SetMethod("GET")
		if tok != "" {
			req.Header.Set(fasthttp.HeaderAuthorization, "Bearer "+tok)
		}
		if err := fasthttp.DoTimeout(&req, &resp, 5*time.Second); err != nil {
			return fmt.Errorf("%s: %w", t.addr, err)
		}
		switch st := resp.StatusCode(); {
		case st == 401 || st == 403:
			if tok == "" {
				return fmt.Errorf("%w: no --token given (or OCTOSTORE_TOKEN) and the server wants one", ErrAuth)
			}
			return fmt.Errorf("%w: token %d of %d: status %d", ErrAuth, i+1, len(t.tokens), st)
		case st >= 500:
			return fmt.Errorf("%s/locks: status %d", t.addr, st)
		}
	}
	return nil
}

func (t *httpTarget) Ping() error {
	var req fasthttp.Request
	var resp fasthttp.Response
	req.SetRequestURI(t.base + "/health")
	req.Header.SetMethod("GET")
	if err := fasthttp.DoTimeout(&req, &resp, 5*time.Second); err != nil {
		return fmt.Errorf("%s: %w", t.addr, err)
	}
	if resp.StatusCode() != 200 {
		return fmt.Errorf("%s/health: status %d", t.addr, resp.StatusCode())
	}
	return nil
}

func (t *httpTarget) closeIdle() {
	if t.hc != nil {
		t.hc.CloseIdleConnections()
	}
	for _, c := range t.clients {
		c.CloseIdleConnections()
	}
}

func (t *httpTarget) Conn(user int) (Conn, error) {
	if user < 0 || user >= len(t.tokens) {
		return nil, fmt.Errorf("user %d out of range", user)
	}
	if t.opt.Driver == DriverClient {
		return &clientConn{c: t.clients[user], ctx: context.Background()}, nil
	}
	c := &rawConn{t: t}
	if tok := t.tokens[user]; tok != "" {
		c.auth = []byte("Bearer " + tok)
	}
	return c, nil
}

// ---- the Go client driver ----

type clientConn struct {
	c   *client.Client
	ctx context.Context
}

func (c *clientConn) Close() {}

// statusOf maps a client error onto a Status.
func statusOf(err error) Status {
	if err == nil {
		return 200
	}
	var lh *client.LockHeldError
	if errors.As(err, &lh) {
		if lh.Err != nil {
			return Status(lh.Err.Status)
		}
		return 409
	}
	var ce *client.ConflictError
	if errors.As(err, &ce) && ce.Err != nil {
		return Status(ce.Err.Status)
	}
	var ve *client.ValidationError
	if errors.As(err, &ve) {
		if ve.Err != nil {
			return Status(ve.Err.Status)
		}
		return 422
	}
	var ae *client.APIError
	if errors.As(err, &ae) {
		return Status(ae.Status)
	}
	var te *client.TransportError
	if errors.As(err, &te) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return StatusTransport
	}
	return StatusBadReply
}

func leaseReply(l *client.Lease) (LockReply, Status) {
	id, ok := ParseLeaseID([]byte(l.LeaseID))
	if !ok {
		return LockReply{}, StatusBadReply
	}
	return LockReply{Lease: id, Token: int64(l.FencingToken), Held: l.Status == "held"}, 200
}

func (c *clientConn) Acquire(name string, ttl time.Duration) (LockReply, Status) {
	l, err := c.c.Acquire(c.ctx, name, ttl)
	if err != nil {
		return LockReply{}, statusOf(err)
	}
	return leaseReply(l)
}

func (c *clientConn) AcquireQueued(name, holderID string, ttl, wait time.Duration) (LockReply, Status) {
	l, err := c.c.AcquireWith(c.ctx, name, ttl, client.AcquireOptions{HolderID: holderID, Wait: wait})
	if err != nil {
		return LockReply{}, statusOf(err)
	}
	return leaseReply(l)
}

func (c *clientConn) AcquireSemaphore(name, holderID string, limit int, ttl, wait time.Duration) (LockReply, Status) {
	l, err := c.c.AcquireSemaphore(c.ctx, name, limit, ttl, client.AcquireOptions{HolderID: holderID, Wait: wait})
	if err != nil {
		var full *client.SemaphoreFullError
		if errors.As(err, &full) {
			return LockReply{}, 409
		}
		return LockReply{}, statusOf(err)
	}
	return leaseReply(l)
}

func (c *clientConn) ReleaseSemaphore(name string, lease LeaseID) Status {
	return statusOf(c.c.ReleaseSemaphore(c.ctx, name, lease.String()))
}

func (c *clientConn) Renew(name string, lease LeaseID, ttl time.Duration) (LockReply, Status) {
	l, err := c.c.Renew(c.ctx, name, lease.String(), ttl)
	if err != nil {
		return LockReply{}, statusOf(err)
	}
	return leaseReply(l)
}

func (c *clientConn) Release(name string, lease LeaseID) Status {
	return statusOf(c.c.Release(c.ctx, name, lease.String()))
}

func (c *clientConn) LockStatus(name string) Status {
	_, err := c.c.LockStatus(c.ctx, name)
	return statusOf(err)
}

func (c *clientConn) CheckLimit(name string, max int, window time.Duration, algorithm string) (bool, Status) {
	r, err := c.c.CheckLimitWith(c.ctx, name, client.LimitCheck{MaxRequests: max, Window: window, Algorithm: algorithm})
	if err != nil {
		return false, statusOf(err)
	}
	return r.Allowed, 200
}

func (c *clientConn) EvalFlag(name, subject string) (bool, Status) {
	r, err := c.c.GetFlag(c.ctx, name, subject)
	if err != nil {
		return false, statusOf(err)
	}
	return r.Enabled, 200
}

func (c *clientConn) SetFlag(name string, percentage int) Status {
	_, err := c.c.SetFlag(c.ctx, name, client.FlagSpec{Enabled: true, Percentage: &percentage})
	return statusOf(err)
}

func (c *clientConn) ReadConfig(key string) Status {
	_, err := c.c.GetConfig(c.ctx, key)
	return statusOf(err)
}

func (c *clientConn) WriteConfig(key string, n int64) Status {
	_, err := c.c.SetConfig(c.ctx, key, client.ConfigWrite{Value: configValue{N: n}})
	return statusOf(err)
}

type configValue struct {
	N int64 `json:"n"`
}

// ---- the raw fasthttp driver ----

type rawConn struct {
	t    *httpTarget
	auth []byte
	req  fasthttp.Request
	resp fasthttp.Response
	uri  []byte
	body []byte
}

func (c *rawConn) Close() {}

// path starts the request URI with the base URL followed by parts.
func (c *rawConn) path(parts ...string) {
	b := append(c.uri[:0], c.t.base...)
	for _, p := range parts {
		b = append(b, p...)
	}
	c.uri = b
}

// do sends the request built by path (and body, when not nil).
func (c *rawConn) do(method string, body []byte) Status { return c.doWait(method, body, 0) }

// doWait is do for a request the server may hold up to wait longer.
func (c *rawConn) doWait(method string, body []byte, wait time.Duration) Status {
	c.req.Reset()
	// Keep the body buffers with the connection instead of returning them to
	// fasthttp's global pool, whose size calibration can make it allocate
	// afresh for every request.
	c.resp.KeepBodyBuffer = true
	c.req.Header.SetMethod(method)
	c.req.SetRequestURIBytes(c.uri)
	if c.auth != nil {
		c.req.Header.SetBytesV(fasthttp.HeaderAuthorization, c.auth)
	}
	if body != nil {
		c.req.Header.SetContentType("application/json")
		c.req.SetBodyRaw(body)
	}
	if err := c.t.hc.DoTimeout(&c.req, &c.resp, c.t.opt.Timeout+wait); err != nil {
		return StatusTransport
	}
	return Status(c.resp.StatusCode())
}

func (c *rawConn) lockReply(st Status) (LockReply, Status) {
	if st != 200 {
		return LockReply{}, st
	}
	b := c.resp.Body()
	id, ok := ParseLeaseID(jsonField(b, keyLeaseID))
	tok, ok2 := parseInt(jsonField(b, keyFencingToken))
	if !ok || !ok2 {
		return LockReply{}, StatusBadReply
	}
	return LockReply{Lease: id, Token: tok, Held: string(jsonField(b, keyStatus)) == "held"}, 200
}

func (c *rawConn) Acquire(name string, ttl time.Duration) (LockReply, Status) {
	c.path("/locks/", name, "/acquire")
	c.body = append(c.body[:0], `{"ttl_seconds":`...)
	c.body = strconv.AppendInt(c.body, wholeSeconds(ttl), 10)
	c.body = append(c.body, '}')
	return c.lockReply(c.do("POST", c.body))
}

func (c *rawConn) AcquireQueued(name, holderID string, ttl, wait time.Duration) (LockReply, Status) {
	c.path("/locks/", name, "/acquire")
	c.body = append(c.body[:0], `{"ttl_seconds":`...)
	c.body = strconv.AppendInt(c.body, wholeSeconds(ttl), 10)
	c.body = append(c.body, `,"holder_id":"`...)
	c.body = append(c.body, holderID...) // the scenario's ids need no escaping
	c.body = append(c.body, `","wait_seconds":`...)
	c.body = strconv.AppendInt(c.body, wholeSeconds(wait), 10)
	c.body = append(c.body, '}')
	return c.lockReply(c.doWait("POST", c.body, wait))
}

func (c *rawConn) AcquireSemaphore(name, holderID string, limit int, ttl, wait time.Duration) (LockReply, Status) {
	c.path("/semaphores/", name, "/acquire")
	c.body = append(c.body[:0], `{"limit":`...)
	c.body = strconv.AppendInt(c.body, int64(limit), 10)
	c.body = append(c.body, `,"ttl_seconds":`...)
	c.body = strconv.AppendInt(c.body, wholeSeconds(ttl), 10)
	c.body = append(c.body, `,"holder_id":"`...)
	c.body = append(c.body, holderID...) // the scenario's ids need no escaping
	c.body = append(c.body, '"')
	if wait > 0 {
		c.body = append(c.body, `,"wait_seconds":`...)
		c.body = strconv.AppendInt(c.body, wholeSeconds(wait), 10)
	}
	c.body = append(c.body, '}')
	return c.lockReply(c.doWait("POST", c.body, wait))
}

func (c *rawConn) ReleaseSemaphore(name string, lease LeaseID) Status {
	c.path("/semaphores/", name, "/release")
	c.body = c.body[:0]
	c.appendLease(lease)
	c.body = append(c.body, '}')
	return c.do("POST", c.body)
}

func (c *rawConn) appendLease(lease LeaseID) {
	c.body = append(c.body, `{"lease_id":"`...)
	var s [36]byte
	encodeLease(s[:], lease)
	c.body = append(c.body, s[:]...)
	c.body = append(c.body, '"')
}

func (c *rawConn) Renew(name string, lease LeaseID, ttl time.Duration) (LockReply, Status) {
	c.path("/locks/", name, "/renew")
	c.body = c.body[:0]
	c.appendLease(lease)
	c.body = append(c.body, `,"ttl_seconds":`...)
	c.body = strconv.AppendInt(c.body, wholeSeconds(ttl), 10)
	c.body = append(c.body, '}')
	return c.lockReply(c.do("POST", c.body))
}

func (c *rawConn) Release(name string, lease LeaseID) Status {
	c.path("/locks/", name, "/release")
	c.body = c.body[:0]
	c.appendLease(lease)
	c.body = append(c.body, '}')
	return c.do("POST", c.body)
}

func (c *rawConn) LockStatus(name string) Status {
	c.path("/locks/", name)
	return c.do("GET", nil)
}

func (c *rawConn) CheckLimit(name string, max int, window time.Duration, algorithm string) (bool, Status) {
	c.path("/limits/", name, "/check")
	c.body = append(c.body[:0], `{"max_requests":`...)
	c.body = strconv.AppendInt(c.body, int64(max), 10)
	c.body = append(c.body, `,"window_seconds":`...)
	c.body = strconv.AppendInt(c.body, wholeSeconds(window), 10)
	if algorithm != "" {
		c.body = append(c.body, `,"algorithm":"`...)
		c.body = append(c.body, algorithm...)
		c.body = append(c.body, '"')
	}
	c.body = append(c.body, '}')
	st := c.do("POST", c.body)
	if st != 200 {
		return false, st
	}
	switch string(jsonField(c.resp.Body(), keyAllowed)) {
	case "true":
		return true, 200
	case "false":
		return false, 200
	}
	return false, StatusBadReply
}

func (c *rawConn) EvalFlag(name, subject string) (bool, Status) {
	c.path("/flags/", name, "?subject=", subject)
	st := c.do("GET", nil)
	if st != 200 {
		return false, st
	}
	switch string(jsonField(c.resp.Body(), keyEnabled)) {
	case "true":
		return true, 200
	case "false":
		return false, 200
	}
	return false, StatusBadReply
}

func (c *rawConn) SetFlag(name string, percentage int) Status {
	c.path("/flags/", name)
	c.body = append(c.body[:0], `{"enabled":true,"percentage":`...)
	c.body = strconv.AppendInt(c.body, int64(percentage), 10)
	c.body = append(c.body, '}')
	return c.do("PUT", c.body)
}

func (c *rawConn) ReadConfig(key string) Status {
	c.path("/config/", key)
	return c.do("GET", nil)
}

func (c *rawConn) WriteConfig(key string, n int64) Status {
	c.path("/config/", key)
	c.body = append(c.body[:0], `{"value":{"n":`...)
	c.body = strconv.AppendInt(c.body, n, 10)
	c.body = append(c.body, `}}`...)
	return c.do("PUT", c.body)
}

// wholeSeconds rounds a TTL up to whole seconds, at least 1.
func wholeSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

func encodeLease(dst []byte, l LeaseID) {
	const hexd = "0123456789abcdef"
	j := 0
	for i, b := range l {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst[j] = '-'
			j++
		}
		dst[j], dst[j+1] = hexd[b>>4], hexd[b&0xf]
		j += 2
	}
}

var (
	keyLeaseID      = []byte(`"lease_id"`)
	keyFencingToken = []byte(`"fencing_token"`)
	keyStatus       = []byte(`"status"`)
	keyAllowed      = []byte(`"allowed"`)
	keyEnabled      = []byte(`"enabled"`)
)

// jsonField returns the value of the first member named qkey (given with its
// quotes) in a flat JSON object: the contents of a string (escapes are not
// decoded; the fields read here never contain any) or the raw text of a
// number, boolean or null. nil when absent.
func jsonField(body, qkey []byte) []byte {
	off := 0
	for off < len(body) {
		i := bytes.Index(body[off:], qkey)
		if i < 0 {
			return nil
		}
		p := off + i + len(qkey)
		p = skipSpace(body, p)
		if p >= len(body) || body[p] != ':' {
			off = p
			continue // the text was a value, not a member name
		}
		p = skipSpace(body, p+1)
		if p >= len(body) {
			return nil
		}
		if body[p] == '"' {
			end := bytes.IndexByte(body[p+1:], '"')
			if end < 0 {
				return nil
			}
			return body[p+1 : p+1+end]
		}
		end := p
		for end < len(body) {
			switch body[end] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return body[p:end]
			}
			end++
		}
		return body[p:end]
	}
	return nil
}

func skipSpace(b []byte, p int) int {
	for p < len(b) && (b[p] == ' ' || b[p] == '\t' || b[p] == '\r' || b[p] == '\n') {
		p++
	}
	return p
}

// parseInt parses a non-negative decimal integer without allocating.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// ---- cleanup ----

// resourceKind is one kind of resource a run can leave in a user's namespace.
type resourceKind struct {
	name string                                      // for the report: "locks", "limits", …
	list func(ctx context.Context) ([]string, error) // names with the run's prefix
	del  func(ctx context.Context, name string) (removed bool, err error)
}

// namesOf returns the names (given by name) of the items that start with prefix.
func namesOf[T any](items []T, err error, prefix string, name func(T) string) ([]string, error) {
	var out []string
	for _, it := range items {
		if n := name(it); strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out, err
}

// mine is name, or "" for an item of an admin listing (Owner set): the admin
// key lists every user's limits, flags and config keys but deletes none
// without ?owner=; their owners' tokens delete them.
func mine(owner, name string) string {
	if owner != "" {
		return ""
	}
	return name
}

// kindsOf returns the kinds a run may create, listed and deleted through c.
func kindsOf(c *client.Client, prefix string) []resourceKind {
	gone := func(err error) (bool, error) {
		if errors.Is(err, client.ErrNotFound) {
			return false, nil // already gone (a lease that expired meanwhile)
		}
		return err == nil, err
	}
	var leases sync.Map // lock name -> lease id, from the last listing
	return []resourceKind{
		{"locks",
			func(ctx context.Context) ([]string, error) {
				ls, err := c.ListLocks(ctx)
				return namesOf(ls, err, prefix, func(l client.LockInfo) string {
					leases.Store(l.Name, l.LeaseID)
					return l.Name
				})
			},
			func(ctx context.Context, name string) (bool, error) {
				id, _ := leases.Load(name)
				s, _ := id.(string)
				return gone(c.Release(ctx, name, s))
			}},
		{"limits",
			func(ctx context.Context) ([]string, error) {
				ls, err := c.ListLimits(ctx)
				return namesOf(ls, err, prefix, func(l client.LimitInfo) string { return mine(l.Owner, l.Name) })
			},
			func(ctx context.Context, name string) (bool, error) { return gone(c.ResetLimit(ctx, name)) }},
		{"flags",
			func(ctx context.Context) ([]string, error) {
				fs, err := c.ListFlags(ctx)
				return namesOf(fs, err, prefix, func(f client.Flag) string { return mine(f.Owner, f.Name) })
			},
			func(ctx context.Context, name string) (bool, error) { return gone(c.DeleteFlag(ctx, name)) }},
		{"config keys",
			func(ctx context.Context) ([]string, error) {
				cs, err := c.ListConfig(ctx)
				return namesOf(cs, err, prefix, func(e client.ConfigEntry) string { return mine(e.Owner, e.Key) })
			},
			func(ctx context.Context, name string) (bool, error) { return gone(c.DeleteConfig(ctx, name)) }},
	}
}

// Cleanup releases the held locks and deletes the rate limits, flags and
// config keys named with prefix in the namespace of every token, then lists
// them again to count what is left. Lock names stay in the server's
// database after a release (a lock keeps its fencing token forever), as do
// a deleted config key's version numbers; neither is listed nor counted
// against a quota.
func (t *httpTarget) Cleanup(ctx context.Context, prefix string) CleanupReport {
	set := &cleanupSet{removed: map[string]int{}}
	var clients []*client.Client
	seen := map[string]bool{}
	for _, tok := range t.tokens {
		if seen[tok] {
			continue
		}
		seen[tok] = true
		c, err := client.New(t.base, tok, client.WithTimeout(t.opt.Timeout), client.WithUserAgent("octostore-loadtest"))
		if err != nil {
			set.fail(err)
			return set.report(-1)
		}
		defer c.CloseIdleConnections()
		clients = append(clients, c)
	}
	for _, c := range clients {
		for _, k := range kindsOf(c, prefix) {
			names, err := k.list(ctx)
			if err != nil {
				set.fail(fmt.Errorf("list %s: %w", k.name, err))
				continue
			}
			set.deleteAll(ctx, k.name, names, func(n string) (bool, error) { return k.del(ctx, n) })
		}
	}
	left := 0
	for _, c := range clients {
		for _, k := range kindsOf(c, prefix) {
			names, err := k.list(ctx)
			if err != nil {
				set.fail(fmt.Errorf("list %s: %w", k.name, err))
				return set.report(-1)
			}
			left += len(names)
		}
	}
	return set.report(left)
}
