package loadtest

import (
	"container/heap"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func ms(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }

func lid(n byte) LeaseID { return LeaseID{15: n, 0: 0xab} }

// ev builds an event; invoke/ack in milliseconds.
func ev(kind OpKind, out Outcome, lock string, lease byte, token int64, ttl time.Duration, invoke, ack float64, owner int32) LockEvent {
	e := LockEvent{Lock: lock, Kind: kind, Outcome: out, Token: token, TTL: ttl,
		Invoke: ms(invoke), Ack: ms(ack), Owner: owner, Worker: owner}
	if lease != 0 {
		e.Lease = lid(lease)
	}
	return e
}

func held(e LockEvent) LockEvent { e.Held = true; return e }

func kinds(r SafetyResult) map[string]int {
	m := map[string]int{}
	for _, v := range r.Details {
		m[v.Kind]++
	}
	return m
}

const (
	ok  = OutcomeOK
	rej = OutcomeRejected
	unk = OutcomeUnknown
)

func TestCheckPlantedViolations(t *testing.T) {
	sec := time.Second
	tests := []struct {
		name   string
		events []LockEvent
		want   string
	}{
		{"overlapping grant", []LockEvent{
			ev(OpAcquire, ok, "a", 1, 1, 10*sec, 0, 1, 0),
			ev(OpAcquire, ok, "a", 2, 2, 10*sec, 100, 101, 1), // L1 still alive until at least +10s
		}, ViolationOverlap},
		{"overlap with a released lease whose release came too late", []LockEvent{
			ev(OpAcquire, ok, "a", 1, 1, 10*sec, 0, 1, 0),
			ev(OpAcquire, ok, "a", 2, 2, 10*sec, 5, 6, 1),
			ev(OpRelease, ok, "a", 2, 0, 0, 7, 8, 1),
			ev(OpRelease, ok, "a", 1, 0, 0, 9, 10, 0),
		}, ViolationOverlap},
		{"token going backwards", []LockEvent{
			ev(OpAcquire, ok, "a", 1, 5, sec, 0, 1, 0),
			ev(OpRelease, ok, "a", 1, 0, 0, 2, 3, 0),
			ev(OpAcquire, ok, "a", 2, 4, sec, 10, 11, 1),
			ev(OpRelease, ok, "a", 2, 0, 0, 12, 13, 1),
		}, ViolationTokenOrder},
		{"token reused", []LockEvent{
			ev(OpAcquire, ok, "a", 1, 5, sec, 0, 1, 0),
			ev(OpRelease, ok, "a", 1, 0, 0, 2, 3, 0),
			ev(OpAcquire, ok, "a", 2, 5, sec, 10, 11, 1),
		}, ViolationTokenDuplicate},
		{"token changed by re-acquire", []LockEvent{
			ev(OpAcquire, ok, "a", 1, 5, sec, 0, 1, 0),
			held(ev(OpAcquire, ok, "a", 1, 6, sec, 2, 3, 0)),
		}, ViolationTokenChanged},
		{"stale renew", []LockEvent{
			ev(OpAcquire, ok, "a", 1, 1, sec, 0, 1, 0),
			ev(OpRenew, ok, "a", 1, 1, sec, 1500, 1501, 0), // expired at +1.001s at the latest
		}, ViolationExpiredOp},
		{"stale re-acquire answered held", []LockEvent{
			ev(OpAcquire, ok, "a", 1, 1, sec, 0, 1, 0),
			ev(OpRenew, ok, "a", 1, 1, sec, 500, 502, 0),
			held(ev(OpAcquire, ok, "a", 1, 1, sec, 2000, 2001, 0)), // expired at +1.502s at the latest
		}, ViolationExpiredOp},
		{"release after replaced", []LockEvent{
			ev(OpAcquire, ok, "a", 1, 1, 10*sec, 0, 1, 0),
			ev(OpAcquire, ok, "a", 2, 2, 10*sec, 1000, 1001, 1),
			ev(OpRelease, ok, "a", 1, 0, 0, 1500, 1501, 0),
		}, ViolationReplacedOp},
		{"renew after replaced, no tokens (redis)", []LockEvent{
			ev(OpAcquire, ok, "a", 1, 0, 10*sec, 0, 1, 0),
			ev(OpAcquire, ok, "a", 2, 0, 10*sec, 1000, 1001, 1),
			ev(OpRenew, ok, "a", 1, 0, 10*sec, 1500, 1501, 0),
		}, ViolationReplacedOp},
		{"renew after release", []LockEvent{
			ev(OpAcquire, ok, "a", 1, 1, 10*sec, 0, 1, 0),
			ev(OpRelease, ok, "a", 1, 0, 0, 2, 3, 0),
			ev(OpRenew, ok, "a", 1, 1, 10*sec, 4, 5, 0),
		}, ViolationReleasedOp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Check(tt.events, CheckOptions{Slack: ms(50)})
			if kinds(r)[tt.want] == 0 {
				t.Fatalf("want a %s violation, got %d: %v", tt.want, r.Violations, r.Details)
			}
			if r.Violations != len(r.Details) {
				t.Fatalf("Violations=%d but %d details", r.Violations, len(r.Details))
			}
			s := r.Details[0].String()
			if !strings.Contains(s, "SAFETY VIOLATION") || !strings.Contains(s, "lease=") {
				t.Fatalf("evidence missing from %q", s)
			}
		})
	}
}

func TestCheckCleanHistories(t *testing.T) {
	sec := time.Second
	tests := []struct {
		name   string
		events []LockEvent
	}{
		{"handoff by release, overlapping windows", []LockEvent{
			ev(OpAcquire, ok, "a", 1, 1, sec, 0, 1, 0),
			ev(OpRelease, ok, "a", 1, 0, 0, 2, 10, 0),
			ev(OpAcquire, ok, "a", 2, 2, sec, 3, 9, 1), // applied between the release's send and its answer
		}},
		{"handoff by expiry", []LockEvent{
			ev(OpAcquire, ok, "a", 1, 1, sec, 0, 1, 0),
			ev(OpAcquire, rej, "a", 0, 0, sec, 500, 501, 1),
			ev(OpAcquire, ok, "a", 2, 2, sec, 995, 1001, 1), // applied at +1s, just when lease 1 expired
		}},
		{"a renew with no answer, sent after the lease expired, proves nothing", []LockEvent{
			ev(OpAcquire, ok, "a", 1, 1, sec, 0, 1, 0),
			ev(OpRenew, unk, "a", 1, 0, sec, 10000, 0, 0), // may never have been applied (404: expired)
			ev(OpAcquire, ok, "a", 2, 2, sec, 10100, 10105, 1),
		}},
		{"renew extends, later grant after the extended expiry", []LockEvent{
			ev(OpAcquire, ok, "a", 1, 1, sec, 0, 1, 0),
			ev(OpRenew, ok, "a", 1, 1, sec, 800, 801, 0),
			ev(OpAcquire, ok, "a", 2, 2, sec, 1700, 1802, 1),
		}},
		{"re-acquire by the holder keeps the token", []LockEvent{
			ev(OpAcquire, ok, "a", 1, 7, sec, 0, 5, 0),
			held(ev(OpAcquire, ok, "a", 1, 7, sec, 1, 3, 0)), // answered before the grant's answer
			ev(OpRelease, ok, "a", 1, 0, 0, 6, 7, 0),
			ev(OpRelease, rej, "a", 1, 0, 0, 8, 9, 0),
			ev(OpAcquire, ok, "a", 2, 8, sec, 10, 11, 0),
		}},
		{"renew answered late but applied in time", []LockEvent{
			ev(OpAcquire, ok, "a", 1, 1, sec, 0, 1, 0),
			ev(OpRenew, ok, "a", 1, 1, sec, 990, 1400, 0),
			ev(OpRelease, ok, "a", 1, 0, 0, 1401, 1402, 0),
		}},
		{"lost release may have ended the lease early", []LockEvent{
			ev(OpAcquire, ok, "a", 1, 1, 10*sec, 0, 1, 0),
			ev(OpRelease, unk, "a", 1, 0, 0, 2, 3000, 0),
			ev(OpAcquire, ok, "a", 2, 2, 10*sec, 4, 5, 1),
		}},
		{"lost renew may have extended the lease", []LockEvent{
			ev(OpAcquire, ok, "a", 1, 1, sec, 0, 1, 0),
			ev(OpRenew, unk, "a", 1, 1, sec, 900, 5000, 0),
			ev(OpRenew, ok, "a", 1, 1, sec, 1500, 1501, 0),
		}},
		{"lost acquire by the same user may have re-acquired", []LockEvent{
			ev(OpAcquire, ok, "a", 1, 1, sec, 0, 1, 0),
			ev(OpAcquire, unk, "a", 0, 0, sec, 900, 5000, 0),
			held(ev(OpAcquire, ok, "a", 1, 1, sec, 1500, 1501, 0)),
		}},
		{"different locks never interfere", []LockEvent{
			ev(OpAcquire, ok, "a", 1, 1, 10*sec, 0, 1, 0),
			ev(OpAcquire, ok, "b", 2, 1, 10*sec, 0, 1, 1),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Check(tt.events, CheckOptions{Slack: ms(5)})
			if r.Violations != 0 {
				t.Fatalf("clean history flagged: %v", r.Details)
			}
			if r.Checked == 0 {
				t.Fatal("nothing checked")
			}
		})
	}
}

func TestCheckCutoff(t *testing.T) {
	// Lease 1's release was sent after the cutoff and is missing: without the
	// cutoff, lease 2 would look like an overlap.
	events := []LockEvent{
		ev(OpAcquire, ok, "a", 1, 1, 10*time.Second, 0, 1, 0),
		ev(OpAcquire, ok, "a", 2, 2, 10*time.Second, 1000, 1001, 1),
	}
	if r := Check(events, CheckOptions{}); r.Violations == 0 {
		t.Fatal("without a cutoff the history must be flagged")
	}
	if r := Check(events, CheckOptions{Cutoff: ms(500)}); r.Violations != 0 {
		t.Fatalf("with the cutoff: %v", r.Details)
	}
}

func TestParseLeaseID(t *testing.T) {
	s := "550e8400-e29b-41d4-a716-446655440000"
	id, ok := ParseLeaseID([]byte(s))
	if !ok || id.String() != s {
		t.Fatalf("round trip: %v %q", ok, id.String())
	}
	for _, bad := range []string{"", "550e8400", s + "00", "zz0e8400-e29b-41d4-a716-446655440000"} {
		if _, ok := ParseLeaseID([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

// The simulation below runs many clients against a model lock server in
// virtual time: each operation is applied at a random instant between its
// send and its answer, some answers are lost. A correct model must never be
// flagged; models with planted bugs must be.

type simBug int

const (
	bugNone       simBug = iota
	bugEarlyGrant        // grants a lock 300ms before the holder's lease expires
	bugTokenReuse        // the fencing token does not advance on a grant after expiry
	bugLateRenew         // accepts a renew up to 300ms after expiry
)

type simLock struct {
	lease   LeaseID
	owner   int32
	token   int64
	expiry  time.Duration
	held    bool
	nextTok int64
}

type simOp struct {
	e      LockEvent
	client int
	lin    time.Duration
}

type simQueue []*simItem

type simItem struct {
	at     time.Duration
	seq    int
	op     *simOp
	answer bool // false: linearize, true: deliver the answer
}

func (q simQueue) Len() int { return len(q) }
func (q simQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q simQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)   { *q = append(*q, x.(*simItem)) }
func (q *simQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}

func simulate(seed uint64, bug simBug, lossPerMille, clients, owners, locks int, until time.Duration) []LockEvent {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	ttl := time.Second
	state := make([]simLock, locks)
	names := make([]string, locks)
	for i := range names {
		names[i] = "lock-" + string(rune('a'+i))
	}
	var q simQueue
	seq := 0
	push := func(at time.Duration, op *simOp, answer bool) {
		seq++
		heap.Push(&q, &simItem{at: at, seq: seq, op: op, answer: answer})
	}
	lat := func() time.Duration {
		if rng.IntN(50) == 0 {
			return time.Duration(rng.IntN(400)) * time.Millisecond
		}
		return time.Duration(100+rng.IntN(5000)) * time.Microsecond
	}
	var out []LockEvent
	type client struct {
		lease   LeaseID
		lock    int
		renews  int
		abandon bool
	}
	cs := make([]client, clients)
	send := func(now time.Duration, c int, kind OpKind) {
		op := &simOp{client: c, e: LockEvent{Kind: kind, Owner: int32(c % owners), Worker: int32(c), Invoke: now}}
		if kind == OpAcquire {
			cs[c].lock = rng.IntN(locks)
			op.e.TTL = ttl
		} else {
			op.e.Lease = cs[c].lease
			if kind == OpRenew {
				op.e.TTL = ttl
			}
		}
		op.e.Lock = names[cs[c].lock]
		op.lin = now + lat()
		push(op.lin, op, false)
	}
	apply := func(op *simOp) {
		s := &state[cs[op.client].lock]
		now := op.lin
		e := &op.e
		alive := s.held && now < s.expiry
		switch bug {
		case bugEarlyGrant:
			if e.Kind == OpAcquire && e.Owner != s.owner {
				alive = s.held && now < s.expiry-300*time.Millisecond
			}
		case bugLateRenew:
			if e.Kind == OpRenew {
				alive = s.held && now < s.expiry+300*time.Millisecond
			}
		}
		switch e.Kind {
		case OpAcquire:
			switch {
			case alive && s.owner == e.Owner:
				e.Outcome, e.Held, e.Lease, e.Token = OutcomeOK, true, s.lease, s.token
				s.expiry = max(s.expiry, now+e.TTL)
			case alive:
				e.Outcome = OutcomeRejected
			default:
				if !(bug == bugTokenReuse && s.held) {
					s.nextTok++
				}
				var id LeaseID
				for i := range id {
					id[i] = byte(rng.Uint32())
				}
				*s = simLock{lease: id, owner: e.Owner, token: s.nextTok, expiry: now + e.TTL, held: true, nextTok: s.nextTok}
				e.Outcome, e.Lease, e.Token = OutcomeOK, id, s.token
			}
		case OpRenew:
			if alive && s.lease == e.Lease {
				e.Outcome, e.Token = OutcomeOK, s.token
				s.expiry = now + e.TTL
			} else {
				e.Outcome = OutcomeRejected
			}
		case OpRelease:
			if alive && s.lease == e.Lease {
				e.Outcome = OutcomeOK
				s.held = false
			} else {
				e.Outcome = OutcomeRejected
			}
		}
	}
	for c := range cs {
		send(time.Duration(rng.IntN(1000))*time.Microsecond, c, OpAcquire)
	}
	for q.Len() > 0 {
		it := heap.Pop(&q).(*simItem)
		op := it.op
		if !it.answer {
			if rng.IntN(1000) < lossPerMille { // lost before the server saw it
				op.e.Outcome = OutcomeUnknown
			} else {
				apply(op)
			}
			push(op.lin+lat(), op, true)
			continue
		}
		op.e.Ack = it.at
		if op.e.Outcome != OutcomeUnknown && rng.IntN(1000) < lossPerMille { // answer lost
			op.e.Outcome = OutcomeUnknown
			op.e.Token, op.e.Held = 0, false
			if op.e.Kind == OpAcquire {
				op.e.Lease = LeaseID{}
			}
		}
		out = append(out, op.e)
		now := it.at
		c := op.client
		if now > until {
			continue
		}
		next := now + time.Duration(rng.IntN(2000))*time.Microsecond
		switch {
		case op.e.Kind == OpAcquire && op.e.Outcome == OutcomeOK:
			cs[c].lease = op.e.Lease
			cs[c].renews = rng.IntN(3)
			cs[c].abandon = rng.IntN(20) == 0
			if cs[c].abandon {
				send(next+ttl+time.Duration(rng.IntN(300))*time.Millisecond, c, OpRenew) // too late
			} else if cs[c].renews > 0 {
				send(next+time.Duration(rng.IntN(900))*time.Millisecond, c, OpRenew)
			} else {
				send(next, c, OpRelease)
			}
		case op.e.Kind == OpRenew && op.e.Outcome == OutcomeOK && !cs[c].abandon:
			cs[c].renews--
			if cs[c].renews > 0 {
				send(next+time.Duration(rng.IntN(900))*time.Millisecond, c, OpRenew)
			} else {
				send(next, c, OpRelease)
			}
		default:
			send(next, c, OpAcquire)
		}
	}
	return out
}

func TestCheckSimulatedCorrectServer(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		owners := int(seed%3) + 1
		events := simulate(seed, bugNone, 10, 12, owners, 3, 20*time.Second)
		r := Check(events, CheckOptions{})
		if r.Violations != 0 {
			t.Fatalf("seed %d owners %d: correct server flagged (%d violations): %v", seed, owners, r.Violations, r.Details[0])
		}
		var grants, helds, renews int
		for _, e := range events {
			if e.Outcome != OutcomeOK {
				continue
			}
			switch {
			case e.Kind == OpAcquire && e.Held:
				helds++
			case e.Kind == OpAcquire:
				grants++
			case e.Kind == OpRenew:
				renews++
			}
		}
		if grants < 100 || renews < 50 || (owners < 12 && helds == 0) {
			t.Fatalf("seed %d: simulation too thin: %d grants, %d held, %d renews", seed, grants, helds, renews)
		}
	}
}

func TestCheckSimulatedBuggyServers(t *testing.T) {
	for _, tt := range []struct {
		name    string
		bug     simBug
		clients int
		want    string
	}{
		{"early grant", bugEarlyGrant, 12, ViolationOverlap},
		{"token reuse", bugTokenReuse, 12, ViolationTokenDuplicate},
		{"late renew", bugLateRenew, 2, ViolationExpiredOp}, // few clients: nobody takes the expired lock first
	} {
		t.Run(tt.name, func(t *testing.T) {
			events := simulate(42, tt.bug, 1, tt.clients, tt.clients, 3, 20*time.Second)
			r := Check(events, CheckOptions{Slack: ms(10), MaxViolations: 1000})
			if kinds(r)[tt.want] == 0 {
				t.Fatalf("want %s, got %v", tt.want, kinds(r))
			}
		})
	}
}
