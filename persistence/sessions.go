package persistence

import (
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/octostore/octostore/actors"
)

// Sessions (migrations/*_sessions.sql): one row per session, rewritten by every
// keepalive (a primary-key upsert of one short row) and deleted once the
// session has ended and every lock of it has recorded its end.

var _ actors.SessionStore = (*Store)(nil)

const sessionColumns = `id, owner, ttl_ms, lock_delay_ms, expires_at, created_at`

// PutSession implements actors.MutationWriter.
func (b *batchTx) PutSession(r actors.SessionRecord) error {
	_, err := b.tx.StmtContext(b.ctx, b.stmts.putSession).ExecContext(b.ctx, r.ID, r.Owner, r.TTL.Milliseconds(),
		r.LockDelay.Milliseconds(), ms(r.ExpiresAt), ms(r.CreatedAt))
	return err
}

// RemoveSession implements actors.MutationWriter.
func (b *batchTx) RemoveSession(id string) error {
	_, err := b.tx.ExecContext(b.ctx, `DELETE FROM sessions WHERE id = ?`, id)
	return err
}

const putSessionSQL = `INSERT INTO sessions(` + sessionColumns + `) VALUES(?, ?, ?, ?, ?, ?)
	ON CONFLICT(id) DO UPDATE SET owner = excluded.owner, ttl_ms = excluded.ttl_ms,
		lock_delay_ms = excluded.lock_delay_ms, expires_at = excluded.expires_at, created_at = excluded.created_at`

type rowScanner interface{ Scan(dest ...any) error }

func scanSession(sc rowScanner) (actors.SessionRecord, error) {
	var r actors.SessionRecord
	var ttl, delay, exp, created int64
	if err := sc.Scan(&r.ID, &r.Owner, &ttl, &delay, &exp, &created); err != nil {
		return r, err
	}
	r.TTL, r.LockDelay = time.Duration(ttl)*time.Millisecond, time.Duration(delay)*time.Millisecond
	r.ExpiresAt, r.CreatedAt = fromMS(exp), fromMS(created)
	return r, nil
}

// LoadSession implements actors.SessionStore.
func (s *Store) LoadSession(id string) (actors.SessionRecord, bool, error) {
	r, err := scanSession(s.db.read.QueryRow(`SELECT `+sessionColumns+` FROM sessions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return actors.SessionRecord{ID: id}, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("load session %q: %w", id, err)
	}
	return r, true, nil
}

// Sessions implements actors.SessionStore.
func (s *Store) Sessions(fn func(actors.SessionRecord)) error {
	rows, err := s.db.read.Query(`SELECT ` + sessionColumns + ` FROM sessions`)
	if err != nil {
		return fmt.Errorf("load sessions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanSession(rows)
		if err != nil {
			return fmt.Errorf("load sessions: %w", err)
		}
		fn(r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load sessions: %w", err)
	}
	return nil
}
