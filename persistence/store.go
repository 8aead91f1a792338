package persistence

import (
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/octostore/octostore/actors"
)

// Store implements actors.Store: the Writer for durable writes and the read
// pool for activation loaders.
type Store struct {
	*Writer
	db *DB
}

var _ actors.Store = (*Store)(nil)

// NewStore combines a database and its writer.
func NewStore(db *DB, w *Writer) *Store { return &Store{Writer: w, db: db} }

// Close closes the writer after committing everything queued.
func (s *Store) Close() error { return s.Writer.Close() }

// DB returns the underlying database.
func (s *Store) DB() *DB { return s.db }

// LoadLock implements actors.Loader.
func (s *Store) LoadLock(name string) (actors.LockRecord, bool, error) {
	if r, ok := s.log.lookup(name); ok {
		return r, true, nil
	}
	r, err := scanLock(s.db.read.QueryRow(`SELECT `+lockColumns+` FROM locks WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return actors.LockRecord{Name: name}, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("load lock %q: %w", name, err)
	}
	return r, true, nil
}

// scanLock reads one row of lockColumns.
func scanLock(sc rowScanner) (actors.LockRecord, error) {
	var r actors.LockRecord
	var token, exp, acq, delay, avail int64
	err := sc.Scan(&r.Name, &r.Holder, &r.HolderID, &r.LeaseID, &token, &exp, &acq, &r.SessionID, &delay, &avail, &r.DelayHolder,
		&r.Metadata)
	r.Token = uint64(token)
	r.ExpiresAt, r.AcquiredAt = fromMS(exp), fromMS(acq)
	r.LockDelay, r.AvailableAt = time.Duration(delay)*time.Millisecond, fromMS(avail)
	return r, err
}

// lockRow appends r's values for lockColumns to row (a fencing token
// beyond 2^63-1 is stored as its two's complement, as scanLock reads it).
func lockRow(row *rawRow, r *actors.LockRecord) {
	row.text(r.Name)
	row.text(r.Holder)
	row.text(r.HolderID)
	row.text(r.LeaseID)
	row.int(int64(r.Token))
	row.int(ms(r.ExpiresAt))
	row.int(ms(r.AcquiredAt))
	row.text(r.SessionID)
	row.int(r.LockDelay.Milliseconds())
	row.int(ms(r.AvailableAt))
	row.text(r.DelayHolder)
	row.text(r.Metadata)
}

// lockColumns are the columns of a lock record, in the order scans read
// them.
const lockColumns = `name, holder, holder_id, lease_id, fencing_token, expires_at, acquired_at, session_id,
	lock_delay_ms, available_at, delay_holder, metadata`

// ActiveLocks implements actors.LockLoader: the holds that have not run out,
// and every hold under a session (its session decides). The rows are read
// by two scans at once, each over half of the range of expiries ahead, on
// two read connections (start-up with a million held locks is mostly this
// read); fn is called from one goroutine at a time.
func (s *Store) ActiveLocks(now time.Time, fn func(actors.LockRecord)) error {
	return s.scanLocks("active", `holder <> '' AND (expires_at > ? OR session_id <> '')`, now,
		func(r actors.LockRecord) bool { return r.Holder != "" && (r.SessionID != "" || r.HeldAt(now)) }, fn)
}

// ExpiredLocks implements actors.LockLoader: holds for a TTL that ran out.
// Both it and ActiveLocks read the partial index locks_active (rows with a
// holder).
func (s *Store) ExpiredLocks(now time.Time, fn func(actors.LockRecord)) error {
	return s.scanLocks("expired", `holder <> '' AND expires_at <= ? AND session_id = ''`, now,
		func(r actors.LockRecord) bool { return r.Holder != "" && r.SessionID == "" && !r.HeldAt(now) }, fn)
}

// scanLocks calls fn for the rows of locks matching where (one parameter:
// now in unix ms), and for the journal's newer records that match (they
// supersede their rows, matching or not). The rows are read on raw SQLite
// connections, in two scans at once (scanLockRowsSplit): start-up reads
// every held lock. fn is called from one goroutine at a time.
func (s *Store) scanLocks(what, where string, now time.Time, match func(actors.LockRecord) bool, fn func(actors.LockRecord)) error {
	recent := s.log.snapshot()
	err := s.scanLockRowsSplit(`SELECT `+lockColumns+` FROM locks WHERE (`+where+`)`, now.UnixMilli(), func(r actors.LockRecord) {
		if _, newer := recent[r.Name]; !newer {
			fn(r)
		}
	})
	if err != nil {
		return fmt.Errorf("load %s locks: %w", what, err)
	}
	for _, r := range recent {
		if match(r) {
			fn(r)
		}
	}
	return nil
}

// Apply enqueues m and waits for its commit (for rare, synchronous writes:
// tokens, start-up).
func (s *Store) Apply(m actors.Mutation) error {
	ch := make(chan error, 1)
	if _, err := s.Enqueue(m, func(err error) { ch <- err }); err != nil {
		return err
	}
	return <-ch
}
