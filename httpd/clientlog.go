package httpd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// clientLog is the one way the server logs what a client can cause without
// a token (malformed requests, refused connections, rejected credentials,
// failed sign-ins, …): every such line goes through Log, which writes at
// most one line per message per clientLogEvery and counts the others; the
// count of lines left out goes with the next line of that message as
// suppressed=N. A client can therefore add at most one line per second per
// kind of line, however fast it sends (issue 12, item 5).
//
// Nothing a client sent is ever put in such a line: messages are constants
// of this package, and the attributes are the remote address, the method,
// the matched route template, counts and reasons from a closed set (never a
// header value, a query string, a body, a raw path, or the text of an
// error fasthttp made from the request: issue 13 §2, fault 1).
type clientLog struct {
	log   *slog.Logger
	now   func() time.Time
	every time.Duration
	// lines maps a message (a constant) to its limiter: at most as many
	// entries as there are messages in the code.
	lines sync.Map // string → *clientLogLine
}

// clientLogEvery is how often one kind of client-caused line may be written.
const clientLogEvery = time.Second

type clientLogLine struct {
	last    atomic.Int64 // unix ns of the last line written; 0: none yet
	skipped atomic.Int64 // lines left out since
}

func newClientLog(log *slog.Logger, now func() time.Time) *clientLog {
	if now == nil {
		now = time.Now
	}
	return &clientLog{log: log, now: now, every: clientLogEvery}
}

// Log writes msg (a constant: it names the kind of line) with args at
// level, unless a line with the same message was written less than
// clientLogEvery ago; then it only counts it.
func (c *clientLog) Log(level slog.Level, msg string, args ...any) {
	if !c.log.Enabled(context.Background(), level) {
		return
	}
	v, ok := c.lines.Load(msg)
	if !ok {
		v, _ = c.lines.LoadOrStore(msg, &clientLogLine{})
	}
	l := v.(*clientLogLine)
	now := c.now().UnixNano()
	last := l.last.Load()
	if last != 0 && now-last < int64(c.every) || !l.last.CompareAndSwap(last, now) {
		l.skipped.Add(1)
		return
	}
	c.log.Log(context.Background(), level, msg, append(args, "suppressed", l.skipped.Swap(0))...)
}

// route is the route template a request matched (never the raw path, which
// a client chooses and which may carry anything), or "unmatched".
func route(ctx *fasthttp.RequestCtx) string {
	if ri := routeOf(ctx); ri != nil {
		return ri.label
	}
	return "unmatched"
}

// fasthttpLogger sends fasthttp's own log lines through the client log.
// fasthttp quotes request bytes in some of its errors even with
// SecureErrorLogMessage set ("invalid header value %q" quotes an
// Authorization header with a stray \v), so no text of its arguments is
// passed on: each of its formats becomes a constant message with safe
// attributes (the remote address, a count, a reason from a closed set).
type fasthttpLogger struct{ c *clientLog }

func (l fasthttpLogger) Printf(format string, args ...any) {
	switch {
	case strings.HasPrefix(format, "error when serving connection"):
		var err error
		var remote string
		if len(args) == 3 {
			err, _ = args[2].(error)
			remote = fmt.Sprint(args[1])
		}
		l.c.Log(slog.LevelWarn, "http: bad request or connection", "remote", remote, "reason", connErrorReason(err))
	case strings.HasPrefix(format, "The incoming connection cannot be served"):
		var n any
		if len(args) > 0 {
			n = args[0]
		}
		l.c.Log(slog.LevelWarn, "http: connection refused: --max-conns reached", "open_connections", n)
	case strings.Contains(format, "accepting new connections"):
		l.c.Log(slog.LevelError, "http: accepting connections fails", "reason", connErrorReason(firstError(args)))
	default:
		l.c.Log(slog.LevelWarn, "http: fasthttp reported a problem (details withheld: they may quote the request)")
	}
}

func firstError(args []any) error {
	for _, a := range args {
		if err, ok := a.(error); ok {
			return err
		}
	}
	return nil
}

// connErrorReason names what went wrong on a connection from a closed set:
// never the error's text, which may quote the request.
func connErrorReason(err error) string {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case err == nil:
		return "unknown"
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return "body too large"
	case errors.As(err, &small):
		return "headers too large"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, net.ErrClosed):
		return "connection closed"
	}
	return "malformed request"
}
