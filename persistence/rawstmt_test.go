package persistence

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/octostore/octostore/actors"
)

// The raw statement is what the writer uses on its hot path: the rows it
// inserts must be the rows database/sql would have inserted.
func TestRawStmtInsertsWhatDatabaseSQLWould(t *testing.T) {
	db, w, st := openTest(t)
	now := fromMS(ms(time.Now())) // as the database gives times back (UTC, ms)
	rec := actors.LockRecord{Name: "raw-lock", Holder: "u-1", HolderID: "worker-7", LeaseID: "0b4c3a8e-6a57-4c7f-9d1e-3f2a1b0c9d8e",
		Token: 1<<62 + 5, ExpiresAt: now.Add(time.Minute), AcquiredAt: now, SessionID: "s-9", LockDelay: 1500 * time.Millisecond,
		AvailableAt: now.Add(2 * time.Minute), DelayHolder: "u-2", Metadata: "host=web-1 pid=42 ✓"}
	if err := st.Apply(actors.PutLock{Lock: rec}); err != nil {
		t.Fatal(err)
	}
	var name, holder, holderID, lease string
	var token, exp, acq int64
	if err := db.read.QueryRow(`SELECT name, holder, holder_id, lease_id, fencing_token, expires_at, acquired_at FROM lock_log`).
		Scan(&name, &holder, &holderID, &lease, &token, &exp, &acq); err != nil {
		t.Fatal(err)
	}
	if name != rec.Name || holder != rec.Holder || holderID != rec.HolderID || lease != rec.LeaseID ||
		uint64(token) != rec.Token || exp != ms(rec.ExpiresAt) || acq != ms(rec.AcquiredAt) {
		t.Fatalf("row %q %q %q %q %d %d %d, want %+v", name, holder, holderID, lease, token, exp, acq, rec)
	}
	got, ok, err := st.LoadLock("raw-lock")
	if err != nil || !ok || got != rec {
		t.Fatalf("LoadLock = %+v, %v, %v; want %+v", got, ok, err, rec)
	}
	// Every column, as the journal's reader scans it from the row itself
	// (not the writer's in-memory copy).
	got, err = scanLock(db.read.QueryRow(`SELECT ` + lockColumns + ` FROM lock_log WHERE name = 'raw-lock'`))
	if err != nil || got != rec {
		t.Fatalf("journal row = %+v, %v; want %+v", got, err, rec)
	}
	// The writer's connection stays usable by database/sql between batches.
	if _, err := w.db.write.Exec(`INSERT INTO meta(key, value) VALUES('raw-test', '1')`); err != nil {
		t.Fatal(err)
	}
}

// A batch in which one typed insert fails (here a trigger refuses one lock
// row in the middle) fails every write in it: each done callback and each
// AfterCommit waiter gets ErrUnavailable, none of the batch's rows (locks,
// limits, flags) is in the database or in the journal readers see, and the
// next batch commits normally on the same statements.
func TestTypedBatchFailureFailsEveryWrite(t *testing.T) {
	db, w, st := openTest(t)
	if _, err := db.write.Exec(`CREATE TRIGGER poison BEFORE INSERT ON lock_log WHEN NEW.name = 'poison'
		BEGIN SELECT RAISE(ABORT, 'poisoned row'); END`); err != nil {
		t.Fatal(err)
	}
	// Hold the writer in a first batch so that the writes below are queued
	// together and form the next one.
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	w.SetFaultHook(func() error {
		once.Do(func() { close(entered); <-release })
		return nil
	})
	gate := make(chan error, 1)
	if _, err := w.Enqueue(lockRec("gate", 1), func(err error) { gate <- err }); err != nil {
		t.Fatal(err)
	}
	<-entered
	now := time.Now().Truncate(time.Millisecond)
	muts := []actors.Mutation{
		lockRec("a", 1),
		actors.PutLimits{Rows: []actors.LimitRow{{Owner: "u-1", Name: "api", MaxRequests: 10, WindowSeconds: 1, Log: []byte{1}, UpdatedAt: now}}},
		lockRec("poison", 1),
		lockRec("b", 1),
		actors.PutFlag{Flag: actors.FlagRecord{Owner: "u-1", Name: "beta", Enabled: true, Percentage: 30, CreatedAt: now, UpdatedAt: now}},
	}
	dones := make([]chan error, len(muts))
	seqs := make([]uint64, len(muts))
	for i, m := range muts {
		dones[i] = make(chan error, 1)
		ch := dones[i]
		seq, err := w.Enqueue(m, func(err error) { ch <- err })
		if err != nil {
			t.Fatal(err)
		}
		seqs[i] = seq
	}
	close(release)
	if err := <-gate; err != nil {
		t.Fatalf("gate write: %v", err)
	}
	for i := range muts {
		if err := <-dones[i]; !errors.Is(err, actors.ErrUnavailable) || !strings.Contains(err.Error(), "poisoned row") {
			t.Errorf("write %d (%s): %v, want ErrUnavailable with the cause", i, muts[i].Table(), err)
		}
		got := make(chan error, 1)
		w.AfterCommit(seqs[i], func(err error) { got <- err })
		if err := <-got; !errors.Is(err, actors.ErrUnavailable) {
			t.Errorf("AfterCommit of write %d: %v, want ErrUnavailable", i, err)
		}
	}
	for _, name := range []string{"a", "b", "poison"} {
		if _, ok, err := st.LoadLock(name); ok || err != nil {
			t.Errorf("lock %s of the failed batch readable (%v)", name, err)
		}
	}
	var n int
	if err := db.read.QueryRow(`SELECT (SELECT count(*) FROM lock_log WHERE name <> 'gate') + (SELECT count(*) FROM limits) + (SELECT count(*) FROM flags)`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows of the failed batch in the database (%v)", n, err)
	}
	if w.Healthy() {
		t.Fatal("writer healthy after a failed batch")
	}
	if _, err := db.write.Exec(`DROP TRIGGER poison`); err != nil {
		t.Fatal(err)
	}
	for _, m := range muts {
		if err := st.Apply(m); err != nil {
			t.Fatalf("%s after the failure: %v", m.Table(), err)
		}
	}
	for _, name := range []string{"a", "b", "poison"} {
		want := muts[0].(actors.PutLock).Lock
		want.Name = name
		if got, ok, err := st.LoadLock(name); !ok || err != nil || got.Holder != want.Holder || got.Token != 1 {
			t.Errorf("lock %s after the failure: %+v, %v, %v", name, got, ok, err)
		}
	}
	if f, ok, err := st.LoadFlag("u-1", "beta"); !ok || err != nil || !f.Enabled || f.Percentage != 30 {
		t.Errorf("flag after the failure: %+v, %v, %v", f, ok, err)
	}
}

// rawTestConn is the write connection of a fresh database whose writer is
// stopped, with ddl applied (when not empty): what the typed-row tests run
// their statements on, as the writer does. The connection is closed at the
// end of the test.
func rawTestConn(t *testing.T, ddl string) *sql.Conn {
	t.Helper()
	db, w, _ := openTest(t)
	w.Close()
	if ddl != "" {
		if _, err := db.write.Exec(ddl); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := db.write.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// rawValueTable has one column of every kind the typed row binds.
const rawValueTable = `CREATE TABLE raw_values(i INTEGER, t TEXT, b BLOB, n)`

// What the typed row stores is what go-sqlite3 stores for the same Go
// values through database/sql: same type and same value, read back with
// typeof() and quote(), for every kind of argument and its edges (the
// empty text is not NULL, a nil blob is NULL and an empty one is not,
// embedded NUL bytes are kept, a uint64 token beyond int64 wraps as
// lockRow stores it).
func TestRawRowBindsWhatGoSQLite3Would(t *testing.T) {
	conn := rawTestConn(t, rawValueTable)
	type val struct {
		i    any // int64 or bool or nil
		t    string
		b    []byte
		null bool
	}
	vals := []val{
		{i: int64(0), t: "", b: nil},
		{i: int64(-1), t: "a", b: []byte{}},
		{i: int64(math.MaxInt64), t: "héllo wörld ✓", b: []byte{0, 1, 2, 255}},
		{i: int64(math.MinInt64), t: "nul\x00inside", b: []byte("x")},
		{i: int64(1<<62 + 5), t: strings.Repeat("long ", 300), b: make([]byte, 2000)},
		{i: true, t: "0b4c3a8e-6a57-4c7f-9d1e-3f2a1b0c9d8e"},
		{i: false, t: "u-0123456789abcdef"},
		{i: nil, null: true},
	}
	ctx := context.Background()
	raw := newRawStmt(`INSERT INTO raw_values(i, t, b, n) VALUES(?, ?, ?, ?)`)
	defer raw.close(conn)
	for k, v := range vals {
		var n any
		if !v.null {
			n = int64(k)
		}
		if _, err := conn.ExecContext(ctx, `INSERT INTO raw_values(i, t, b, n) VALUES(?, ?, ?, ?)`, v.i, v.t, v.b, n); err != nil {
			t.Fatal(err)
		}
		row := raw.row()
		switch i := v.i.(type) {
		case int64:
			row.int(i)
		case bool:
			row.bool(i)
		default:
			row.null()
		}
		if k%2 == 0 {
			row.text(v.t)
		} else {
			row.textBytes([]byte(v.t))
		}
		row.blob(v.b)
		if v.null {
			row.null()
		} else {
			row.int(int64(k))
		}
		if _, err := raw.exec(conn); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := conn.QueryContext(ctx, `SELECT typeof(i), quote(i), typeof(t), quote(t), length(t), typeof(b), quote(b), typeof(n), quote(n) FROM raw_values ORDER BY rowid`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var c [9]sql.NullString
		if err := rows.Scan(&c[0], &c[1], &c[2], &c[3], &c[4], &c[5], &c[6], &c[7], &c[8]); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprint(c))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if len(got) != 2*len(vals) {
		t.Fatalf("%d rows, want %d", len(got), 2*len(vals))
	}
	for k := range vals {
		if sqlRow, rawRow := got[2*k], got[2*k+1]; sqlRow != rawRow {
			if len(sqlRow) > 300 {
				sqlRow, rawRow = sqlRow[:300]+"…", rawRow[:min(300, len(rawRow))]+"…"
			}
			t.Errorf("value %d: database/sql stored %s, the typed row %s", k, sqlRow, rawRow)
		}
	}
}

// A failing typed exec returns SQLite's error (a go-sqlite3 Error, with
// the message), leaves nothing bound, and the statement runs again
// afterwards; a row of the wrong length is refused before SQLite sees it.
func TestRawRowErrors(t *testing.T) {
	conn := rawTestConn(t, `CREATE TABLE raw_strict(k TEXT PRIMARY KEY, v INTEGER NOT NULL)`)
	ctx := context.Background()
	raw := newRawStmt(`INSERT INTO raw_strict(k, v) VALUES(?, ?)`)
	defer raw.close(conn)
	insert := func(k string, v *int64) (int64, error) {
		row := raw.row()
		row.text(k)
		if v == nil {
			row.null()
		} else {
			row.int(*v)
		}
		return raw.exec(conn)
	}
	one := int64(1)
	if id, err := insert("a", &one); err != nil || id != 1 {
		t.Fatalf("first insert: rowid %d, %v", id, err)
	}
	_, err := insert("a", &one)
	var se sqlite3.Error
	if !errors.As(err, &se) || se.Code != sqlite3.ErrConstraint || se.ExtendedCode != sqlite3.ErrConstraintPrimaryKey ||
		!strings.Contains(err.Error(), "UNIQUE constraint failed: raw_strict.k") {
		t.Fatalf("duplicate key: %v (%#v), want a primary key constraint error with its message", err, se)
	}
	if _, err = insert("b", nil); !errors.As(err, &se) || se.ExtendedCode != sqlite3.ErrConstraintNotNull {
		t.Fatalf("NULL into NOT NULL: %v, want a not-null constraint error", err)
	}
	if id, err := insert("b", &one); err != nil || id != 2 {
		t.Fatalf("insert after the failures: rowid %d, %v", id, err)
	}
	raw.row().text("c")
	if _, err := raw.exec(conn); err == nil || !strings.Contains(err.Error(), "1 arguments for a statement of 2 parameters") {
		t.Fatalf("short row: %v", err)
	}
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM raw_strict`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d rows, %v; want 2", n, err)
	}
}

// After a typed exec SQLite holds nothing of the row: its text and blob
// binds pointed into the row's buffer (Go memory, reused for the next row)
// without a copy, so octo_exec must clear them before it returns, on
// success and on failure alike.
func TestRawRowLeavesNothingBound(t *testing.T) {
	conn := rawTestConn(t, `CREATE TABLE raw_bound(k TEXT PRIMARY KEY, b BLOB, i INTEGER)`)
	raw := newRawStmt(`INSERT INTO raw_bound(k, b, i) VALUES(?, ?, ?)`)
	defer raw.close(conn)
	const cleared = `INSERT INTO raw_bound(k, b, i) VALUES(NULL, NULL, NULL)`
	for i, k := range []string{"key-1", "key-1"} { // the second fails: duplicate key
		row := raw.row()
		row.text(k)
		row.blob([]byte("blob bytes"))
		row.int(42)
		_, err := raw.exec(conn)
		if (err != nil) != (i == 1) {
			t.Fatalf("exec %d: %v", i, err)
		}
		if got := boundSQL(raw.handle); got != cleared {
			t.Fatalf("after exec %d SQLite still holds %q, want %q", i, got, cleared)
		}
	}
}

// The handle the typed binds use is read from go-sqlite3's statement at
// the offset reflection reports; the check that guards it passes on the
// go-sqlite3 this module builds with, and a handle is accepted only for
// the statement whose SQL it reads.
func TestStmtLayout(t *testing.T) {
	if err := checkStmtLayout(); err != nil {
		t.Fatal(err)
	}
	conn := rawTestConn(t, "")
	err := conn.Raw(func(dc any) error {
		st, err := dc.(*sqlite3.SQLiteConn).Prepare(`SELECT ?, ?`)
		if err != nil {
			return err
		}
		defer st.Close()
		if _, n, err := stmtHandle(st.(*sqlite3.SQLiteStmt), `SELECT ?, ?`); err != nil || n != 2 {
			return fmt.Errorf("stmtHandle: %d parameters, %v", n, err)
		}
		if _, _, err := stmtHandle(st.(*sqlite3.SQLiteStmt), `SELECT 1`); err == nil {
			return errors.New("a handle was accepted for another statement's SQL")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkRawInsert compares one lock journal insert (the 12 columns of
// lockRow) inside a transaction through a database/sql statement bound to
// the transaction (what the writer did first), through go-sqlite3's own
// binds on the driver connection (what it did next), and with the typed
// row (what it does). synchronous=OFF: the commit's fsync is not what is
// compared.
//
//	go test -run XXX -bench RawInsert -benchmem ./persistence/
func BenchmarkRawInsert(b *testing.B) {
	const batch = 32
	q := `INSERT INTO lock_log(` + lockColumns + `) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	recs := make([]actors.LockRecord, batch)
	now := time.Now()
	for i := range recs {
		recs[i] = actors.LockRecord{Name: fmt.Sprint("lock-", i), Holder: "u-0123456789abcdef",
			LeaseID: "0b4c3a8e-6a57-4c7f-9d1e-3f2a1b0c9d8e", Token: uint64(1000 + i), ExpiresAt: now.Add(30 * time.Second), AcquiredAt: now}
	}
	args := func(r *actors.LockRecord) []any {
		return []any{r.Name, r.Holder, r.HolderID, r.LeaseID, int64(r.Token), ms(r.ExpiresAt), ms(r.AcquiredAt),
			r.SessionID, r.LockDelay.Milliseconds(), ms(r.AvailableAt), r.DelayHolder, r.Metadata}
	}
	for _, mode := range []string{"database-sql", "driver", "typed"} {
		b.Run(mode, func(b *testing.B) {
			db, w, _ := openTest(b)
			w.Close()
			ctx := context.Background()
			if _, err := db.write.Exec("PRAGMA synchronous=OFF"); err != nil {
				b.Fatal(err)
			}
			st, err := db.write.Prepare(q)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			raw := newRawStmt(q)
			var drv *sqlite3.SQLiteStmt
			nv := make([]driver.NamedValue, 12)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				conn, err := db.write.Conn(ctx)
				if err != nil {
					b.Fatal(err)
				}
				tx, err := conn.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				ts := tx.StmtContext(ctx, st)
				for j := 0; j < batch; j++ {
					r := &recs[j]
					switch mode {
					case "typed":
						lockRow(raw.row(), r)
						_, err = raw.exec(conn)
					case "driver":
						err = conn.Raw(func(dc any) error {
							if drv == nil {
								s, err := dc.(*sqlite3.SQLiteConn).Prepare(q)
								if err != nil {
									return err
								}
								drv = s.(*sqlite3.SQLiteStmt)
							}
							for k, a := range args(r) {
								nv[k] = driver.NamedValue{Ordinal: k + 1, Value: a}
							}
							res, err := drv.ExecContext(ctx, nv)
							if err == nil {
								_, err = res.LastInsertId()
							}
							return err
						})
					default:
						var res sql.Result
						if res, err = ts.ExecContext(ctx, args(r)...); err == nil {
							_, err = res.LastInsertId()
						}
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
				if i+batch >= b.N {
					raw.close(conn)
					if drv != nil {
						conn.Raw(func(any) error { return drv.Close() })
						drv = nil
					}
				}
				conn.Close()
			}
		})
	}
}
