package persistence

import "golang.org/x/sys/unix"

// lockOps are open file description locks on Linux (dblock.go).
var lockOps = struct{ set, setWait, get int }{unix.F_OFD_SETLK, unix.F_OFD_SETLKW, unix.F_OFD_GETLK}
