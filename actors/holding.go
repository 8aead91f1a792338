package actors

import (
	"time"

	"github.com/google/uuid"
)

// holding is the compact record of one held lock (or semaphore slot) in
// the holder index (Holdings): 96 bytes, plus the name's bytes, and an
// extra record only for the optional fields that are set. It is never
// changed once published in the index (a change replaces it), so readers
// need no lock of their own to read it.
type holding struct {
	name   string
	holder string   // interned: the string of the holder's tree, shared by all its records
	lease  [16]byte // the lease id when it is a UUID in canonical form (extra.lease otherwise)
	token  uint64
	// expires, acquired: unix milliseconds (0: the zero time), the
	// precision of durable timestamps and of the runtime clock.
	expires, acquired int64
	delay             int64 // LockDelay, ms
	extra             *holdingExtra
	exp               *expiryItem // the lock's expiry entry (locks only; nil: none)
}

// holdingExtra holds what most holds do not have.
type holdingExtra struct {
	holderID, sessionID, metadata string
	lease                         string // a lease id that is not a canonical UUID (rawLease)
	rawLease                      bool
	limit                         int32 // a semaphore slot's SlotLimit (packed next to rawLease: no growth)
	availableAt                   int64 // ms; a held lock has none, kept for a faithful round trip
	delayHolder                   string
}

// compactLock is r as the index keeps it; holder is r.Holder, interned.
func compactLock(r LockRecord, holder string) *holding {
	c := &holding{name: r.Name, holder: holder, token: r.Token, expires: unixMS(r.ExpiresAt),
		acquired: unixMS(r.AcquiredAt), delay: r.LockDelay.Milliseconds()}
	var x holdingExtra
	if id, ok := parseLease(r.LeaseID); ok {
		c.lease = id
	} else {
		x.lease, x.rawLease = r.LeaseID, true
	}
	x.holderID, x.sessionID, x.metadata = r.HolderID, r.SessionID, r.Metadata
	x.availableAt, x.delayHolder = unixMS(r.AvailableAt), r.DelayHolder
	x.limit = int32(r.SlotLimit)
	if x != (holdingExtra{}) {
		c.extra = &x
	}
	return c
}

// record is c as a LockRecord.
func (c *holding) record() LockRecord {
	r := LockRecord{Name: c.name, Holder: c.holder, Token: c.token, ExpiresAt: fromUnixMS(c.expires),
		AcquiredAt: fromUnixMS(c.acquired), LockDelay: time.Duration(c.delay) * time.Millisecond}
	if x := c.extra; x != nil {
		r.HolderID, r.SessionID, r.Metadata = x.holderID, x.sessionID, x.metadata
		r.AvailableAt, r.DelayHolder = fromUnixMS(x.availableAt), x.delayHolder
		r.SlotLimit = int(x.limit)
		if x.rawLease {
			r.LeaseID = x.lease
			return r
		}
	}
	r.LeaseID = uuid.UUID(c.lease).String()
	return r
}

// heldAt reports whether c counts as held at at (unix ms): a hold under a
// session is, while it is in the index (its session decides).
func (c *holding) heldAt(at int64) bool {
	return at < c.expires || c.extra != nil && c.extra.sessionID != ""
}

// leaseIs reports whether c's lease id is id (in constant time for the
// bytes compared).
func (c *holding) leaseIs(id string) bool {
	if c.extra != nil && c.extra.rawLease {
		return sameLease(c.extra.lease, id)
	}
	b, ok := parseLease(id)
	if !ok {
		return false
	}
	var diff byte
	for i := range b {
		diff |= b[i] ^ c.lease[i]
	}
	return diff == 0
}

// parseLease reads a lease id in the canonical form newLease makes (a UUID,
// lowercase, with dashes: formatting it again gives the same string); ok
// is false for any other string.
func parseLease(s string) (id [16]byte, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, false
	}
	j := 0
	for i := 0; i < 36; i += 2 {
		if s[i] == '-' {
			i++
		}
		hi, ok1 := lowerHex(s[i])
		lo, ok2 := lowerHex(s[i+1])
		if !ok1 || !ok2 {
			return id, false
		}
		id[j] = hi<<4 | lo
		j++
	}
	return id, true
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// unixMS is t in unix milliseconds, 0 for the zero time (as stored).
func unixMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromUnixMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}
