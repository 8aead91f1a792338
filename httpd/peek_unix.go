//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package httpd

import (
	"net"
	"syscall"
)

// canWatch: this platform can tell that a client closed its connection
// without reading from it (peerClosed).
const canWatch = true

// peerClosed waits in the netpoller until the connection is readable and
// reports whether the peer has closed it (end of stream or reset), without
// consuming anything: it peeks (MSG_PEEK). Data (a pipelined request)
// means the client is there: peerClosed returns false and stops watching.
// It also returns false when the wait is interrupted by a read deadline,
// which is how the request's end stops it, and for a connection that is
// not a socket.
//
// A client that half-closes its side after sending the request (shutdown
// of its write side) is taken for gone, as net/http's background read does.
func peerClosed(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	var b [1]byte
	err = raw.Read(func(fd uintptr) bool {
		for {
			n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
				return false // nothing yet: wait for readability
			case err != nil: // reset, or another socket error: nobody to answer
				closed = true
			case n == 0: // end of stream
				closed = true
			}
			return true
		}
	})
	return err == nil && closed
}
