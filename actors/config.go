package actors

import (
	"fmt"
	"time"
)

// Config operations and replies.
type (
	// SetConfig writes a new version of the key. Value is raw JSON, already
	// validated, stored and returned byte for byte.
	SetConfig struct {
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
	// GetConfig reads the current version (ErrConfigNotFound if none).
	GetConfig struct{}
	// DeleteConfig deletes the key and its history (ErrConfigNotFound if
	// none).
	DeleteConfig struct{}

	// ConfigReply answers SetConfig and GetConfig.
	ConfigReply struct{ Config ConfigRecord }
)

// Conditions of SetConfig.Expected besides a version number (0 = create only).
const (
	ExpectAny    int64 = -1
	ExpectExists int64 = -2
)

// ErrConfigNotFound answers reads and deletes of an unknown key or version.
var ErrConfigNotFound = fmt.Errorf("config key %w", ErrNotFound)

// VersionConflictError answers a conditional SetConfig whose condition does
// not hold. Current is the key's current version (0: it does not exist).
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

// RemoveConfig deletes a key's history and marks the key deleted at Version
// (its last version, so that a re-created key continues after it).
type RemoveConfig struct {
	Owner, Key string
	Version    int64
	At         time.Time
}

// Table implements Mutation.
func (RemoveConfig) Table() string { return "config" }

// --- the pure versioning rule ---

// NextConfig computes the version op writes on top of cur at now, or a
// *VersionConflictError. Versions start at 1 and grow by one per write; a
// key re-created after a delete continues after its last version, so a
// (key, version) pair never names two different values.
func NextConfig(cur ConfigRecord, op SetConfig, now time.Time) (ConfigRecord, error) {
	live := cur.Live()
	current := int64(0)
	if live {
		current = cur.Version
	}
	switch {
	case op.Expected == ExpectAny:
	case op.Expected == ExpectExists:
		if !live {
			return cur, &VersionConflictError{Key: cur.Key, Expected: op.Expected, Current: 0}
		}
	case op.Expected != current:
		return cur, &VersionConflictError{Key: cur.Key, Expected: op.Expected, Current: current}
	}
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

// --- the actor behavior ---

type configBehavior struct {
	key   Key
	res   *Resources
	state ConfigRecord
}

func (b *configBehavior) Activate(h *Host) error {
	c, _, err := b.res.loader.LoadConfig(b.key.Owner, b.key.Name)
	if err != nil {
		return err
	}
	c.Owner, c.Key = b.key.Owner, b.key.Name
	b.state = c
	return nil
}

func (b *configBehavior) Passivatable(*Host) bool { return true }

func (b *configBehavior) Handle(h *Host, op any) (any, error) {
	now := h.Now()
	switch op := op.(type) {
	case GetConfig:
		if !b.state.Live() {
			return nil, ErrConfigNotFound
		}
		return ConfigReply{Config: b.state}, nil
	case SetConfig:
		next, err := NextConfig(b.state, op, now)
		if err != nil {
			return nil, err
		}
		reserved := false
		if !b.state.Live() {
			if !b.res.config.reserve(b.key.Owner) {
				return nil, b.res.config.err
			}
			reserved = true
		}
		pub, q := h.sys.cfg.Events, b.res.config
		err = h.Write(PutConfig{Config: next, Keep: b.res.history}, func(err error) {
			if reserved {
				q.created(next.Owner, err)
			}
			if err == nil {
				pub.Publish(Event{Type: EventConfigWritten, Kind: "config", Name: next.Key, Owner: next.Owner, Version: next.Version, Time: now})
			}
		})
		if err != nil {
			if reserved {
				q.release(b.key.Owner)
			}
			return nil, err
		}
		b.state = next
		return ConfigReply{Config: next}, nil
	case DeleteConfig:
		if !b.state.Live() {
			return nil, ErrConfigNotFound
		}
		pub, key, last, q := h.sys.cfg.Events, b.key, b.state.Version, b.res.config
		q.release(key.Owner)
		err := h.Write(RemoveConfig{Owner: key.Owner, Key: key.Name, Version: last, At: now}, func(err error) {
			q.deleted(key.Owner, err)
			if err == nil {
				pub.Publish(Event{Type: EventConfigDeleted, Kind: "config", Name: key.Name, Owner: key.Owner, Version: last, Time: now})
			}
		})
		if err != nil {
			q.add(key.Owner)
			return nil, err
		}
		b.state = ConfigRecord{Owner: key.Owner, Key: key.Name, Version: last, Deleted: true}
		return nil, nil
	}
	return nil, fmt.Errorf("config: unknown operation %T", op)
}
