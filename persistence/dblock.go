package persistence

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// One server per database (docs/operations.md, "One server per database").
//
// Open, the open of `octostore serve`, takes a write lock on byte 0 of the
// sidecar file <db>.lock and keeps it until Close; the kernel drops it when
// the process dies, kill -9 included, so a stale file never blocks a start.
// A second Open of the same database, from another process or the same one,
// fails with ErrServed at once, naming the file and the pid the holder wrote
// into it.
//
// Operator tools that work beside a running server (token create, list,
// revoke) use OpenShared, which only tests byte 0 and never takes it; they
// write through SQLite's own locking (a write transaction waits for the
// server's, _busy_timeout). `octostore backup` opens the database through
// SQLite's backup API and needs neither.
//
// Byte 1 guards the schema. Whoever may migrate (a starting server; a tool
// when no server holds byte 0) does so under a write lock on byte 1, so two
// never migrate at once, and a tool keeps a read lock on it until it closes,
// so a server that starts meanwhile waits for the tool before migrating.
// Beside a server a tool does not migrate: it requires the schema it knows.
//
// The locks are open file description locks on Linux (fcntl F_OFD_SETLK):
// unlike classic POSIX record locks they conflict between two opens in one
// process and survive the close of another descriptor of the file; unlike
// flock they lock byte ranges. Elsewhere classic record locks are used
// (lockOps), which conflict only between processes.

// ErrServed means another process serves the database (holds its lock file).
var ErrServed = errors.New("database is being served by another process")

// Bytes of the lock file that are locked.
const (
	lockByteServe  = 0 // write-locked by the serving process for its life
	lockByteSchema = 1 // write-locked while migrating; read-locked by tools
)

// LockPath is the sidecar lock file of the database at path.
func LockPath(path string) string { return path + ".lock" }

// dbLock is an open lock file.
type dbLock struct{ f *os.File }

// openLockFile opens (creating, and the data directory with it) the lock
// file of the database at path: readable by its owner only, like the
// database (never more than the database's own permissions).
func openLockFile(path string) (*dbLock, error) {
	if err := dataDir(path); err != nil {
		return nil, err
	}
	perm := os.FileMode(0o600) // as the database's own files (privateFiles)
	st, statErr := os.Stat(path)
	if statErr == nil {
		perm = st.Mode().Perm() & 0o600
	}
	f, err := os.OpenFile(LockPath(path), os.O_RDWR|os.O_CREATE, perm)
	if err != nil {
		return nil, fmt.Errorf("open database lock: %w", err)
	}
	// Like SQLite does for the -wal and -shm files: when root creates the
	// file beside a database it gives it to the database's owner, so that
	// the server's own user can open it later.
	if statErr == nil && os.Geteuid() == 0 {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			f.Chown(int(sys.Uid), int(sys.Gid))
		}
	}
	return &dbLock{f: f}, nil
}

// set applies a lock of type typ (F_WRLCK, F_RDLCK, F_UNLCK) to byte b; wait
// blocks until it is granted, otherwise a conflict is EAGAIN or EACCES.
func (l *dbLock) set(typ int16, b int64, wait bool) error {
	cmd := lockOps.set
	if wait {
		cmd = lockOps.setWait
	}
	lk := unix.Flock_t{Type: typ, Whence: io.SeekStart, Start: b, Len: 1}
	for {
		err := unix.FcntlFlock(l.f.Fd(), cmd, &lk)
		if err != unix.EINTR {
			return err
		}
	}
}

// heldByOther reports whether byte b is write-locked by someone else.
func (l *dbLock) heldByOther(b int64) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: b, Len: 1}
	if err := unix.FcntlFlock(l.f.Fd(), lockOps.get, &lk); err != nil {
		return false, err
	}
	return lk.Type != unix.F_UNLCK, nil
}

func (l *dbLock) close() error { return l.f.Close() }

// lockForServing takes the serving lock of the database at path, or fails
// with ErrServed, and then waits for the schema lock (released by Open once
// migrated).
func lockForServing(path string) (*dbLock, error) {
	l, err := openLockFile(path)
	if err != nil {
		return nil, err
	}
	if err := l.set(unix.F_WRLCK, lockByteServe, false); err != nil {
		defer l.close()
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
			return nil, l.servedError(path)
		}
		return nil, fmt.Errorf("lock %s: %w", l.f.Name(), err)
	}
	// The holder's pid, for the message of a second server.
	if err := l.f.Truncate(0); err == nil {
		l.f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err := l.set(unix.F_WRLCK, lockByteSchema, true); err != nil {
		l.close()
		return nil, fmt.Errorf("lock %s: %w", l.f.Name(), err)
	}
	return l, nil
}

// servedError is ErrServed with the database, the lock file and the pid the
// holder recorded in it.
func (l *dbLock) servedError(path string) error {
	holder := "another process"
	var buf [32]byte
	if n, _ := l.f.ReadAt(buf[:], 0); n > 0 {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(buf[:n]))); err == nil && pid > 0 {
			holder = "pid " + strconv.Itoa(pid)
		}
	}
	return fmt.Errorf("%w: %s (%s holds the lock on %s); stop that server first, or give this one another --db",
		ErrServed, path, holder, l.f.Name())
}

// lockForTool waits for the schema lock of the database at path and reports
// whether a server holds its serving lock.
func lockForTool(path string) (l *dbLock, served bool, err error) {
	if l, err = openLockFile(path); err != nil {
		return nil, false, err
	}
	if err = l.set(unix.F_WRLCK, lockByteSchema, true); err == nil {
		served, err = l.heldByOther(lockByteServe)
	}
	if err != nil {
		l.close()
		return nil, false, fmt.Errorf("lock %s: %w", l.f.Name(), err)
	}
	return l, served, nil
}
