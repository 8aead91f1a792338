package persistence

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
)

// The raw statement is what the writer uses on its hot path: the rows it
// inserts must be the rows database/sql would have inserted.
func TestRawStmtInsertsWhatDatabaseSQLWould(t *testing.T) {
	db, w, st := openTest(t)
	now := time.Now().Truncate(time.Millisecond)
	rec := actors.LockRecord{Name: "raw-lock", Holder: "u-1", HolderID: "worker-7", LeaseID: "0b4c3a8e-6a57-4c7f-9d1e-3f2a1b0c9d8e",
		Token: 1<<62 + 5, ExpiresAt: now.Add(time.Minute), AcquiredAt: now}
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
	// The writer's connection stays usable by database/sql between batches.
	if _, err := w.db.write.Exec(`INSERT INTO meta(key, value) VALUES('raw-test', '1')`); err != nil {
		t.Fatal(err)
	}
}

type (
	namedString string
	namedInt    uint8
)

// rawValue converts what database/sql would (named types by their kind).
func TestRawValue(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want any
		err  string
	}{
		{in: "s", want: "s"}, {in: int64(-3), want: int64(-3)}, {in: 7, want: int64(7)}, {in: true, want: true},
		{in: []byte("b"), want: []byte("b")}, {in: nil, want: nil}, {in: uint64(1 << 63), err: "does not fit"},
		{in: 1.5, want: 1.5}, {in: namedString("alg"), want: "alg"}, {in: namedInt(4), want: int64(4)},
		{in: complex(1, 2), err: "cannot store a complex128"}, {in: struct{}{}, err: "cannot store a struct {}"},
	} {
		got, err := rawValue(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("rawValue(%v) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) || fmt.Sprintf("%T", got) != fmt.Sprintf("%T", tc.want) {
			t.Errorf("rawValue(%v) = %T %v, %v; want %T %v", tc.in, got, got, err, tc.want, tc.want)
		}
	}
}

// BenchmarkRawInsert compares one lock journal insert inside a transaction
// through a database/sql statement bound to the transaction (what the
// writer did) with the raw statement on the driver connection (what it
// does). synchronous=OFF: the commit's fsync is not what is compared.
//
//	go test -run XXX -bench RawInsert -benchmem ./persistence/
func BenchmarkRawInsert(b *testing.B) {
	const batch = 32
	const q = `INSERT INTO lock_log(name, holder, holder_id, lease_id, fencing_token, expires_at, acquired_at) VALUES(?, ?, ?, ?, ?, ?, ?)`
	names := make([]string, batch)
	for i := range names {
		names[i] = fmt.Sprint("lock-", i)
	}
	for _, mode := range []string{"database-sql", "raw"} {
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
					args := []any{names[j], "u-0123456789abcdef", "", "0b4c3a8e-6a57-4c7f-9d1e-3f2a1b0c9d8e", int64(i + j), int64(1700000000000 + i), int64(1700000000000)}
					if mode == "raw" {
						_, err = raw.exec(conn, args...)
					} else {
						var res interface{ LastInsertId() (int64, error) }
						if res, err = ts.ExecContext(ctx, args...); err == nil {
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
				}
				conn.Close()
			}
		})
	}
}
