package persistence

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
)

// The start-up scan (rawscan.go, lockScan.decode) reads every
// column of a lock row as the loader (database/sql, scanLock) does.
func TestLockScanReadsWhatTheLoaderReads(t *testing.T) {
	db, _, st := openTest(t)
	now := time.Now().Truncate(time.Millisecond)
	ms := now.UnixMilli()
	_, err := db.WriteDB().Exec(`INSERT INTO locks(`+lockColumns+`) VALUES
		('full', 'u:1', 'worker-7', '6ba7b810-9dad-11d1-80b4-00c04fd430c8', 9007199254740993, ?, ?, 's-1', 1500, ?, 'u:2', 'host=a'),
		('bare', 'u:2', '', 'lease-1', 1, ?, ?, '', 0, 0, '', '')`,
		ms+60_000, ms, ms+120_000, ms+30_000, ms)
	if err != nil {
		t.Fatal(err)
	}
	var got []actors.LockRecord
	if err := st.ActiveLocks(now, func(r actors.LockRecord) { got = append(got, r) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("ActiveLocks = %+v, want 2 records", got)
	}
	for _, r := range got {
		want, ok, err := st.LoadLock(r.Name)
		if err != nil || !ok {
			t.Fatalf("LoadLock(%s): %v %v", r.Name, ok, err)
		}
		if r != want {
			t.Errorf("%s: the scan read\n %+v\nthe loader\n %+v", r.Name, r, want)
		}
		if r.Name == "full" && (r.Token != 9007199254740993 || r.Metadata != "host=a" || r.LockDelay != 1500*time.Millisecond ||
			r.DelayHolder != "u:2" || r.SessionID != "s-1" || r.HolderID != "worker-7") {
			t.Errorf("full: %+v", r)
		}
	}
}

// ActiveLocks reads every active row once (expired session holds, rows of
// the journal among them), none of the others, across many scan buffers.
func TestActiveLocksReadsEveryRowOnce(t *testing.T) {
	db, w, st := openTest(t)
	now := time.Now().Truncate(time.Millisecond)
	ms := now.UnixMilli()
	want := map[string]bool{}
	tx, err := db.WriteDB().Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		name, exp, session := fmt.Sprintf("l%04d", i), ms+int64(i%100)*1000-10_000, ""
		if i%7 == 0 {
			session = "s" // held while its session lives, whatever its stored expiry
		}
		if _, err := tx.Exec(`INSERT INTO locks(name, holder, lease_id, fencing_token, expires_at, acquired_at, session_id)
			VALUES(?, 'u:1', 'l', 1, ?, ?, ?)`, name, exp, ms, session); err != nil {
			t.Fatal(err)
		}
		if exp > ms || session != "" {
			want[name] = true
		}
	}
	if _, err := tx.Exec(`INSERT INTO locks(name, holder, lease_id, fencing_token, expires_at) VALUES('free', '', '', 3, 0)`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// A journaled record supersedes its row: l0011 (active as a row) is
	// released in the journal.
	ch := make(chan error, 1)
	if _, err := w.Enqueue(actors.PutLock{Lock: actors.LockRecord{Name: "l0011", Token: 2}}, func(err error) { ch <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-ch; err != nil {
		t.Fatal(err)
	}
	delete(want, "l0011")
	got := map[string]int{}
	if err := st.ActiveLocks(now, func(r actors.LockRecord) { got[r.Name]++ }); err != nil {
		t.Fatal(err)
	}
	for name, n := range got {
		if n != 1 || !want[name] {
			t.Errorf("%s read %d times (active: %v)", name, n, want[name])
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d active locks read, want %d", len(got), len(want))
	}
}

// The raw scan (rawscan.go) gives every row once across buffers, a row
// larger than its buffer whole (the buffer grows), the holder's strings
// equal (shared between rows), NULL as the zero value; a float where an
// integer belongs is an error, not a zero.
func TestRawLockScanBuffersAndTypes(t *testing.T) {
	db, _, st := openTest(t)
	now := time.Now().Truncate(time.Millisecond)
	ms := now.UnixMilli()
	big := strings.Repeat("m", 3*rawScanBuf)
	tx, err := db.WriteDB().Begin()
	if err != nil {
		t.Fatal(err)
	}
	const n = 5000 // about 7 buffers of rows
	for i := range n {
		meta := ""
		if i == 2500 {
			meta = big
		}
		if _, err := tx.Exec(`INSERT INTO locks(`+lockColumns+`) VALUES(?, ?, 'w', ?, ?, ?, ?, '', 0, 0, '', ?)`,
			fmt.Sprintf("l%05d", i), fmt.Sprintf("u:%d", i/1000), fmt.Sprintf("lease-%d", i), i+1, ms+60_000, ms, meta); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	q := `SELECT ` + lockColumns + ` FROM locks WHERE holder <> '' AND expires_at > ?`
	var got []actors.LockRecord
	if err := st.scanLockRows(q, []int64{ms}, func(r actors.LockRecord) { got = append(got, r) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d rows read, want %d", len(got), n)
	}
	seen := map[string]bool{}
	for _, r := range got {
		if seen[r.Name] {
			t.Fatalf("%s read twice", r.Name)
		}
		seen[r.Name] = true
		want, ok, err := st.LoadLock(r.Name)
		if err != nil || !ok {
			t.Fatalf("LoadLock(%s): %v %v", r.Name, ok, err)
		}
		if r != want {
			t.Fatalf("%s: the scan read\n %+v\nthe loader\n %+v", r.Name, r, want)
		}
	}
	if m := got[2500].Metadata; len(m) != len(big) {
		t.Errorf("the large row's metadata: %d bytes, want %d", len(m), len(big))
	}

	// NULL reads as the zero value (the schema forbids it; a row written
	// by hand is read as database/sql would).
	q = `SELECT name, NULL, holder_id, lease_id, NULL, expires_at, acquired_at, NULL, lock_delay_ms, available_at, delay_holder, metadata
		FROM locks WHERE name = 'l00001' AND ? > 0`
	got = got[:0]
	if err := st.scanLockRows(q, []int64{1}, func(r actors.LockRecord) { got = append(got, r) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Holder != "" || got[0].Token != 0 || got[0].SessionID != "" || got[0].LeaseID != "lease-1" ||
		!got[0].ExpiresAt.Equal(time.UnixMilli(ms+60_000)) {
		t.Errorf("a row with NULLs read as %+v", got)
	}

	for _, bad := range []string{
		`SELECT name, holder, holder_id, lease_id, 1.5, expires_at, acquired_at, session_id, lock_delay_ms, available_at, delay_holder, metadata FROM locks WHERE ? > 0`,
		`SELECT name, holder, holder_id, 7, fencing_token, expires_at, acquired_at, session_id, lock_delay_ms, available_at, delay_holder, metadata FROM locks WHERE ? > 0`,
		`SELECT name, holder, holder_id, lease_id, fencing_token, 'x', acquired_at, session_id, lock_delay_ms, available_at, delay_holder, metadata FROM locks WHERE ? > 0`,
		`SELECT name FROM locks WHERE ? > 0`,
	} {
		if err := st.scanLockRows(bad, []int64{1}, func(actors.LockRecord) {}); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// HeldLocks reads every lock with a holder once, in one pass in name order
// through the partial index of held rows (no sort: the plan says so), then
// the journal's newer records; together they are exactly what ActiveLocks
// and ExpiredLocks give.
func TestHeldLocksOnePassInNameOrder(t *testing.T) {
	db, w, st := openTest(t)
	now := time.Now().Truncate(time.Millisecond)
	ms := now.UnixMilli()
	rows := []struct {
		name, holder, session string
		exp                   int64
	}{
		{"d-active", "u:1", "", ms + 60_000},
		{"b-expired", "u:1", "", ms - 1},
		{"c-session", "u:2", "s-1", ms - 60_000}, // held while its session lives
		{"a-free", "", "", 0},
		{"e-released-in-journal", "u:1", "", ms + 60_000},
		{"f-active", "u:2", "", ms + 1},
	}
	for _, r := range rows {
		if _, err := db.WriteDB().Exec(`INSERT INTO locks(name, holder, lease_id, fencing_token, expires_at, acquired_at, session_id)
			VALUES(?, ?, 'l', 1, ?, ?, ?)`, r.name, r.holder, r.exp, ms, r.session); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []actors.LockRecord{
		{Name: "e-released-in-journal", Token: 2},
		{Name: "0-acquired-in-journal", Holder: "u:3", LeaseID: "l", Token: 1, ExpiresAt: now.Add(time.Minute), AcquiredAt: now},
	} {
		ch := make(chan error, 1)
		if _, err := w.Enqueue(actors.PutLock{Lock: m}, func(err error) { ch <- err }); err != nil {
			t.Fatal(err)
		}
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	var held []string
	if err := st.HeldLocks(now, func(r actors.LockRecord) { held = append(held, r.Name) }); err != nil {
		t.Fatal(err)
	}
	want := []string{"b-expired", "c-session", "d-active", "f-active", "0-acquired-in-journal"}
	if fmt.Sprint(held) != fmt.Sprint(want) {
		t.Errorf("HeldLocks = %q,\nwant %q (rows in name order, then the journal)", held, want)
	}
	var both []string
	collect := func(r actors.LockRecord) { both = append(both, r.Name) }
	if err := st.ActiveLocks(now, collect); err != nil {
		t.Fatal(err)
	}
	if err := st.ExpiredLocks(now, collect); err != nil {
		t.Fatal(err)
	}
	slices.Sort(both)
	slices.Sort(want)
	if fmt.Sprint(both) != fmt.Sprint(want) {
		t.Errorf("ActiveLocks + ExpiredLocks = %q, want %q", both, want)
	}

	plan, err := db.ReadDB().Query(`EXPLAIN QUERY PLAN ` + heldLocksQuery)
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	var steps []string
	for plan.Next() {
		var id, parent, unused int
		var detail string
		if err := plan.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		steps = append(steps, detail)
	}
	if p := strings.Join(steps, "; "); p != "SCAN locks USING INDEX locks_held" {
		t.Errorf("plan of the held-lock scan: %q, want one scan of locks_held and no sort", p)
	}
}
