package persistence

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/octostore/octostore/actors"
)

// scanLockRows runs query (lockColumns, one parameter: arg) on a read
// connection and calls fn for each row, reading the driver's values
// directly: database/sql's Rows.Scan (its locking and conversions, one
// string per column) cost a third of the start-up with 1M held locks. fn
// runs while the connection is in use: it must not read the database.
func (s *Store) scanLockRows(query string, arg int64, fn func(actors.LockRecord)) error {
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
		rows, err := c.Query(query, []driver.Value{arg})
		if err != nil {
			return err
		}
		defer rows.Close()
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
