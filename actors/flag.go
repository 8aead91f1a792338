package actors

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"
)

// Feature flag operations and replies.
type (
	// SetFlag creates or replaces a flag. Percentage is 0..100, or
	// NoPercentage for a plain on/off flag.
	SetFlag struct {
		Enabled    bool
		Percentage int
	}
	// GetFlag reads the flag definition; evaluation for a subject is the
	// pure EvaluateFlag (the handler runs it, so the subject never has to
	// be copied into a message).
	GetFlag struct{}
	// DeleteFlag deletes the flag (ErrFlagNotFound if unknown).
	DeleteFlag struct{}

	// FlagReply answers SetFlag and GetFlag. Found is false for an unknown
	// flag (GetFlag only).
	FlagReply struct {
		Flag  FlagRecord
		Found bool
	}
)

// NoPercentage marks a flag without a rollout percentage.
const NoPercentage = -1

// ErrFlagNotFound answers DeleteFlag of an unknown flag.
var ErrFlagNotFound = fmt.Errorf("flag %w", ErrNotFound)

// FlagRecord is the durable state of one flag.
type FlagRecord struct {
	Owner, Name string
	Enabled     bool
	Percentage  int // 0..100 or NoPercentage
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// PutFlag writes a flag's full state.
type PutFlag struct{ Flag FlagRecord }

// Table implements Mutation.
func (PutFlag) Table() string { return "flags" }

// RemoveFlag deletes a flag.
type RemoveFlag struct{ Owner, Name string }

// Table implements Mutation.
func (RemoveFlag) Table() string { return "flags" }

// Evaluation reasons, as OpenFeature names them.
const (
	ReasonDisabled     = "DISABLED"       // the flag is off
	ReasonStatic       = "STATIC"         // on for everyone (no percentage, or 100)
	ReasonSplit        = "SPLIT"          // a percentage rollout decided
	ReasonFlagNotFound = "FLAG_NOT_FOUND" // no such flag: false
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

// EvaluateFlag decides the flag for subject: disabled → false; no
// percentage or 100 → true; otherwise true iff FlagBucket < percentage.
// Raising the percentage therefore only ever adds subjects, and a subject's
// answer changes only when the flag does.
func EvaluateFlag(f FlagRecord, found bool, subject []byte) (bool, string) {
	switch {
	case !found:
		return false, ReasonFlagNotFound
	case !f.Enabled:
		return false, ReasonDisabled
	case f.Percentage == NoPercentage || f.Percentage >= 100:
		return true, ReasonStatic
	}
	return FlagBucket(f.Name, subject) < f.Percentage, ReasonSplit
}

// ApplySetFlag computes the flag after op at now: created_at stays,
// updated_at moves.
func ApplySetFlag(cur FlagRecord, found bool, op SetFlag, now time.Time) FlagRecord {
	next := cur
	next.Enabled, next.Percentage = op.Enabled, op.Percentage
	if !found {
		next.CreatedAt = now
	}
	next.UpdatedAt = now
	return next
}

// --- the actor behavior ---

type flagBehavior struct {
	key   Key
	res   *Resources
	state FlagRecord
	found bool
}

func (b *flagBehavior) Activate(h *Host) error {
	f, ok, err := b.res.loader.LoadFlag(b.key.Owner, b.key.Name)
	if err != nil {
		return err
	}
	f.Owner, f.Name = b.key.Owner, b.key.Name
	b.state, b.found = f, ok
	b.res.view.put(FlagReply{Flag: f, Found: ok}) // durable: it was just loaded
	return nil
}

// Passivatable drops the flag from the read view: once the actor is gone
// the view must not answer for it.
func (b *flagBehavior) Passivatable(*Host) bool {
	b.res.view.remove(b.key.Owner, b.key.Name)
	return true
}

func (b *flagBehavior) Handle(h *Host, op any) (any, error) {
	now := h.Now()
	switch op := op.(type) {
	case GetFlag:
		r := FlagReply{Flag: b.state, Found: b.found}
		if h.lastAnySeq <= h.sys.store.Resolved() {
			b.res.view.put(r) // committed: every write of ours is resolved
		}
		return r, nil
	case SetFlag:
		reserved := false
		if !b.found {
			if !b.res.flags.reserve(b.key.Owner) {
				return nil, b.res.flags.err
			}
			reserved = true
		}
		next := ApplySetFlag(b.state, b.found, op, now)
		pub, q, view := h.sys.cfg.Events, b.res.flags, b.res.view
		err := h.Write(PutFlag{Flag: next}, func(err error) {
			if reserved {
				q.created(next.Owner, err)
			}
			if err == nil {
				view.put(FlagReply{Flag: next, Found: true})
				pub.Publish(Event{Type: EventFlagSet, Kind: "flag", Name: next.Name, Owner: next.Owner, Time: now})
			}
		})
		if err != nil {
			if reserved {
				q.release(b.key.Owner)
			}
			return nil, err
		}
		b.state, b.found = next, true
		return FlagReply{Flag: next, Found: true}, nil
	case DeleteFlag:
		if !b.found {
			return nil, ErrFlagNotFound
		}
		pub, key, q, view := h.sys.cfg.Events, b.key, b.res.flags, b.res.view
		q.release(key.Owner)
		err := h.Write(RemoveFlag{Owner: key.Owner, Name: key.Name}, func(err error) {
			q.deleted(key.Owner, err)
			if err == nil {
				view.put(FlagReply{Flag: FlagRecord{Owner: key.Owner, Name: key.Name}})
				pub.Publish(Event{Type: EventFlagDeleted, Kind: "flag", Name: key.Name, Owner: key.Owner, Time: now})
			}
		})
		if err != nil {
			q.add(key.Owner)
			return nil, err
		}
		b.state = FlagRecord{Owner: key.Owner, Name: key.Name}
		b.found = false
		return nil, nil
	}
	return nil, fmt.Errorf("flag: unknown operation %T", op)
}
