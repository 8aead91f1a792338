// Package persistence keeps octostore's state in embedded SQLite.
//
// Ownership: the Writer's goroutine is the only code that writes to the
// database (through the single-connection write pool); everything else reads
// through the read pool. WAL mode lets readers run while the writer commits.
package persistence

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
	"golang.org/x/sys/unix"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// DB is an open octostore database.
type DB struct {
	Path string
	// Tightened lists the files whose permissions Open narrowed to 0600
	// (left group- or world-readable by an older octostore), e.g.
	// "octostore.db: 0644 → 0600", for the caller to log.
	Tightened []string
	write     *sql.DB // exactly one connection, used only by the Writer and migrations
	read      *sql.DB // read-only pool
	// Now is the clock; tests replace it.
	Now func() time.Time

	lock *dbLock // the open lock file (dblock.go), closed last by Close
}

// ErrNewerSchema means the database was written by a newer octostore.
var ErrNewerSchema = errors.New("database schema is newer than this octostore")

// dsn builds the connection string. Each parameter is applied by the driver to
// every new connection of the pool:
//
//	_journal_mode=WAL   readers never block the writer and vice versa; commits
//	                    append to the WAL instead of rewriting pages.
//	_synchronous=FULL   fsync the WAL on every commit: an acknowledged write
//	                    survives power loss, not only a process crash.
//	_busy_timeout=5000  an external writer (octostore token create, backup)
//	                    holding the lock makes us wait up to 5 s, not fail.
//	_foreign_keys=on    tokens cascade with their user.
//	_txlock=immediate   write transactions take the write lock at BEGIN, so
//	                    they never fail half-way with SQLITE_BUSY on upgrade.
//	_cache_size=-65536  64 MiB page cache per connection.
//	_mutex=no           (read-only pool) SQLITE_OPEN_NOMUTEX: no mutex around
//	                    every call into a connection. database/sql hands a
//	                    connection to one goroutine at a time, so SQLite's own
//	                    per-connection mutex only costs: entered once per
//	                    column read, it was a third of the start-up scan's
//	                    CPU with 1M held locks (docs/benchmarks.md). The write
//	                    connection keeps it (its batches are few calls each).
func dsn(path string, readOnly bool) string {
	v := url.Values{}
	v.Set("_journal_mode", "WAL")
	v.Set("_synchronous", "FULL")
	v.Set("_busy_timeout", "5000")
	v.Set("_foreign_keys", "on")
	v.Set("_cache_size", "-65536")
	if readOnly {
		v.Set("mode", "ro")
		v.Set("_mutex", "no")
	} else {
		v.Set("_txlock", "immediate")
	}
	return "file:" + path + "?" + v.Encode()
}

// Open opens (creating if needed) the database at path to serve it: it takes
// the serving lock of the database (dblock.go), held until Close, applies
// migrations, and checks integrity. It fails with ErrServed while another
// DB, in this process or another, serves the database, and refuses a
// database with a newer schema (ErrNewerSchema).
func Open(path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("open database: empty path")
	}
	lock, err := lockForServing(path)
	if err != nil {
		return nil, err
	}
	db, err := open(path, true)
	if err != nil {
		lock.close()
		return nil, err
	}
	db.lock = lock
	if err := lock.set(unix.F_UNLCK, lockByteSchema, false); err != nil {
		db.Close()
		return nil, fmt.Errorf("unlock %s: %w", LockPath(path), err)
	}
	return db, nil
}

// OpenShared opens (creating if needed) the database at path for an
// operator tool that may run beside the server serving it (token create,
// list, revoke): it never takes the serving lock. With no server it
// migrates and checks integrity as Open does; beside a server it does
// neither and requires the schema to be exactly the one this binary knows
// (a tool must not migrate the database under a running server). Until
// Close it keeps a server that starts meanwhile from migrating (dblock.go).
func OpenShared(path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("open database: empty path")
	}
	lock, served, err := lockForTool(path)
	if err != nil {
		return nil, err
	}
	db, err := open(path, !served)
	if err != nil {
		lock.close()
		return nil, err
	}
	db.lock = lock
	if err := lock.set(unix.F_RDLCK, lockByteSchema, false); err != nil { // a downgrade: never conflicts
		db.Close()
		return nil, fmt.Errorf("lock %s: %w", LockPath(path), err)
	}
	return db, nil
}

// open opens both pools. With migrate it applies the migrations and checks
// integrity; without, the schema must be the newest this binary knows.
func open(path string, migrate bool) (*DB, error) {
	tightened, err := privateFiles(path)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	w, err := sql.Open("sqlite3", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	db := &DB{Path: path, Tightened: tightened, write: w, Now: time.Now}
	if err := db.migrate(migrate); err != nil {
		w.Close()
		return nil, err
	}
	if migrate {
		if err := db.quickCheck(); err != nil {
			w.Close()
			return nil, err
		}
	}
	r, err := sql.Open("sqlite3", dsn(path, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open database: %w", err)
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	db.read = r
	return db, nil
}

// Close closes both pools, then releases the database's lock file. Close
// the Writer first.
func (db *DB) Close() error {
	var errs []error
	if db.read != nil {
		errs = append(errs, db.read.Close())
	}
	errs = append(errs, db.write.Close())
	if db.lock != nil {
		errs = append(errs, db.lock.close())
	}
	return errors.Join(errs...)
}

// ReadDB is the read-only pool, for loaders and listings.
func (db *DB) ReadDB() *sql.DB { return db.read }

// WriteDB is the single write connection. Only the Writer and out-of-band
// admin tools (token create, backup) may use it.
func (db *DB) WriteDB() *sql.DB { return db.write }

// dataDir creates the directory of the database at path, 0700, if it does
// not exist (an existing directory is left as it is).
func dataDir(path string) error {
	if dir := filepath.Dir(path); dir != "" {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("create data directory: %w", err)
			}
		}
	}
	return nil
}

// privateFiles makes the database's files readable by their owner only
// (they hold config values and token hashes): it creates the data directory
// 0700 when it is missing and the database file 0600 when it is new, and
// narrows an existing database, WAL or shared-memory file that group or
// others may read to 0600, reporting each one it narrowed. SQLite creates
// the -wal and -shm files (and a rollback journal) with the mode of the
// database file, whatever the umask, so they follow it.
func privateFiles(path string) ([]string, error) {
	if err := dataDir(path); err != nil {
		return nil, err
	}
	if err := createPrivate(path); err != nil {
		return nil, err
	}
	var tightened []string
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		st, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return tightened, err
		}
		if mode := st.Mode().Perm(); mode&0o077 != 0 {
			if err := os.Chmod(p, mode&0o700); err != nil {
				return tightened, fmt.Errorf("narrow the permissions of %s (%04o; group or others may read it): %w", p, mode, err)
			}
			tightened = append(tightened, fmt.Sprintf("%s: %04o → %04o", filepath.Base(p), mode, mode&0o700))
		}
	}
	return tightened, nil
}

// createPrivate creates path as an empty 0600 file unless it exists. SQLite
// takes an empty file for a new database.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		if !ok {
			return nil, fmt.Errorf("migration %q: name must be NNNN_description.sql", e.Name())
		}
		v, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("migration %q: %w", e.Name(), err)
		}
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %q: expected number %d", m.name, i+1)
		}
	}
	return ms, nil
}

// SchemaVersion is the newest migration this binary knows.
func SchemaVersion() int {
	ms, _ := migrations()
	return len(ms)
}

// migrate brings the schema up to date; without apply it only checks that
// it is (a tool beside a server).
func (db *DB) migrate(apply bool) error {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	ctx := context.Background()
	var cur int
	if err := db.write.QueryRowContext(ctx, "PRAGMA user_version").Scan(&cur); err != nil {
		return fmt.Errorf("open database %s: %w", db.Path, err)
	}
	if cur > len(ms) {
		return fmt.Errorf("%w: database %s has schema version %d, this binary knows up to %d; upgrade octostore",
			ErrNewerSchema, db.Path, cur, len(ms))
	}
	if !apply && cur < len(ms) {
		return fmt.Errorf("database %s has schema version %d and is being served; this octostore knows version %d "+
			"and does not migrate a database under a running server: use the server's own octostore binary, or stop the server first",
			db.Path, cur, len(ms))
	}
	for _, m := range ms[cur:] {
		tx, err := db.write.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migrate %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate %s: %w", m.name, err)
		}
		// PRAGMA user_version cannot take a bound parameter.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", m.version)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate %s: %w", m.name, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migrate %s: %w", m.name, err)
		}
	}
	return nil
}

func (db *DB) quickCheck() error {
	damaged := func(detail string) error {
		return fmt.Errorf("integrity check of %s failed: %s; the database is damaged: restore it from a backup (docs/operations.md, \"Backup and restore\")",
			db.Path, detail)
	}
	rows, err := db.write.Query("PRAGMA quick_check")
	if err != nil {
		return damaged(err.Error())
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return damaged(err.Error())
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		return damaged(err.Error())
	}
	if len(problems) > 0 {
		return damaged(strings.Join(problems, "; "))
	}
	return nil
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}
