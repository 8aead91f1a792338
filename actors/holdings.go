package actors

import (
	"sort"
	"sync"
	"time"
)

// Holdings is the per-holder index of held locks, so that "my locks" is
// served without a scan over every lock. It is a derived view: lock actors
// update it from their commit callbacks (so it never shows an unacknowledged
// grant) and when a lock expires.
type Holdings struct {
	parts [16]holdingsPart
}

type holdingsPart struct {
	// mu guards byHolder and pending.
	mu       sync.Mutex
	byHolder map[string]map[string]LockRecord
	// pending counts grants reserved against a holder's quota that have
	// not committed yet (Reserve).
	pending map[string]int
}

// NewHoldings returns an empty index.
func NewHoldings() *Holdings {
	h := &Holdings{}
	for i := range h.parts {
		h.parts[i].byHolder = map[string]map[string]LockRecord{}
		h.parts[i].pending = map[string]int{}
	}
	return h
}

func (h *Holdings) part(holder string) *holdingsPart {
	x := uint32(2166136261)
	for i := 0; i < len(holder); i++ {
		x = (x ^ uint32(holder[i])) * 16777619
	}
	return &h.parts[x%uint32(len(h.parts))]
}

// Put records that r.Holder holds r.
func (h *Holdings) Put(r LockRecord) {
	p := h.part(r.Holder)
	p.mu.Lock()
	p.putLocked(r)
	p.mu.Unlock()
}

func (p *holdingsPart) putLocked(r LockRecord) {
	m := p.byHolder[r.Holder]
	if m == nil {
		m = map[string]LockRecord{}
		p.byHolder[r.Holder] = m
	}
	m[r.Name] = r
}

// Reserve counts a grant in progress against holder's quota of max locks:
// it reports false (and reserves nothing) when holder already holds, or is
// being granted, max locks at now. A reservation ends with PutReserved (the
// grant committed) or Unreserve (it failed).
func (h *Holdings) Reserve(holder string, now time.Time, max int) bool {
	p := h.part(holder)
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.pending[holder]
	for _, r := range p.byHolder[holder] {
		if n >= max {
			break
		}
		if now.Before(r.ExpiresAt) {
			n++
		}
	}
	if n >= max {
		return false
	}
	p.pending[holder]++
	return true
}

// Unreserve gives back a reservation whose grant failed.
func (h *Holdings) Unreserve(holder string) {
	p := h.part(holder)
	p.mu.Lock()
	p.unreserveLocked(holder)
	p.mu.Unlock()
}

func (p *holdingsPart) unreserveLocked(holder string) {
	if p.pending[holder] <= 1 {
		delete(p.pending, holder)
	} else {
		p.pending[holder]--
	}
}

// PutReserved records a committed grant and ends its reservation, in one
// step (the grant is never counted twice, nor not at all).
func (h *Holdings) PutReserved(r LockRecord) {
	p := h.part(r.Holder)
	p.mu.Lock()
	p.putLocked(r)
	p.unreserveLocked(r.Holder)
	p.mu.Unlock()
}

// Remove forgets holder's lock name if it is still the lease leaseID
// (a newer grant to the same holder is kept).
func (h *Holdings) Remove(holder, name, leaseID string) {
	p := h.part(holder)
	p.mu.Lock()
	if m := p.byHolder[holder]; m != nil {
		if r, ok := m[name]; ok && (leaseID == "" || r.LeaseID == leaseID) {
			delete(m, name)
			if len(m) == 0 {
				delete(p.byHolder, holder)
			}
		}
	}
	p.mu.Unlock()
}

// Count is the number of locks holder holds at now.
func (h *Holdings) Count(holder string, now time.Time) int {
	p := h.part(holder)
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.byHolder[holder] {
		if now.Before(r.ExpiresAt) {
			n++
		}
	}
	return n
}

// List returns holder's locks held at now, sorted by name.
func (h *Holdings) List(holder string, now time.Time) []LockRecord {
	p := h.part(holder)
	p.mu.Lock()
	out := make([]LockRecord, 0, len(p.byHolder[holder]))
	for _, r := range p.byHolder[holder] {
		if now.Before(r.ExpiresAt) {
			out = append(out, r)
		}
	}
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// All returns every lock held at now, sorted by name (the admin view).
func (h *Holdings) All(now time.Time) []LockRecord {
	var out []LockRecord
	for i := range h.parts {
		p := &h.parts[i]
		p.mu.Lock()
		for _, m := range p.byHolder {
			for _, r := range m {
				if now.Before(r.ExpiresAt) {
					out = append(out, r)
				}
			}
		}
		p.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Total is the number of entries (held or expired but not yet removed).
func (h *Holdings) Total() int {
	n := 0
	for i := range h.parts {
		p := &h.parts[i]
		p.mu.Lock()
		for _, m := range p.byHolder {
			n += len(m)
		}
		p.mu.Unlock()
	}
	return n
}
