package persistence

/*
#include <stdint.h>
#include <string.h>

// The SQLite C API, as linked into the binary by github.com/mattn/go-sqlite3
// (its amalgamation, or the system library with its libsqlite3 tag). Only
// the prototypes are declared here: the symbols are go-sqlite3's.
typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;
extern int sqlite3_reset(sqlite3_stmt*);
extern int sqlite3_clear_bindings(sqlite3_stmt*);
extern int sqlite3_bind_null(sqlite3_stmt*, int);
extern int sqlite3_bind_int64(sqlite3_stmt*, int, long long);
extern int sqlite3_bind_text(sqlite3_stmt*, int, const char*, int, void(*)(void*));
extern int sqlite3_bind_blob(sqlite3_stmt*, int, const void*, int, void(*)(void*));
extern int sqlite3_bind_parameter_count(sqlite3_stmt*);
extern int sqlite3_step(sqlite3_stmt*);
extern sqlite3 *sqlite3_db_handle(sqlite3_stmt*);
extern long long sqlite3_last_insert_rowid(sqlite3*);
extern int sqlite3_extended_errcode(sqlite3*);
extern const char *sqlite3_errmsg(sqlite3*);
extern const char *sqlite3_sql(sqlite3_stmt*);
extern char *sqlite3_expanded_sql(sqlite3_stmt*);
extern void sqlite3_free(void*);

#define OCTO_SQLITE_OK 0
#define OCTO_SQLITE_ROW 100
#define OCTO_SQLITE_DONE 101
#define OCTO_SQLITE_STATIC ((void(*)(void*))0)

enum { OCTO_NULL = 0, OCTO_INT = 1, OCTO_TEXT = 2, OCTO_BLOB = 3 };

// octo_arg is one typed argument: NULL, an integer (v), or text or a blob
// of n bytes at offset v of the row's byte buffer.
typedef struct {
	int64_t v;
	int32_t typ;
	int32_t n;
} octo_arg;

// octo_out is what octo_exec reports besides its result code.
typedef struct {
	int64_t rowid;
	int32_t ext;
	char msg[160];
} octo_out;

static const char octo_empty[1] = {0};

// octo_exec runs st once with the n arguments in a (text and blobs in buf):
// reset, binds, step, and reset and clear_bindings again before returning,
// so that SQLite keeps no pointer into buf (Go memory) after the call; the
// binds are SQLITE_STATIC (no copy) for that reason. It returns SQLite's
// result code (0 on success) and sets out->rowid to the connection's last
// insert rowid, or on failure out->ext to the extended code and out->msg to
// the connection's error message.
static int octo_exec(sqlite3_stmt *st, const octo_arg *a, int n, const char *buf, octo_out *out) {
	sqlite3 *db = sqlite3_db_handle(st);
	int rc = OCTO_SQLITE_OK;
	int i;
	for (i = 0; i < n && rc == OCTO_SQLITE_OK; i++) {
		const char *p = a[i].n > 0 ? buf + a[i].v : octo_empty;
		switch (a[i].typ) {
		case OCTO_INT:   rc = sqlite3_bind_int64(st, i + 1, a[i].v); break;
		case OCTO_TEXT:  rc = sqlite3_bind_text(st, i + 1, p, a[i].n, OCTO_SQLITE_STATIC); break;
		case OCTO_BLOB:  rc = sqlite3_bind_blob(st, i + 1, p, a[i].n, OCTO_SQLITE_STATIC); break;
		default:         rc = sqlite3_bind_null(st, i + 1); break;
		}
	}
	if (rc == OCTO_SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == OCTO_SQLITE_DONE || rc == OCTO_SQLITE_ROW) {
			rc = OCTO_SQLITE_OK;
			out->rowid = sqlite3_last_insert_rowid(db);
		}
	}
	if (rc != OCTO_SQLITE_OK) {
		out->ext = sqlite3_extended_errcode(db);
		strncpy(out->msg, sqlite3_errmsg(db), sizeof(out->msg) - 1);
		out->msg[sizeof(out->msg) - 1] = 0;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

static int octo_param_count(void *st) { return sqlite3_bind_parameter_count((sqlite3_stmt*)st); }
static const char *octo_stmt_sql(void *st) { return sqlite3_sql((sqlite3_stmt*)st); }
static char *octo_expanded_sql(void *st) { return sqlite3_expanded_sql((sqlite3_stmt*)st); }
static void octo_free(void *p) { sqlite3_free(p); }
static int octo_exec_ptr(void *st, const octo_arg *a, int n, const char *buf, octo_out *out) {
	return octo_exec((sqlite3_stmt*)st, a, n, buf, out);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sync"
	"unsafe"

	"github.com/mattn/go-sqlite3"
)

// Typed binds below database/sql.
//
// go-sqlite3 binds a row from a []driver.NamedValue: every argument is an
// interface (an int64 or a string boxed on the heap: about 4 allocations
// per lock journal row), and the row costs one cgo crossing per argument
// plus the reset and the step, and a result object. rawRow is a row of
// typed arguments in memory the writer reuses (no interface, no
// allocation), and octo_exec binds and steps it in one cgo crossing.
//
// The statement itself is still prepared by go-sqlite3 (its *SQLiteStmt
// owns and finalizes it, on the connection database/sql manages); octo_exec
// only needs its sqlite3_stmt pointer, which go-sqlite3 does not export.
// stmtHandle reads it from the statement's field "s" at the offset
// reflection reports, after checking (once, at NewWriter: checkStmtLayout)
// that the field exists and is the C statement pointer, and every handle
// is checked against the statement's own SQL text before its first use. A
// go-sqlite3 release that changes the layout therefore stops the writer at
// start with an error naming the cause, instead of running a statement
// through a pointer that is not its own
// (TestStmtLayout runs the same check).

// rawRow is one row of positional, typed arguments for rawStmt.exec.
// Append the arguments in the statement's order, then execute; the row is
// reset by rawStmt.row. The zero rawRow is empty. Text and blob bytes are
// copied into the row's own buffer, so the caller's values are not
// referenced after the call that appended them.
type rawRow struct {
	args []C.octo_arg
	buf  []byte
	out  C.octo_out // octo_exec's report (here, not on the stack: an address passed to C escapes)
}

func (r *rawRow) reset() {
	r.args = r.args[:0]
	r.buf = r.buf[:0]
}

// int appends an INTEGER argument.
func (r *rawRow) int(v int64) {
	r.args = append(r.args, C.octo_arg{v: C.int64_t(v), typ: C.OCTO_INT})
}

// bool appends 1 or 0, as go-sqlite3 binds a bool.
func (r *rawRow) bool(v bool) {
	var i int64
	if v {
		i = 1
	}
	r.int(i)
}

// null appends NULL.
func (r *rawRow) null() { r.args = append(r.args, C.octo_arg{typ: C.OCTO_NULL}) }

// text appends a TEXT argument ("" is the empty text, not NULL).
func (r *rawRow) text(s string) {
	r.args = append(r.args, C.octo_arg{v: C.int64_t(len(r.buf)), n: C.int32_t(len(s)), typ: C.OCTO_TEXT})
	r.buf = append(r.buf, s...)
}

// textBytes appends b as TEXT (what binding string(b) would store).
func (r *rawRow) textBytes(b []byte) {
	r.args = append(r.args, C.octo_arg{v: C.int64_t(len(r.buf)), n: C.int32_t(len(b)), typ: C.OCTO_TEXT})
	r.buf = append(r.buf, b...)
}

// blob appends a BLOB argument; a nil b is NULL (as go-sqlite3 binds a nil
// []byte), an empty non-nil b the empty blob.
func (r *rawRow) blob(b []byte) {
	if b == nil {
		r.null()
		return
	}
	r.args = append(r.args, C.octo_arg{v: C.int64_t(len(r.buf)), n: C.int32_t(len(b)), typ: C.OCTO_BLOB})
	r.buf = append(r.buf, b...)
}

// errRowTooLarge refuses a row whose bytes SQLite's int-sized binds cannot
// take (the server's own limits keep every value far below it).
var errRowTooLarge = errors.New("persistence: a value of the row is larger than 2 GiB")

// execHandle runs the statement at handle (a sqlite3_stmt*) with r, in one
// cgo crossing, and returns the connection's last insert rowid. It must run
// inside sql.Conn.Raw on the connection the statement was prepared on.
func (r *rawRow) execHandle(handle unsafe.Pointer, params int) (int64, error) {
	if len(r.args) != params {
		return 0, fmt.Errorf("persistence: %d arguments for a statement of %d parameters", len(r.args), params)
	}
	if len(r.buf) > math.MaxInt32 {
		return 0, errRowTooLarge
	}
	var argp *C.octo_arg
	if len(r.args) > 0 {
		argp = &r.args[0]
	}
	var bufp *C.char
	if len(r.buf) > 0 {
		bufp = (*C.char)(unsafe.Pointer(&r.buf[0]))
	}
	rc := C.octo_exec_ptr(handle, argp, C.int(len(r.args)), bufp, &r.out)
	if rc != 0 {
		return 0, rawError(int(rc), int(r.out.ext), C.GoString(&r.out.msg[0]))
	}
	return int64(r.out.rowid), nil
}

// rawError is the error of a failed typed exec: a go-sqlite3 Error (what
// the driver would have returned, for errors.As) with SQLite's message.
func rawError(rc, ext int, msg string) error {
	e := sqlite3.Error{Code: sqlite3.ErrNo(rc & 0xff), ExtendedCode: sqlite3.ErrNoExtended(ext)}
	if msg == "" {
		return e
	}
	return fmt.Errorf("%s: %w", msg, e)
}

var (
	stmtLayoutOnce sync.Once
	stmtField      uintptr // offset of SQLiteStmt.s
	stmtLayoutErr  error
)

// checkStmtLayout verifies, once, that go-sqlite3's SQLiteStmt keeps its
// C statement pointer in a field "s" of type *C.sqlite3_stmt, and records
// its offset for stmtHandle.
func checkStmtLayout() error {
	stmtLayoutOnce.Do(func() {
		f, ok := reflect.TypeOf(sqlite3.SQLiteStmt{}).FieldByName("s")
		if !ok || f.Type.Kind() != reflect.Pointer || f.Type.Elem().Name() != "_Ctype_struct_sqlite3_stmt" ||
			f.Type.Elem().PkgPath() != reflect.TypeOf(sqlite3.SQLiteStmt{}).PkgPath() {
			stmtLayoutErr = fmt.Errorf("persistence: this go-sqlite3 does not keep its statement handle in SQLiteStmt.s "+
				"(a *C.sqlite3_stmt); the writer's typed binds (rawbind.go) need updating for it (found %v)", f.Type)
			return
		}
		stmtField = f.Offset
	})
	return stmtLayoutErr
}

// stmtHandle returns st's sqlite3_stmt pointer and its parameter count,
// after checking that the handle is the statement of query.
func stmtHandle(st *sqlite3.SQLiteStmt, query string) (unsafe.Pointer, int, error) {
	if err := checkStmtLayout(); err != nil {
		return nil, 0, err
	}
	h := *(*unsafe.Pointer)(unsafe.Add(unsafe.Pointer(st), stmtField))
	if h == nil {
		return nil, 0, fmt.Errorf("persistence: prepared statement has no handle: %q", query)
	}
	if sql := C.GoString(C.octo_stmt_sql(h)); sql != query {
		return nil, 0, fmt.Errorf("persistence: the handle of the statement %q reads %q", query, sql)
	}
	return h, int(C.octo_param_count(h)), nil
}

// boundSQL is the statement at handle with its current bindings in place of
// its parameters (sqlite3_expanded_sql): what SQLite still holds of the
// last row. Tests use it to check that octo_exec leaves nothing bound.
func boundSQL(handle unsafe.Pointer) string {
	p := C.octo_expanded_sql(handle)
	if p == nil {
		return ""
	}
	defer C.octo_free(unsafe.Pointer(p))
	return C.GoString(p)
}
