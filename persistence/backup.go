package persistence

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// BackupInfo describes a finished backup.
type BackupInfo struct {
	Path          string        `json:"path"`
	Bytes         int64         `json:"bytes"`
	Pages         int           `json:"pages"`
	SchemaVersion int           `json:"schema_version"`
	Locks         int64         `json:"locks"` // lock rows (held or not)
	Took          time.Duration `json:"took_ns"`
}

// Backup writes a consistent copy of the database at src to the new file
// dst with SQLite's online backup API, while a server may keep writing src:
// the copy is taken in one step inside one read transaction, so it is the
// state after some commit (a prefix of the acknowledged writes), never a
// mix. The copy is switched to rollback-journal mode (one self-contained
// file), checked with PRAGMA integrity_check, synced, and only then renamed
// to dst. dst must not exist; it is created 0600 (readable by its owner
// only), as the database is.
func Backup(ctx context.Context, src, dst string) (BackupInfo, error) {
	start := time.Now()
	info := BackupInfo{Path: dst}
	if _, err := os.Stat(src); err != nil {
		return info, fmt.Errorf("backup: source database: %w", err)
	}
	if _, err := os.Stat(dst); err == nil {
		return info, fmt.Errorf("backup: %s already exists; remove it or choose another path", dst)
	}
	tmp := dst + ".partial"
	os.Remove(tmp)
	defer os.Remove(tmp) // no-op after the rename
	// The copy holds everything the database does: owner-only, whatever the
	// umask (SQLite keeps the mode of the empty file it is given, and gives
	// it to the copy's journal too).
	if err := createPrivate(tmp); err != nil {
		return info, fmt.Errorf("backup: create %s: %w", tmp, err)
	}

	// The source is opened without any pragma that would change it; the
	// busy timeout waits out the server's write transactions at the start
	// of the read transaction.
	srcDB, err := sql.Open("sqlite3", "file:"+src+"?_busy_timeout=10000")
	if err != nil {
		return info, fmt.Errorf("backup: open %s: %w", src, err)
	}
	defer srcDB.Close()
	dstDB, err := sql.Open("sqlite3", "file:"+tmp)
	if err != nil {
		return info, fmt.Errorf("backup: create %s: %w", tmp, err)
	}
	defer dstDB.Close()
	srcConn, err := srcDB.Conn(ctx)
	if err != nil {
		return info, fmt.Errorf("backup: open %s: %w", src, err)
	}
	defer srcConn.Close()
	dstConn, err := dstDB.Conn(ctx)
	if err != nil {
		return info, fmt.Errorf("backup: create %s: %w", tmp, err)
	}
	defer dstConn.Close()

	err = dstConn.Raw(func(d any) error {
		dc, ok := d.(*sqlite3.SQLiteConn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", d)
		}
		return srcConn.Raw(func(s any) error {
			sc, ok := s.(*sqlite3.SQLiteConn)
			if !ok {
				return fmt.Errorf("unexpected driver connection %T", s)
			}
			for attempt := 0; ; attempt++ {
				b, err := dc.Backup("main", sc, "main")
				if err != nil {
					return err
				}
				// -1: every page in one step, under one read lock of the
				// source: a snapshot. WAL mode lets the server go on writing.
				done, err := b.Step(-1)
				info.Pages = b.PageCount()
				ferr := b.Finish()
				switch {
				case err != nil:
					return err
				case done:
					return ferr
				case attempt >= 200: // Step answers not done while the source is busy or locked
					return errors.New("the source database stayed locked; is another backup or a long transaction running?")
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(50 * time.Millisecond):
				}
			}
		})
	})
	if err != nil {
		return info, fmt.Errorf("backup: copy %s: %w", src, err)
	}
	if _, err := dstConn.ExecContext(ctx, "PRAGMA journal_mode=DELETE"); err != nil {
		return info, fmt.Errorf("backup: %w", err)
	}
	// Fold the lock journal into the copy's locks table, as a start does,
	// so the copy reads like a quiescent database (no-op before 0003).
	var hasLog int
	_ = dstConn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE name = 'lock_log'").Scan(&hasLog)
	if hasLog == 1 {
		if _, err := dstConn.ExecContext(ctx, foldSQL, int64(1<<62)); err != nil {
			return info, fmt.Errorf("backup: fold lock journal: %w", err)
		}
		if _, err := dstConn.ExecContext(ctx, "DELETE FROM lock_log"); err != nil {
			return info, fmt.Errorf("backup: fold lock journal: %w", err)
		}
	}
	if err := integrityCheck(ctx, dstConn, "integrity_check"); err != nil {
		return info, fmt.Errorf("backup: the copy fails its integrity check: %w", err)
	}
	if err := dstConn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&info.SchemaVersion); err != nil {
		return info, fmt.Errorf("backup: %w", err)
	}
	// A database without the locks table (not an octostore database, or an
	// empty one) is still copied; Locks stays 0.
	_ = dstConn.QueryRowContext(ctx, "SELECT count(*) FROM locks").Scan(&info.Locks)
	dstConn.Close()
	if err := dstDB.Close(); err != nil {
		return info, fmt.Errorf("backup: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		return info, fmt.Errorf("backup: sync: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return info, fmt.Errorf("backup: %w", err)
	}
	if err := syncFile(filepath.Dir(dst)); err != nil {
		return info, fmt.Errorf("backup: sync directory: %w", err)
	}
	st, err := os.Stat(dst)
	if err != nil {
		return info, err
	}
	info.Bytes = st.Size()
	info.Took = time.Since(start)
	return info, nil
}

func integrityCheck(ctx context.Context, c *sql.Conn, pragma string) error {
	rows, err := c.QueryContext(ctx, "PRAGMA "+pragma)
	if err != nil {
		return err
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return err
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
