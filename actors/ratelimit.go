package actors

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
)

// LimitStore is what rate limits need from persistence.
type LimitStore interface {
	OwnerCounter
	// LoadLimit loads a limit's state; ok is false if it does not exist.
	LoadLimit(owner, name string) (s LimitState, ok bool, err error)
	// ListLimits lists one page of owner's limits ("" for every owner's),
	// ordered by owner and name (PageQuery), with the count of them all,
	// from one snapshot.
	ListLimits(ctx context.Context, owner string, q PageQuery) (Page[LimitRecord], error)
}

// LimitConfig configures rate limits.
type LimitConfig struct {
	Store LimitStore
	// MaxPerUser caps the limits one owner has (0: DefaultMaxLimitsPerUser;
	// negative: no cap).
	MaxPerUser int
	// FlushInterval is how often counters are written behind: each changed
	// limit at most once per interval (0: DefaultLimitFlushInterval;
	// LimitFlushEveryBatch, or any negative value: with the next write
	// batch).
	FlushInterval time.Duration
}

// DefaultLimitFlushInterval bounds what a kill -9 can lose of rate-limit
// counters (plus the batch being committed). 10 ms keeps the loss to
// roughly "the last batch" under load while writing a busy limit at most
// 100 times a second instead of once per check (docs/api.md, benchmarks.md).
const DefaultLimitFlushInterval = 10 * time.Millisecond

// Limits is the entry point for rate limits: typed calls to each limit's
// actor (one per owner and name), and listings. Counters are written
// behind (limitflush.go): a check is answered before its count is durable.
// See System.call for what a cancelled ctx means.
type Limits struct {
	sys     *System
	store   LimitStore
	quota   *quota
	flusher *limitFlusher
	checks  sync.Pool // *checkLimit: the hot path allocates no message
}

// NewLimits registers the rate-limit kind with sys and starts the counter
// flusher (stop it with Close).
func NewLimits(sys *System, cfg LimitConfig) *Limits {
	if cfg.MaxPerUser == 0 {
		cfg.MaxPerUser = DefaultMaxLimitsPerUser
	}
	switch {
	case cfg.FlushInterval == 0:
		cfg.FlushInterval = DefaultLimitFlushInterval
	case cfg.FlushInterval < 0:
		cfg.FlushInterval = 0 // the flusher's "with the next batch"
	}
	l := &Limits{sys: sys, store: cfg.Store, quota: newQuota(cfg.MaxPerUser, "rate limits"),
		flusher: newLimitFlusher(sys.Store(), cfg.FlushInterval)}
	l.checks.New = func() any { return new(checkLimit) }
	sys.Register(KindSpec{
		Kind:    KindLimit,
		New:     func(k Key) Behavior { return &limitBehavior{key: k, limits: l} },
		Recover: func(time.Time) (int, error) { return l.quota.recover(KindLimit, cfg.Store) },
	})
	return l
}

func limitKey(owner, name string) Key { return Key{Kind: KindLimit, Owner: owner, Name: name} }

// Check takes p.Cost units of owner's limit name if they are available
// (LimitState.Check: a sliding window admits them if at most p.Max units
// were taken in the last p.Window, a token bucket if it holds them); p
// replaces the limit's parameters from this check on. A denied check takes
// nothing and is answered with Allowed false, not an error. Errors:
// ErrQuota for a new limit beyond LimitConfig.MaxPerUser; ctx's error if
// ctx ends first.
func (l *Limits) Check(ctx context.Context, owner, name string, p LimitParams) (LimitReply, error) {
	op := l.checks.Get().(*checkLimit)
	op.p = p
	if err := l.sys.call(ctx, limitKey(owner, name), op); err != nil {
		return LimitReply{}, err // op not pooled again: after a cancelled wait the actor may still write to it
	}
	r := op.reply
	l.checks.Put(op)
	return r, nil
}

// LimitCheck is one check of a batch: the limit's name and the check's
// parameters.
type LimitCheck struct {
	Name string
	LimitParams
}

// BatchResult is one check's outcome in a batch: its answer, or the error
// a single check would have had (ErrQuota for a new limit beyond the
// quota), which does not stop the others.
type BatchResult struct {
	LimitReply
	Err error
}

// CheckBatch applies checks, each exactly as Check would at that point, and
// returns their results in order. Checks of one name reach its actor in
// batch order, so a name repeated in a batch sees its earlier checks.
// Checks of different limits run at once (each limit's actor serialises its
// own), unless the owner's quota could refuse one of them: then one after
// the other, so that it is the later new limits that are refused, as
// single checks in that order would be. A per-check refusal is in its
// BatchResult; an error of the whole call (ctx ended, shutting down) leaves
// unknown which checks were applied, as for Check.
func (l *Limits) CheckBatch(ctx context.Context, owner string, checks []LimitCheck) ([]BatchResult, error) {
	ops := make([]checkLimit, len(checks))
	calls := make([]call, len(checks))
	distinct := map[string]bool{}
	for i := range checks {
		ops[i].p = checks[i].LimitParams
		calls[i] = call{key: limitKey(owner, checks[i].Name), op: &ops[i]}
		distinct[checks[i].Name] = true
	}
	if q := l.quota; q.max <= 0 || q.owned(owner)+len(distinct) <= q.max {
		if err := l.sys.callAll(ctx, calls); err != nil {
			return nil, err
		}
	} else {
		for i := range calls {
			if err := l.sys.callAll(ctx, calls[i:i+1]); err != nil {
				return nil, err
			}
		}
	}
	out := make([]BatchResult, len(checks))
	for i := range calls {
		out[i] = BatchResult{LimitReply: ops[i].reply, Err: calls[i].err}
	}
	return out, nil
}

// Status reports the limit's state without consuming (ErrLimitNotFound for
// a limit never checked, or reset).
func (l *Limits) Status(ctx context.Context, owner, name string) (LimitReply, error) {
	op := &peekLimit{}
	return answer(l.sys.call(ctx, limitKey(owner, name), op), &op.reply)
}

// Reset forgets the limit, its counter and its parameters
// (ErrLimitNotFound if there is none). Answered once the removal commits.
func (l *Limits) Reset(ctx context.Context, owner, name string) error {
	return l.sys.call(ctx, limitKey(owner, name), &resetLimit{})
}

// LimitStatus is one limit in a listing: its parameters and its state now.
type LimitStatus struct {
	Owner, Name string
	Max         int
	Window      time.Duration
	Algorithm   Algorithm
	LimitDecision
}

// List lists one page of owner's limits ("" for every owner's) with their
// state now (PageQuery: ordered by owner, then name). It first writes the
// counters still held behind (Sync), so it includes every check
// acknowledged before the call.
func (l *Limits) List(ctx context.Context, owner string, q PageQuery) (Page[LimitStatus], error) {
	if err := l.Sync(); err != nil {
		return Page[LimitStatus]{}, err
	}
	recs, err := l.store.ListLimits(ctx, owner, q)
	if err != nil {
		return Page[LimitStatus]{}, err
	}
	now := l.sys.Now()
	out := Page[LimitStatus]{Items: make([]LimitStatus, len(recs.Items)), Total: recs.Total, More: recs.More}
	for i := range recs.Items {
		r := &recs.Items[i]
		max, win := r.State.Params()
		out.Items[i] = LimitStatus{Owner: r.Owner, Name: r.Name, Max: max, Window: win, Algorithm: r.State.Algorithm,
			LimitDecision: r.State.Status(now)}
	}
	return out, nil
}

// Owned is how many limits owner has.
func (l *Limits) Owned(owner string) int { return l.quota.owned(owner) }

// Sync writes every rate-limit counter changed so far and waits for the
// write: a read of the database after it sees every check acknowledged
// before the call.
func (l *Limits) Sync() error { return l.flusher.sync() }

// Close writes the counters still pending and stops the flusher. Call it
// after System.Close (no more checks) and before the store closes; a
// graceful shutdown then loses no counter.
func (l *Limits) Close() error { return l.flusher.close() }

// Rate-limit operations (see the lock operations for the pattern).
type (
	checkLimit struct {
		p     LimitParams // Window: whole seconds
		reply LimitReply
	}
	peekLimit  struct{ reply LimitReply }
	resetLimit struct{}
)

// LimitReply answers Check and Status: the decision (or state) and the
// parameters in force.
type LimitReply struct {
	LimitDecision
	Max       int
	Window    time.Duration
	Algorithm Algorithm
}

// ErrLimitNotFound answers Status and Reset of an unknown limit.
var ErrLimitNotFound = caseOf(ErrNotFound, "rate limit not found")

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
	return w.CheckCost(now, max, window, 1)
}

// CheckCost is Check of a check worth cost units (1..max): admitted iff
// the window holds at most max-cost units, and then counted as cost units
// at now; a denied check counts nothing.
func (w *SlidingWindow) CheckCost(now time.Time, max int, window time.Duration, cost int) LimitDecision {
	t := now.UnixMilli()
	w.Max, w.Window = max, window.Milliseconds()
	w.prune(t)
	if w.count+cost > max {
		return w.decideFrom(t, 0, w.count, false, cost)
	}
	w.add(t, cost)
	return w.decideFrom(t, 0, w.count, true, cost)
}

// Status reports the state at now without changing it: Allowed says
// whether a check now would be admitted.
func (w *SlidingWindow) Status(now time.Time) LimitDecision {
	t := now.UnixMilli()
	k, gone := w.expired(t)
	allowed := w.count-gone < w.Max
	return w.decideFrom(t, k, w.count-gone, allowed, 1)
}

// Count is the number of allowed checks in the window at now.
func (w *SlidingWindow) Count(now time.Time) int {
	_, gone := w.expired(now.UnixMilli())
	return w.count - gone
}

// decideFrom computes a decision from the live buckets (those from index
// skip on, holding count checks) for a check of cost units. For an
// admitted check the count already includes it, so Remaining is what is
// left after it.
func (w *SlidingWindow) decideFrom(t int64, skip, count int, allowed bool, cost int) LimitDecision {
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
		// check's cost to fit.
		left := count
		for i := skip; i < w.n; i++ {
			b := w.at(i)
			left -= int(b.n)
			if left+cost <= w.Max {
				d.RetryAfter = time.Duration(b.last+w.Window-t) * time.Millisecond
				break
			}
		}
	}
	return d
}

// add counts an allowed check of n units at t.
func (w *SlidingWindow) add(t int64, n int) {
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
			nb.n += uint32(n)
			w.count += n
			return
		}
	}
	if w.n == maxBuckets {
		w.mergeClosest()
	}
	if w.n == len(w.ring) {
		w.grow()
	}
	*w.at(w.n) = limitBucket{last: t, n: uint32(n)}
	w.n++
	w.count += n
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

// LimitRow is the durable form of a limit, as the writer stores it: an
// immutable snapshot (Log is never written to after the row is made).
type LimitRow struct {
	Owner, Name   string
	Algorithm     string // SlidingWindowName or TokenBucketName ("": a sliding window)
	MaxRequests   int
	WindowSeconds int
	Log           []byte // SlidingWindow.AppendBinary, or a token bucket's (LimitState.Row)
	UpdatedAt     time.Time
}

// Row is the snapshot of w to store for owner's limit name.
func (w *SlidingWindow) Row(owner, name string) LimitRow {
	return LimitRow{
		Owner: owner, Name: name,
		Algorithm: SlidingWindowName, MaxRequests: w.Max, WindowSeconds: int(w.Window / 1000),
		Log: w.AppendBinary(make([]byte, 0, 2+w.n*8)), UpdatedAt: w.Newest(),
	}
}

// LimitRecord is a limit as loaded for listing.
type LimitRecord struct {
	Owner, Name string
	State       LimitState
	UpdatedAt   time.Time
}

// PutLimits writes snapshots of rate limits (write-behind: replies do not
// wait for it). The limit flusher makes one per flush.
type PutLimits struct{ Rows []LimitRow }

// NewPutLimit is a PutLimits of one limit's state (tools and tests).
func NewPutLimit(owner, name string, w SlidingWindow) PutLimits {
	return PutLimits{Rows: []LimitRow{w.Row(owner, name)}}
}

// Table implements Mutation.
func (PutLimits) Table() string { return "limits" }

// ApplyTo implements Mutation.
func (m PutLimits) ApplyTo(w MutationWriter) error { return w.PutLimits(m.Rows) }

// RemoveLimit deletes a limit (reset).
type RemoveLimit struct{ Owner, Name string }

// Table implements Mutation.
func (RemoveLimit) Table() string { return "limits" }

// ApplyTo implements Mutation.
func (m RemoveLimit) ApplyTo(w MutationWriter) error { return w.RemoveLimit(m.Owner, m.Name) }

// --- the actor behavior ---

// limitBehavior owns one limit's window; nothing else reads or writes it.
// Counters reach the database through the flusher, as immutable snapshots
// (LimitRow) the actor hands over on every change (gubernator's
// OnChange): the flusher keeps the newest snapshot per limit and writes
// each at most once per flush.
type limitBehavior struct {
	key      Key
	limits   *Limits
	w        LimitState
	exists   bool   // the limit has been checked and not reset
	handed   uint64 // flush epoch of the last snapshot handed over (0: none since the last load or reset)
	deniedAt int64  // unix ms of the last limit.denied event
}

func (b *limitBehavior) Activate(h *Host) error {
	w, ok, err := b.limits.store.LoadLimit(b.key.Owner, b.key.Name)
	if err != nil {
		return err
	}
	// A reload falls back to what is durable: a snapshot of the state it
	// replaces must not be written after it.
	b.limits.flusher.forget(b.key.Owner, b.key.Name)
	b.w, b.exists, b.handed = w, ok, 0
	return nil
}

// Passivatable: not while a snapshot waits to be written (a new actor would
// load the older durable state).
func (b *limitBehavior) Passivatable(*Host) bool { return b.handed <= b.limits.flusher.durable.Load() }

func (b *limitBehavior) Handle(h *Host, op any) error {
	now := h.Now()
	switch op := op.(type) {
	case *checkLimit:
		return b.check(h, now, op)
	case *peekLimit:
		if !b.exists {
			return ErrLimitNotFound
		}
		max, win := b.w.Params()
		op.reply = LimitReply{LimitDecision: b.w.Status(now), Max: max, Window: win, Algorithm: b.w.Algorithm}
		return nil
	case *resetLimit:
		return b.reset(h, now)
	}
	return fmt.Errorf("limit: unknown operation %T", op)
}

// check applies one check: the window decides, a change hands the flusher
// a snapshot, a denial may publish limit.denied.
func (b *limitBehavior) check(h *Host, now time.Time, op *checkLimit) error {
	if !b.exists {
		if q := b.limits.quota; !q.reserve(b.key.Owner) {
			return q.err
		}
		b.exists = true
	}
	changes := b.w.Changes(now, op.p)
	d := b.w.Check(now, op.p)
	if changes {
		b.handed = b.limits.flusher.put(b.w.Row(b.key.Owner, b.key.Name))
	}
	if !d.Allowed {
		// At most one limit.denied event per limit per second.
		if t := now.UnixMilli(); t-b.deniedAt >= 1000 || t < b.deniedAt {
			b.deniedAt = t
			h.Publish(Event{Type: EventLimitDenied, Kind: "limit", Name: b.key.Name, Owner: b.key.Owner, Time: now})
		}
	}
	op.reply = LimitReply{LimitDecision: d, Max: op.p.Max, Window: op.p.Window, Algorithm: op.p.Algorithm}
	return nil
}

// reset removes the limit. A snapshot still waiting in the flusher is
// withdrawn first, so that no flush queued after the removal brings the
// limit back (one queued before it is applied before it).
func (b *limitBehavior) reset(h *Host, now time.Time) error {
	if !b.exists {
		return ErrLimitNotFound
	}
	pub, key, q := h.sys.cfg.Events, b.key, b.limits.quota
	b.limits.flusher.forget(key.Owner, key.Name)
	q.release(key.Owner)
	err := h.Write(RemoveLimit{Owner: key.Owner, Name: key.Name}, func(err error) {
		q.deleted(key.Owner, err)
		if err == nil {
			pub.Publish(Event{Type: EventLimitReset, Kind: "limit", Name: key.Name, Owner: key.Owner, Time: now})
		}
	})
	if err != nil {
		// Nothing was queued: the limit lives on, and so does its snapshot.
		q.add(key.Owner)
		if b.handed != 0 {
			b.handed = b.limits.flusher.put(b.w.Row(key.Owner, key.Name))
		}
		return err
	}
	b.w, b.exists, b.handed = LimitState{}, false, 0
	return nil
}
