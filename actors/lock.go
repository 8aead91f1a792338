package actors

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

func init() { uuid.EnableRandPool() } // lease ids from a pooled crypto/rand buffer

// Lock operations and replies.
type (
	// AcquireLock grants the lock to Caller for TTL, or extends Caller's hold.
	AcquireLock struct {
		Caller string
		TTL    time.Duration
	}
	// RenewLock sets the expiry of Caller's lease to now+TTL.
	RenewLock struct {
		Caller  string
		LeaseID string
		TTL     time.Duration
	}
	// ReleaseLock frees the lock. Admin releases any holder's lock.
	ReleaseLock struct {
		Caller  string
		LeaseID string
		Admin   bool
	}
	// LockStatus reads the lock.
	LockStatus struct{}
	// expireLock is sent by the expiry timer.
	expireLock struct{}

	// LockReply answers every lock operation that succeeds.
	LockReply struct {
		Outcome LockOutcome
		Lock    LockRecord
	}
)

// LockOutcome says what an operation did.
type LockOutcome uint8

// Outcomes.
const (
	LockAcquired  LockOutcome = iota + 1 // a new grant (new lease, new token)
	LockHeld                             // caller already held it; renewed or re-acquired
	LockReleased                         // freed
	LockAvailable                        // status: not held
)

// ErrLockNotOwned answers renew/release of a lease the caller does not hold.
var ErrLockNotOwned = errors.New("Lock not found or not owned by caller")

// ErrQuota answers an acquire beyond the per-user lock quota.
var ErrQuota = errors.New("quota exceeded")

// LockHeldError answers an acquire of a lock someone else holds.
type LockHeldError struct {
	Name      string
	Holder    string
	ExpiresAt time.Time
}

func (e *LockHeldError) Error() string {
	return fmt.Sprintf("lock %q held by %s until %s", e.Name, e.Holder, e.ExpiresAt.Format(time.RFC3339))
}

// HeldAt reports whether the lock is held at now.
func (l LockRecord) HeldAt(now time.Time) bool {
	return l.Holder != "" && now.Before(l.ExpiresAt)
}

// --- the pure state machine: functions of the current state and now ---

// Acquire computes the result of caller acquiring l for ttl at now.
func Acquire(l LockRecord, caller string, ttl time.Duration, now time.Time, newLease func() string) (LockRecord, LockOutcome, error) {
	if l.HeldAt(now) {
		if l.Holder != caller {
			return l, 0, &LockHeldError{Name: l.Name, Holder: l.Holder, ExpiresAt: l.ExpiresAt}
		}
		if exp := now.Add(ttl); exp.After(l.ExpiresAt) {
			l.ExpiresAt = exp
		}
		return l, LockHeld, nil
	}
	l.Holder = caller
	l.LeaseID = newLease()
	l.Token++
	l.AcquiredAt = now
	l.ExpiresAt = now.Add(ttl)
	return l, LockAcquired, nil
}

// Renew computes the result of renewing lease for ttl at now.
func Renew(l LockRecord, caller, lease string, ttl time.Duration, now time.Time) (LockRecord, error) {
	if !l.HeldAt(now) || l.Holder != caller || !sameLease(l.LeaseID, lease) {
		return l, ErrLockNotOwned
	}
	l.ExpiresAt = now.Add(ttl)
	return l, nil
}

// Release computes the result of releasing lease at now. admin releases
// whatever lease is current.
func Release(l LockRecord, caller, lease string, admin bool, now time.Time) (LockRecord, error) {
	if !l.HeldAt(now) || (!admin && (l.Holder != caller || !sameLease(l.LeaseID, lease))) {
		return l, ErrLockNotOwned
	}
	return free(l), nil
}

// Expire reports whether l has expired at now, and the freed state.
func Expire(l LockRecord, now time.Time) (LockRecord, bool) {
	if l.Holder == "" || now.Before(l.ExpiresAt) {
		return l, false
	}
	return free(l), true
}

func free(l LockRecord) LockRecord {
	l.Holder, l.LeaseID = "", ""
	l.ExpiresAt, l.AcquiredAt = time.Time{}, time.Time{}
	return l // Token is kept: the next grant continues from it
}

func sameLease(a, b string) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// --- the actor behavior ---

type lockBehavior struct {
	name  string
	state LockRecord
	timer Timer // expiry timer of the current hold
}

func (b *lockBehavior) Activate(h *Host) error {
	r, _, err := h.Store().LoadLock(b.name)
	if err != nil {
		return err
	}
	r.Name = b.name
	b.state = r
	if r.HeldAt(h.Now()) {
		b.schedule(h)
	}
	return nil
}

func (b *lockBehavior) Passivatable(h *Host) bool { return true }

func (b *lockBehavior) schedule(h *Host) {
	d := b.state.ExpiresAt.Sub(h.Now())
	if b.timer != nil {
		// Re-arm the resident actor's timer instead of allocating another:
		// the op it sends (expireLock through the shard) is the same.
		b.timer.Reset(d)
		return
	}
	b.timer = h.AfterFunc(d, expireLock{})
}

func (b *lockBehavior) Handle(h *Host, op any) (any, error) {
	now := h.Now()
	switch op := op.(type) {
	case AcquireLock:
		prev := b.state
		if exp, ok := Expire(prev, now); ok {
			b.expired(h, prev, now)
			prev = exp
			b.state = exp
		}
		next, outcome, err := Acquire(prev, op.Caller, op.TTL, now, newLease)
		if err != nil {
			return nil, err
		}
		reserved := false
		if outcome == LockAcquired {
			// The grant counts against the quota from now until it commits
			// (or fails), so concurrent grants to one user on different
			// locks cannot overshoot it.
			if max := h.sys.cfg.MaxLocksPerUser; max > 0 {
				if !h.sys.Holdings.Reserve(op.Caller, now, max) {
					return nil, fmt.Errorf("%w: at most %d active locks per user", ErrQuota, max)
				}
				reserved = true
			}
		}
		if next == prev {
			return LockReply{Outcome: outcome, Lock: next}, nil
		}
		ev := EventLockAcquired
		if outcome == LockHeld {
			ev = EventLockRenewed
		}
		if err := b.persist(h, next, ev, now, reserved); err != nil {
			if reserved {
				h.sys.Holdings.Unreserve(op.Caller)
			}
			return nil, err
		}
		return LockReply{Outcome: outcome, Lock: next}, nil
	case RenewLock:
		next, err := Renew(b.state, op.Caller, op.LeaseID, op.TTL, now)
		if err != nil {
			return nil, err
		}
		if err := b.persist(h, next, EventLockRenewed, now, false); err != nil {
			return nil, err
		}
		return LockReply{Outcome: LockHeld, Lock: next}, nil
	case ReleaseLock:
		prev := b.state
		next, err := Release(prev, op.Caller, op.LeaseID, op.Admin, now)
		if err != nil {
			return nil, err
		}
		if err := b.persistRelease(h, prev, next, now); err != nil {
			return nil, err
		}
		return LockReply{Outcome: LockReleased, Lock: next}, nil
	case LockStatus:
		if b.state.HeldAt(now) {
			return LockReply{Outcome: LockHeld, Lock: b.state}, nil
		}
		return LockReply{Outcome: LockAvailable, Lock: LockRecord{Name: b.name, Token: b.state.Token}}, nil
	case expireLock:
		if b.state.Holder == "" {
			return nil, nil
		}
		if exp, ok := Expire(b.state, now); ok {
			b.expired(h, b.state, now)
			b.state = exp
		} else {
			b.schedule(h) // fired early (clock skew) or stale: re-arm
		}
		return nil, nil
	}
	return nil, fmt.Errorf("lock: unknown operation %T", op)
}

// persist writes next, and once committed updates the holder index and
// publishes ev. reserved: the grant holds a quota reservation (Reserve) that
// the commit turns into a holding, or a failure gives back.
func (b *lockBehavior) persist(h *Host, next LockRecord, ev string, now time.Time, reserved bool) error {
	prev := b.state
	sys := h.sys
	err := h.Write(PutLock{Lock: next}, func(err error) {
		if err != nil {
			if reserved {
				sys.Holdings.Unreserve(next.Holder)
			}
			return
		}
		if prev.Holder != "" && prev.LeaseID != next.LeaseID {
			sys.Holdings.Remove(prev.Holder, prev.Name, prev.LeaseID)
		}
		if reserved {
			sys.Holdings.PutReserved(next)
		} else {
			sys.Holdings.Put(next)
		}
		sys.cfg.Events.Publish(lockEvent(ev, next, now))
	})
	if err != nil {
		return err
	}
	b.state = next
	if prev.ExpiresAt != next.ExpiresAt || b.timer == nil {
		b.schedule(h)
	}
	return nil
}

func (b *lockBehavior) persistRelease(h *Host, prev, next LockRecord, now time.Time) error {
	sys := h.sys
	err := h.Write(PutLock{Lock: next}, func(err error) {
		if err != nil {
			return
		}
		sys.Holdings.Remove(prev.Holder, prev.Name, prev.LeaseID)
		e := lockEvent(EventLockReleased, prev, now)
		sys.cfg.Events.Publish(e)
	})
	if err != nil {
		return err
	}
	b.state = next
	if b.timer != nil {
		b.timer.Stop() // kept: the next grant re-arms it
	}
	return nil
}

// expired handles a hold that ran out: nothing to write (a row whose
// expires_at has passed is free on reload), but the index and subscribers
// must learn about it.
func (b *lockBehavior) expired(h *Host, prev LockRecord, now time.Time) {
	h.sys.Holdings.Remove(prev.Holder, prev.Name, prev.LeaseID)
	if b.timer != nil {
		b.timer.Stop() // kept: the next grant re-arms it
	}
	e := lockEvent(EventLockExpired, prev, now)
	// Publish after anything this actor already queued is durable, so the
	// stream never shows an expiry ahead of the grant it ends.
	pub := h.sys.cfg.Events
	if h.lastSeq > h.sys.store.Resolved() {
		h.sys.store.AfterCommit(h.lastSeq, func(error) { pub.Publish(e) })
	} else {
		pub.Publish(e)
	}
}

func lockEvent(typ string, l LockRecord, now time.Time) Event {
	return Event{Type: typ, Kind: "lock", Name: l.Name, Holder: l.Holder, LeaseID: l.LeaseID,
		FencingToken: l.Token, ExpiresAt: l.ExpiresAt, Time: now}
}

func newLease() string { return uuid.NewString() }
