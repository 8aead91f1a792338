package main

// Shared plumbing of the client commands (lock, limit, flag, config, token
// rotate, health): the connection flags and the credential they name, the
// client, output (text, or with --json the server's answer as it came) and
// the error -> exit code map.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/octostore/octostore/tools/client"
	"github.com/octostore/octostore/tools/termtext"
	"github.com/urfave/cli/v2"
	"github.com/valyala/fasthttp"
)

const defaultURL = "http://127.0.0.1:3000"

// Environment variables of the client's credential.
const (
	envToken     = "OCTOSTORE_TOKEN"
	envTokenFile = "OCTOSTORE_TOKEN_FILE"
)

// connFlags are the flags that reach the server, plus extra: every client
// command has them, the TUI too.
func connFlags(extra ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "url", Value: defaultURL, Usage: "server URL", EnvVars: []string{"OCTOSTORE_URL"}},
		tokenFlag(),
		tokenFileFlag(),
		&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "per-request timeout"},
	}, extra...)
}

func tokenFlag() cli.Flag {
	return &cli.StringFlag{Name: "token", Usage: "bearer token or admin key (shows in ps: prefer $" + envToken + " or --token-file)", EnvVars: []string{envToken}}
}

func tokenFileFlag() cli.Flag {
	return &cli.StringFlag{Name: "token-file", Usage: "read the token from the first line of `FILE` (not readable by group or others)", EnvVars: []string{envTokenFile}}
}

// jsonUsage is the one meaning of --json across the binary.
const jsonUsage = "print JSON on stdout instead of text"

func jsonFlag() cli.Flag { return &cli.BoolFlag{Name: "json", Usage: jsonUsage} }

// clientFlags are connFlags, --json and extra: the flags of a client
// command whose answer is one API call.
func clientFlags(extra ...cli.Flag) []cli.Flag {
	return connFlags(append([]cli.Flag{jsonFlag()}, extra...)...)
}

// ownerFlag is --owner, for the commands on owner-scoped resources.
func ownerFlag() cli.Flag {
	return &cli.StringFlag{Name: "owner", Usage: "work on this user's resources (the admin key, which owns none; a user may name only itself)"}
}

// clientCommand is a leaf client command: clientFlags(extra...), and an
// action that takes its positional arguments (leafAction).
func clientCommand(name, usage, argsUsage string, action func(c *cli.Context, args []string) error, extra ...cli.Flag) *cli.Command {
	return leaf(name, usage, argsUsage, clientFlags(extra...), action)
}

// groupCommand is a command made of subcommands (groupAction when none
// matches).
func groupCommand(name, usage string, subs ...*cli.Command) *cli.Command {
	return &cli.Command{Name: name, Usage: usage, Subcommands: subs}
}

// resolveToken is the credential the flags name: --token or the first line
// of --token-file, each also from its environment variable. A flag on the
// command line wins over the environment; both flags on the command line,
// or both variables with neither flag, are a usage error. "" when none is
// given.
func resolveToken(c *cli.Context) (string, error) {
	tok, file := c.String("token"), c.String("token-file")
	tokArg, fileArg := onCommandLine(c, "token", envToken), onCommandLine(c, "token-file", envTokenFile)
	switch {
	case tokArg && fileArg:
		return "", errUsage(c, "give --token or --token-file, not both")
	case tokArg:
		return tok, nil
	case fileArg:
	case tok != "" && file != "":
		return "", errUsage(c, "both "+envToken+" and "+envTokenFile+" are set: unset one (or give --token / --token-file)")
	case tok != "":
		return tok, nil
	}
	if file == "" {
		return "", nil
	}
	return readTokenFile(file)
}

// onCommandLine reports whether flag name was given on the command line
// (not only through its environment variable env).
func onCommandLine(c *cli.Context, name, env string) bool {
	if !c.IsSet(name) {
		return false
	}
	v, ok := os.LookupEnv(env)
	return !ok || v != c.String(name)
}

// readTokenFile reads a token from the first line of path, refusing a file
// that its group or others may read (like ssh with a private key): exit 5.
// Named pipes and /dev/fd files (--token-file <(pass show octostore)) are
// fine when their mode is.
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", exitCode(exitAuth, fmt.Errorf("token file: %w", err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", exitCode(exitAuth, fmt.Errorf("token file: %w", err))
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", exitCode(exitAuth, fmt.Errorf("token file %s is readable by others (mode %04o): refused; chmod 600 %s", path, perm, path))
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", exitCode(exitAuth, fmt.Errorf("token file %s: %w", path, err))
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	tok := strings.TrimSpace(string(line))
	if tok == "" {
		return "", exitCode(exitAuth, fmt.Errorf("token file %s: the first line is empty", path))
	}
	return tok, nil
}

// conn is a client command's connection: the client built from the flags,
// and the server's last answer (which --json prints).
type conn struct {
	*client.Client
	token string  // the credential in use ("" for none)
	last  *answer // the last HTTP answer the client got
	cmd   *cli.Context
}

// dial builds the client from --url, the token (resolveToken), --timeout
// and, on commands that have it, --owner.
func dial(c *cli.Context) (*conn, error) {
	tok, err := resolveToken(c)
	if err != nil {
		return nil, err
	}
	last := &answer{}
	opts := []client.Option{
		client.WithTimeout(c.Duration("timeout")),
		client.WithUserAgent("octostore-cli/" + Version),
		client.WithTransport(last),
		client.WithHTTPClient(&http.Client{Transport: httpAnswer{last}}),
	}
	if o := c.String("owner"); o != "" {
		opts = append(opts, client.WithOwner(o))
	}
	cl, err := client.New(c.String("url"), tok, opts...)
	if err != nil {
		return nil, usageErr(c, "--url: %v", err)
	}
	return &conn{Client: cl, token: tok, last: last, cmd: c}, nil
}

// answer is a fasthttp transport that keeps a copy of the last answer it
// passed on: with --json the CLI prints it as the server sent it.
type answer struct {
	mu     sync.Mutex // guards the fields: a call its context abandoned may still be running on the client's goroutine
	got    bool       // an answer came (false after a transport error)
	isJSON bool       // its Content-Type is application/json
	body   []byte
}

// RoundTrip implements fasthttp.RoundTripper.
func (a *answer) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (bool, error) {
	retry, err := fasthttp.DefaultTransport.RoundTrip(hc, req, resp)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = err == nil
	if a.got {
		ct := resp.Header.ContentType()
		if i := bytes.IndexByte(ct, ';'); i >= 0 {
			ct = ct[:i]
		}
		a.isJSON = bytes.EqualFold(bytes.TrimSpace(ct), []byte("application/json"))
		a.body = append(a.body[:0], resp.Body()...)
	}
	return retry, err
}

// httpAnswer keeps the last answer of the client's net/http calls (waiting
// acquires) in its answer too; event streams pass through untouched.
type httpAnswer struct{ a *answer }

// RoundTrip implements http.RoundTripper.
func (h httpAnswer) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		h.a.mu.Lock()
		h.a.got = false
		h.a.mu.Unlock()
		return nil, err
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp, nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	h.a.mu.Lock()
	defer h.a.mu.Unlock()
	h.a.got = err == nil
	ct, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
	h.a.isJSON = strings.EqualFold(strings.TrimSpace(ct), "application/json")
	h.a.body = append(h.a.body[:0], body...)
	return resp, err
}

// print writes the last answer's JSON body exactly as it came, and a
// newline. It writes nothing when the last exchange got no JSON answer.
func (a *answer) print(w io.Writer) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.got || !a.isJSON {
		return nil
	}
	b := a.body
	if !bytes.HasSuffix(b, []byte("\n")) {
		b = append(b[:len(b):len(b)], '\n')
	}
	_, err := w.Write(b)
	return err
}

// finish ends a command after its calls: on failure (err) it prints the
// server's error object with --json and returns the exit code (clientErr);
// on success it prints the answer with --json, else calls human.
func (cn *conn) finish(err error, human func(w io.Writer) error) error {
	w := cn.cmd.App.Writer
	if err != nil {
		var ae *client.APIError
		if cn.cmd.Bool("json") && errors.As(err, &ae) {
			cn.last.print(w)
		}
		if ae != nil && (ae.Status == 403 || ae.Status == 422) && strings.Contains(ae.Message, "admin key") &&
			hasFlag(cn.cmd.Command, "owner") && cn.cmd.String("owner") == "" {
			err = fmt.Errorf("%w (octostore: give --owner LOGIN)", err) // the server's message says ?owner=
		}
		return clientErr(err)
	}
	if cn.cmd.Bool("json") {
		return cn.last.print(w)
	}
	return human(w)
}

// hasFlag reports whether c defines the flag name.
func hasFlag(c *cli.Command, name string) bool {
	for _, f := range c.Flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// clientErr maps a client error to the CLI's exit codes.
func clientErr(err error) error {
	if err == nil {
		return nil
	}
	code := exitFailure
	switch {
	case errors.Is(err, client.ErrLockHeld), errors.Is(err, client.ErrConflict), errors.Is(err, client.ErrSemaphoreFull),
		errors.Is(err, client.ErrStaleToken):
		code = exitHeld
	case errors.Is(err, client.ErrNotFound):
		code = exitNotFound
	case errors.Is(err, client.ErrUnauthorized), errors.Is(err, client.ErrForbidden):
		code = exitAuth
	case errors.Is(err, client.ErrValidation):
		code = exitUsage
	case errors.Is(err, client.ErrUnavailable), errors.Is(err, client.ErrRateLimited),
		errors.Is(err, context.DeadlineExceeded):
		code = exitUnavailable
	}
	return exitCode(code, err)
}

// ctxTimeout bounds a whole command (including retries).
func ctxTimeout(c *cli.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Context, 3*c.Duration("timeout"))
}

// clientRun is what a client command whose answer is one API call does once
// its arguments are checked: connect (dial), make the call within
// --timeout, and finish: the answer with --json, else human's text of v.
func clientRun[T any](c *cli.Context, call func(cl *client.Client, ctx context.Context) (T, error), human func(w io.Writer, v T) error) error {
	cn, err := dial(c)
	if err != nil {
		return err
	}
	ctx, cancel := ctxTimeout(c)
	defer cancel()
	v, err := call(cn.Client, ctx)
	return cn.finish(err, func(w io.Writer) error { return human(w, v) })
}

// doneRun is clientRun for a call that answers nothing the text needs: it
// prints line.
func doneRun(c *cli.Context, line string, call func(cl *client.Client, ctx context.Context) error) error {
	return clientRun(c, func(cl *client.Client, ctx context.Context) (struct{}, error) {
		return struct{}{}, call(cl, ctx)
	}, func(w io.Writer, _ struct{}) error {
		_, err := fmt.Fprintln(w, line)
		return err
	})
}

// listPageSize is the page size the list commands ask for (tests make it
// small to see them follow the cursors).
var listPageSize = client.MaxListPage

// listRun runs a listing: it follows the pages (page reads one, from a
// cursor; at most size items a page) and prints a table with a row per item, or with --json each
// page's body as the server sent it, one line per page (the last page has
// no next_cursor). owner (nil for kinds without one) gives an item's
// owner: admin listings carry one, and then the table has an OWNER column
// after the first.
func listRun[T any](c *cli.Context, size int, page func(cl *client.Client, ctx context.Context, o client.ListOptions) (*client.Page[T], error),
	cols []col, row func(T) []string, owner func(T) string) error {
	cn, err := dial(c)
	if err != nil {
		return err
	}
	ctx, cancel := ctxTimeout(c)
	defer cancel()
	asJSON := c.Bool("json")
	var items []T
	seen := map[string]bool{}
	o := client.ListOptions{Limit: size}
	for {
		pg, err := page(cn.Client, ctx, o)
		if err != nil {
			return cn.finish(err, nil)
		}
		if asJSON {
			if err := cn.last.print(c.App.Writer); err != nil {
				return err
			}
		} else {
			items = append(items, pg.Items...)
		}
		if pg.NextCursor == "" {
			break
		}
		if seen[pg.NextCursor] || len(pg.Items) == 0 {
			return clientErr(fmt.Errorf("octostore: the server's listing pages do not move forward"))
		}
		seen[pg.NextCursor] = true
		o.Cursor = pg.NextCursor
	}
	if asJSON {
		return nil
	}
	withOwner := false
	for _, it := range items {
		withOwner = withOwner || owner != nil && owner(it) != ""
	}
	if withOwner {
		cols = append(cols[:1:1], append([]col{{title: "OWNER", cut: true}}, cols[1:]...)...)
	}
	rows := make([][]string, 0, len(items))
	for _, it := range items {
		r := row(it)
		if withOwner {
			r = append(r[:1:1], append([]string{owner(it)}, r[1:]...)...)
		}
		rows = append(rows, r)
	}
	return printTable(c.App.Writer, cols, rows)
}

// tableWidth is the width every table and field list of the CLI fits in.
// A value cut to fit ends in "…"; --json (or config get) has it whole.
const tableWidth = 80

// col is a table column: its title, and whether its values may be cut to
// make the table fit (names, descriptions, values: yes; lease ids, numbers
// and times: no, they are copied or read whole).
type col struct {
	title string
	cut   bool
}

// printTable prints rows under a header, columns two spaces apart, within
// tableWidth columns: the widest cuttable column is narrowed first, never
// below its title. Every cell is cleaned of what a terminal acts on
// (termtext.Clean): they come from the server.
func printTable(w io.Writer, cols []col, rows [][]string) error {
	widths := make([]int, len(cols))
	for i, c := range cols {
		widths[i] = termtext.Width(c.title)
	}
	for _, r := range rows {
		for i := range r {
			r[i] = termtext.Clean(r[i])
			widths[i] = max(widths[i], termtext.Width(r[i]))
		}
	}
	total := 2 * (len(cols) - 1)
	for _, n := range widths {
		total += n
	}
	for total > tableWidth {
		widest := -1
		for i, c := range cols {
			if c.cut && widths[i] > termtext.Width(c.title) && (widest < 0 || widths[i] > widths[widest]) {
				widest = i
			}
		}
		if widest < 0 {
			break // nothing left to cut: only whole values remain
		}
		widths[widest]--
		total--
	}
	var b strings.Builder
	line := func(cells []string) {
		for i, cell := range cells {
			cell = termtext.Clip(cell, widths[i])
			b.WriteString(cell)
			if i < len(cells)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-termtext.Width(cell)+2))
			}
		}
		b.WriteByte('\n')
	}
	titles := make([]string, len(cols))
	for i, c := range cols {
		titles[i] = c.title
	}
	line(titles)
	for _, r := range rows {
		line(r)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// printFields prints key/value pairs, one per line, values aligned, each
// line within tableWidth columns (values cleaned and cut); pairs with an
// empty value are left out.
func printFields(w io.Writer, kv ...string) error {
	kw := 0
	for i := 0; i+1 < len(kv); i += 2 {
		kw = max(kw, termtext.Width(kv[i]))
	}
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		b.WriteString(kv[i])
		b.WriteString(strings.Repeat(" ", kw-termtext.Width(kv[i])+2))
		b.WriteString(termtext.Clip(termtext.Clean(kv[i+1]), tableWidth-kw-2))
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fmtTime formats a time for text output ("" for zero).
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// fmtUntil formats the time left before t, for text output.
func fmtUntil(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := time.Until(t).Round(time.Second)
	if d < 0 {
		return "expired"
	}
	return d.String()
}
