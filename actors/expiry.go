package actors

import (
	"container/heap"
	"sync"
	"time"
)

// expiryParts is the number of independent parts of the lock expiry
// schedule (by name hash): each has its own mutex, heap and runtime timer.
const expiryParts = 32

// expiries is the lock kind's expiry schedule: instead of one runtime timer
// per held lock, one min-heap of deadlines per part, each part with one
// timer (Config.AfterFunc, so tests drive it with their injected clock)
// armed at its earliest deadline. When a part's timer fires, every entry
// due by the runtime clock (Config.Now) is taken out and its lock is sent
// expireLock through its shard, exactly as a timer of its own would have
// done; the timer is then armed at the next deadline.
//
// An entry (expiryItem) belongs to one lock name and is reused for every
// hold of it: the lock's actor keeps it while resident, and the holder
// index keeps it with a held lock's compact record, so an activation of
// that lock re-arms the same entry instead of adding another.
type expiries struct {
	sys *System
	// send delivers the expiry of the lock name (expireLock through its
	// shard; tests replace it).
	send  func(name string)
	parts [expiryParts]expiryPart
}

type expiryPart struct {
	mu   sync.Mutex
	heap expiryHeap
	// timer fires fire for this part; armedAt is the deadline it is armed
	// for (unix ms; 0: not armed). It is re-armed only when an earlier
	// deadline comes in: a timer that fires early finds nothing due and
	// re-arms itself for the earliest deadline.
	timer   Timer
	armedAt int64
	closed  bool // close ran: nothing is scheduled any more
}

// expiryItem is one lock's entry in the schedule: 32 bytes.
type expiryItem struct {
	name string
	due  int64 // unix ms (guarded by the part's mu)
	idx  int   // position in the part's heap; -1: not scheduled (guarded by the part's mu)
}

func newExpiries(sys *System) *expiries {
	return &expiries{sys: sys, send: func(name string) { sys.send(lockKey(name), &expireLock{}) }}
}

func newExpiryItem(name string) *expiryItem { return &expiryItem{name: name, idx: -1} }

func (e *expiries) part(name string) *expiryPart {
	x := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		x = (x ^ uint32(name[i])) * 16777619
	}
	return &e.parts[x%expiryParts]
}

// reset schedules it to fire after d (from the runtime clock), moving it if
// it was scheduled already.
func (e *expiries) reset(it *expiryItem, d time.Duration) {
	now := e.sys.Now().UnixMilli()
	e.at(it, now+max(d, 0).Milliseconds(), now)
}

// at schedules it to fire at due (unix ms); now is the runtime clock in
// unix ms.
func (e *expiries) at(it *expiryItem, due, now int64) {
	p := e.part(it.name)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	it.due = due
	if it.idx >= 0 {
		heap.Fix(&p.heap, it.idx)
	} else {
		heap.Push(&p.heap, it)
	}
	e.armLocked(p, now)
	p.mu.Unlock()
}

// stop takes it out of the schedule (it may be nil).
func (e *expiries) stop(it *expiryItem) {
	if it == nil {
		return
	}
	p := e.part(it.name)
	p.mu.Lock()
	if it.idx >= 0 {
		heap.Remove(&p.heap, it.idx)
		if p.heap.Len() == 0 && p.armedAt != 0 {
			p.timer.Stop()
			p.armedAt = 0
		}
	}
	p.mu.Unlock()
}

// close stops every part's timer and empties the schedule (the System
// closed: nothing is sent any more, and nothing of it stays reachable from
// a runtime timer).
func (e *expiries) close() {
	for i := range e.parts {
		p := &e.parts[i]
		p.mu.Lock()
		if p.timer != nil {
			p.timer.Stop()
		}
		for _, it := range p.heap {
			it.idx = -1
		}
		p.heap, p.armedAt, p.closed = nil, 0, true
		p.mu.Unlock()
	}
}

// scheduled is the number of entries in the schedule.
func (e *expiries) scheduled() int {
	n := 0
	for i := range e.parts {
		p := &e.parts[i]
		p.mu.Lock()
		n += p.heap.Len()
		p.mu.Unlock()
	}
	return n
}

// armLocked arms p's timer for its earliest deadline if it is not armed
// for that one or an earlier one.
func (e *expiries) armLocked(p *expiryPart, now int64) {
	if p.heap.Len() == 0 {
		return
	}
	next := p.heap[0].due
	if p.armedAt != 0 && p.armedAt <= next {
		return
	}
	d := time.Duration(max(next-now, 0)) * time.Millisecond
	if p.timer == nil {
		p.timer = e.sys.cfg.AfterFunc(d, func() { e.fire(p) })
	} else {
		p.timer.Reset(d)
	}
	p.armedAt = next
}

// fire takes every entry of p due at the runtime clock out of the schedule
// and sends its lock expireLock; then it arms the timer for the next.
func (e *expiries) fire(p *expiryPart) {
	now := e.sys.Now().UnixMilli()
	var due []string
	p.mu.Lock()
	p.armedAt = 0
	for p.heap.Len() > 0 && p.heap[0].due <= now {
		due = append(due, heap.Pop(&p.heap).(*expiryItem).name)
	}
	e.armLocked(p, now)
	p.mu.Unlock()
	for _, name := range due {
		e.send(name)
	}
}

// expiryHeap is a min-heap of entries by deadline (container/heap), each
// entry knowing its position.
type expiryHeap []*expiryItem

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *expiryHeap) Push(x any) {
	it := x.(*expiryItem)
	it.idx = len(*h)
	*h = append(*h, it)
}
func (h *expiryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	it.idx = -1
	*h = old[:len(old)-1]
	if cap(*h) > 1024 && len(*h) < cap(*h)/4 {
		*h = append(expiryHeap(nil), *h...) // give back the memory of a drained heap
	}
	return it
}

// load schedules every entry of its at its due (set by the caller), in
// bulk: each part's heap is appended to and heapified once (recovery,
// before anything else uses the schedule: until the heaps are heapified,
// their order is not kept).
// now is the runtime clock in unix ms.
func (e *expiries) load(its []*expiryItem, now int64) {
	for _, it := range its {
		p := e.part(it.name)
		p.mu.Lock()
		if it.idx < 0 && !p.closed {
			it.idx = len(p.heap) // heapified below
			p.heap = append(p.heap, it)
		}
		p.mu.Unlock()
	}
	for i := range e.parts {
		p := &e.parts[i]
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			continue
		}
		heap.Init(&p.heap)
		e.armLocked(p, now)
		p.mu.Unlock()
	}
}
