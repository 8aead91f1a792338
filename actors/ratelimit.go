package actors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Rate limit operations and replies.
type (
	// CheckLimit consumes one request if fewer than Max allowed checks
	// happened in the last Window. Max and Window replace the limit's
	// parameters from this check on.
	CheckLimit struct {
		Max    int
		Window time.Duration // whole seconds
	}
	// PeekLimit reports the limit's state without consuming (ErrLimitNotFound
	// for a limit never checked or reset).
	PeekLimit struct{}
	// ResetLimit forgets the limit: its counter and its parameters.
	ResetLimit struct{}

	// CheckLimitCall is CheckLimit for callers that pool their messages:
	// the actor writes the answer into Reply and answers with the call
	// itself, so neither the message nor the reply is allocated.
	CheckLimitCall struct {
		CheckLimit
		Reply LimitReply
	}

	// LimitReply answers CheckLimit and PeekLimit.
	LimitReply struct {
		LimitDecision
		Max    int
		Window time.Duration
	}
)

// ErrLimitNotFound answers PeekLimit and ResetLimit of an unknown limit.
var ErrLimitNotFound = fmt.Errorf("rate limit %w", ErrNotFound)

// --- the sliding window: pure, a function of the state and now ---

// Window granularity. A window is kept as a log of at most maxBuckets
// buckets. Each bucket counts allowed checks and remembers the time of the
// newest of them (last) and of the oldest (last - span). A bucket leaves the
// window when its newest check does, so every check in it is counted at
// least as long as it should be and at most span longer.
//
// While max_requests <= WindowBuckets every check gets its own bucket (two
// checks in the same millisecond share one, which is exact): the window is
// exact. Above that, a check joins the newest bucket if that bucket was
// opened less than grain = ceil(window/WindowBuckets) ago, so span < grain
// and bucket openings are at least grain apart; at most WindowBuckets+1
// buckets can then hold checks younger than the window. Memory is bounded by
// maxBuckets buckets (16 bytes each) whatever max_requests is.
const (
	WindowBuckets = 64
	maxBuckets    = WindowBuckets + 1
)

type limitBucket struct {
	last int64  // unix ms of the newest check in the bucket
	span uint32 // last - (unix ms of the oldest check)
	n    uint32 // allowed checks in the bucket
}

// SlidingWindow is the state of one rate limit: its parameters and the
// bucket log of the allowed checks still in the window. The zero value is
// an empty window. Times are unix milliseconds.
type SlidingWindow struct {
	Max    int   // max_requests in force
	Window int64 // window length in ms
	ring   []limitBucket
	head   int
	n      int // buckets in use
	count  int // allowed checks in the buckets
}

// LimitDecision is the outcome of a check, or the state reported by a peek.
type LimitDecision struct {
	Allowed bool
	// Remaining is how many more checks the window admits now (after this
	// check, for a check).
	Remaining int
	// Count is the number of allowed checks in the window.
	Count int
	// ResetAt is when the oldest counted check leaves the window (now +
	// window when the window is empty); ResetIn is ResetAt - now.
	ResetAt time.Time
	ResetIn time.Duration
	// RetryAfter is how long until a slot frees (only when not Allowed).
	RetryAfter time.Duration
}

// Grain is the bucket granularity of the window: ceil(window/WindowBuckets)
// ms. It bounds the approximation error when Max > WindowBuckets.
func (w *SlidingWindow) Grain() int64 { return (w.Window + WindowBuckets - 1) / WindowBuckets }

// Exact reports whether the window currently counts every check at its own
// time (Max <= WindowBuckets).
func (w *SlidingWindow) Exact() bool { return w.Max <= WindowBuckets }

func (w *SlidingWindow) at(i int) *limitBucket { return &w.ring[(w.head+i)%len(w.ring)] }

// expired returns how many of the oldest buckets have left the window at
// now, and how many checks they hold. A check made at t counts while
// now < t + window.
func (w *SlidingWindow) expired(now int64) (k, gone int) {
	for k < w.n {
		b := w.at(k)
		if b.last+w.Window > now {
			break
		}
		gone += int(b.n)
		k++
	}
	return k, gone
}

func (w *SlidingWindow) prune(now int64) {
	k, gone := w.expired(now)
	if k == 0 {
		return
	}
	w.head = (w.head + k) % len(w.ring)
	w.n -= k
	w.count -= gone
	if w.n == 0 {
		w.head = 0
	}
}

// Changes reports whether Check(now, max, window) would change the state
// (it would admit the check, or the parameters differ). Expiry alone is not
// a change: it is recomputed from the times.
func (w *SlidingWindow) Changes(now time.Time, max int, window time.Duration) bool {
	if w.Max != max || w.Window != window.Milliseconds() {
		return true
	}
	_, gone := w.expired(now.UnixMilli())
	return w.count-gone < max
}

// Check applies one check at now with the given parameters (which replace
// the previous ones) and returns the decision. An allowed check is counted;
// a denied one is not.
func (w *SlidingWindow) Check(now time.Time, max int, window time.Duration) LimitDecision {
	t := now.UnixMilli()
	w.Max, w.Window = max, window.Milliseconds()
	w.prune(t)
	if w.count >= max {
		return w.decide(t, false)
	}
	w.add(t)
	return w.decide(t, true)
}

// Status reports the state at now without changing it: Allowed says
// whether a check now would be admitted.
func (w *SlidingWindow) Status(now time.Time) LimitDecision {
	t := now.UnixMilli()
	k, gone := w.expired(t)
	allowed := w.count-gone < w.Max
	return w.decideFrom(t, k, w.count-gone, allowed)
}

// Count is the number of allowed checks in the window at now.
func (w *SlidingWindow) Count(now time.Time) int {
	_, gone := w.expired(now.UnixMilli())
	return w.count - gone
}

func (w *SlidingWindow) decide(t int64, allowed bool) LimitDecision {
	return w.decideFrom(t, 0, w.count, allowed)
}

// decideFrom computes a decision from the live buckets (those from index
// skip on, holding count checks). For an admitted check the count already
// includes it, so Remaining is what is left after it.
func (w *SlidingWindow) decideFrom(t int64, skip, count int, allowed bool) LimitDecision {
	d := LimitDecision{Allowed: allowed, Count: count}
	if rem := w.Max - count; rem > 0 {
		d.Remaining = rem
	}
	reset := t + w.Window
	if skip < w.n {
		reset = w.at(skip).last + w.Window
	}
	d.ResetAt = time.UnixMilli(reset).UTC()
	d.ResetIn = time.Duration(reset-t) * time.Millisecond
	if !allowed {
		// The earliest time enough of the oldest buckets have left for the
		// count to drop below Max.
		left := count
		for i := skip; i < w.n; i++ {
			b := w.at(i)
			left -= int(b.n)
			if left < w.Max {
				d.RetryAfter = time.Duration(b.last+w.Window-t) * time.Millisecond
				break
			}
		}
	}
	return d
}

// add counts one allowed check at t.
func (w *SlidingWindow) add(t int64) {
	if w.n > 0 {
		nb := w.at(w.n - 1)
		first := nb.last - int64(nb.span)
		// t <= last: the same millisecond, or the clock went back; counting
		// the check at the later time is exact or conservative.
		if t <= nb.last || (!w.Exact() && t-first < w.Grain()) {
			if t > nb.last {
				nb.span += uint32(t - nb.last)
				nb.last = t
			}
			nb.n++
			w.count++
			return
		}
	}
	if w.n == maxBuckets {
		w.mergeClosest()
	}
	if w.n == len(w.ring) {
		w.grow()
	}
	*w.at(w.n) = limitBucket{last: t, n: 1}
	w.n++
	w.count++
}

// mergeClosest frees a bucket by merging the two adjacent buckets whose
// union spans the least time, keeping the later time (counting longer,
// never shorter). Only reachable after a parameter change: a longer window,
// or a max_requests raised above WindowBuckets, keeps the finer buckets cut
// before it. 65 adjacent unions cover at most twice the window plus the
// largest span, so the chosen union spans at most about 2 grains.
func (w *SlidingWindow) mergeClosest() {
	best, bestSpan := 0, int64(-1)
	for i := 0; i+1 < w.n; i++ {
		a, b := w.at(i), w.at(i+1)
		if s := b.last - (a.last - int64(a.span)); bestSpan < 0 || s < bestSpan {
			best, bestSpan = i, s
		}
	}
	a, b := w.at(best), w.at(best+1)
	b.span = uint32(bestSpan)
	b.n += a.n
	// close the gap: shift the buckets older than best up by one
	for i := best; i > 0; i-- {
		*w.at(i) = *w.at(i - 1)
	}
	*w.at(0) = limitBucket{}
	w.head = (w.head + 1) % len(w.ring)
	w.n--
}

func (w *SlidingWindow) grow() {
	c := 2 * len(w.ring)
	if c < 4 {
		c = 4
	}
	if c > maxBuckets {
		c = maxBuckets
	}
	ring := make([]limitBucket, c)
	for i := 0; i < w.n; i++ {
		ring[i] = *w.at(i)
	}
	w.ring, w.head = ring, 0
}

// Buckets is the number of buckets in use (memory accounting, tests).
func (w *SlidingWindow) Buckets() int { return w.n }

// Newest is the time of the newest counted check (zero if none).
func (w *SlidingWindow) Newest() time.Time {
	if w.n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(w.at(w.n - 1).last).UTC()
}

// Binary encoding of the bucket log (the limits.log column):
//
//	byte     format version (1)
//	uvarint  number of buckets
//	per bucket, oldest first:
//	  varint   last - previous bucket's last (the first bucket: last itself)
//	  uvarint  span
//	  uvarint  n
const windowFormat = 1

// AppendBinary appends the encoded bucket log to b.
func (w *SlidingWindow) AppendBinary(b []byte) []byte {
	b = append(b, windowFormat)
	b = binary.AppendUvarint(b, uint64(w.n))
	var prev int64
	for i := 0; i < w.n; i++ {
		k := w.at(i)
		b = binary.AppendVarint(b, k.last-prev)
		b = binary.AppendUvarint(b, uint64(k.span))
		b = binary.AppendUvarint(b, uint64(k.n))
		prev = k.last
	}
	return b
}

var errBadWindow = errors.New("corrupt rate limit log")

// DecodeSlidingWindow rebuilds a window from its parameters and encoded log.
func DecodeSlidingWindow(max int, window time.Duration, log []byte) (SlidingWindow, error) {
	w := SlidingWindow{Max: max, Window: window.Milliseconds()}
	if len(log) == 0 {
		return w, nil
	}
	if log[0] != windowFormat {
		return w, fmt.Errorf("%w: format %d", errBadWindow, log[0])
	}
	p := log[1:]
	n, k := binary.Uvarint(p)
	if k <= 0 || n > maxBuckets {
		return w, errBadWindow
	}
	p = p[k:]
	if n > 0 {
		w.ring = make([]limitBucket, n)
	}
	var prev int64
	for i := 0; i < int(n); i++ {
		d, k1 := binary.Varint(p)
		if k1 <= 0 {
			return w, errBadWindow
		}
		p = p[k1:]
		span, k2 := binary.Uvarint(p)
		if k2 <= 0 || span > 1<<32-1 {
			return w, errBadWindow
		}
		p = p[k2:]
		cnt, k3 := binary.Uvarint(p)
		if k3 <= 0 || cnt == 0 || cnt > 1<<32-1 {
			return w, errBadWindow
		}
		p = p[k3:]
		prev += d
		w.ring[i] = limitBucket{last: prev, span: uint32(span), n: uint32(cnt)}
		w.count += int(cnt)
	}
	if len(p) != 0 {
		return w, errBadWindow
	}
	w.n = int(n)
	return w, nil
}

// --- durable form ---

// LimitRow is the durable form of a limit, as the writer stores it.
type LimitRow struct {
	Owner, Name   string
	MaxRequests   int
	WindowSeconds int
	Log           []byte // SlidingWindow.AppendBinary
	UpdatedAt     time.Time
}

// LimitRecord is a limit as loaded for listing.
type LimitRecord struct {
	Owner, Name string
	Window      SlidingWindow
	UpdatedAt   time.Time
}

// limitBox is the state of one limit, shared by its actor and the limit
// flusher (limitflush.go): counters are written behind and coalesced. A
// changed box is listed once with the flusher; the flusher writes every
// listed box in one PutLimits mutation, and the writer encodes each box's
// state at the moment it applies it, so a write never stores anything older
// than what was acknowledged before it was queued.
type limitBox struct {
	owner, name string
	// mu guards w, listed, flushing and dead. The actor holds it while it
	// changes w; the writer while it encodes w; the flusher's commit
	// callback while it settles a flush. Nothing else touches the box.
	mu       sync.Mutex
	w        SlidingWindow
	listed   bool // in the flusher's list: changed since its last snapshot
	flushing int  // snapshots taken by flushes not yet resolved
	dead     bool // the limit was reset or reloaded: the box is no longer current
}

// pending reports whether the box holds changes that are not durable yet.
func (b *limitBox) pending() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.listed || b.flushing > 0
}

// PutLimits writes the state of rate limits as of the moment the writer
// applies it (write-behind: replies do not wait for it).
type PutLimits struct {
	boxes []*limitBox
	taken []bool // Row(i) ran (written only on the writer goroutine)
}

// NewPutLimit is a PutLimits of one fixed state (tools and tests; actors
// go through the flusher).
func NewPutLimit(owner, name string, w SlidingWindow) PutLimits {
	return PutLimits{boxes: []*limitBox{{owner: owner, name: name, w: w, listed: true}}, taken: make([]bool, 1)}
}

// Table implements Mutation.
func (PutLimits) Table() string { return "limits" }

// Len is the number of limits in the mutation.
func (m PutLimits) Len() int { return len(m.boxes) }

// Row takes the snapshot of limit i to store and lets its next change list
// it again. ok is false when the limit was reset meanwhile (nothing to
// store). Only the writer calls it, inside the transaction.
func (m PutLimits) Row(i int) (r LimitRow, ok bool) {
	b := m.boxes[i]
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dead {
		return r, false
	}
	if !m.taken[i] {
		m.taken[i] = true
		b.flushing++
	}
	b.listed = false
	return LimitRow{
		Owner: b.owner, Name: b.name,
		MaxRequests: b.w.Max, WindowSeconds: int(b.w.Window / 1000),
		Log: b.w.AppendBinary(make([]byte, 0, 2+b.w.n*8)), UpdatedAt: b.w.Newest(),
	}, true
}

// RemoveLimit deletes a limit (reset).
type RemoveLimit struct{ Owner, Name string }

// Table implements Mutation.
func (RemoveLimit) Table() string { return "limits" }

// --- the actor behavior ---

type limitBehavior struct {
	key      Key
	res      *Resources
	box      *limitBox
	exists   bool  // the limit has been checked and not reset
	deniedAt int64 // unix ms of the last limit.denied event
}

func (b *limitBehavior) Activate(h *Host) error {
	w, ok, err := b.res.loader.LoadLimit(b.key.Owner, b.key.Name)
	if err != nil {
		return err
	}
	b.exists = ok
	if b.box != nil {
		b.box.mu.Lock()
		b.box.dead = true
		b.box.mu.Unlock()
	}
	b.box = &limitBox{owner: b.key.Owner, name: b.key.Name, w: w}
	return nil
}

// Passivatable: not while counters wait to be written (a new actor would
// load the older durable state).
func (b *limitBehavior) Passivatable(*Host) bool { return !b.box.pending() }

func (b *limitBehavior) Handle(h *Host, op any) (any, error) {
	now := h.Now()
	switch op := op.(type) {
	case *CheckLimitCall:
		r, err := b.check(h, now, op.CheckLimit)
		if err != nil {
			return nil, err
		}
		op.Reply = r
		return op, nil
	case CheckLimit:
		r, err := b.check(h, now, op)
		if err != nil {
			return nil, err
		}
		return r, nil
	case PeekLimit:
		if !b.exists {
			return nil, ErrLimitNotFound
		}
		b.box.mu.Lock()
		d := b.box.w.Status(now)
		max, win := b.box.w.Max, time.Duration(b.box.w.Window)*time.Millisecond
		b.box.mu.Unlock()
		return LimitReply{LimitDecision: d, Max: max, Window: win}, nil
	case ResetLimit:
		if !b.exists {
			return nil, ErrLimitNotFound
		}
		pub, key, q := h.sys.cfg.Events, b.key, b.res.limits
		q.release(key.Owner)
		err := h.Write(RemoveLimit{Owner: key.Owner, Name: key.Name}, func(err error) {
			q.deleted(key.Owner, err)
			if err == nil {
				pub.Publish(Event{Type: EventLimitReset, Kind: "limit", Name: key.Name, Owner: key.Owner, Time: now})
			}
		})
		if err != nil {
			q.add(key.Owner)
			return nil, err
		}
		// A flush queued before the RemoveLimit is applied before it; one
		// queued after skips the dead box.
		b.box.mu.Lock()
		b.box.dead = true
		b.box.mu.Unlock()
		b.box = &limitBox{owner: key.Owner, name: key.Name}
		b.exists = false
		return nil, nil
	}
	return nil, fmt.Errorf("limit: unknown operation %T", op)
}

// check applies one check: the window decides, a change lists the box with
// the flusher, a denial may publish limit.denied.
func (b *limitBehavior) check(h *Host, now time.Time, op CheckLimit) (LimitReply, error) {
	if !b.exists {
		if q := b.res.limits; !q.reserve(b.key.Owner) {
			return LimitReply{}, q.err
		}
		b.exists = true
	}
	box := b.box
	box.mu.Lock()
	changes := box.w.Changes(now, op.Max, op.Window)
	d := box.w.Check(now, op.Max, op.Window)
	if changes && !box.listed {
		box.listed = true
		b.res.flusher.add(box)
	}
	box.mu.Unlock()
	if !d.Allowed {
		// At most one limit.denied event per limit per second.
		if t := now.UnixMilli(); t-b.deniedAt >= 1000 || t < b.deniedAt {
			b.deniedAt = t
			h.Publish(Event{Type: EventLimitDenied, Kind: "limit", Name: b.key.Name, Owner: b.key.Owner, Time: now})
		}
	}
	return LimitReply{LimitDecision: d, Max: op.Max, Window: op.Window}, nil
}
