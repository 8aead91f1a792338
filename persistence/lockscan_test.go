package persistence

import (
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
)

// The start-up scan (the driver's values, lockFromValues) reads every
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
