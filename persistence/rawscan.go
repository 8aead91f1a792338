package persistence

/*
#include <stdint.h>
#include <string.h>

// The SQLite C API as linked by github.com/mattn/go-sqlite3 (see rawbind.go).
typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;
extern int sqlite3_step(sqlite3_stmt*);
extern int sqlite3_reset(sqlite3_stmt*);
extern int sqlite3_clear_bindings(sqlite3_stmt*);
extern int sqlite3_bind_int64(sqlite3_stmt*, int, long long);
extern int sqlite3_column_count(sqlite3_stmt*);
extern int sqlite3_column_type(sqlite3_stmt*, int);
extern long long sqlite3_column_int64(sqlite3_stmt*, int);
extern const unsigned char *sqlite3_column_text(sqlite3_stmt*, int);
extern const void *sqlite3_column_blob(sqlite3_stmt*, int);
extern int sqlite3_column_bytes(sqlite3_stmt*, int);
extern sqlite3 *sqlite3_db_handle(sqlite3_stmt*);
extern int sqlite3_extended_errcode(sqlite3*);
extern const char *sqlite3_errmsg(sqlite3*);

#define OCTO_SCAN_ROW 100
#define OCTO_SCAN_DONE 101

// SQLite's fundamental types (sqlite3_column_type).
enum { OCTO_COL_INT = 1, OCTO_COL_FLOAT = 2, OCTO_COL_TEXT = 3, OCTO_COL_BLOB = 4, OCTO_COL_NULL = 5 };

// octo_scan_out is what octo_scan reports besides the rows.
typedef struct {
	int32_t rc;      // SQLITE_ROW: more rows follow; SQLITE_DONE; else the error's code
	int32_t ext;     // the extended error code, on an error
	int32_t used;    // bytes of buf written
	int32_t rows;    // rows written
	int32_t need;    // bytes the pending row needs, when it did not fit in an empty buf
	int32_t pending; // in and out: the statement stands on a row not written yet
	char msg[160];
} octo_scan_out;

// octo_scan steps st and writes each row to buf (cap bytes), in column
// order: a type byte (SQLite's), then for an integer its 8 bytes (host
// order), for text or a blob a 4-byte length (host order) and the bytes,
// for anything else nothing. It stops when the next row does not fit (the
// statement keeps standing on it: out->pending), at the end, or at an
// error. SQLite keeps no pointer into buf.
static void octo_scan(void *p, int ncol, char *buf, int cap, octo_scan_out *out) {
	sqlite3_stmt *st = (sqlite3_stmt*)p;
	int used = 0, rows = 0, rc = OCTO_SCAN_ROW;
	out->need = 0;
	for (;;) {
		if (!out->pending) {
			rc = sqlite3_step(st);
			if (rc != OCTO_SCAN_ROW) {
				break;
			}
			out->pending = 1;
		}
		// The row, column by column; a row that does not fit is taken
		// back, and given again by the next call.
		int start = used, fits = 1, i;
		int64_t need = 0;
		for (i = 0; i < ncol; i++) {
			int typ = sqlite3_column_type(st, i);
			if (typ == OCTO_COL_INT) {
				need = 9;
				if (used + need > cap) { fits = 0; break; }
				int64_t v = sqlite3_column_int64(st, i);
				buf[used] = (char)typ;
				memcpy(buf + used + 1, &v, 8);
				used += 9;
			} else if (typ == OCTO_COL_TEXT || typ == OCTO_COL_BLOB) {
				const void *b = typ == OCTO_COL_TEXT ? (const void*)sqlite3_column_text(st, i) : sqlite3_column_blob(st, i);
				int32_t n = sqlite3_column_bytes(st, i);
				need = 5 + (int64_t)n;
				if (used + need > cap) { fits = 0; break; }
				buf[used] = (char)typ;
				memcpy(buf + used + 1, &n, 4);
				if (n > 0) {
					memcpy(buf + used + 5, b, n);
				}
				used += 5 + n;
			} else {
				need = 1;
				if (used + need > cap) { fits = 0; break; }
				buf[used++] = (char)typ; // NULL (a float is refused by the reader)
			}
		}
		if (!fits) {
			used = start;
			if (rows == 0) {
				// Nothing fits before this row: ask for a buffer that
				// holds it (the columns read so far, the one that did
				// not fit, 13 bytes for each of the others at most plus
				// their text: the next call measures again).
				int64_t want = (int64_t)cap + need + 64;
				out->need = want > 0x7fffffff ? 0x7fffffff : (int32_t)want;
			}
			rc = OCTO_SCAN_ROW;
			break;
		}
		out->pending = 0;
		rows++;
	}
	out->rc = rc;
	out->used = used;
	out->rows = rows;
	if (rc != OCTO_SCAN_ROW && rc != OCTO_SCAN_DONE) {
		sqlite3 *db = sqlite3_db_handle(st);
		out->ext = sqlite3_extended_errcode(db);
		strncpy(out->msg, sqlite3_errmsg(db), sizeof(out->msg) - 1);
		out->msg[sizeof(out->msg) - 1] = 0;
	}
}

static int octo_scan_bind_int(void *st, int i, int64_t v) { return sqlite3_bind_int64((sqlite3_stmt*)st, i, v); }
static int octo_scan_columns(void *st) { return sqlite3_column_count((sqlite3_stmt*)st); }
static void octo_scan_reset(void *st) { sqlite3_reset((sqlite3_stmt*)st); sqlite3_clear_bindings((sqlite3_stmt*)st); }
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
	"unsafe"

	"github.com/mattn/go-sqlite3"

	"github.com/octostore/octostore/actors"
)

// Reading many rows below database/sql.
//
// go-sqlite3 gives a row as []driver.Value: every integer and string boxed
// in an interface, every text column a fresh string. For the start-up scan
// of a million held locks that is about 15 allocations per row and half of
// the scan's CPU (the other half is SQLite's). rawScan steps the statement
// in C and copies many rows at once into one reused buffer (one cgo
// crossing per buffer, not per row); lockScan decodes them straight into
// LockRecords, allocating only the strings a record keeps, and reusing the
// holder's strings from the row before when they are the same (a holder
// usually holds many of the locks).

// rawScanBuf is the size of a rawScan's buffer: about 700 lock rows.
const rawScanBuf = 64 << 10

// Column types in rawScan's format (SQLite's fundamental types).
const (
	rawColInt   = 1
	rawColFloat = 2
	rawColText  = 3
	rawColBlob  = 4
	rawColNull  = 5
)

// rawScan runs one query on a driver connection and hands its rows, a
// buffer at a time, to a decoder.
type rawScan struct {
	st     *sqlite3.SQLiteStmt // owns (and finalizes) the statement
	handle unsafe.Pointer      // its sqlite3_stmt
	ncol   int
	done   bool // SQLite said SQLITE_DONE (stepping again would start over)
	buf    []byte
	out    C.octo_scan_out
}

// newRawScan prepares query on c and binds args (integers only) to its
// parameters, in order. Close it.
func newRawScan(c *sqlite3.SQLiteConn, query string, args ...int64) (*rawScan, error) {
	st, err := c.Prepare(query)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	ss := st.(*sqlite3.SQLiteStmt)
	h, params, err := stmtHandle(ss, query)
	if err != nil {
		ss.Close()
		return nil, err
	}
	if params != len(args) {
		ss.Close()
		return nil, fmt.Errorf("persistence: %d arguments for a statement of %d parameters", len(args), params)
	}
	for i, v := range args {
		if rc := C.octo_scan_bind_int(h, C.int(i+1), C.int64_t(v)); rc != 0 {
			ss.Close()
			return nil, rawError(int(rc), int(rc), "bind")
		}
	}
	return &rawScan{st: ss, handle: h, ncol: int(C.octo_scan_columns(h)), buf: make([]byte, rawScanBuf)}, nil
}

// Close resets and finalizes the statement.
func (s *rawScan) Close() error {
	C.octo_scan_reset(s.handle)
	return s.st.Close()
}

// next fills the buffer with the next rows and returns them (nil at the
// end) and how many there are. A row larger than the buffer grows it.
func (s *rawScan) next() ([]byte, int, error) {
	for !s.done {
		C.octo_scan(s.handle, C.int(s.ncol), (*C.char)(unsafe.Pointer(&s.buf[0])), C.int(len(s.buf)), &s.out)
		rc, rows := int(s.out.rc), int(s.out.rows)
		s.done = rc == 101
		switch {
		case rc != 100 && rc != 101:
			return nil, 0, rawError(rc, int(s.out.ext), C.GoString(&s.out.msg[0]))
		case rows > 0:
			return s.buf[:int(s.out.used)], rows, nil
		case rc == 101:
			return nil, 0, nil
		case s.out.need > 0 && int(s.out.need) < math.MaxInt32:
			s.buf = make([]byte, int(s.out.need))
		default:
			return nil, 0, fmt.Errorf("persistence: a row of %d bytes or more does not fit a scan's buffer", int(s.out.need))
		}
	}
	return nil, 0, nil
}

// lockScan decodes rows of lockColumns in rawScan's format.
type lockScan struct {
	holder, holderID string // the last row's, reused while equal
}

// decode calls fn with each of the rows in b (n rows of lockColumns), read
// as scanLock reads them from database/sql: TEXT or BLOB as a string,
// INTEGER as int64 (a fencing token beyond 2^63-1 as its two's
// complement), NULL as the zero value; a float is refused.
func (d *lockScan) decode(b []byte, n int, fn func(actors.LockRecord)) error {
	for range n {
		var r actors.LockRecord
		var ints [5]int64
		ii := 0
		for col := range lockColumnCount {
			if len(b) < 1 {
				return errShortScan
			}
			typ := b[0]
			b = b[1:]
			switch typ {
			case rawColInt:
				if len(b) < 8 {
					return errShortScan
				}
				v := int64(binary.NativeEndian.Uint64(b))
				b = b[8:]
				if lockColumnIsText[col] {
					return fmt.Errorf("lock column %d: an integer, want text", col)
				}
				ints[ii] = v
				ii++
			case rawColText, rawColBlob:
				if len(b) < 4 {
					return errShortScan
				}
				l := int(binary.NativeEndian.Uint32(b))
				b = b[4:]
				if len(b) < l {
					return errShortScan
				}
				v := b[:l]
				b = b[l:]
				if !lockColumnIsText[col] {
					return fmt.Errorf("lock column %d: text, want an integer", col)
				}
				d.text(&r, col, v)
			case rawColNull:
				if !lockColumnIsText[col] {
					ii++
				}
			default:
				return fmt.Errorf("lock column %d: SQLite type %d, want text or an integer", col, typ)
			}
		}
		r.Token = uint64(ints[0])
		r.ExpiresAt, r.AcquiredAt = fromMS(ints[1]), fromMS(ints[2])
		r.LockDelay, r.AvailableAt = time.Duration(ints[3])*time.Millisecond, fromMS(ints[4])
		fn(r)
	}
	if len(b) != 0 {
		return fmt.Errorf("lock scan: %d bytes after the last row", len(b))
	}
	return nil
}

// errShortScan is a buffer that ends inside a row (a bug, not a database
// state).
var errShortScan = fmt.Errorf("lock scan: a row ends past its buffer")

// lockColumnIsText says which of lockColumns are TEXT (the others are
// INTEGER).
var lockColumnIsText = [lockColumnCount]bool{true, true, true, true, false, false, false, true, false, false, true, true}

// text sets the text column col of r to v.
func (d *lockScan) text(r *actors.LockRecord, col int, v []byte) {
	if len(v) == 0 {
		return
	}
	switch col {
	case 0:
		r.Name = string(v)
	case 1:
		if string(v) != d.holder { // compares without a copy
			d.holder = string(v)
		}
		r.Holder = d.holder
	case 2:
		if string(v) != d.holderID {
			d.holderID = string(v)
		}
		r.HolderID = d.holderID
	case 3:
		r.LeaseID = string(v)
	case 7:
		r.SessionID = string(v)
	case 10:
		r.DelayHolder = string(v)
	case 11:
		r.Metadata = string(v)
	}
}
