package persistence

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/octostore/octostore/actors"
)

// The lock journal.
//
// Lock writes are the hot durable path (every acquire, renew and release).
// Updating the `locks` row in place dirties one random B-tree leaf page per
// lock, and SQLite writes (and fsyncs) whole pages to the WAL: a commit of 64
// lock writes moved ~256 KiB. Instead the writer appends each lock write to
// `lock_log` (rowid order, so a batch shares a few pages) and folds the
// journal into `locks` in bulk once it has foldThreshold rows — inside a
// normal batch transaction, so the fold costs no extra fsync and is atomic —
// and completely when the writer starts.
//
// Reads must see journal rows not folded yet: the writer keeps the newest
// journaled record of every unfolded lock in `latest` (at most
// foldThreshold + one batch entries) and LoadLock/ActiveLocks consult it
// first.
type lockLog struct {
	// mu guards latest. The writer goroutine writes it after each commit;
	// loaders read it from any goroutine.
	mu     sync.Mutex
	latest map[string]loggedLock

	rows int   // journal rows not folded (writer goroutine only)
	last int64 // seq of the newest journal row (writer goroutine only)

	// per-batch scratch (writer goroutine only)
	appended []loggedLock
	foldTo   int64 // this batch's transaction folds rows with seq <= foldTo (0: no fold)
}

type loggedLock struct {
	seq int64
	rec actors.LockRecord
}

// foldThreshold is the journal size that triggers a fold.
const foldThreshold = 4096

const foldSQL = `INSERT INTO locks(` + lockColumns + `)
	SELECT ` + lockColumns + ` FROM lock_log
	WHERE seq IN (SELECT max(seq) FROM lock_log WHERE seq <= ? GROUP BY name)
	ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, holder_id = excluded.holder_id, lease_id = excluded.lease_id,
		fencing_token = excluded.fencing_token, expires_at = excluded.expires_at, acquired_at = excluded.acquired_at,
		session_id = excluded.session_id, lock_delay_ms = excluded.lock_delay_ms, available_at = excluded.available_at,
		delay_holder = excluded.delay_holder, metadata = excluded.metadata`

func newLockLog() *lockLog { return &lockLog{latest: map[string]loggedLock{}} }

// foldAll folds the whole journal (at start, before the writer runs).
func (l *lockLog) foldAll(db *sql.DB) error {
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("fold lock journal: %w", err)
	}
	if err := fold(ctx, tx, 1<<62); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("fold lock journal: %w", err)
	}
	return nil
}

func fold(ctx context.Context, tx *sql.Tx, upTo int64) error {
	if _, err := tx.ExecContext(ctx, foldSQL, upTo); err != nil {
		return fmt.Errorf("fold lock journal: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM lock_log WHERE seq <= ?`, upTo); err != nil {
		return fmt.Errorf("fold lock journal: %w", err)
	}
	return nil
}

// begin is called at the start of a batch transaction: it folds the journal
// in the same transaction when it has grown past the threshold.
func (l *lockLog) begin(ctx context.Context, tx *sql.Tx) error {
	l.appended = l.appended[:0]
	l.foldTo = 0
	if l.rows < foldThreshold {
		return nil
	}
	if err := fold(ctx, tx, l.last); err != nil {
		return err
	}
	l.foldTo = l.last
	return nil
}

// append records one lock write journaled inside the batch transaction
// (batchTx.PutLock inserted it as row seq), to be published once the batch
// commits.
func (l *lockLog) append(seq int64, r actors.LockRecord) {
	l.appended = append(l.appended, loggedLock{seq: seq, rec: r})
}

// committed publishes the batch's journal rows to readers, after a
// successful commit and before any waiter is told.
func (l *lockLog) committed() {
	l.mu.Lock()
	if l.foldTo > 0 {
		for name, e := range l.latest {
			if e.seq <= l.foldTo {
				delete(l.latest, name)
			}
		}
		l.rows = 0
	}
	for _, e := range l.appended {
		l.latest[e.rec.Name] = e
		l.last = e.seq
	}
	l.rows += len(l.appended)
	l.mu.Unlock()
	l.appended = l.appended[:0]
	l.foldTo = 0
}

// rolledBack forgets the batch's scratch after a failed commit.
func (l *lockLog) rolledBack() {
	l.appended = l.appended[:0]
	l.foldTo = 0
}

// lookup returns the newest unfolded record of name.
func (l *lockLog) lookup(name string) (actors.LockRecord, bool) {
	l.mu.Lock()
	e, ok := l.latest[name]
	l.mu.Unlock()
	return e.rec, ok
}

// snapshot copies the unfolded records.
func (l *lockLog) snapshot() map[string]actors.LockRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]actors.LockRecord, len(l.latest))
	for name, e := range l.latest {
		out[name] = e.rec
	}
	return out
}
