// Package keepreading gives HTTP clients connections that still read the
// server's answer after a failed write.
//
// A server may answer a request before it has read the body (413 for a body
// over its limit, 401 before reading an unauthenticated body) and close the
// connection. The client, still writing the body, then gets EPIPE or
// ECONNRESET, and both net/http and fasthttp report that write error instead
// of the answer the server sent, although the answer is in the socket's
// receive buffer (Linux keeps received data readable after a reset). Which of
// the two a client sees depends on scheduling: a test that expects the 413
// fails now and then with "write: broken pipe".
//
// A Conn swallows those two write errors: the first one turns every later
// write into a no-op that reports success, so the HTTP client goes on to read
// and gets the server's answer. If the server sent none, the read fails (EOF
// or reset) and the client reports that, as it would have reported the write
// error; retry decisions of both clients treat the two alike.
package keepreading

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// Conn is a net.Conn whose writes stop failing once the peer has stopped
// reading (EPIPE, ECONNRESET): they are discarded and reported as written,
// so that the answer the peer sent before it closed can still be read.
// Other write errors (timeouts) are returned as they are.
type Conn struct {
	net.Conn
	peerGone atomic.Bool // set by the first EPIPE / ECONNRESET of a write
}

// Wrap returns c as a Conn.
func Wrap(c net.Conn) *Conn { return &Conn{Conn: c} }

// Write implements net.Conn.
func (c *Conn) Write(p []byte) (int, error) {
	if c.peerGone.Load() {
		return len(p), nil
	}
	n, err := c.Conn.Write(p)
	if err != nil && PeerStoppedReading(err) {
		c.peerGone.Store(true)
		return len(p), nil
	}
	return n, err
}

// PeerGone reports whether a write found that the peer had stopped reading.
func (c *Conn) PeerGone() bool { return c.peerGone.Load() }

// PeerStoppedReading reports whether err is a write error that means the
// peer closed the connection (EPIPE, ECONNRESET).
func PeerStoppedReading(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// DialContext wraps dial (nil: a zero net.Dialer's DialContext) so that its
// connections are Conns; set the result as http.Transport.DialContext.
func DialContext(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return Wrap(c), nil
	}
}

// DialTimeout wraps dial (for instance fasthttp.DialTimeout) so that its
// connections are Conns; set the result as fasthttp.HostClient.DialTimeout.
func DialTimeout(dial func(addr string, timeout time.Duration) (net.Conn, error)) func(addr string, timeout time.Duration) (net.Conn, error) {
	return func(addr string, timeout time.Duration) (net.Conn, error) {
		c, err := dial(addr, timeout)
		if err != nil {
			return nil, err
		}
		return Wrap(c), nil
	}
}
