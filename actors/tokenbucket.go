package actors

import (
	"encoding/binary"
	"fmt"
	"time"
)

// The token bucket and the state of a rate limit of either algorithm
// (issue 17): pure, functions of the state, the parameters and now, like
// the sliding window in ratelimit.go.

// Algorithm is a rate-limit algorithm.
type Algorithm uint8

// The algorithms.
const (
	// AlgSlidingWindow admits at most Max checks (of cost units) in any
	// window of Window (the default; ratelimit.go).
	AlgSlidingWindow Algorithm = iota
	// AlgTokenBucket holds Max tokens, refilled continuously at Max per
	// Window; a check takes cost tokens if they are there.
	AlgTokenBucket
)

// The algorithms' names on the API and in storage.
const (
	SlidingWindowName = "sliding_window"
	TokenBucketName   = "token_bucket"
)

func (a Algorithm) String() string {
	if a == AlgTokenBucket {
		return TokenBucketName
	}
	return SlidingWindowName
}

// ParseAlgorithm parses an algorithm's name; ok is false for anything
// else.
func ParseAlgorithm(s string) (a Algorithm, ok bool) {
	switch s {
	case SlidingWindowName:
		return AlgSlidingWindow, true
	case TokenBucketName:
		return AlgTokenBucket, true
	}
	return 0, false
}

// LimitParams are the parameters a check carries: they replace the limit's
// from that check on.
type LimitParams struct {
	Max       int           // max_requests: the window's limit, the bucket's capacity
	Window    time.Duration // window_seconds: the window, or the time to refill an empty bucket
	Cost      int           // units the check takes, 1..Max (0: 1)
	Algorithm Algorithm
}

func (p LimitParams) cost() int {
	if p.Cost <= 0 {
		return 1
	}
	return p.Cost
}

// TokenBucket is the state of a token bucket: Max tokens, refilled at Max
// per Window, continuously. The level is kept in token-milliseconds (tokens
// × Window ms), so that one millisecond refills exactly Max units: the
// arithmetic is exact integers, no rounding drifts. Times are unix ms.
type TokenBucket struct {
	Max    int   // capacity, in tokens
	Window int64 // ms to refill an empty bucket
	level  int64 // token-ms available at `at`; full = Max × Window
	at     int64 // unix ms of level
}

func (b *TokenBucket) full() int64 { return int64(b.Max) * b.Window }

// levelAt is the level refilled up to t (no refill when the clock went
// back: t before the last check).
func (b *TokenBucket) levelAt(t int64) int64 {
	full := b.full()
	if t <= b.at {
		return min(b.level, full)
	}
	if d := t - b.at; d < b.Window { // d × Max < full: no overflow
		return min(full, b.level+d*int64(b.Max))
	}
	return full
}

// Tokens is the number of whole tokens available at now.
func (b *TokenBucket) Tokens(now time.Time) int { return int(b.levelAt(now.UnixMilli()) / b.Window) }

// check takes cost tokens at t if they are there.
func (b *TokenBucket) check(t int64, cost int) LimitDecision {
	level := b.levelAt(t)
	need := int64(cost) * b.Window
	allowed := level >= need
	if allowed {
		level -= need
		b.level = level
		if t > b.at {
			b.at = t
		}
	}
	return b.decide(t, level, allowed, need)
}

// decide describes the bucket at level (at t) after a check that needed
// need token-ms: remaining whole tokens, tokens in use, when it is full
// again (ResetAt), and for a denied check when need is there (RetryAfter).
func (b *TokenBucket) decide(t, level int64, allowed bool, need int64) LimitDecision {
	rate := int64(b.Max) // token-ms per ms
	remaining := int(level / b.Window)
	d := LimitDecision{Allowed: allowed, Remaining: remaining, Count: b.Max - remaining}
	toFull := ceilDiv(b.full()-level, rate)
	d.ResetAt = time.UnixMilli(t + toFull).UTC()
	d.ResetIn = time.Duration(toFull) * time.Millisecond
	if !allowed {
		d.RetryAfter = time.Duration(ceilDiv(need-level, rate)) * time.Millisecond
	}
	return d
}

func ceilDiv(a, b int64) int64 {
	if a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}

// deficit is the tokens in use at t, rounded up (the unit carried over to
// other parameters: never fewer than were used).
func (b *TokenBucket) deficit(t int64) int {
	return int(ceilDiv(b.full()-b.levelAt(t), b.Window))
}

// newBucket is a bucket for p at t with used tokens already taken.
func newBucket(p LimitParams, t int64, used int) TokenBucket {
	b := TokenBucket{Max: p.Max, Window: p.Window.Milliseconds(), at: t}
	b.level = max(0, b.full()-int64(used)*b.Window)
	return b
}

// LimitState is the state of one rate limit: its algorithm and that
// algorithm's state. The zero value is an empty sliding window.
type LimitState struct {
	Algorithm Algorithm
	Window    SlidingWindow // AlgSlidingWindow
	Bucket    TokenBucket   // AlgTokenBucket
}

// Params are the limit's parameters in force (cost aside).
func (s *LimitState) Params() (max int, window time.Duration) {
	if s.Algorithm == AlgTokenBucket {
		return s.Bucket.Max, time.Duration(s.Bucket.Window) * time.Millisecond
	}
	return s.Window.Max, time.Duration(s.Window.Window) * time.Millisecond
}

func (s *LimitState) sameParams(p LimitParams) bool {
	max, win := s.Params()
	return s.Algorithm == p.Algorithm && max == p.Max && win == p.Window
}

// Changes reports whether Check(now, p) would change the state: the
// parameters or the algorithm differ, or the check would be admitted.
// Refill and expiry alone are not changes: they are recomputed from the
// times.
func (s *LimitState) Changes(now time.Time, p LimitParams) bool {
	if !s.sameParams(p) {
		return true
	}
	t := now.UnixMilli()
	if s.Algorithm == AlgTokenBucket {
		return s.Bucket.levelAt(t) >= int64(p.cost())*s.Bucket.Window
	}
	_, gone := s.Window.expired(t)
	return s.Window.count-gone+p.cost() <= p.Max
}

// Check applies one check of p.Cost units at now with parameters p (which
// replace the limit's) and returns the decision: allowed iff the units are
// there, and then taken; a denied check takes nothing.
//
// New parameters carry the usage over, only how it comes back changes:
// within the sliding window, the counted checks stay (ratelimit.go); a
// bucket keeps the tokens in use (rounded up to whole tokens), so a larger
// capacity admits the difference at once and a smaller one denies until
// they are refilled; from a window to a bucket, the checks in the window
// become tokens in use; from a bucket to a window, the tokens in use become
// checks counted at the time of the change (they leave the window one
// window later). No change of parameters hands out a fresh burst.
func (s *LimitState) Check(now time.Time, p LimitParams) LimitDecision {
	t := now.UnixMilli()
	if !s.sameParams(p) {
		s.convert(t, p)
	}
	if p.Algorithm == AlgTokenBucket {
		return s.Bucket.check(t, p.cost())
	}
	return s.Window.CheckCost(now, p.Max, p.Window, p.cost())
}

// convert carries the state over to new parameters at t (Check).
func (s *LimitState) convert(t int64, p LimitParams) {
	switch {
	case s.Algorithm == AlgTokenBucket && p.Algorithm == AlgTokenBucket:
		s.Bucket = newBucket(p, t, s.Bucket.deficit(t))
	case p.Algorithm == AlgTokenBucket: // from a window
		s.Bucket = newBucket(p, t, s.Window.Count(time.UnixMilli(t)))
		s.Window = SlidingWindow{}
	case s.Algorithm == AlgTokenBucket: // to a window
		used := s.Bucket.deficit(t)
		s.Window = SlidingWindow{Max: p.Max, Window: p.Window.Milliseconds()}
		if used > 0 {
			s.Window.add(t, used)
		}
		s.Bucket = TokenBucket{}
	}
	// window to window: SlidingWindow.Check takes the new parameters.
	s.Algorithm = p.Algorithm
}

// Status reports the state at now without changing it: Allowed says
// whether a check of one unit now would be admitted.
func (s *LimitState) Status(now time.Time) LimitDecision {
	if s.Algorithm == AlgTokenBucket {
		t := now.UnixMilli()
		level := s.Bucket.levelAt(t)
		return s.Bucket.decide(t, level, level >= s.Bucket.Window, s.Bucket.Window)
	}
	return s.Window.Status(now)
}

// Count is the number of units in use at now: checks in the window, or
// tokens taken and not yet refilled (rounded up).
func (s *LimitState) Count(now time.Time) int {
	if s.Algorithm == AlgTokenBucket {
		return s.Bucket.Max - s.Bucket.Tokens(now)
	}
	return s.Window.Count(now)
}

// Row is the snapshot of s to store for owner's limit name.
func (s *LimitState) Row(owner, name string) LimitRow {
	if s.Algorithm != AlgTokenBucket {
		r := s.Window.Row(owner, name)
		r.Algorithm = SlidingWindowName
		return r
	}
	b := &s.Bucket
	log := make([]byte, 0, 24)
	log = append(log, bucketFormat)
	log = binary.AppendUvarint(log, uint64(b.level))
	log = binary.AppendVarint(log, b.at)
	return LimitRow{Owner: owner, Name: name, Algorithm: TokenBucketName, MaxRequests: b.Max,
		WindowSeconds: int(b.Window / 1000), Log: log, UpdatedAt: time.UnixMilli(b.at).UTC()}
}

// Binary encoding of a bucket (the limits.log column, as the window's):
//
//	byte     format (2)
//	uvarint  level, token-ms
//	varint   at, unix ms
const bucketFormat = 2

// DecodeLimitState rebuilds a limit from its stored form: the algorithm's
// name ("" is the sliding window, as rows written before token buckets),
// its parameters and its encoded log.
func DecodeLimitState(algorithm string, max int, window time.Duration, log []byte) (LimitState, error) {
	if algorithm == "" {
		algorithm = SlidingWindowName
	}
	a, ok := ParseAlgorithm(algorithm)
	if !ok {
		return LimitState{}, fmt.Errorf("%w: algorithm %q", errBadWindow, algorithm)
	}
	if a == AlgSlidingWindow {
		w, err := DecodeSlidingWindow(max, window, log)
		return LimitState{Window: w}, err
	}
	b := TokenBucket{Max: max, Window: window.Milliseconds()}
	if len(log) == 0 || log[0] != bucketFormat {
		return LimitState{}, fmt.Errorf("%w: not a token bucket", errBadWindow)
	}
	p := log[1:]
	level, k := binary.Uvarint(p)
	if k <= 0 || level > uint64(b.full()) {
		return LimitState{}, errBadWindow
	}
	at, k2 := binary.Varint(p[k:])
	if k2 <= 0 || k+k2 != len(p) {
		return LimitState{}, errBadWindow
	}
	b.level, b.at = int64(level), at
	return LimitState{Algorithm: AlgTokenBucket, Bucket: b}, nil
}
