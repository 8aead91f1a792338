package httpd

// The one way tests of this package start a whole server: the real
// persistence, actors and Server on 127.0.0.1:0 with a temporary database,
// composed the way cmd/octostore Main.Run composes them (minus the dev
// token, pprof and the CLI). The exported names are for the tests of
// package httpd_test too (they are compiled with these files), never part
// of the package's API. Also here: the settable clock, one HTTP call, and a
// walk over every row of the database that several tests share.

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/persistence"
	"github.com/valyala/fasthttp"
)

// TestOptions configure a test server, field for field like `octostore
// serve`'s configuration. Zero fields take the defaults of the package that
// owns the knob; Addr defaults to 127.0.0.1:0, DBPath to a file in
// tb.TempDir(), Logger to discard.
type TestOptions struct {
	Addr         string
	DBPath       string
	StaticTokens map[string]string // token → login
	AdminKey     string
	GitHub       GitHubOAuth
	Server       ServerConfig
	Actors       actors.Config     // Store, Events and Logger are supplied; Now defaults to TestOptions.Now
	Locks        actors.LockConfig // the kinds' stores are supplied
	Sessions     actors.SessionConfig
	Semaphores   actors.SemaphoreConfig
	Limits       actors.LimitConfig
	Flags        actors.FlagConfig
	ConfigKeys   actors.ConfigKeysConfig
	Events       actors.BrokerOptions
	MetricsAddr  string // a separate metrics listener ("": none)

	Now    func() time.Time // clock of the database, actors and sign-in (default time.Now)
	Logger *slog.Logger
	Stdout io.Writer // gets "listening on http://ADDR" when set (for child processes)
}

// TestServer is a running test server and the parts it was composed of.
type TestServer struct {
	Opts       TestOptions // as started, defaults filled in (restart with these)
	DB         *persistence.DB
	Store      *persistence.Store
	Sys        *actors.System
	Locks      *actors.Locks
	Sessions   *actors.Sessions
	Semaphores *actors.Semaphores
	Limits     *actors.Limits
	Flags      *actors.Flags
	ConfigKeys *actors.ConfigKeys
	Events     *actors.Broker
	Metrics    *Metrics
	Auth       *Authenticator

	server  *Server
	ln      net.Listener
	metrics *AuxServer
	closers []func() error // reverse order of opening
}

// StartTestServer starts a server; on error it has closed what it opened.
// The caller closes the server (MustStartTestServer does it at cleanup).
func StartTestServer(tb testing.TB, o TestOptions) (_ *TestServer, err error) {
	tb.Helper()
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.DBPath == "" {
		o.DBPath = filepath.Join(tb.TempDir(), "octostore.db")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	ts := &TestServer{Opts: o}
	defer func() {
		if err != nil {
			ts.Close()
		}
	}()
	if ts.ln, err = net.Listen("tcp", o.Addr); err != nil {
		return nil, err
	}
	ts.closers = append(ts.closers, func() error { ts.ln.Close(); return nil })
	if ts.DB, err = persistence.Open(o.DBPath); err != nil {
		return nil, err
	}
	ts.DB.Now = o.Now
	ts.closers = append(ts.closers, ts.DB.Close)
	w, err := persistence.NewWriter(ts.DB, persistence.WriterOptions{})
	if err != nil {
		return nil, err
	}
	ts.Metrics = NewMetrics()
	w.OnBatch = ts.Metrics.ObserveBatch
	ts.Store = persistence.NewStore(ts.DB, w)
	ts.closers = append(ts.closers, ts.Store.Close)
	static := map[[32]byte]string{}
	for tok, login := range o.StaticTokens {
		static[persistence.HashToken(tok)] = login
	}
	if err := ts.Store.Apply(persistence.SyncStaticTokens{Tokens: static, Now: o.Now()}); err != nil {
		return nil, err
	}
	ts.Events = actors.NewBroker(o.Events)
	ts.closers = append(ts.closers, func() error { ts.Events.Close(); return nil })
	ac := o.Actors
	ac.Store, ac.Events, ac.Logger = ts.Store, ts.Events, o.Logger
	if ac.Now == nil {
		ac.Now = o.Now
	}
	ts.Sys = actors.NewSystem(ac)
	ts.closers = append(ts.closers, func() error {
		ts.Sys.Close()
		if ts.Limits == nil {
			return nil
		}
		return ts.Limits.Close()
	})
	lc, sc, limc, fc, cc := o.Locks, o.Sessions, o.Limits, o.Flags, o.ConfigKeys
	lc.Loader, sc.Store, limc.Store, fc.Store, cc.Store = ts.Store, ts.Store, ts.Store, ts.Store, ts.Store
	ts.Sessions = actors.NewSessions(ts.Sys, sc)
	lc.Sessions = ts.Sessions
	ts.Locks = actors.NewLocks(ts.Sys, lc)
	semc := o.Semaphores
	semc.Store, semc.Sessions = ts.Store, ts.Sessions
	if semc.MaxPerUser == 0 {
		semc.MaxPerUser = lc.MaxPerUser
	}
	ts.Semaphores = actors.NewSemaphores(ts.Sys, semc)
	ts.Limits = actors.NewLimits(ts.Sys, limc)
	ts.Flags = actors.NewFlags(ts.Sys, fc)
	ts.ConfigKeys = actors.NewConfigKeys(ts.Sys, cc)
	if err := ts.Sys.Recover(); err != nil {
		return nil, err
	}
	if ts.Auth, err = NewAuthenticator(ts.Store, o.AdminKey); err != nil {
		return nil, err
	}
	ts.closers = append(ts.closers, func() error { ts.Auth.Close(); return nil })
	gh, err := NewGitHubSignIn(o.GitHub, o.Now, o.Logger)
	if err != nil {
		return nil, err
	}
	if gh != nil {
		ts.closers = append(ts.closers, func() error { gh.Close(); return nil })
	}
	ts.server = NewServer(o.Server, Deps{
		Locks: ts.Locks, Sessions: ts.Sessions, Semaphores: ts.Semaphores, Limits: ts.Limits, Flags: ts.Flags, Config: ts.ConfigKeys,
		Sys: ts.Sys, Store: ts.Store, Auth: ts.Auth, GitHub: gh,
		Events: ts.Events, Metrics: ts.Metrics, Logger: o.Logger, Now: o.Now,
	})
	ts.server.Serve(ts.ln)
	ts.closers = append(ts.closers, ts.server.Shutdown)
	if o.Stdout != nil {
		if _, err := io.WriteString(o.Stdout, "listening on "+ts.URL()+"\n"); err != nil {
			return nil, err
		}
	}
	if o.MetricsAddr != "" {
		if ts.metrics, err = ServeAux(o.MetricsAddr, MetricsHandler(ts.Metrics)); err != nil {
			return nil, err
		}
		ts.closers = append(ts.closers, func() error { return ts.metrics.Close(DefaultShutdownTimeout) })
	}
	return ts, nil
}

// MustStartTestServer is StartTestServer that fails tb on error and closes
// the server at cleanup (closing it earlier is fine).
func MustStartTestServer(tb testing.TB, o TestOptions) *TestServer {
	tb.Helper()
	ts, err := StartTestServer(tb, o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ts.Close() })
	return ts
}

// Close unwinds in reverse order of opening; a second Close does nothing.
func (ts *TestServer) Close() error {
	var errs []error
	for i := len(ts.closers) - 1; i >= 0; i-- {
		errs = append(errs, ts.closers[i]())
	}
	ts.closers = nil
	return errors.Join(errs...)
}

// Addr is the API's address (the real port for :0).
func (ts *TestServer) Addr() string { return ts.ln.Addr().String() }

// URL is http://Addr.
func (ts *TestServer) URL() string { return "http://" + ts.Addr() }

// MetricsURL is the URL of the separate metrics listener ("" without one).
func (ts *TestServer) MetricsURL() string {
	if ts.metrics == nil {
		return ""
	}
	return "http://" + ts.metrics.Addr().String() + "/metrics"
}

// UID is the user id (persistence/identity.go) of the account that has
// login: what its resources and locks are owned and held by in the
// database, the actors and the broker. It fails tb when no account has it.
func (ts *TestServer) UID(tb testing.TB, login string) string {
	tb.Helper()
	u, ok, err := ts.Store.UserByLogin(context.Background(), login)
	if err != nil || !ok {
		tb.Fatalf("user %q: %v %v", login, ok, err)
	}
	return u.UID
}

// BodyBytesInFlight is the request-body budget in use: the bytes reserved
// by bodies being read or handled (body.go).
func (ts *TestServer) BodyBytesInFlight() int64 { return ts.server.bodies.used.Load() }

// AnswerBytesInFlight is the answer budget in use: the bytes reserved by
// history pages being read or written (config.go).
func (ts *TestServer) AnswerBytesInFlight() int64 { return ts.server.answers.used.Load() }

// Handler is the server's whole handler chain, for tests that call it
// without the network.
func (ts *TestServer) Handler() fasthttp.RequestHandler { return ts.server.srv.Handler }

// SetFaultHook makes every write transaction (and the health probe) call f
// first; a non-nil error fails the batch as a disk error would. nil removes
// the hook.
func (ts *TestServer) SetFaultHook(f func() error) { ts.Store.SetFaultHook(f) }

// TestClock is a settable clock for TestOptions.Now.
type TestClock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

// NewTestClock returns a clock reading t.
func NewTestClock(t time.Time) *TestClock { return &TestClock{now: t} }

// Now reads the clock.
func (c *TestClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Add moves the clock by d.
func (c *TestClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// HTTPCall sends one request with c and reads the whole answer. token ""
// sends no Authorization header; a body is sent as JSON unless hdr (name,
// value pairs) sets Content-Type. A transport error fails t.
func HTTPCall(t testing.TB, c *http.Client, method, url, token, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, b
}

// EachRow calls fn with every row of every table of db but those named in
// skip, tables in name order.
func EachRow(t testing.TB, db *sql.DB, skip []string, fn func(table string, cols []string, vals []any)) {
	t.Helper()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(skip, n) {
			tables = append(tables, n)
		}
	}
	rows.Close()
	for _, tb := range tables {
		rs, err := db.Query(`SELECT * FROM "` + tb + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rs.Columns()
		for rs.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rs.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fn(tb, cols, vals)
		}
		rs.Close()
	}
}
