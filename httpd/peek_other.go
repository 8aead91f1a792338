//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package httpd

import "net"

// canWatch: this platform has no socket peek here, so a client going away
// is noticed only through the request timeout.
const canWatch = false

func peerClosed(net.Conn) bool { return false }
