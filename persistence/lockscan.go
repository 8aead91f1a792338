package persistence

import (
	"context"
	"fmt"

	"github.com/mattn/go-sqlite3"

	"github.com/octostore/octostore/actors"
)

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
