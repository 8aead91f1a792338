package actors

import (
	"container/heap"
	"sync"
	"time"

	"github.com/tidwall/btree"
)

// Holdings is the per-holder index of held locks, so that "my locks" is
// served without a scan over every lock. It is a derived view: lock actors
// update it from their commit callbacks (so it never shows an unacknowledged
// grant) and when a lock expires.
//
// Each holder's locks are a B-tree ordered by name, so that a listing page
// (Page, AllPage) walks from its position to the end of the page instead
// of sorting every lock.
type Holdings struct {
	parts [16]holdingsPart
}

type holdingsPart struct {
	// mu guards byHolder and pending (and the trees in byHolder).
	mu       sync.Mutex
	byHolder map[string]*lockTree
	// pending counts grants reserved against a holder's quota that have
	// not committed yet (Reserve).
	pending map[string]int
}

// NewHoldings returns an empty index.
func NewHoldings() *Holdings {
	h := &Holdings{}
	for i := range h.parts {
		h.parts[i].byHolder = map[string]*lockTree{}
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

// lockTree is one holder's locks by name.
type lockTree = btree.BTreeG[LockRecord]

func byName(a, b LockRecord) bool { return a.Name < b.Name }

func newLockTree() *lockTree {
	return btree.NewBTreeGOptions(byName, btree.Options{NoLocks: true}) // the part's mu guards it
}

func (p *holdingsPart) putLocked(r LockRecord) {
	t := p.byHolder[r.Holder]
	if t == nil {
		t = newLockTree()
		p.byHolder[r.Holder] = t
	}
	t.Set(r)
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
	if t := p.byHolder[holder]; t != nil && n < max {
		t.Scan(func(r LockRecord) bool {
			if now.Before(r.ExpiresAt) {
				n++
			}
			return n < max
		})
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
	if t := p.byHolder[holder]; t != nil {
		if r, ok := t.Get(LockRecord{Name: name}); ok && (leaseID == "" || r.LeaseID == leaseID) {
			t.Delete(r)
			if t.Len() == 0 {
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
	return heldIn(p.byHolder[holder], now)
}

// listedIn counts the locks of t listed at now as view shows them (t may
// be nil).
func listedIn(t *lockTree, now time.Time, view LockView) int {
	n := 0
	if t != nil {
		t.Scan(func(r LockRecord) bool {
			if listed(&r, now, view) {
				n++
			}
			return true
		})
	}
	return n
}

// heldIn counts the locks of t held at now (t may be nil).
func heldIn(t *lockTree, now time.Time) int {
	n := 0
	if t != nil {
		t.Scan(func(r LockRecord) bool {
			if now.Before(r.ExpiresAt) {
				n++
			}
			return true
		})
	}
	return n
}

// LockView is how a listing shows an entry of the index: it may change
// the record (a session lock shows its session's expiry) and reports
// whether to list it at all. nil shows every entry as it is.
type LockView func(r *LockRecord) bool

// listed reports whether r, as view shows it, is listed at now.
func listed(r *LockRecord, now time.Time, view LockView) bool {
	if view != nil && !view(r) {
		return false
	}
	return now.Before(r.ExpiresAt)
}

// List returns holder's locks held at now as view shows them, sorted by
// name (all of them: the API lists a page at a time, Page).
func (h *Holdings) List(holder string, now time.Time, view LockView) []LockRecord {
	var out []LockRecord
	for {
		pg := h.Page(holder, now, PageQuery{AfterName: lastName(out), Limit: 1024}, view)
		out = append(out, pg.Items...)
		if !pg.More {
			return out
		}
	}
}

// All returns every lock held at now as view shows them, sorted by name
// (all of them: the API lists a page at a time, AllPage).
func (h *Holdings) All(now time.Time, view LockView) []LockRecord {
	var out []LockRecord
	for {
		pg := h.AllPage(now, PageQuery{AfterName: lastName(out), Limit: 1024}, view)
		out = append(out, pg.Items...)
		if !pg.More {
			return out
		}
	}
}

func lastName(rs []LockRecord) string {
	if len(rs) == 0 {
		return ""
	}
	return rs[len(rs)-1].Name
}

// Page is one page of holder's locks held at now as view shows them, by
// name after q.AfterName, with the count of all of them. view is called
// with the part locked: it must not call into the index.
func (h *Holdings) Page(holder string, now time.Time, q PageQuery, view LockView) Page[LockRecord] {
	p := h.part(holder)
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.byHolder[holder]
	pg := Page[LockRecord]{Total: listedIn(t, now, view)}
	if t == nil {
		return pg
	}
	t.Ascend(LockRecord{Name: q.AfterName}, func(r LockRecord) bool {
		if r.Name == q.AfterName || !listed(&r, now, view) {
			return true
		}
		if len(pg.Items) == q.Limit {
			pg.More = true
			return false
		}
		pg.Items = append(pg.Items, r)
		return true
	})
	return pg
}

// AllPage is one page of every lock held at now as view shows them, by
// name after q.AfterName, with the count of all of them: the holders'
// trees are merged from the position on (a heap of one iterator per
// holder), with every part locked, in order, for the page's time.
func (h *Holdings) AllPage(now time.Time, q PageQuery, view LockView) Page[LockRecord] {
	for i := range h.parts {
		h.parts[i].mu.Lock()
	}
	defer func() {
		for i := range h.parts {
			h.parts[i].mu.Unlock()
		}
	}()
	var pg Page[LockRecord]
	var its treeIters
	defer its.release()
	for i := range h.parts {
		for _, t := range h.parts[i].byHolder {
			pg.Total += listedIn(t, now, view)
			it := t.Iter()
			ok := it.Seek(LockRecord{Name: q.AfterName})
			if ok && it.Item().Name == q.AfterName {
				ok = it.Next()
			}
			if ok {
				its = append(its, it)
			} else {
				it.Release()
			}
		}
	}
	heap.Init(&its)
	for its.Len() > 0 {
		it := &its[0]
		r := it.Item()
		if listed(&r, now, view) {
			if len(pg.Items) == q.Limit {
				pg.More = true
				break
			}
			pg.Items = append(pg.Items, r)
		}
		if it.Next() {
			heap.Fix(&its, 0)
		} else {
			it.Release()
			heap.Pop(&its)
		}
	}
	return pg
}

// treeIters is a min-heap of tree iterators by their current name.
type treeIters []btree.IterG[LockRecord]

func (h treeIters) Len() int           { return len(h) }
func (h treeIters) Less(i, j int) bool { return h[i].Item().Name < h[j].Item().Name }
func (h treeIters) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *treeIters) Push(x any)        { *h = append(*h, x.(btree.IterG[LockRecord])) }
func (h *treeIters) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (h treeIters) release() {
	for i := range h {
		h[i].Release()
	}
}

// Total is the number of entries (held or expired but not yet removed).
func (h *Holdings) Total() int {
	n := 0
	for i := range h.parts {
		p := &h.parts[i]
		p.mu.Lock()
		for _, t := range p.byHolder {
			n += t.Len()
		}
		p.mu.Unlock()
	}
	return n
}
