package actors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ConfigStore is what config keys need from persistence.
type ConfigStore interface {
	OwnerCounter
	// LoadConfig loads a config key with its current value; ok is false if
	// the key never existed. A deleted key is returned with Deleted set and
	// Version = its last version (versions never repeat).
	LoadConfig(owner, key string) (ConfigRecord, bool, error)
	// ListConfig lists one page of owner's live keys without values (""
	// for every owner's), ordered by owner and key (PageQuery: AfterName is
	// a key), with the count of them all, from one snapshot.
	ListConfig(ctx context.Context, owner string, q PageQuery) (Page[ConfigRecord], error)
	// ConfigVersion reads one retained version of a live key; ok is false
	// for an unknown key or a version not retained.
	ConfigVersion(ctx context.Context, owner, key string, version int64) (ConfigRecord, bool, error)
	// ConfigHistory lists one page of the retained versions of a live key,
	// newest first: at most limit of them, older than version before
	// (before <= 0: from the newest). more reports whether older ones
	// remain; ok is false for an unknown key (a live key past its oldest
	// version is ok with an empty page). One snapshot per call.
	ConfigHistory(ctx context.Context, owner, key string, before int64, limit int) (page []ConfigRecord, more, ok bool, err error)
}

// ConfigKeysConfig configures the config store.
type ConfigKeysConfig struct {
	Store ConfigStore
	// MaxPerUser caps the live keys one owner has (0:
	// DefaultMaxConfigKeysPerUser; negative: no cap).
	MaxPerUser int
	// History is how many versions of each key are kept (<= 0:
	// DefaultConfigHistory).
	History int
}

// ConfigKeys is the entry point for config keys: typed calls to each key's
// actor (one per owner and key), and reads of past versions and listings
// from the database. See System.call for what a cancelled ctx means.
type ConfigKeys struct {
	sys     *System
	store   ConfigStore
	quota   *quota
	history int
	gets    opPool[getConfig] // Get is a hot read
}

// NewConfigKeys registers the config kind with sys.
func NewConfigKeys(sys *System, cfg ConfigKeysConfig) *ConfigKeys {
	if cfg.History <= 0 {
		cfg.History = DefaultConfigHistory
	}
	if cfg.MaxPerUser == 0 {
		cfg.MaxPerUser = DefaultMaxConfigKeysPerUser
	}
	c := &ConfigKeys{sys: sys, store: cfg.Store, quota: newQuota(cfg.MaxPerUser, "config keys"), history: cfg.History}
	sys.Register(KindSpec{
		Kind:    KindConfig,
		New:     func(k Key) Behavior { return &configBehavior{key: k, config: c} },
		Recover: func(time.Time) (int, error) { return c.quota.recover(KindConfig, cfg.Store) },
	})
	return c
}

func configKey(owner, key string) Key { return Key{Kind: KindConfig, Owner: owner, Name: key} }

// ConfigWrite is a write of a config key.
type ConfigWrite struct {
	// Value is raw JSON, already validated, stored and returned byte for
	// byte.
	Value []byte
	// Description replaces the description when SetDescription is true;
	// otherwise the current description is kept.
	Description    string
	SetDescription bool
	// Expected makes the write conditional: ExpectAny (unconditional),
	// ExpectExists ("If-Match: *"), 0 (create only) or a version the key
	// must be at.
	Expected int64
}

// Put writes a new version of owner's key and returns it, once committed.
// Errors: *VersionConflictError when w.Expected does not hold (a case of
// CodeConflict); ErrQuota for a new key beyond ConfigKeysConfig.MaxPerUser.
func (c *ConfigKeys) Put(ctx context.Context, owner, key string, w ConfigWrite) (ConfigRecord, error) {
	op := &setConfig{write: w}
	return answer(c.sys.call(ctx, configKey(owner, key), op), &op.config)
}

// Rollback writes a new version of owner's key (current + 1) whose value
// and description are version n's, once committed, on the condition
// expected (as ConfigWrite.Expected). Errors: *VersionConflictError when
// the condition does not hold (checked first); ErrConfigNotFound for a key
// that does not exist; ErrConfigVersionNotFound for a version never
// written or no longer kept.
func (c *ConfigKeys) Rollback(ctx context.Context, owner, key string, n, expected int64) (ConfigRecord, error) {
	op := &rollbackConfig{version: n, expected: expected}
	return answer(c.sys.call(ctx, configKey(owner, key), op), &op.config)
}

// State reads the key as its actor has it, committed: the current version
// of a live key, the last version of a deleted one (Deleted set), or
// version 0 for a key never written. For watches: every event of the key
// with a version above it (or a delete of a live key) is news.
func (c *ConfigKeys) State(ctx context.Context, owner, key string) (ConfigRecord, error) {
	op := &stateConfig{}
	return answer(c.sys.call(ctx, configKey(owner, key), op), &op.config)
}

// Get reads the current version (ErrConfigNotFound if the key does not
// exist).
func (c *ConfigKeys) Get(ctx context.Context, owner, key string) (ConfigRecord, error) {
	return callPooled(c.sys, ctx, configKey(owner, key), &c.gets, func(op *getConfig) ConfigRecord { return op.config })
}

// Version reads version n of a live key from the database (every
// acknowledged write is committed): ErrConfigVersionNotFound for an unknown
// key, or a version never written or no longer kept.
func (c *ConfigKeys) Version(ctx context.Context, owner, key string, n int64) (ConfigRecord, error) {
	rec, ok, err := c.store.ConfigVersion(ctx, owner, key, n)
	return found(rec, ok, err, ErrConfigVersionNotFound)
}

// History lists one page of the kept versions of a live key, newest first:
// at most limit versions older than before (<= 0: from the newest), and
// whether older ones remain (ErrConfigNotFound if the key does not exist).
// Pages keep the memory of one answer bounded (issue 12, item 8).
func (c *ConfigKeys) History(ctx context.Context, owner, key string, before int64, limit int) (page []ConfigRecord, more bool, err error) {
	page, more, ok, err := c.store.ConfigHistory(ctx, owner, key, before, limit)
	page, err = found(page, ok, err, ErrConfigNotFound)
	return page, more, err
}

// Delete deletes the key and its history (ErrConfigNotFound if none), once
// committed. A key created again later continues after its last version.
func (c *ConfigKeys) Delete(ctx context.Context, owner, key string) error {
	return c.DeleteIf(ctx, owner, key, ExpectAny)
}

// DeleteIf is Delete on a condition, as ConfigWrite.Expected states it for
// a write: ExpectAny (none), ExpectExists, or the version the key must be at
// (0: it must not exist). A condition that does not hold is a
// *VersionConflictError and deletes nothing; one that holds on a key that
// does not exist (0) is ErrConfigNotFound.
func (c *ConfigKeys) DeleteIf(ctx context.Context, owner, key string, expected int64) error {
	return c.sys.call(ctx, configKey(owner, key), &deleteConfig{expected: expected})
}

// List lists one page of owner's live keys without values ("" for every
// owner's; PageQuery: ordered by owner, then key).
func (c *ConfigKeys) List(ctx context.Context, owner string, q PageQuery) (Page[ConfigRecord], error) {
	return c.store.ListConfig(ctx, owner, q)
}

// Owned is how many live keys owner has.
func (c *ConfigKeys) Owned(owner string) int { return c.quota.owned(owner) }

// Kept is the number of versions kept per key.
func (c *ConfigKeys) Kept() int { return c.history }

// found turns a store read's (v, ok, err) into (v, err), with notFound
// when there is nothing.
func found[T any](v T, ok bool, err error, notFound error) (T, error) {
	if err == nil && !ok {
		err = notFound
	}
	if err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}

// Config operations (see the lock operations for the pattern).
type (
	setConfig struct {
		write  ConfigWrite
		config ConfigRecord
	}
	getConfig      struct{ config ConfigRecord }
	stateConfig    struct{ config ConfigRecord }
	deleteConfig   struct{ expected int64 }
	rollbackConfig struct {
		version, expected int64
		config            ConfigRecord
	}
)

// Conditions of ConfigWrite.Expected besides a version number (0 = create only).
const (
	ExpectAny    int64 = -1
	ExpectExists int64 = -2
)

// ErrConfigNotFound answers reads and deletes of an unknown key.
var ErrConfigNotFound = caseOf(ErrNotFound, "config key not found")

// ErrConfigVersionNotFound answers a read of a version that is not kept.
var ErrConfigVersionNotFound = caseOf(ErrNotFound, "config key or version not found")

// VersionConflictError answers a conditional Put whose condition does not
// hold (a conflict: the HTTP answer is 409 with current_version). Current is the key's current version (0: it does not exist).
type VersionConflictError struct {
	Key      string
	Expected int64
	Current  int64
}

func (e *VersionConflictError) Error() string {
	switch {
	case e.Expected == 0:
		return fmt.Sprintf("config key %q already exists (version %d)", e.Key, e.Current)
	case e.Current == 0:
		return fmt.Sprintf("config key %q does not exist", e.Key)
	case e.Expected == ExpectExists:
		return fmt.Sprintf("config key %q does not exist", e.Key)
	}
	return fmt.Sprintf("version conflict on config key %q: expected version %d, current version is %d", e.Key, e.Expected, e.Current)
}

// ConfigRecord is a config key at one version.
type ConfigRecord struct {
	Owner, Key  string
	Version     int64  // current version; for a deleted key its last one
	Value       []byte // raw JSON
	Description string
	CreatedAt   time.Time // when the key was (re)created
	UpdatedAt   time.Time // when this version was written
	Deleted     bool      // the key was deleted; only Version is meaningful
}

// Live reports whether the key exists now.
func (c ConfigRecord) Live() bool { return c.Version > 0 && !c.Deleted }

// PutConfig writes a new version: the version row, the key row, and prunes
// versions older than the newest Keep.
type PutConfig struct {
	Config ConfigRecord
	Keep   int
}

// Table implements Mutation.
func (PutConfig) Table() string { return "config" }

// ApplyTo implements Mutation.
func (m PutConfig) ApplyTo(w MutationWriter) error { return w.PutConfig(m.Config, m.Keep) }

// RemoveConfig deletes a key's history and marks the key deleted at Version
// (its last version, so that a re-created key continues after it).
type RemoveConfig struct {
	Owner, Key string
	Version    int64
	At         time.Time
}

// Table implements Mutation.
func (RemoveConfig) Table() string { return "config" }

// ApplyTo implements Mutation.
func (m RemoveConfig) ApplyTo(w MutationWriter) error {
	return w.RemoveConfig(m.Owner, m.Key, m.Version, m.At)
}

// CompactJSON is v without the whitespace between its tokens (v itself when
// it has none): the form of a value in an event, which is one line of an
// event stream. v must be valid JSON; a value that somehow is not is
// returned as it is.
func CompactJSON(v []byte) []byte {
	if !bytes.ContainsAny(v, " \t\r\n") {
		return v
	}
	var b bytes.Buffer
	b.Grow(len(v))
	if json.Compact(&b, v) != nil {
		return v
	}
	return b.Bytes()
}

// --- the pure versioning rule ---

// NextConfig computes the version op writes on top of cur at now, or a
// *VersionConflictError. Versions start at 1 and grow by one per write; a
// key re-created after a delete continues after its last version, so a
// (key, version) pair never names two different values.
func NextConfig(cur ConfigRecord, op ConfigWrite, now time.Time) (ConfigRecord, error) {
	if err := configCondition(cur, op.Expected); err != nil {
		return cur, err
	}
	live := cur.Live()
	next := ConfigRecord{
		Owner: cur.Owner, Key: cur.Key,
		Version:   cur.Version + 1,
		Value:     op.Value,
		CreatedAt: cur.CreatedAt,
		UpdatedAt: now,
	}
	if !live {
		next.CreatedAt = now
	}
	switch {
	case op.SetDescription:
		next.Description = op.Description
	case live:
		next.Description = cur.Description
	}
	return next, nil
}

// configCondition checks a write's or delete's condition (ConfigWrite.Expected)
// against cur: nil when it holds, else a *VersionConflictError.
func configCondition(cur ConfigRecord, expected int64) error {
	current := int64(0)
	if cur.Live() {
		current = cur.Version
	}
	switch {
	case expected == ExpectAny:
	case expected == ExpectExists:
		if current == 0 {
			return &VersionConflictError{Key: cur.Key, Expected: expected, Current: 0}
		}
	case expected != current:
		return &VersionConflictError{Key: cur.Key, Expected: expected, Current: current}
	}
	return nil
}

// --- the actor behavior ---

type configBehavior struct {
	key    Key
	config *ConfigKeys
	state  ConfigRecord
}

func (b *configBehavior) Activate(h *Host) error {
	c, _, err := b.config.store.LoadConfig(b.key.Owner, b.key.Name)
	if err != nil {
		return err
	}
	c.Owner, c.Key = b.key.Owner, b.key.Name
	b.state = c
	return nil
}

func (b *configBehavior) Passivatable(*Host) bool { return true }

func (b *configBehavior) Handle(h *Host, op any) error {
	now := h.Now()
	switch op := op.(type) {
	case *getConfig:
		if !b.state.Live() {
			return ErrConfigNotFound
		}
		op.config = b.state
		return nil
	case *stateConfig:
		op.config = b.state
		return nil
	case *rollbackConfig:
		return b.rollback(h, op, now)
	case *setConfig:
		return b.set(h, op, now)
	case *deleteConfig:
		return b.delete(h, op.expected, now)
	}
	return fmt.Errorf("config: unknown operation %T", op)
}

// rollback writes version op.version's value and description as a new
// version. The version is read from the store once every write of this
// key has resolved (a rollback is rare: the actor waits for its own
// writes rather than keep past values in memory), so the store holds
// exactly the versions the actor knows; a failed write since is handled
// by the usual fall-back before this operation runs.
func (b *configBehavior) rollback(h *Host, op *rollbackConfig, now time.Time) error {
	if err := configCondition(b.state, op.expected); err != nil {
		return err
	}
	if !b.state.Live() {
		return ErrConfigNotFound
	}
	var old ConfigRecord
	if op.version == b.state.Version {
		old = b.state
	} else {
		if op.version < 1 || op.version > b.state.Version {
			return ErrConfigVersionNotFound
		}
		h.sys.store.WaitResolved(h.lastAnySeq)
		if h.failedGen.Load() >= h.gen {
			return errDependsOnFailed // the fall-back to durable state comes first
		}
		rec, ok, err := b.config.store.ConfigVersion(context.Background(), b.key.Owner, b.key.Name, op.version)
		if err != nil {
			return errors.Join(ErrUnavailable, err)
		}
		if !ok {
			return ErrConfigVersionNotFound
		}
		old = rec
	}
	set := &setConfig{write: ConfigWrite{Value: old.Value, Description: old.Description, SetDescription: true, Expected: ExpectAny}}
	if err := b.set(h, set, now); err != nil {
		return err
	}
	op.config = set.config
	return nil
}

func (b *configBehavior) set(h *Host, op *setConfig, now time.Time) error {
	next, err := NextConfig(b.state, op.write, now)
	if err != nil {
		return err
	}
	reserved := false
	if !b.state.Live() {
		if !b.config.quota.reserve(b.key.Owner) {
			return b.config.quota.err
		}
		reserved = true
	}
	pub, q := h.sys.cfg.Events, b.config.quota
	value := CompactJSON(next.Value) // here, not on the writer's goroutine
	err = h.Write(PutConfig{Config: next, Keep: b.config.history}, func(err error) {
		if reserved {
			q.created(next.Owner, err)
		}
		if err == nil {
			pub.Publish(Event{Type: EventConfigWritten, Kind: "config", Name: next.Key, Owner: next.Owner, Version: next.Version,
				Value: value, Description: next.Description, Time: now})
		}
	})
	if err != nil {
		if reserved {
			q.release(b.key.Owner)
		}
		return err
	}
	b.state = next
	op.config = next
	return nil
}

func (b *configBehavior) delete(h *Host, expected int64, now time.Time) error {
	if err := configCondition(b.state, expected); err != nil {
		return err
	}
	if !b.state.Live() {
		return ErrConfigNotFound
	}
	pub, key, last, q := h.sys.cfg.Events, b.key, b.state.Version, b.config.quota
	q.release(key.Owner)
	err := h.Write(RemoveConfig{Owner: key.Owner, Key: key.Name, Version: last, At: now}, func(err error) {
		q.deleted(key.Owner, err)
		if err == nil {
			pub.Publish(Event{Type: EventConfigDeleted, Kind: "config", Name: key.Name, Owner: key.Owner, Version: last, Time: now})
		}
	})
	if err != nil {
		q.add(key.Owner)
		return err
	}
	b.state = ConfigRecord{Owner: key.Owner, Key: key.Name, Version: last, Deleted: true}
	return nil
}
