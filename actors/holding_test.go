package actors

import (
	"testing"
	"time"

	"unsafe"

	"github.com/google/uuid"
)

// Every field of a held lock's record survives the compact form, with and
// without the optional ones, with a UUID lease id and with one that is not
// in canonical form (kept as given).
func TestHoldingRoundTrip(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 8_000_000, time.UTC)
	full := LockRecord{Name: "deploy", Holder: "u:1", HolderID: "worker-7", LeaseID: uuid.NewString(), Token: 1 << 40,
		SessionID: "s-1", ExpiresAt: at.Add(time.Minute), AcquiredAt: at, LockDelay: 1500 * time.Millisecond,
		AvailableAt: at.Add(2 * time.Minute), DelayHolder: "u:2", Metadata: "host=a pid=1"}
	for name, r := range map[string]LockRecord{
		"every field": full,
		"bare":        {Name: "x", Holder: "u:1", LeaseID: uuid.NewString(), Token: 1, ExpiresAt: at, AcquiredAt: at},
		"legacy lease ids": {Name: "y", Holder: "u:1", LeaseID: "lease-1", Token: 2, ExpiresAt: at,
			AcquiredAt: at},
		"upper-case uuid": {Name: "z", Holder: "u:1", LeaseID: "6BA7B810-9DAD-11D1-80B4-00C04FD430C8", Token: 3,
			ExpiresAt: at},
		"no times, no lease": {Name: "w", Holder: "u:1"},
	} {
		holder := string([]byte(r.Holder)) // the index's interned copy
		c := compactLock(r, holder)
		if got := c.record(); got != r {
			t.Errorf("%s: round trip\n got %+v\nwant %+v", name, got, r)
		}
		if !c.leaseIs(r.LeaseID) || c.leaseIs(uuid.NewString()) || c.leaseIs("") && r.LeaseID != "" {
			t.Errorf("%s: leaseIs does not match exactly its lease", name)
		}
	}
	if c := compactLock(LockRecord{Name: "a", Holder: "u", LeaseID: uuid.NewString()}, "u"); c.extra != nil {
		t.Errorf("a record without optional fields has an extra record: %+v", c.extra)
	}
}

func TestParseLease(t *testing.T) {
	for i := 0; i < 1000; i++ {
		u := uuid.New()
		id, ok := parseLease(u.String())
		if !ok || id != [16]byte(u) {
			t.Fatalf("parseLease(%s) = %x %v", u, id, ok)
		}
	}
	for _, s := range []string{"", "lease-1", "6BA7B810-9DAD-11D1-80B4-00C04FD430C8", "{6ba7b810-9dad-11d1-80b4-00c04fd430c8}",
		"6ba7b8109dad11d180b400c04fd430c8", "6ba7b810-9dad-11d1-80b4-00c04fd430cg", "6ba7b810-9dad-11d1-80b4_00c04fd430c8"} {
		if _, ok := parseLease(s); ok {
			t.Errorf("parseLease(%q) accepted", s)
		}
	}
}

// The lock index finds a record by name, stores each holder's id once,
// and forgets a record only for its own lease.
func TestLockHoldingsLookup(t *testing.T) {
	h := newLockHoldings()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := LockRecord{Name: "a", Holder: string([]byte("u:1")), LeaseID: uuid.NewString(), Token: 1, ExpiresAt: now.Add(time.Hour), AcquiredAt: now}
	b := LockRecord{Name: "b", Holder: string([]byte("u:1")), LeaseID: uuid.NewString(), Token: 4, ExpiresAt: now.Add(time.Hour), AcquiredAt: now}
	exp := newExpiryItem("a")
	h.put(a, exp, false)
	h.Put(b)
	got, gotExp, ok := h.lookup("a")
	if !ok || got != a || gotExp != exp {
		t.Fatalf("lookup a = %+v %p %v, want %+v %p", got, gotExp, ok, a, exp)
	}
	ca, cb := h.namePart("a").byName["a"], h.namePart("b").byName["b"]
	if unsafeData(ca.holder) != unsafeData(cb.holder) {
		t.Fatal("two records of one holder keep two copies of its id")
	}
	h.Remove("u:1", "a", uuid.NewString()) // another lease: kept
	if _, _, ok := h.lookup("a"); !ok || h.Count("u:1", now) != 2 {
		t.Fatal("Remove of another lease forgot the record")
	}
	h.Remove("u:1", "a", a.LeaseID)
	if _, _, ok := h.lookup("a"); ok || h.Count("u:1", now) != 1 {
		t.Fatal("Remove of the record's lease kept it")
	}
	if _, _, ok := h.lookup("nothing"); ok {
		t.Fatal("lookup of an unknown name found something")
	}
}

func unsafeData(s string) *byte { return unsafe.StringData(s) }
