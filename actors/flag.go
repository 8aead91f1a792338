package actors

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"
)

// FlagStore is what feature flags need from persistence.
type FlagStore interface {
	OwnerCounter
	// LoadFlag loads a flag; ok is false if it does not exist.
	LoadFlag(owner, name string) (FlagRecord, bool, error)
	// ListFlags lists one page of owner's flags ("" for every owner's),
	// ordered by owner and name (PageQuery), with the count of them all,
	// from one snapshot.
	ListFlags(ctx context.Context, owner string, q PageQuery) (Page[FlagRecord], error)
}

// FlagConfig configures feature flags.
type FlagConfig struct {
	Store FlagStore
	// MaxPerUser caps the flags one owner has (0: DefaultMaxFlagsPerUser;
	// negative: no cap).
	MaxPerUser int
}

// Flags is the entry point for feature flags: typed calls to each flag's
// actor (one per owner and name), evaluation served from a committed read
// view when the flag's actor is resident, and listings. See System.call for
// what a cancelled ctx means.
type Flags struct {
	sys   *System
	store FlagStore
	quota *quota
	view  *flagView
}

// NewFlags registers the flag kind with sys.
func NewFlags(sys *System, cfg FlagConfig) *Flags {
	if cfg.MaxPerUser == 0 {
		cfg.MaxPerUser = DefaultMaxFlagsPerUser
	}
	f := &Flags{sys: sys, store: cfg.Store, quota: newQuota(cfg.MaxPerUser, "flags"), view: newFlagView()}
	sys.Register(KindSpec{
		Kind:    KindFlag,
		New:     func(k Key) Behavior { return &flagBehavior{key: k, flags: f} },
		Recover: func(time.Time) (int, error) { return f.quota.recover(KindFlag, cfg.Store) },
	})
	return f
}

func flagKey(owner, name string) Key { return Key{Kind: KindFlag, Owner: owner, Name: name} }

// FlagWrite is a flag's new definition (a PUT replaces the whole flag).
// Percentage is 0..100, or NoPercentage for none. Rules, Variants and
// OffVariant are the targeting of flagrules.go; CheckFlagWrite validates
// the whole definition (Put does).
type FlagWrite struct {
	Enabled    bool
	Percentage int
	Rules      []FlagRule
	Variants   []FlagVariant
	OffVariant string
}

// FlagState is a flag's definition as read: Found is false for a flag that
// does not exist (Flag then has only Owner and Name).
type FlagState struct {
	Flag  FlagRecord
	Found bool
}

// Put creates or replaces owner's flag name and returns it, once committed.
// Errors: CodeInvalid for a definition CheckFlagWrite refuses (nothing is
// written); ErrQuota for a new flag beyond FlagConfig.MaxPerUser.
func (f *Flags) Put(ctx context.Context, owner, name string, w FlagWrite) (FlagRecord, error) {
	if err := CheckFlagWrite(&w); err != nil {
		return FlagRecord{}, err
	}
	op := &setFlag{write: w}
	return answer(f.sys.call(ctx, flagKey(owner, name), op), &op.flag)
}

// Get reads the flag's definition: from the committed read view when its
// actor is resident (no actor round trip), otherwise from the actor.
func (f *Flags) Get(ctx context.Context, owner, name string) (FlagState, error) {
	if st, ok := f.view.get(owner, name); ok {
		return st, nil
	}
	op := &getFlag{}
	return answer(f.sys.call(ctx, flagKey(owner, name), op), &op.state)
}

// Evaluate decides the flag for ctx (FlagState.Evaluate: an unknown flag
// is ReasonFlagNotFound; an empty subject evaluates for the owner), from the
// read view when it can (Get).
func (f *Flags) Evaluate(ctx context.Context, owner, name string, c FlagContext) (FlagResult, error) {
	st, err := f.Get(ctx, owner, name)
	if err != nil {
		return FlagResult{}, err
	}
	return st.Evaluate(owner, c), nil
}

// Evaluate decides the flag for c (EvaluateFlag); an empty subject
// evaluates for owner. For a flag without rules and variants neither the
// subject nor the answer is copied or allocated.
func (st *FlagState) Evaluate(owner string, c FlagContext) FlagResult {
	if len(c.Subject) == 0 {
		var sb [64]byte // logins are at most names.Login.Max() bytes
		c.Subject = append(sb[:0], owner...)
	}
	return EvaluateFlag(&st.Flag, st.Found, c)
}

// Lookup answers from the committed read view only: ok is false when the
// flag's actor is not resident (Get asks the actor then).
func (f *Flags) Lookup(owner, name string) (FlagState, bool) { return f.view.get(owner, name) }

// Delete deletes the flag (ErrFlagNotFound if there is none), once
// committed.
func (f *Flags) Delete(ctx context.Context, owner, name string) error {
	return f.sys.call(ctx, flagKey(owner, name), &deleteFlag{})
}

// List lists one page of owner's flags ("" for every owner's; PageQuery:
// ordered by owner, then name) from the database: every acknowledged write
// is committed, so it is there.
func (f *Flags) List(ctx context.Context, owner string, q PageQuery) (Page[FlagRecord], error) {
	return f.store.ListFlags(ctx, owner, q)
}

// Owned is how many flags owner has.
func (f *Flags) Owned(owner string) int { return f.quota.owned(owner) }

// Flag operations (see the lock operations for the pattern).
type (
	setFlag struct {
		write FlagWrite
		flag  FlagRecord
	}
	getFlag    struct{ state FlagState }
	deleteFlag struct{}
)

// NoPercentage marks a flag without a rollout percentage.
const NoPercentage = -1

// ErrFlagNotFound answers Delete of an unknown flag.
var ErrFlagNotFound = caseOf(ErrNotFound, "flag not found")

// FlagRecord is the durable state of one flag. Rules and Variants are
// never modified once the record is made (records are shared by the read
// view and the writer): a write makes a new record.
type FlagRecord struct {
	Owner, Name string
	Enabled     bool
	Percentage  int // 0..100 or NoPercentage
	Rules       []FlagRule
	Variants    []FlagVariant
	OffVariant  string // served when disabled ("": none); only with Variants
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// PutFlag writes a flag's full state.
type PutFlag struct{ Flag FlagRecord }

// Table implements Mutation.
func (PutFlag) Table() string { return "flags" }

// ApplyTo implements Mutation.
func (m PutFlag) ApplyTo(w MutationWriter) error { return w.PutFlag(m.Flag) }

// RemoveFlag deletes a flag.
type RemoveFlag struct{ Owner, Name string }

// Table implements Mutation.
func (RemoveFlag) Table() string { return "flags" }

// ApplyTo implements Mutation.
func (m RemoveFlag) ApplyTo(w MutationWriter) error { return w.RemoveFlag(m.Owner, m.Name) }

// Evaluation reasons, as OpenFeature names them.
const (
	ReasonDisabled       = "DISABLED"        // the flag is off
	ReasonStatic         = "STATIC"          // on for everyone: no rules, no percentage (or 100), no variants
	ReasonSplit          = "SPLIT"           // a percentage rollout or the variant weights decided
	ReasonTargetingMatch = "TARGETING_MATCH" // a rule matched
	ReasonDefault        = "DEFAULT"         // on, the flag has rules and none matched
	ReasonFlagNotFound   = "FLAG_NOT_FOUND"  // no such flag: false
)

// --- the pure part: bucketing and evaluation ---

// FlagBucket is the rollout bucket, 0..99, of subject for flag name:
//
//	h := SHA-256(name + ":" + subject)
//	bucket := uint32(h[0])<<24 | uint32(h[1])<<16 | uint32(h[2])<<8 | uint32(h[3])  // big-endian
//	bucket %= 100
//
// The subject is hashed as given (bytes); the owner is not part of the key.
func FlagBucket(name string, subject []byte) int {
	var buf [256]byte
	in := append(buf[:0], name...)
	in = append(in, ':')
	in = append(in, subject...)
	sum := sha256.Sum256(in)
	return int(binary.BigEndian.Uint32(sum[:4]) % 100)
}

// ApplyFlagWrite computes the flag after w at now: created_at stays,
// updated_at moves.
func ApplyFlagWrite(cur FlagRecord, found bool, w FlagWrite, now time.Time) FlagRecord {
	next := cur
	next.Enabled, next.Percentage = w.Enabled, w.Percentage
	next.Rules, next.Variants, next.OffVariant = w.Rules, w.Variants, w.OffVariant
	if !found {
		next.CreatedAt = now
	}
	next.UpdatedAt = now
	return next
}

// --- the actor behavior ---

type flagBehavior struct {
	key   Key
	flags *Flags
	state FlagRecord
	found bool
}

func (b *flagBehavior) Activate(h *Host) error {
	f, ok, err := b.flags.store.LoadFlag(b.key.Owner, b.key.Name)
	if err != nil {
		return err
	}
	f.Owner, f.Name = b.key.Owner, b.key.Name
	b.state, b.found = f, ok
	b.flags.view.put(FlagState{Flag: f, Found: ok}) // durable: it was just loaded
	return nil
}

// Passivatable drops the flag from the read view: once the actor is gone
// the view must not answer for it.
func (b *flagBehavior) Passivatable(*Host) bool {
	b.flags.view.remove(b.key.Owner, b.key.Name)
	return true
}

func (b *flagBehavior) Handle(h *Host, op any) error {
	now := h.Now()
	switch op := op.(type) {
	case *getFlag:
		op.state = FlagState{Flag: b.state, Found: b.found}
		if h.lastAnySeq <= h.sys.store.Resolved() {
			b.flags.view.put(op.state) // committed: every write of ours is resolved
		}
		return nil
	case *setFlag:
		return b.set(h, op, now)
	case *deleteFlag:
		return b.delete(h, now)
	}
	return fmt.Errorf("flag: unknown operation %T", op)
}

func (b *flagBehavior) set(h *Host, op *setFlag, now time.Time) error {
	reserved := false
	if !b.found {
		if !b.flags.quota.reserve(b.key.Owner) {
			return b.flags.quota.err
		}
		reserved = true
	}
	next := ApplyFlagWrite(b.state, b.found, op.write, now)
	pub, q, view := h.sys.cfg.Events, b.flags.quota, b.flags.view
	err := h.Write(PutFlag{Flag: next}, func(err error) {
		if reserved {
			q.created(next.Owner, err)
		}
		if err == nil {
			view.put(FlagState{Flag: next, Found: true})
			pub.Publish(Event{Type: EventFlagSet, Kind: "flag", Name: next.Name, Owner: next.Owner, Time: now})
		}
	})
	if err != nil {
		if reserved {
			q.release(b.key.Owner)
		}
		return err
	}
	b.state, b.found = next, true
	op.flag = next
	return nil
}

func (b *flagBehavior) delete(h *Host, now time.Time) error {
	if !b.found {
		return ErrFlagNotFound
	}
	pub, key, q, view := h.sys.cfg.Events, b.key, b.flags.quota, b.flags.view
	q.release(key.Owner)
	err := h.Write(RemoveFlag{Owner: key.Owner, Name: key.Name}, func(err error) {
		q.deleted(key.Owner, err)
		if err == nil {
			view.put(FlagState{Flag: FlagRecord{Owner: key.Owner, Name: key.Name}})
			pub.Publish(Event{Type: EventFlagDeleted, Kind: "flag", Name: key.Name, Owner: key.Owner, Time: now})
		}
	})
	if err != nil {
		q.add(key.Owner)
		return err
	}
	b.state = FlagRecord{Owner: key.Owner, Name: key.Name}
	b.found = false
	return nil
}
