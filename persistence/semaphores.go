package persistence

import (
	"database/sql"
	"errors"
	"fmt"
	"sort"

	"github.com/octostore/octostore/actors"
)

// Semaphores (migrations/*_semaphores.sql): the head row (limit, last fencing token) and
// one row per held slot. A grant writes the head and its slot; a release or
// expiry deletes slots and keeps the head (the token never goes back).

var _ actors.SemaphoreStore = (*Store)(nil)

const slotColumns = `lease_id, holder, holder_id, fencing_token, session_id, expires_at, acquired_at, metadata`

// Statements of PutSemaphore, prepared once (semaphoreStmts).
const (
	putSemaphoreSQL = `INSERT INTO semaphores(name, max_holders, fencing_token) VALUES(?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET max_holders = excluded.max_holders, fencing_token = excluded.fencing_token`
	putSlotSQL = `INSERT INTO semaphore_slots(name, ` + slotColumns + `) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(name, lease_id) DO UPDATE SET expires_at = excluded.expires_at, session_id = excluded.session_id,
			metadata = excluded.metadata`
	deleteSlotSQL = `DELETE FROM semaphore_slots WHERE name = ? AND lease_id = ?`
)

type semaphoreStmts struct{ head, slot, del *sql.Stmt }

func prepareSemaphores(db *sql.DB) (*semaphoreStmts, error) {
	s := &semaphoreStmts{}
	var err error
	for _, p := range []struct {
		st  **sql.Stmt
		sql string
	}{{&s.head, putSemaphoreSQL}, {&s.slot, putSlotSQL}, {&s.del, deleteSlotSQL}} {
		if *p.st, err = db.Prepare(p.sql); err != nil {
			s.close()
			return nil, fmt.Errorf("prepare: %w", err)
		}
	}
	return s, nil
}

func (s *semaphoreStmts) close() {
	for _, st := range []*sql.Stmt{s.head, s.slot, s.del} {
		if st != nil {
			st.Close()
		}
	}
}

// PutSemaphore implements actors.MutationWriter.
func (b *batchTx) PutSemaphore(m actors.PutSemaphore) error {
	st := b.stmts.sem
	if _, err := b.tx.StmtContext(b.ctx, st.head).ExecContext(b.ctx, m.Name, m.Limit, int64(m.Token)); err != nil {
		return err
	}
	if len(m.Put) > 0 {
		put := b.tx.StmtContext(b.ctx, st.slot)
		for _, sl := range m.Put {
			if _, err := put.ExecContext(b.ctx, m.Name, sl.LeaseID, sl.Holder, sl.HolderID, int64(sl.Token), sl.SessionID,
				ms(sl.ExpiresAt), ms(sl.AcquiredAt), sl.Metadata); err != nil {
				return err
			}
		}
	}
	if len(m.Remove) > 0 {
		del := b.tx.StmtContext(b.ctx, st.del)
		for _, lease := range m.Remove {
			if _, err := del.ExecContext(b.ctx, m.Name, lease); err != nil {
				return err
			}
		}
	}
	return nil
}

func scanSlot(sc rowScanner) (actors.SemaphoreSlot, error) {
	var sl actors.SemaphoreSlot
	var token, exp, acq int64
	err := sc.Scan(&sl.LeaseID, &sl.Holder, &sl.HolderID, &token, &sl.SessionID, &exp, &acq, &sl.Metadata)
	sl.Token, sl.ExpiresAt, sl.AcquiredAt = uint64(token), fromMS(exp), fromMS(acq)
	return sl, err
}

// LoadSemaphore implements actors.SemaphoreStore.
func (s *Store) LoadSemaphore(name string) (actors.SemaphoreRecord, bool, error) {
	r := actors.SemaphoreRecord{Name: name}
	var token int64
	err := s.db.read.QueryRow(`SELECT max_holders, fencing_token FROM semaphores WHERE name = ?`, name).Scan(&r.Limit, &token)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return r, false, nil
	case err != nil:
		return r, false, fmt.Errorf("load semaphore %q: %w", name, err)
	}
	r.Token = uint64(token)
	rows, err := s.db.read.Query(`SELECT `+slotColumns+` FROM semaphore_slots WHERE name = ? ORDER BY fencing_token`, name)
	if err != nil {
		return r, false, fmt.Errorf("load semaphore %q: %w", name, err)
	}
	defer rows.Close()
	for rows.Next() {
		sl, err := scanSlot(rows)
		if err != nil {
			return r, false, fmt.Errorf("load semaphore %q: %w", name, err)
		}
		r.Slots = append(r.Slots, sl)
	}
	if err := rows.Err(); err != nil {
		return r, false, fmt.Errorf("load semaphore %q: %w", name, err)
	}
	return r, true, nil
}

// HeldSemaphores implements actors.SemaphoreStore.
func (s *Store) HeldSemaphores(fn func(actors.SemaphoreRecord)) error {
	rows, err := s.db.read.Query(`SELECT s.name, s.max_holders, s.fencing_token, l.lease_id, l.holder, l.holder_id,
		l.fencing_token, l.session_id, l.expires_at, l.acquired_at, l.metadata
		FROM semaphores s JOIN semaphore_slots l ON l.name = s.name ORDER BY s.name, l.fencing_token`)
	if err != nil {
		return fmt.Errorf("load held semaphores: %w", err)
	}
	defer rows.Close()
	var cur *actors.SemaphoreRecord
	var out []actors.SemaphoreRecord
	for rows.Next() {
		var name string
		var limit int
		var token, stoken, exp, acq int64
		var sl actors.SemaphoreSlot
		if err := rows.Scan(&name, &limit, &token, &sl.LeaseID, &sl.Holder, &sl.HolderID, &stoken, &sl.SessionID, &exp, &acq, &sl.Metadata); err != nil {
			return fmt.Errorf("load held semaphores: %w", err)
		}
		sl.Token, sl.ExpiresAt, sl.AcquiredAt = uint64(stoken), fromMS(exp), fromMS(acq)
		if cur == nil || cur.Name != name {
			out = append(out, actors.SemaphoreRecord{Name: name, Limit: limit, Token: uint64(token)})
			cur = &out[len(out)-1]
		}
		cur.Slots = append(cur.Slots, sl)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load held semaphores: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	for _, r := range out {
		fn(r)
	}
	return nil
}
