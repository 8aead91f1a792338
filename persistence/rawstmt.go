package persistence

import (
	"database/sql"
	"fmt"
	"unsafe"

	"github.com/mattn/go-sqlite3"
)

// rawStmt is a hot write statement executed on the write connection's
// driver connection with typed binds (rawbind.go) instead of through
// database/sql. Per row, database/sql adds its own locking, argument
// conversion into a fresh slice, a result object and a context check to
// what SQLite does, and go-sqlite3 boxes every argument and crosses into C
// once per argument: measured on this machine (go test -bench RawInsert
// ./persistence/, the 12 columns of a lock row), a journal insert took
// 2.3 µs and 12 allocations through a database/sql statement bound to the
// transaction, 2.0 µs and 9 allocations on the driver connection with
// go-sqlite3's binds, and takes 1.3 µs and none with the typed row and its
// one cgo crossing (what remains is SQLite's own insert).
//
// The statement is prepared by go-sqlite3 on first use on the driver
// connection the batch's transaction runs on, and prepared again if
// database/sql ever hands out another one (it would only after a
// driver.ErrBadConn). It runs inside sql.Conn.Raw, which is what makes
// using the driver connection legitimate while database/sql owns it: the
// batch transaction (begun on the same sql.Conn) is the same SQLite
// transaction. Used on the writer goroutine only.
type rawStmt struct {
	query  string
	conn   *sqlite3.SQLiteConn // the driver connection st is prepared on
	st     *sqlite3.SQLiteStmt // owns (and finalizes) the statement
	handle unsafe.Pointer      // st's sqlite3_stmt (stmtHandle)
	params int                 // its parameter count
	r      rawRow              // the row being built (row), reused
}

func newRawStmt(query string) *rawStmt { return &rawStmt{query: query} }

// row returns the statement's argument row, emptied: append the row's
// arguments to it, then call exec.
func (s *rawStmt) row() *rawRow {
	s.r.reset()
	return &s.r
}

// exec runs the statement with the row built since row(), on conn's driver
// connection, and returns the rowid of the row it inserted, if any.
func (s *rawStmt) exec(conn *sql.Conn) (int64, error) {
	var id int64
	err := conn.Raw(func(dc any) error {
		c, ok := dc.(*sqlite3.SQLiteConn)
		if !ok {
			return fmt.Errorf("persistence: driver connection is %T, not *sqlite3.SQLiteConn", dc)
		}
		if c != s.conn {
			if err := s.prepare(c); err != nil {
				return err
			}
		}
		var err error
		id, err = s.r.execHandle(s.handle, s.params)
		return err
	})
	return id, err
}

func (s *rawStmt) prepare(c *sqlite3.SQLiteConn) error {
	if s.st != nil {
		s.st.Close() // of a connection database/sql replaced: closed with it, or closed now
		s.st, s.conn, s.handle = nil, nil, nil
	}
	st, err := c.Prepare(s.query)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	ss := st.(*sqlite3.SQLiteStmt)
	h, n, err := stmtHandle(ss, s.query)
	if err != nil {
		ss.Close()
		return err
	}
	s.st, s.conn, s.handle, s.params = ss, c, h, n
	return nil
}

// close finalizes the statement (on conn, through Raw, like every use).
func (s *rawStmt) close(conn *sql.Conn) {
	if s.st == nil {
		return
	}
	_ = conn.Raw(func(any) error { return s.st.Close() })
	s.st, s.conn, s.handle = nil, nil, nil
}
