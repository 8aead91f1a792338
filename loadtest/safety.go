package loadtest

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// LeaseID identifies one grant of a lock: the lease_id UUID of an octostore
// lease, or the random value a Redis client stores under its lock key.
type LeaseID [16]byte

// IsZero reports whether l is the zero LeaseID (no lease).
func (l LeaseID) IsZero() bool { return l == LeaseID{} }

// String is the lease in UUID form.
func (l LeaseID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], l[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], l[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], l[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], l[8:10])
	b[23] = '-'
	hex.Encode(b[24:], l[10:])
	return string(b[:])
}

// ParseLeaseID parses a UUID (with or without dashes) into a LeaseID without
// allocating. ok is false for anything that is not 32 hex digits.
func ParseLeaseID(s []byte) (id LeaseID, ok bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '-' {
			continue
		}
		v, good := unhex(c)
		if !good || n >= 32 {
			return LeaseID{}, false
		}
		if n%2 == 0 {
			id[n/2] = v << 4
		} else {
			id[n/2] |= v
		}
		n++
	}
	return id, n == 32
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// OpKind is the lock operation an event records.
type OpKind uint8

// Lock operations.
const (
	OpAcquire OpKind = iota + 1
	OpRenew
	OpRelease
)

func (k OpKind) String() string {
	switch k {
	case OpAcquire:
		return "acquire"
	case OpRenew:
		return "renew"
	case OpRelease:
		return "release"
	}
	return "op?"
}

// Outcome is what the client learnt about an operation.
type Outcome uint8

// Outcomes.
const (
	// OutcomeOK: the server acknowledged success.
	OutcomeOK Outcome = iota + 1
	// OutcomeRejected: the server definitely refused (409 on acquire, 404 on
	// renew or release); the operation changed nothing.
	OutcomeRejected
	// OutcomeUnknown: no answer, a transport error or a 5xx; the operation may
	// or may not have taken effect, at any time after it was sent.
	OutcomeUnknown
)

func (o Outcome) String() string {
	switch o {
	case OutcomeOK:
		return "ok"
	case OutcomeRejected:
		return "rejected"
	case OutcomeUnknown:
		return "unknown"
	}
	return "outcome?"
}

// LockEvent is one lock operation as the client saw it. Invoke is when the
// request was handed to the connection, Ack when its answer (or error) came
// back, both as offsets from the start of the run on one monotonic clock.
type LockEvent struct {
	Lock    string
	Lease   LeaseID       // the lease acquired, renewed or released; zero for a failed acquire
	Token   int64         // fencing token in the reply, 0 when there is none
	TTL     time.Duration // TTL requested by an acquire or renew
	Invoke  time.Duration
	Ack     time.Duration
	Owner   int32 // which user (bearer token) the worker acts as
	Worker  int32
	Kind    OpKind
	Outcome Outcome
	Held    bool // acquire answered "held": a re-acquire by the holding user
}

func (e *LockEvent) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "w%d/u%d %s", e.Worker, e.Owner, e.Kind)
	if e.Held {
		b.WriteString("(held)")
	}
	fmt.Fprintf(&b, " %s lock=%s", e.Outcome, e.Lock)
	if !e.Lease.IsZero() {
		fmt.Fprintf(&b, " lease=%s", e.Lease)
	}
	if e.Token != 0 {
		fmt.Fprintf(&b, " token=%d", e.Token)
	}
	if e.TTL != 0 {
		fmt.Fprintf(&b, " ttl=%s", e.TTL)
	}
	fmt.Fprintf(&b, " sent=+%s answered=+%s", fmtOffset(e.Invoke), fmtOffset(e.Ack))
	return b.String()
}

func fmtOffset(d time.Duration) string {
	return fmt.Sprintf("%.6fs", d.Seconds())
}

// Violation kinds.
const (
	ViolationOverlap        = "overlap"         // two leases of one lock certainly alive at once
	ViolationTokenOrder     = "token-order"     // a later grant got a token not above an earlier one
	ViolationTokenDuplicate = "token-duplicate" // two leases of one lock share a token
	ViolationTokenChanged   = "token-changed"   // one lease reported with two tokens
	ViolationExpiredOp      = "expired-op"      // renew/release/re-acquire succeeded on an expired lease
	ViolationReplacedOp     = "replaced-op"     // ... on a lease after another lease was granted
	ViolationReleasedOp     = "released-op"     // ... on a lease after it was released
)

// Violation is one safety violation with the events that prove it.
type Violation struct {
	Kind     string
	Lock     string
	Detail   string
	Evidence []LockEvent
}

func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "SAFETY VIOLATION %s on lock %q: %s", v.Kind, v.Lock, v.Detail)
	for i := range v.Evidence {
		b.WriteString("\n    ")
		b.WriteString(v.Evidence[i].String())
	}
	return b.String()
}

// CheckOptions tune the checker.
type CheckOptions struct {
	// Slack is allowed between the client's clock and the server's expiry
	// clock (and for a server that stores expiry at millisecond precision).
	// It only ever makes the checker more lenient.
	Slack time.Duration
	// Cutoff, when non-zero, says the history holds every operation sent
	// before Cutoff and nothing reliable after it (the recorder stopped to
	// bound memory). Operations sent at or after Cutoff are ignored.
	Cutoff time.Duration
	// MaxViolations bounds the violations kept with evidence (all are counted).
	MaxViolations int
}

// SafetyResult is what Check found.
type SafetyResult struct {
	Checked    int // lock operations examined
	Leases     int // distinct leases seen
	Violations int // violations found
	Details    []Violation
}

// lease is everything the history says about one grant of one lock.
type lease struct {
	id    LeaseID
	owner int32
	token int64
	tokEv int // event that first reported token

	hasGrant    bool          // an acquire answered "acquired" for it
	grantInvoke time.Duration // earliest send of such an acquire
	grantEv     int

	start   time.Duration // earliest answer of any successful op: alive by then
	startEv int
	lastOK  time.Duration // latest send of any successful op: alive at least until then
	lastEv  int

	released bool
	relAck   time.Duration // earliest answer of a successful release
	relEv    int

	end   time.Duration // certainly alive during [start, end]
	endEv int

	ops []int // successful and unknown ops on this lease, by send time
}

const forever = time.Duration(math.MaxInt64)

// Check verifies a history of lock operations. Reasoning (all of it on the
// client's clock; Slack absorbs the difference to the server's):
//
// A correct server applies each operation at one instant (its linearization
// point) between the moment the request was sent (Invoke) and the moment its
// answer arrived (Ack). We never know that instant, only the window, so every
// conclusion is drawn for the worst placement inside the window: the checker
// must never accuse a correct server.
//
// A lease is alive from its grant until its release or its expiry. What is
// certain about one lease:
//   - it was alive at the linearization point of every successful operation
//     on it, and a lease never comes back to life, so it was alive without a
//     break from its grant to the last of them. Hence it was certainly alive
//     from start = the earliest Ack of any successful operation on it (the
//     grant happened before that answer) to lastOK = the latest Invoke of a
//     successful operation (that one was applied after it was sent);
//   - when it was not released, it lived until its expiry. The expiry was set
//     by the last extending operation Y (grant, renew, re-acquire) applied,
//     expiry = lin(Y) + ttl(Y) >= Invoke(Y) + ttl(Y). Y is not known, but it
//     was applied after every other applied extending operation was sent, so
//     Ack(Y) >= M, the latest Invoke among the successful ones (an
//     unanswered one may not have been applied at all). The minimum of Invoke+ttl over
//     the operations with Ack >= M (unknown outcomes count as never answered)
//     is therefore a lower bound of the expiry. A release whose answer was lost
//     may have ended the lease as early as its Invoke.
//
// So [start, end] with end = max(lastOK, min(expiry bound - Slack, earliest
// unanswered release)) is an interval in which the lease was alive whatever
// the server's timing; a released lease gets end = lastOK. Checks:
//   - overlap: the certain intervals of two different leases of one lock
//     intersect;
//   - token-order: lease A was certainly granted before lease B was even
//     requested (start(A) < Invoke of B's acquire), but token(B) <= token(A);
//     tokens must also be unique per lock and constant per lease;
//   - replaced-op: an operation on lease A succeeded although it was sent
//     after lease B, granted after A (by time as above, or by a higher
//     token), had certainly started: A must have ended before B's grant;
//   - released-op: an operation on a lease succeeded although it was sent
//     after a release of that lease had been acknowledged;
//   - expired-op: an operation on a lease succeeded although it was sent after
//     the latest possible expiry, max(Ack(X) + ttl(X)) over the extending
//     operations X that may have been applied before it (an unanswered one
//     counts as unbounded, and so does an unanswered acquire by the same
//     user, which may have been a re-acquire that extended the lease), plus
//     Slack.
func Check(events []LockEvent, opt CheckOptions) SafetyResult {
	if opt.MaxViolations <= 0 {
		opt.MaxViolations = 20
	}
	c := checker{opt: opt}
	ev := make([]LockEvent, 0, len(events))
	for i := range events {
		e := &events[i]
		if opt.Cutoff > 0 && e.Invoke >= opt.Cutoff {
			continue
		}
		if e.Outcome == OutcomeRejected && e.Kind != OpAcquire {
			continue // a refused renew/release changed nothing and proves nothing here
		}
		ev = append(ev, *e)
	}
	slices.SortStableFunc(ev, func(a, b LockEvent) int {
		if c := strings.Compare(a.Lock, b.Lock); c != 0 {
			return c
		}
		return cmp.Compare(a.Invoke, b.Invoke)
	})
	c.ev = ev
	for i := 0; i < len(ev); {
		j := i + 1
		for j < len(ev) && ev[j].Lock == ev[i].Lock {
			j++
		}
		c.checkLock(i, j)
		i = j
	}
	c.res.Checked = len(ev)
	return c.res
}

type checker struct {
	opt CheckOptions
	ev  []LockEvent
	res SafetyResult
}

func (c *checker) report(kind, lock, detail string, evIdx ...int) {
	c.res.Violations++
	if len(c.res.Details) >= c.opt.MaxViolations {
		return
	}
	v := Violation{Kind: kind, Lock: lock, Detail: detail}
	for _, i := range evIdx {
		if i >= 0 {
			v.Evidence = append(v.Evidence, c.ev[i])
		}
	}
	c.res.Details = append(c.res.Details, v)
}

func ackOf(e *LockEvent) time.Duration {
	if e.Outcome == OutcomeUnknown {
		return forever
	}
	return e.Ack
}

func isExtending(e *LockEvent) bool { return e.Kind == OpAcquire || e.Kind == OpRenew }

// checkLock checks the events ev[lo:hi] of one lock, sorted by Invoke.
func (c *checker) checkLock(lo, hi int) {
	lockName := c.ev[lo].Lock
	byID := map[LeaseID]*lease{}
	var leases []*lease
	// earliest unanswered acquire per owner: it may have re-acquired (extended) a lease.
	unknownAcq := map[int32]time.Duration{}
	for i := lo; i < hi; i++ {
		e := &c.ev[i]
		if e.Kind == OpAcquire && e.Outcome != OutcomeOK {
			if e.Outcome == OutcomeUnknown {
				if t, ok := unknownAcq[e.Owner]; !ok || e.Invoke < t {
					unknownAcq[e.Owner] = e.Invoke
				}
			}
			continue
		}
		if e.Lease.IsZero() {
			continue
		}
		l := byID[e.Lease]
		if l == nil {
			l = &lease{id: e.Lease, owner: e.Owner, start: forever, lastOK: -1, relAck: forever,
				startEv: -1, lastEv: -1, grantEv: -1, relEv: -1, tokEv: -1}
			byID[e.Lease] = l
			leases = append(leases, l)
		}
		l.ops = append(l.ops, i)
		if e.Outcome != OutcomeOK {
			continue
		}
		if e.Token != 0 && e.Kind != OpRelease {
			if l.token == 0 {
				l.token, l.tokEv = e.Token, i
			} else if l.token != e.Token {
				c.report(ViolationTokenChanged, lockName,
					fmt.Sprintf("lease %s reported with fencing token %d and %d", l.id, l.token, e.Token), l.tokEv, i)
			}
		}
		if e.Kind == OpAcquire && !e.Held && (!l.hasGrant || e.Invoke < l.grantInvoke) {
			l.hasGrant, l.grantInvoke, l.grantEv = true, e.Invoke, i
		}
		if e.Ack < l.start {
			l.start, l.startEv = e.Ack, i
		}
		if e.Invoke > l.lastOK {
			l.lastOK, l.lastEv = e.Invoke, i
		}
		if e.Kind == OpRelease && e.Ack < l.relAck {
			l.released, l.relAck, l.relEv = true, e.Ack, i
		}
	}
	c.res.Leases += len(leases)

	live := leases[:0:0]
	for _, l := range leases {
		if l.startEv < 0 {
			continue // only unanswered operations: nothing certain about it
		}
		c.computeEnd(l)
		c.checkLeaseOps(lockName, l, unknownAcq)
		live = append(live, l)
	}
	c.checkOverlap(lockName, live)
	c.checkTokens(lockName, live)
	c.checkReplaced(lockName, live)
}

// computeEnd sets l.end, the end of the interval in which l was certainly alive.
func (c *checker) computeEnd(l *lease) {
	l.end, l.endEv = l.lastOK, l.lastEv
	if l.released {
		return
	}
	// m: the latest send of an extending operation certainly applied. An
	// unanswered one may never have been applied (a renew of a lease that
	// had expired is refused), so it cannot say when the last applied one
	// was sent.
	var m time.Duration = -1
	for _, i := range l.ops {
		if e := &c.ev[i]; isExtending(e) && e.Outcome == OutcomeOK && e.Invoke > m {
			m = e.Invoke
		}
	}
	expiry, expEv := forever, -1
	unknownRel, relEv := forever, -1
	for _, i := range l.ops {
		e := &c.ev[i]
		if isExtending(e) && ackOf(e) >= m {
			if t := e.Invoke + e.TTL; t < expiry {
				expiry, expEv = t, i
			}
		}
		if e.Kind == OpRelease && e.Outcome == OutcomeUnknown && e.Invoke < unknownRel {
			unknownRel, relEv = e.Invoke, i
		}
	}
	end, endEv := forever, -1
	if expEv >= 0 {
		end, endEv = expiry-c.opt.Slack, expEv
	}
	if unknownRel < end {
		end, endEv = unknownRel, relEv
	}
	if c.opt.Cutoff > 0 && end > c.opt.Cutoff {
		// a release sent after the cutoff is missing from the history.
		end, endEv = c.opt.Cutoff, -1
	}
	if end > l.end && end != forever {
		l.end, l.endEv = end, endEv
	}
}

// checkLeaseOps finds successful operations on an expired or released lease.
func (c *checker) checkLeaseOps(lockName string, l *lease, unknownAcq map[int32]time.Duration) {
	// extending operations by send time with the latest possible expiry each implies.
	type ext struct {
		invoke, bound time.Duration
		ev            int
	}
	var exts []ext
	for _, i := range l.ops {
		e := &c.ev[i]
		if !isExtending(e) {
			continue
		}
		b := forever
		if e.Outcome == OutcomeOK {
			b = e.Ack + e.TTL
		}
		exts = append(exts, ext{e.Invoke, b, i})
	}
	// prefix top two bounds, so that an operation's own bound can be left out.
	type top2 struct {
		b1, b2   time.Duration
		ev1, ev2 int
	}
	pre := make([]top2, len(exts))
	cur := top2{b1: -1, b2: -1, ev1: -1, ev2: -1}
	for k, x := range exts {
		if x.bound > cur.b1 {
			cur.b2, cur.ev2 = cur.b1, cur.ev1
			cur.b1, cur.ev1 = x.bound, x.ev
		} else if x.bound > cur.b2 {
			cur.b2, cur.ev2 = x.bound, x.ev
		}
		pre[k] = cur
	}
	for _, i := range l.ops {
		p := &c.ev[i]
		if p.Outcome != OutcomeOK {
			continue
		}
		if l.released && p.Invoke > l.relAck && i != l.relEv {
			c.report(ViolationReleasedOp, lockName,
				fmt.Sprintf("%s of lease %s succeeded although it was sent after the lease's release had been acknowledged", p.Kind, l.id), l.relEv, i)
			continue
		}
		if p.Kind == OpAcquire && !p.Held {
			continue // the grant itself
		}
		if c.opt.Cutoff > 0 && p.Ack > c.opt.Cutoff {
			continue // operations sent after the cutoff may have extended the lease
		}
		k := sort.Search(len(exts), func(k int) bool { return exts[k].invoke >= p.Ack })
		if k == 0 {
			continue
		}
		t := pre[k-1]
		bound, bev := t.b1, t.ev1
		if bev == i {
			bound, bev = t.b2, t.ev2
		}
		if bev < 0 || bound == forever {
			continue
		}
		if t, ok := unknownAcq[p.Owner]; ok && t < p.Ack && t <= bound+c.opt.Slack {
			continue // an unanswered acquire by this user may have re-acquired (extended) the lease in time
		}
		if p.Invoke > bound+c.opt.Slack {
			c.report(ViolationExpiredOp, lockName,
				fmt.Sprintf("%s of lease %s succeeded although it was sent %s after the lease's latest possible expiry",
					p.Kind, l.id, (p.Invoke-bound).Round(time.Microsecond)), bev, i)
		}
	}
}

// checkOverlap sweeps the certain intervals by start.
func (c *checker) checkOverlap(lockName string, leases []*lease) {
	ls := make([]*lease, 0, len(leases))
	for _, l := range leases {
		if l.end > l.start {
			ls = append(ls, l)
		}
	}
	slices.SortFunc(ls, func(a, b *lease) int { return cmp.Compare(a.start, b.start) })
	var reach *lease // the lease whose certain interval reaches furthest so far
	for _, l := range ls {
		if reach != nil && l.start < reach.end {
			c.report(ViolationOverlap, lockName,
				fmt.Sprintf("lease %s was certainly held from +%s to +%s, and lease %s was certainly held from +%s",
					reach.id, fmtOffset(reach.start), fmtOffset(reach.end), l.id, fmtOffset(l.start)),
				reach.startEv, reach.endEv, l.startEv)
		}
		if reach == nil || l.end > reach.end {
			reach = l
		}
	}
}

// checkTokens: tokens unique per lock and increasing with the certain order of grants.
func (c *checker) checkTokens(lockName string, leases []*lease) {
	byTok := map[int64]*lease{}
	var tok []*lease
	for _, l := range leases {
		if l.token == 0 {
			continue
		}
		if o := byTok[l.token]; o != nil {
			c.report(ViolationTokenDuplicate, lockName,
				fmt.Sprintf("leases %s and %s both got fencing token %d", o.id, l.id, l.token), o.tokEv, l.tokEv)
			continue
		}
		byTok[l.token] = l
		tok = append(tok, l)
	}
	byStart := slices.Clone(tok)
	slices.SortFunc(byStart, func(a, b *lease) int { return cmp.Compare(a.start, b.start) })
	var byGrant []*lease
	for _, l := range tok {
		if l.hasGrant {
			byGrant = append(byGrant, l)
		}
	}
	slices.SortFunc(byGrant, func(a, b *lease) int { return cmp.Compare(a.grantInvoke, b.grantInvoke) })
	var maxL *lease
	p := 0
	for _, b := range byGrant {
		for p < len(byStart) && byStart[p].start < b.grantInvoke {
			if maxL == nil || byStart[p].token > maxL.token {
				maxL = byStart[p]
			}
			p++
		}
		if maxL != nil && maxL != b && maxL.token >= b.token {
			c.report(ViolationTokenOrder, lockName,
				fmt.Sprintf("lease %s (token %d) was granted before the acquire of lease %s was sent, yet that got token %d",
					maxL.id, maxL.token, b.id, b.token), maxL.startEv, b.grantEv)
		}
	}
}

// checkReplaced: nothing succeeds on a lease once a later lease has certainly started.
func (c *checker) checkReplaced(lockName string, leases []*lease) {
	if len(leases) < 2 {
		return
	}
	type succ struct {
		key   time.Duration // grantInvoke, or token as a number
		start time.Duration
		l     *lease
	}
	suffixMin := func(s []succ) []succ {
		out := make([]succ, len(s))
		best := succ{start: forever}
		for k := len(s) - 1; k >= 0; k-- {
			if s[k].start < best.start {
				best = s[k]
			}
			out[k] = best
		}
		return out
	}
	var byGrant, byTok []succ
	for _, l := range leases {
		if l.hasGrant {
			byGrant = append(byGrant, succ{l.grantInvoke, l.start, l})
		}
		if l.token != 0 {
			byTok = append(byTok, succ{time.Duration(l.token), l.start, l})
		}
	}
	slices.SortFunc(byGrant, func(a, b succ) int { return cmp.Compare(a.key, b.key) })
	slices.SortFunc(byTok, func(a, b succ) int { return cmp.Compare(a.key, b.key) })
	gMin, tMin := suffixMin(byGrant), suffixMin(byTok)
	for _, l := range leases {
		// the earliest certain start of a lease granted after l.
		var next *lease
		start := forever
		if k := sort.Search(len(byGrant), func(k int) bool { return byGrant[k].key > l.start }); k < len(gMin) && gMin[k].l != l {
			start, next = gMin[k].start, gMin[k].l
		}
		if l.token != 0 {
			k := sort.Search(len(byTok), func(k int) bool { return byTok[k].key > time.Duration(l.token) })
			if k < len(tMin) && tMin[k].start < start && tMin[k].l != l {
				start, next = tMin[k].start, tMin[k].l
			}
		}
		if next == nil {
			continue
		}
		for _, i := range l.ops {
			p := &c.ev[i]
			if p.Outcome == OutcomeOK && p.Invoke > start {
				c.report(ViolationReplacedOp, lockName,
					fmt.Sprintf("%s of lease %s succeeded although it was sent after lease %s (token %d), granted later, was held",
						p.Kind, l.id, next.id, next.token), next.startEv, i)
				break
			}
		}
	}
}
