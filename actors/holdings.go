package actors

import (
	"container/heap"
	"maps"
	"slices"
	"strings"
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
// of sorting every lock. Entries are compact records (holding, about 100
// bytes): the lease id as 16 bytes when it is a UUID, times as unix
// milliseconds, the holder's id stored once per holder (interned), and the
// optional strings (holder id, session, metadata) only when set.
//
// The lock kind's index (newLockHoldings) is also the compact table of held
// locks: it finds a lock's record by name (lookup), which is what a lock's
// actor activates from, and it keeps with each record the lock's expiry
// entry (expiries). The semaphores' index keeps only the per-holder trees.
type Holdings struct {
	parts [16]holdingsPart
	// names, when set, finds a record by name (locks only).
	names []namePart
}

type holdingsPart struct {
	// mu guards byHolder and pending (and the trees in byHolder).
	mu       sync.Mutex
	byHolder map[string]*holderTree
	// pending counts grants reserved against a holder's quota that have
	// not committed yet (Reserve).
	pending map[string]int
	probe   holding // a search key (guarded by mu: no allocation per search)
}

// holderTree is one holder's locks by name; holder is the interned id
// every record of the tree points to.
type holderTree struct {
	holder string
	btree.BTreeG[*holding]
}

// namePart is one part of the by-name table of held locks.
type namePart struct {
	mu     sync.Mutex
	byName map[string]*holding
	peak   int // largest len(byName) since the map was last rebuilt
}

// namePartsN is the number of parts of the by-name table.
const namePartsN = 32

// NewHoldings returns an empty index.
func NewHoldings() *Holdings {
	h := &Holdings{}
	for i := range h.parts {
		h.parts[i].byHolder = map[string]*holderTree{}
		h.parts[i].pending = map[string]int{}
	}
	return h
}

// newLockHoldings returns an empty index that also finds records by name.
func newLockHoldings() *Holdings {
	h := NewHoldings()
	h.names = make([]namePart, namePartsN)
	for i := range h.names {
		h.names[i].byName = map[string]*holding{}
	}
	return h
}

func fnv(s string) uint32 {
	x := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		x = (x ^ uint32(s[i])) * 16777619
	}
	return x
}

func (h *Holdings) part(holder string) *holdingsPart {
	return &h.parts[fnv(holder)%uint32(len(h.parts))]
}

func (h *Holdings) namePart(name string) *namePart {
	return &h.names[fnv(name)%uint32(len(h.names))]
}

func byName(a, b *holding) bool { return a.name < b.name }

// treeLocked is holder's tree, created if needed (p.mu held).
func (p *holdingsPart) treeLocked(holder string) *holderTree {
	t := p.byHolder[holder]
	if t == nil {
		t = &holderTree{holder: holder}
		t.BTreeG = *btree.NewBTreeGOptions(byName, btree.Options{NoLocks: true}) // the part's mu guards it
		p.byHolder[holder] = t
	}
	return t
}

// Put records that r.Holder holds r.
func (h *Holdings) Put(r LockRecord) { h.put(r, nil, false) }

// PutReserved records a committed grant and ends its reservation, in one
// step (the grant is never counted twice, nor not at all).
func (h *Holdings) PutReserved(r LockRecord) { h.put(r, nil, true) }

// put records r with its expiry entry exp (nil: none), ending a
// reservation when reserved.
func (h *Holdings) put(r LockRecord, exp *expiryItem, reserved bool) {
	p := h.part(r.Holder)
	p.mu.Lock()
	t := p.treeLocked(r.Holder)
	c := compactLock(r, t.holder)
	c.exp = exp
	t.Set(c)
	if reserved {
		p.unreserveLocked(r.Holder)
	}
	p.mu.Unlock()
	if h.names != nil {
		np := h.namePart(r.Name)
		np.mu.Lock()
		np.byName[c.name] = c
		np.peak = max(np.peak, len(np.byName))
		np.mu.Unlock()
	}
}

// lookup is the record of the held lock name (held, or expired and not yet
// removed), with its expiry entry; false if the index has none.
func (h *Holdings) lookup(name string) (LockRecord, *expiryItem, bool) {
	if h.names == nil {
		return LockRecord{}, nil, false
	}
	np := h.namePart(name)
	np.mu.Lock()
	c := np.byName[name]
	np.mu.Unlock()
	if c == nil {
		return LockRecord{}, nil, false
	}
	return c.record(), c.exp, true // c is never changed once published
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
		at := now.UnixMilli()
		t.Scan(func(c *holding) bool {
			if c.heldAt(at) {
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

// Remove forgets holder's lock name if it is still the lease leaseID
// (a newer grant to the same holder is kept); leaseID "" forgets whatever
// lease.
func (h *Holdings) Remove(holder, name, leaseID string) {
	p := h.part(holder)
	p.mu.Lock()
	if t := p.byHolder[holder]; t != nil {
		p.probe.name = name
		c, ok := t.Get(&p.probe)
		p.probe.name = ""
		if ok && (leaseID == "" || c.leaseIs(leaseID)) {
			t.Delete(c)
			if t.Len() == 0 {
				delete(p.byHolder, holder)
			}
		}
	}
	p.mu.Unlock()
	if h.names != nil {
		np := h.namePart(name)
		np.mu.Lock()
		if c := np.byName[name]; c != nil && c.holder == holder && (leaseID == "" || c.leaseIs(leaseID)) {
			delete(np.byName, name)
			if np.peak > 1024 && len(np.byName) < np.peak/8 {
				np.byName = maps.Clone(np.byName) // Go maps never give their buckets back
				np.peak = len(np.byName)
			}
		}
		np.mu.Unlock()
	}
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
func listedIn(t *holderTree, now time.Time, view LockView) int {
	n := 0
	if t != nil {
		at := now.UnixMilli()
		t.Scan(func(c *holding) bool {
			if c.listed(at, now, view) {
				n++
			}
			return true
		})
	}
	return n
}

// heldIn counts the locks of t held at now (t may be nil).
func heldIn(t *holderTree, now time.Time) int {
	n := 0
	if t != nil {
		at := now.UnixMilli()
		t.Scan(func(c *holding) bool {
			if c.heldAt(at) {
				n++
			}
			return true
		})
	}
	return n
}

// LockView is how a listing shows a hold under a session: it may change
// the record (a session lock shows its session's expiry) and reports
// whether to list it at all. It is not called for holds without a session
// (listed while their ExpiresAt is ahead). nil shows every entry as it is.
type LockView func(r *LockRecord) bool

// listed reports whether c, as view shows it, is listed at now (at: now
// in unix ms).
func (c *holding) listed(at int64, now time.Time, view LockView) bool {
	if c.extra == nil || c.extra.sessionID == "" || view == nil {
		return at < c.expires
	}
	r := c.record()
	return view(&r) && now.Before(r.ExpiresAt)
}

// shown is c as view shows it (c is listed).
func (c *holding) shown(view LockView) LockRecord {
	r := c.record()
	if c.extra != nil && c.extra.sessionID != "" && view != nil {
		view(&r)
	}
	return r
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
	at := now.UnixMilli()
	t.Ascend(&holding{name: q.AfterName}, func(c *holding) bool {
		if c.name == q.AfterName || !c.listed(at, now, view) {
			return true
		}
		if len(pg.Items) == q.Limit {
			pg.More = true
			return false
		}
		pg.Items = append(pg.Items, c.shown(view))
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
	probe := &holding{name: q.AfterName}
	at := now.UnixMilli()
	for i := range h.parts {
		for _, t := range h.parts[i].byHolder {
			pg.Total += listedIn(t, now, view)
			it := t.Iter()
			ok := it.Seek(probe)
			if ok && it.Item().name == q.AfterName {
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
		c := it.Item()
		if c.listed(at, now, view) {
			if len(pg.Items) == q.Limit {
				pg.More = true
				break
			}
			pg.Items = append(pg.Items, c.shown(view))
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
type treeIters []btree.IterG[*holding]

func (h treeIters) Len() int           { return len(h) }
func (h treeIters) Less(i, j int) bool { return h[i].Item().name < h[j].Item().name }
func (h treeIters) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *treeIters) Push(x any)        { *h = append(*h, x.(btree.IterG[*holding])) }
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

// holdingsLoad builds the index in bulk (recovery, before the index is
// shared): records are gathered per holder without locking, then each
// holder's tree is loaded in name order (sorted appends, no search) while
// another goroutine fills the by-name table, its maps sized once.
type holdingsLoad struct {
	h        *Holdings
	byHolder map[string][]*holding // key: the interned holder id
	all      []*holding            // every record, for the by-name table (locks only)
}

func (h *Holdings) bulk() *holdingsLoad {
	return &holdingsLoad{h: h, byHolder: map[string][]*holding{}}
}

// add gathers r with its expiry entry (nil: none).
func (b *holdingsLoad) add(r LockRecord, exp *expiryItem) {
	cs, ok := b.byHolder[r.Holder]
	holder := r.Holder
	if ok && len(cs) > 0 {
		holder = cs[0].holder
	}
	c := compactLock(r, holder)
	c.exp = exp
	b.byHolder[holder] = append(cs, c)
	if b.h.names != nil {
		b.all = append(b.all, c)
	}
}

// finish puts every gathered record in the index (a loader gives a name
// once; one given twice to a holder is kept once).
func (b *holdingsLoad) finish() {
	h := b.h
	var wg sync.WaitGroup
	if h.names != nil {
		wg.Add(1)
		go func() { // reads only the records' names: the trees' loop below changes their holder field
			defer wg.Done()
			n := len(b.all)
			for i := range h.names {
				np := &h.names[i]
				np.mu.Lock()
				if len(np.byName) == 0 {
					np.byName = make(map[string]*holding, n/len(h.names)+n/(4*len(h.names))+8)
				}
				np.mu.Unlock()
			}
			for _, c := range b.all {
				np := h.namePart(c.name)
				np.mu.Lock()
				np.byName[c.name] = c
				np.peak = max(np.peak, len(np.byName))
				np.mu.Unlock()
			}
		}()
	}
	for holder, cs := range b.byHolder {
		cs = sortByName(cs)
		p := h.part(holder)
		p.mu.Lock()
		t := p.treeLocked(holder)
		for i, c := range cs {
			if i+1 < len(cs) && cs[i+1].name == c.name {
				continue
			}
			if c.holder != t.holder {
				c.holder = t.holder // the first record's string is the tree's
			}
			t.Load(c) // appends when c is after the tree's last name, else sets
		}
		p.mu.Unlock()
		delete(b.byHolder, holder)
	}
	wg.Wait()
	b.all = nil
}

// sortByName sorts cs by name and returns it (or a sorted copy). A loader
// that reads in name order (HeldLockLoader) gives them sorted but for its
// few last records (the store's journal): the sorted run is kept as it is,
// the rest sorted and merged into it, so 1M records sorted already cost a
// comparison each instead of a sort (0.3 s of a 1M-held-lock start).
func sortByName(cs []*holding) []*holding {
	byName := func(a, b *holding) int { return strings.Compare(a.name, b.name) }
	run := 1
	for run < len(cs) && cs[run-1].name <= cs[run].name {
		run++
	}
	if run >= len(cs) {
		return cs
	}
	if run < len(cs)/2 {
		slices.SortFunc(cs, byName)
		return cs
	}
	tail := slices.Clone(cs[run:])
	slices.SortFunc(tail, byName)
	out := make([]*holding, 0, len(cs))
	head := cs[:run]
	for len(head) > 0 && len(tail) > 0 {
		if tail[0].name < head[0].name {
			out = append(out, tail[0])
			tail = tail[1:]
		} else {
			out = append(out, head[0])
			head = head[1:]
		}
	}
	out = append(out, head...)
	return append(out, tail...)
}
