//go:build unix && !linux

package persistence

import "golang.org/x/sys/unix"

// lockOps are classic POSIX record locks where open file description locks
// are missing: they conflict between processes only (dblock.go).
var lockOps = struct{ set, setWait, get int }{unix.F_SETLK, unix.F_SETLKW, unix.F_GETLK}
