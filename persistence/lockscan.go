package persistence

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/octostore/octostore/actors"
)

// scanLockRowsSplit runs query (lockColumns FROM locks WHERE a condition
// with one parameter, now) as two scans at once, on two read connections:
// the rows whose expires_at is at most the middle of the range of held
// locks' expiries still ahead of now, and the others. Every row of query
// is in exactly one of them. fn is called with one row at a time (a mutex
// serialises the two scans' calls); the expiry range is read from the
// partial index locks_active (min and max: two index searches).
func (s *Store) scanLockRowsSplit(query string, now int64, fn func(actors.LockRecord)) error {
	var lo, hi sql.NullInt64
	if err := s.db.read.QueryRow(`SELECT min(expires_at) FROM locks WHERE holder <> ''`).Scan(&lo); err != nil {
		return err
	}
	if err := s.db.read.QueryRow(`SELECT max(expires_at) FROM locks WHERE holder <> ''`).Scan(&hi); err != nil {
		return err
	}
	from := max(lo.Int64, now)
	if !hi.Valid || hi.Int64 <= from {
		return s.scanLockRows(query, []driver.Value{now}, fn) // nothing, or nothing to split
	}
	mid := from + (hi.Int64-from)/2
	var mu sync.Mutex
	serial := func(r actors.LockRecord) {
		mu.Lock()
		defer mu.Unlock()
		fn(r)
	}
	errs := make(chan error, 1)
	go func() { errs <- s.scanLockRows(query+` AND expires_at > ?`, []driver.Value{now, mid}, serial) }()
	err := s.scanLockRows(query+` AND expires_at <= ?`, []driver.Value{now, mid}, serial)
	return errors.Join(err, <-errs)
}

// scanLockRows runs query (lockColumns, with args) on a read connection
// and calls fn for each row, reading the driver's values directly:
// database/sql's Rows.Scan (its locking and conversions, one string per
// column) cost a third of the start-up with 1M held locks. fn runs while
// the connection is in use: it must not read the database.
func (s *Store) scanLockRows(query string, args []driver.Value, fn func(actors.LockRecord)) error {
	conn, err := s.db.read.Conn(context.Background())
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*sqlite3.SQLiteConn)
		if !ok {
			return fmt.Errorf("read connection is a %T, not SQLite", dc)
		}
		rows, err := c.Query(query, args)
		if err != nil {
			return err
		}
		defer func() {
			rows.Close()
			// The scan filled the connection's page cache with the whole
			// table; give it back (the pool keeps the connection).
			_, _ = c.Exec("PRAGMA shrink_memory", nil)
		}()
		vals := make([]driver.Value, len(rows.Columns()))
		if len(vals) != lockColumnCount {
			return fmt.Errorf("lock scan: %d columns, want %d", len(vals), lockColumnCount)
		}
		for {
			if err := rows.Next(vals); errors.Is(err, io.EOF) {
				return nil
			} else if err != nil {
				return err
			}
			r, err := lockFromValues(vals)
			if err != nil {
				return err
			}
			fn(r)
		}
	})
}

// lockColumnCount is the number of lockColumns.
const lockColumnCount = 12

// lockFromValues is the record of one row of lockColumns as the driver
// gives it (TEXT as string, INTEGER as int64), as scanLock reads it.
func lockFromValues(v []driver.Value) (actors.LockRecord, error) {
	var r actors.LockRecord
	var ints [5]int64
	strs := [...]*string{&r.Name, &r.Holder, &r.HolderID, &r.LeaseID, &r.SessionID, &r.DelayHolder, &r.Metadata}
	for i, col := range [...]int{0, 1, 2, 3, 7, 10, 11} {
		switch x := v[col].(type) {
		case string:
			*strs[i] = x
		case []byte:
			*strs[i] = string(x)
		case nil:
		default:
			return r, fmt.Errorf("lock column %d: %T, want text", col, x)
		}
	}
	for i, col := range [...]int{4, 5, 6, 8, 9} {
		switch x := v[col].(type) {
		case int64:
			ints[i] = x
		case nil:
		default:
			return r, fmt.Errorf("lock column %d: %T, want an integer", col, x)
		}
	}
	r.Token = uint64(ints[0])
	r.ExpiresAt, r.AcquiredAt = fromMS(ints[1]), fromMS(ints[2])
	r.LockDelay, r.AvailableAt = time.Duration(ints[3])*time.Millisecond, fromMS(ints[4])
	return r, nil
}
