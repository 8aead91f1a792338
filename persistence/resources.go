package persistence

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/octostore/octostore/actors"
)

// This file stores rate limits, flags and config keys: the batch
// transaction's methods for their mutations (actors.MutationWriter), the
// actors' loaders and the listings (actors.LimitStore, FlagStore,
// ConfigStore), read from the read pool.

var (
	_ actors.LimitStore  = (*Store)(nil)
	_ actors.FlagStore   = (*Store)(nil)
	_ actors.ConfigStore = (*Store)(nil)
)

// resourceStmts are the statements of the hot resource writes, raw
// (rawstmt.go): rate-limit counters are written for every limit that
// changed in each flush interval.
type resourceStmts struct {
	putLimit, putFlag *rawStmt
}

func prepareResources(*sql.DB) (*resourceStmts, error) {
	return &resourceStmts{
		putLimit: newRawStmt(`INSERT INTO limits(owner, name, algorithm, max_requests, window_seconds, log, updated_at)
		VALUES(?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(owner, name) DO UPDATE SET algorithm = excluded.algorithm, max_requests = excluded.max_requests,
			window_seconds = excluded.window_seconds, log = excluded.log, updated_at = excluded.updated_at`),
		putFlag: newRawStmt(`INSERT INTO flags(owner, name, enabled, percentage, rules, variants, off_variant, created_at, updated_at)
		VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(owner, name) DO UPDATE SET enabled = excluded.enabled, percentage = excluded.percentage,
			rules = excluded.rules, variants = excluded.variants, off_variant = excluded.off_variant,
			created_at = excluded.created_at, updated_at = excluded.updated_at`),
	}, nil
}

// close closes the statements (on conn: rawStmt.close).
func (s *resourceStmts) close(conn *sql.Conn) {
	s.putLimit.close(conn)
	s.putFlag.close(conn)
}

// PutLimits implements actors.MutationWriter: one upsert per snapshot.
func (b *batchTx) PutLimits(rows []actors.LimitRow) error {
	for i := range rows {
		r := &rows[i]
		alg := r.Algorithm
		if alg == "" {
			alg = actors.SlidingWindowName
		}
		st := b.stmts.res.putLimit
		row := st.row()
		row.text(r.Owner)
		row.text(r.Name)
		row.text(alg)
		row.int(int64(r.MaxRequests))
		row.int(int64(r.WindowSeconds))
		row.blob(r.Log)
		row.int(ms(r.UpdatedAt))
		if _, err := st.exec(b.conn); err != nil {
			return err
		}
	}
	return nil
}

// RemoveLimit implements actors.MutationWriter.
func (b *batchTx) RemoveLimit(owner, name string) error {
	_, err := b.tx.ExecContext(b.ctx, `DELETE FROM limits WHERE owner = ? AND name = ?`, owner, name)
	return err
}

// PutFlag implements actors.MutationWriter.
func (b *batchTx) PutFlag(f actors.FlagRecord) error {
	rules, variants := actors.EncodeFlagTargeting(&f)
	st := b.stmts.res.putFlag
	row := st.row()
	row.text(f.Owner)
	row.text(f.Name)
	row.bool(f.Enabled)
	if f.Percentage != actors.NoPercentage {
		row.int(int64(f.Percentage))
	} else {
		row.null()
	}
	row.textBytes(rules)
	row.textBytes(variants)
	row.text(f.OffVariant)
	row.int(ms(f.CreatedAt))
	row.int(ms(f.UpdatedAt))
	_, err := st.exec(b.conn)
	return err
}

// RemoveFlag implements actors.MutationWriter.
func (b *batchTx) RemoveFlag(owner, name string) error {
	_, err := b.tx.ExecContext(b.ctx, `DELETE FROM flags WHERE owner = ? AND name = ?`, owner, name)
	return err
}

// PutConfig implements actors.MutationWriter: the version row, the key
// row, and pruning beyond the newest keep versions.
func (b *batchTx) PutConfig(c actors.ConfigRecord, keep int) error {
	ctx, tx := b.ctx, b.tx
	if _, err := tx.ExecContext(ctx, `INSERT INTO config_versions(owner, key, version, value, description, created_at)
		VALUES(?, ?, ?, ?, ?, ?)`, c.Owner, c.Key, c.Version, c.Value, c.Description, ms(c.UpdatedAt)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO config_keys(owner, key, version, description, created_at, updated_at, deleted)
		VALUES(?, ?, ?, ?, ?, ?, 0)
		ON CONFLICT(owner, key) DO UPDATE SET version = excluded.version, description = excluded.description,
			created_at = excluded.created_at, updated_at = excluded.updated_at, deleted = 0`,
		c.Owner, c.Key, c.Version, c.Description, ms(c.CreatedAt), ms(c.UpdatedAt)); err != nil {
		return err
	}
	if keep > 0 && c.Version > int64(keep) {
		if _, err := tx.ExecContext(ctx, `DELETE FROM config_versions WHERE owner = ? AND key = ? AND version <= ?`,
			c.Owner, c.Key, c.Version-int64(keep)); err != nil {
			return err
		}
	}
	return nil
}

// RemoveConfig implements actors.MutationWriter.
func (b *batchTx) RemoveConfig(owner, key string, version int64, at time.Time) error {
	if _, err := b.tx.ExecContext(b.ctx, `DELETE FROM config_versions WHERE owner = ? AND key = ?`, owner, key); err != nil {
		return err
	}
	_, err := b.tx.ExecContext(b.ctx, `UPDATE config_keys SET deleted = 1, description = '', version = ?, updated_at = ?
		WHERE owner = ? AND key = ?`, version, ms(at), owner, key)
	return err
}

// --- loaders ---

// LoadLimit implements actors.LimitStore.
func (s *Store) LoadLimit(owner, name string) (actors.LimitState, bool, error) {
	var alg string
	var max, win int
	var log []byte
	err := s.db.read.QueryRow(`SELECT algorithm, max_requests, window_seconds, log FROM limits WHERE owner = ? AND name = ?`,
		owner, name).Scan(&alg, &max, &win, &log)
	if errors.Is(err, sql.ErrNoRows) {
		return actors.LimitState{}, false, nil
	}
	if err != nil {
		return actors.LimitState{}, false, fmt.Errorf("load limit %s/%s: %w", owner, name, err)
	}
	st, err := actors.DecodeLimitState(alg, max, time.Duration(win)*time.Second, log)
	if err != nil {
		return st, false, fmt.Errorf("load limit %s/%s: %w", owner, name, err)
	}
	return st, true, nil
}

// flagColumns are the columns scanFlag reads, after owner and name.
const flagColumns = `enabled, percentage, rules, variants, off_variant, created_at, updated_at`

// scanFlag scans flagColumns into f (Owner and Name set by the caller or
// scanned before) and decodes the targeting.
func scanFlag(row interface{ Scan(...any) error }, f *actors.FlagRecord, lead ...any) error {
	var pct sql.NullInt64
	var rules, variants string
	var created, updated int64
	if err := row.Scan(append(lead, &f.Enabled, &pct, &rules, &variants, &f.OffVariant, &created, &updated)...); err != nil {
		return err
	}
	f.Percentage = actors.NoPercentage
	if pct.Valid {
		f.Percentage = int(pct.Int64)
	}
	f.CreatedAt, f.UpdatedAt = fromMS(created), fromMS(updated)
	return actors.DecodeFlagTargeting(f, []byte(rules), []byte(variants))
}

// LoadFlag implements actors.FlagStore.
func (s *Store) LoadFlag(owner, name string) (actors.FlagRecord, bool, error) {
	f := actors.FlagRecord{Owner: owner, Name: name, Percentage: actors.NoPercentage}
	err := scanFlag(s.db.read.QueryRow(`SELECT `+flagColumns+` FROM flags WHERE owner = ? AND name = ?`, owner, name), &f)
	if errors.Is(err, sql.ErrNoRows) {
		return actors.FlagRecord{Owner: owner, Name: name, Percentage: actors.NoPercentage}, false, nil
	}
	if err != nil {
		return f, false, fmt.Errorf("load flag %s/%s: %w", owner, name, err)
	}
	return f, true, nil
}

// LoadConfig implements actors.ConfigStore.
func (s *Store) LoadConfig(owner, key string) (actors.ConfigRecord, bool, error) {
	c := actors.ConfigRecord{Owner: owner, Key: key}
	var created, updated int64
	var value []byte
	err := s.db.read.QueryRow(`SELECT k.version, k.description, k.created_at, k.updated_at, k.deleted, v.value
		FROM config_keys k LEFT JOIN config_versions v ON v.owner = k.owner AND v.key = k.key AND v.version = k.version
		WHERE k.owner = ? AND k.key = ?`, owner, key).Scan(&c.Version, &c.Description, &created, &updated, &c.Deleted, &value)
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("load config %s/%s: %w", owner, key, err)
	}
	if !c.Deleted && value == nil {
		return c, false, fmt.Errorf("load config %s/%s: version %d has no value", owner, key, c.Version)
	}
	c.Value = value
	c.CreatedAt, c.UpdatedAt = fromMS(created), fromMS(updated)
	return c, true, nil
}

// countOwned are the per-owner counts of live resources, by kind.
var countOwned = map[actors.Kind]string{
	actors.KindLimit:  `SELECT owner, count(*) FROM limits GROUP BY owner`,
	actors.KindFlag:   `SELECT owner, count(*) FROM flags GROUP BY owner`,
	actors.KindConfig: `SELECT owner, count(*) FROM config_keys WHERE deleted = 0 GROUP BY owner`,
}

// CountOwned implements actors.OwnerCounter.
func (s *Store) CountOwned(k actors.Kind, fn func(owner string, n int)) error {
	q, ok := countOwned[k]
	if !ok {
		return fmt.Errorf("count %s: not an owner-scoped kind", k)
	}
	err := s.query(context.Background(), q, nil, func(rows *sql.Rows) error {
		var owner string
		var n int
		if err := rows.Scan(&owner, &n); err != nil {
			return err
		}
		fn(owner, n)
		return nil
	})
	if err != nil {
		return fmt.Errorf("count %s: %w", k, err)
	}
	return nil
}

func (s *Store) query(ctx context.Context, q string, args []any, row func(*sql.Rows) error) error {
	rows, err := s.db.read.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// --- listings (read pool) ---

// Barrier waits until every write queued before the call is resolved, so
// that a following read sees every change acknowledged before it that
// depended on a queued write. (Rate-limit counters wait in the actors'
// flusher until it queues them: use actors.Limits.Sync for those.)
func (s *Store) Barrier() error {
	seq, err := s.Enqueue(nil, nil)
	if err != nil {
		return err
	}
	s.WaitResolved(seq)
	return nil
}

// ListLimits implements actors.LimitStore.
func (s *Store) ListLimits(ctx context.Context, owner string, q actors.PageQuery) (actors.Page[actors.LimitRecord], error) {
	pg, err := listPage(ctx, s, "limits", "algorithm, max_requests, window_seconds, log, updated_at", "name", "", owner, q,
		func(rows *sql.Rows) (actors.LimitRecord, error) {
			var r actors.LimitRecord
			var alg string
			var max, win int
			var log []byte
			var updated int64
			if err := rows.Scan(&r.Owner, &r.Name, &alg, &max, &win, &log, &updated); err != nil {
				return r, err
			}
			st, err := actors.DecodeLimitState(alg, max, time.Duration(win)*time.Second, log)
			if err != nil {
				return r, fmt.Errorf("limit %s/%s: %w", r.Owner, r.Name, err)
			}
			r.State, r.UpdatedAt = st, fromMS(updated)
			return r, nil
		})
	if err != nil {
		return pg, fmt.Errorf("list limits: %w", err)
	}
	return pg, nil
}

// ListFlags implements actors.FlagStore.
func (s *Store) ListFlags(ctx context.Context, owner string, q actors.PageQuery) (actors.Page[actors.FlagRecord], error) {
	pg, err := listPage(ctx, s, "flags", flagColumns, "name", "", owner, q, func(rows *sql.Rows) (actors.FlagRecord, error) {
		var f actors.FlagRecord
		err := scanFlag(rows, &f, &f.Owner, &f.Name)
		return f, err
	})
	if err != nil {
		return pg, fmt.Errorf("list flags: %w", err)
	}
	return pg, nil
}

// ListConfig implements actors.ConfigStore.
func (s *Store) ListConfig(ctx context.Context, owner string, q actors.PageQuery) (actors.Page[actors.ConfigRecord], error) {
	pg, err := listPage(ctx, s, "config_keys", "version, description, created_at, updated_at", "key", "deleted = 0", owner, q,
		func(rows *sql.Rows) (actors.ConfigRecord, error) {
			var c actors.ConfigRecord
			var created, updated int64
			if err := rows.Scan(&c.Owner, &c.Key, &c.Version, &c.Description, &created, &updated); err != nil {
				return c, err
			}
			c.CreatedAt, c.UpdatedAt = fromMS(created), fromMS(updated)
			return c, nil
		})
	if err != nil {
		return pg, fmt.Errorf("list config: %w", err)
	}
	return pg, nil
}

// listPage reads one page of an owner-scoped table (primary key (owner,
// nameCol)) in key order: the rows of owner ("": every owner's) after q's
// position, at most q.Limit of them (Limit+1 are read to know whether more
// remain), with cols after owner and nameCol, where also holds (unless
// ""); and the count of the listing. Both in one read transaction: one
// snapshot. The position is a keyset, so a page costs its own rows, not
// the ones before it.
func listPage[T any](ctx context.Context, s *Store, table, cols, nameCol, also, owner string, q actors.PageQuery,
	scan func(*sql.Rows) (T, error)) (actors.Page[T], error) {
	var pg actors.Page[T]
	if q.Limit < 1 {
		return pg, fmt.Errorf("page limit %d", q.Limit)
	}
	var where, count string
	var args, countArgs []any
	if owner != "" {
		where, args = `owner = ? AND `+nameCol+` > ?`, []any{owner, q.AfterName}
		count, countArgs = `owner = ?`, []any{owner}
	} else {
		where, args = `(owner, `+nameCol+`) > (?, ?)`, []any{q.AfterOwner, q.AfterName}
		count = `1`
	}
	if also != "" {
		where += ` AND ` + also
		count += ` AND ` + also
	}
	tx, err := s.db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return pg, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT owner, `+nameCol+`, `+cols+` FROM `+table+` WHERE `+where+
		` ORDER BY owner, `+nameCol+` LIMIT ?`, append(args, q.Limit+1)...)
	if err != nil {
		return pg, err
	}
	defer rows.Close()
	for rows.Next() {
		if len(pg.Items) == q.Limit {
			pg.More = true
			break
		}
		it, err := scan(rows)
		if err != nil {
			return pg, err
		}
		pg.Items = append(pg.Items, it)
	}
	if err := rows.Err(); err != nil {
		return pg, err
	}
	rows.Close()
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table+` WHERE `+count, countArgs...).Scan(&pg.Total); err != nil {
		return pg, err
	}
	return pg, nil
}

// ConfigVersion implements actors.ConfigStore. UpdatedAt is when that
// version was written, CreatedAt when the key was created.
func (s *Store) ConfigVersion(ctx context.Context, owner, key string, version int64) (actors.ConfigRecord, bool, error) {
	c := actors.ConfigRecord{Owner: owner, Key: key, Version: version}
	var created, written int64
	err := s.db.read.QueryRowContext(ctx, `SELECT v.value, v.description, k.created_at, v.created_at
		FROM config_keys k JOIN config_versions v ON v.owner = k.owner AND v.key = k.key
		WHERE k.owner = ? AND k.key = ? AND k.deleted = 0 AND v.version = ?`, owner, key, version).
		Scan(&c.Value, &c.Description, &created, &written)
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("read config %s/%s version %d: %w", owner, key, version, err)
	}
	c.CreatedAt, c.UpdatedAt = fromMS(created), fromMS(written)
	return c, true, nil
}

// ConfigHistory implements actors.ConfigStore (UpdatedAt is when each
// version was written). One statement, so one snapshot: the key's row is
// joined with the page of its versions (a live key past its oldest version
// gives one row without a version), and one row beyond the page says
// whether more remain (its value is never read).
func (s *Store) ConfigHistory(ctx context.Context, owner, key string, before int64, limit int) ([]actors.ConfigRecord, bool, bool, error) {
	if before <= 0 {
		before = math.MaxInt64
	}
	if limit < 1 {
		limit = 1
	}
	rows, err := s.db.read.QueryContext(ctx, `SELECT v.version, v.value, v.description, v.created_at
		FROM config_keys k LEFT JOIN config_versions v ON v.owner = k.owner AND v.key = k.key AND v.version < ?
		WHERE k.owner = ? AND k.key = ? AND k.deleted = 0 ORDER BY v.version DESC LIMIT ?`, before, owner, key, limit+1)
	if err != nil {
		return nil, false, false, fmt.Errorf("config history %s/%s: %w", owner, key, err)
	}
	defer rows.Close()
	var out []actors.ConfigRecord
	ok, more := false, false
	for rows.Next() {
		ok = true
		if len(out) == limit {
			more = true
			break
		}
		var version, written sql.NullInt64
		var desc sql.NullString
		c := actors.ConfigRecord{Owner: owner, Key: key}
		if err := rows.Scan(&version, &c.Value, &desc, &written); err != nil {
			return nil, false, false, fmt.Errorf("config history %s/%s: %w", owner, key, err)
		}
		if !version.Valid {
			break // the key, and no version older than before
		}
		c.Version, c.Description, c.UpdatedAt = version.Int64, desc.String, fromMS(written.Int64)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, false, false, fmt.Errorf("config history %s/%s: %w", owner, key, err)
	}
	return out, more, ok, nil
}
