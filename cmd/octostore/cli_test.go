package main

// End-to-end tests of the client commands: they build the real binary once
// (TestMain) and run it against a real server (a Main of this process on
// 127.0.0.1:0 with a temporary database, serve_test.go), or against the
// in-memory fake (tools/client/clienttest) for endpoints the real server
// does not serve yet.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd/apitest"
	"github.com/octostore/octostore/tools/client/clienttest"
	"github.com/octostore/octostore/tools/servertest"
	"github.com/urfave/cli/v2"
)

// octostoreBin is the binary built by TestMain, shared by every CLI test.
var octostoreBin string

func TestMain(m *testing.M) {
	if mode := os.Getenv(testChildEnv); mode != "" {
		os.Exit(testChild(mode)) // a command run by `lock run` in a test (lockrun_fault_test.go)
	}
	flag.Parse()
	dir, err := os.MkdirTemp("", "octostore-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if octostoreBin, err = servertest.Build(dir, false); err != nil {
		fmt.Fprintln(os.Stderr, "build octostore:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	tokA     = "tokA" // alice
	tokB     = "tokB" // bob
	adminKey = "admin-secret"
)

// startServer runs a server (Main) on 127.0.0.1:0 with a temporary
// database, the CLI tests' users and admin key, and returns the URL of a
// proxy in front of it that holds every exchange of the CLI to the
// published contract (httpd/apitest.Proxy: a mismatch fails the test). It
// is closed at cleanup.
func startServer(t *testing.T) string {
	t.Helper()
	u, _ := startServerDB(t)
	return u
}

// startServerDB is startServer that also returns the database path.
func startServerDB(t *testing.T) (url, db string) {
	t.Helper()
	m := mustRunMain(t, func(m *Main) {
		m.Config.StaticTokens = map[string]string{tokA: "alice", tokB: "bob"}
		m.Config.AdminKey = adminKey
	})
	px := apitest.Proxy(t, m.URL()) // checked against docs/openapi.yaml
	t.Cleanup(px.Close)
	return px.URL, m.Config.DBPath
}

// startListening runs the binary with args, waits for its
// "listening on URL" line and returns URL; the process is stopped with
// SIGTERM at cleanup. what names it in failures.
func startListening(t *testing.T, what string, args ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	p, err := servertest.Start(octostoreBin, args, &stderr, 30*time.Second)
	if err != nil {
		t.Fatalf("%s: %v: %s", what, err, stderr.String())
	}
	t.Cleanup(func() { p.Stop(30 * time.Second) })
	return p.URL
}

// serverFor returns the real server when it serves probePath (e.g. "/flags"),
// else the in-memory fake, so these tests move to the real server by
// themselves once its endpoints land.
func serverFor(t *testing.T, probePath string) string {
	t.Helper()
	u := startServer(t)
	req, _ := http.NewRequest("GET", u+probePath, nil)
	req.Header.Set("Authorization", "Bearer "+tokA)
	resp, err := apitest.Client(t, nil).Do(req) // checked against docs/openapi.yaml
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !(resp.StatusCode == 404 && bytes.Contains(body, []byte("no such route"))) {
			return u
		}
	}
	t.Logf("real server does not serve %s yet: using the in-memory fake", probePath)
	srv := clienttest.New(map[string]string{tokA: "alice", tokB: "bob"})
	srv.SetAdminKey(adminKey)
	t.Cleanup(srv.Close)
	return srv.URL
}

// result is a finished CLI run.
type result struct {
	code           int
	stdout, stderr string
}

// octo runs the binary to completion with OCTOSTORE_URL=url and
// OCTOSTORE_TOKEN=token in its environment.
func octo(t *testing.T, url, token string, args ...string) result {
	t.Helper()
	return octoEnv(t, url, token, nil, args...)
}

// octoEnv is octo with extra environment variables ("NAME=value").
func octoEnv(t *testing.T, url, token string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, octostoreBin, args...)
	cmd.Env = append(cliEnv(url, token), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %v: %v", args, err)
	}
	return r
}

func cliEnv(url, token string) []string {
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OCTOSTORE_") {
			env = append(env, kv)
		}
	}
	return append(env, "OCTOSTORE_URL="+url, "OCTOSTORE_TOKEN="+token)
}

// mustCode fails unless r exited with code.
func (r result) mustCode(t *testing.T, code int, what string) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", what, r.code, code, r.stdout, r.stderr)
	}
	return r
}

// proxy is a TCP proxy the tests can cut, to make the server unreachable for
// one client without touching the server: Block drops and refuses
// connections, Stall keeps them open but forwards nothing more (a network
// that silently stopped delivering).
type proxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex // guards blocked, stalled and conns
	blocked bool
	stalled chan struct{} // non-nil once stalled; closed at cleanup, to let held goroutines go
	conns   map[net.Conn]struct{}
}

func newProxy(t *testing.T, targetURL string) (*proxy, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: strings.TrimPrefix(targetURL, "http://"), conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() {
		ln.Close()
		p.Block()
		p.mu.Lock()
		if p.stalled != nil {
			close(p.stalled)
		}
		p.mu.Unlock()
	})
	go p.serve()
	return p, "http://" + ln.Addr().String()
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.blocked {
			p.mu.Unlock()
			c.Close()
			continue
		}
		if p.stalled != nil { // accepted, never answered
			p.conns[c] = struct{}{}
			p.mu.Unlock()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go func() { p.copy(up, c); up.Close() }()
		go func() { p.copy(c, up); c.Close() }()
	}
}

// copy is io.Copy that, once the proxy is stalled, drops what it reads and
// holds the connection open.
func (p *proxy) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			stalled := p.stalled
			p.mu.Unlock()
			if stalled != nil {
				<-stalled // until cleanup
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Stall stops forwarding: open connections stay open but carry nothing
// more, new ones are accepted and never answered.
func (p *proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled == nil {
		p.stalled = make(chan struct{})
	}
}

// Block drops every connection and refuses new ones.
func (p *proxy) Block() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked = true
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]struct{}{}
}

func TestReorderFlags(t *testing.T) {
	tests := []struct {
		args    []string
		maxPos  int
		want    []string
		ttl     time.Duration
		json    bool
		wantErr bool
	}{
		{[]string{"NAME", "--ttl", "5s", "--json"}, -1, []string{"NAME"}, 5 * time.Second, true, false},
		{[]string{"--ttl=7s", "NAME", "-json"}, -1, []string{"NAME"}, 7 * time.Second, true, false},
		{[]string{"NAME", "--ttl", "5s", "--", "sh", "-c", "echo --ttl"}, 1, []string{"NAME", "sh", "-c", "echo --ttl"}, 5 * time.Second, false, false},
		{[]string{"NAME", "ls", "--ttl", "9s"}, 1, []string{"NAME", "ls", "--ttl", "9s"}, 30 * time.Second, false, false},
		{[]string{"NAME", "--bogus"}, -1, nil, 0, false, true},
		{[]string{"NAME", "--ttl"}, -1, nil, 0, false, true},
		{[]string{"NAME", "--ttl", "soon"}, -1, nil, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var got []string
			var gotErr error
			var ttl time.Duration
			var js bool
			app := &cli.App{Commands: []*cli.Command{{
				Name:  "x",
				Flags: clientFlags(&cli.DurationFlag{Name: "ttl", Value: 30 * time.Second}),
				Action: func(c *cli.Context) error {
					got, gotErr = reorderFlags(c, c.Args().Slice(), tt.maxPos)
					ttl, js = c.Duration("ttl"), c.Bool("json")
					return nil
				},
			}}}
			if err := app.Run(append([]string{"octostore", "x"}, tt.args...)); err != nil {
				t.Fatal(err)
			}
			if (gotErr != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", gotErr, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || ttl != tt.ttl || js != tt.json {
				t.Fatalf("args %q ttl %v json %v; want %q %v %v", got, ttl, js, tt.want, tt.ttl, tt.json)
			}
		})
	}
}
