package persistence

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

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
		return s.scanLockRows(query, []int64{now}, fn) // nothing, or nothing to split
	}
	mid := from + (hi.Int64-from)/2
	var mu sync.Mutex
	serial := func(r actors.LockRecord) {
		mu.Lock()
		defer mu.Unlock()
		fn(r)
	}
	errs := make(chan error, 1)
	go func() { errs <- s.scanLockRows(query+` AND expires_at > ?`, []int64{now, mid}, serial) }()
	err := s.scanLockRows(query+` AND expires_at <= ?`, []int64{now, mid}, serial)
	return errors.Join(err, <-errs)
}

// scanLockRows runs query (lockColumns, with integer args) on a read
// connection and calls fn for each row. The rows are read below
// database/sql (rawscan.go): database/sql's Rows.Scan, and go-sqlite3's
// boxed values under it, cost about half of the start-up scan's CPU with
// 1M held locks. fn runs while the connection is in use: it must not read
// the database.
func (s *Store) scanLockRows(query string, args []int64, fn func(actors.LockRecord)) error {
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
		sc, err := newRawScan(c, query, args...)
		if err != nil {
			return err
		}
		defer func() {
			sc.Close()
			// The scan filled the connection's page cache with the whole
			// table; give it back (the pool keeps the connection).
			_, _ = c.Exec("PRAGMA shrink_memory", nil)
		}()
		if sc.ncol != lockColumnCount {
			return fmt.Errorf("lock scan: %d columns, want %d", sc.ncol, lockColumnCount)
		}
		var d lockScan
		for {
			b, n, err := sc.next()
			if err != nil || n == 0 {
				return err
			}
			if err := d.decode(b, n, fn); err != nil {
				return err
			}
		}
	})
}

// lockColumnCount is the number of lockColumns.
const lockColumnCount = 12
