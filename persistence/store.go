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

// HeldLocks implements actors.HeldLockLoader: every lock with a holder (the
// holds still running at now, and those that ran out while no server ran),
// in one pass, in name order: the rows through the partial index
// locks_held, then the journal's newer records (they supersede their rows,
// held or not), which may come out of order. fn is called from one
// goroutine.
func (s *Store) HeldLocks(now time.Time, fn func(actors.LockRecord)) error {
	recent := s.log.snapshot()
	err := s.scanLockRows(heldLocksQuery, nil,
		func(r actors.LockRecord) {
			if _, newer := recent[r.Name]; !newer {
				fn(r)
			}
		})
	if err != nil {
		return fmt.Errorf("load held locks: %w", err)
	}
	for _, r := range recent {
		if r.Holder != "" {
			fn(r)
		}
	}
	return nil
}

// heldLocksQuery reads the rows with a holder in name order, through the
// partial index locks_held: no sort, and no read of the rows of free locks
// (a released lock keeps its row, for its fencing token).
const heldLocksQuery = `SELECT ` + lockColumns + ` FROM locks INDEXED BY locks_held WHERE holder <> '' ORDER BY name`

// ActiveLocks implements actors.LockLoader: the holds that have not run out,
// and every hold under a session (its session decides). It reads every held
// lock (HeldLocks, which start-up uses instead).
func (s *Store) ActiveLocks(now time.Time, fn func(actors.LockRecord)) error {
	return s.HeldLocks(now, func(r actors.LockRecord) {
		if !actors.ExpiredWhileDown(r, now) {
			fn(r)
		}
	})
}

// ExpiredLocks implements actors.LockLoader: holds for a TTL that ran out
// and whose end is not recorded. It reads every held lock (HeldLocks).
func (s *Store) ExpiredLocks(now time.Time, fn func(actors.LockRecord)) error {
	return s.HeldLocks(now, func(r actors.LockRecord) {
		if actors.ExpiredWhileDown(r, now) {
			fn(r)
		}
	})
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
