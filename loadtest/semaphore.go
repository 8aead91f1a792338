package loadtest

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The semaphore scenario: workers take slots of a few semaphores (--keys,
// --sem-limit slots each), waiting in the server's queue (--queue-wait),
// hold them for --hold and release them. Every acknowledged grant and
// release is kept for the semaphore checker (CheckSemaphores), which proves
// from the client side that never more than limit slots were held at once.
// Each worker is a holder of its own (holder_id), so that workers sharing a
// token take slots of their own.

// SemEvent is one semaphore operation as the client saw it (as LockEvent).
type SemEvent struct {
	Sem     string
	Limit   int
	Lease   LeaseID
	Token   int64
	TTL     time.Duration
	Invoke  time.Duration
	Ack     time.Duration
	Worker  int32
	Release bool
	Outcome Outcome
}

func (e *SemEvent) String() string {
	op := "acquire"
	if e.Release {
		op = "release"
	}
	return fmt.Sprintf("w%d %s %s sem=%s limit=%d lease=%s token=%d sent=+%s answered=+%s",
		e.Worker, op, e.Outcome, e.Sem, e.Limit, e.Lease, e.Token, fmtOffset(e.Invoke), fmtOffset(e.Ack))
}

// Semaphore violation kinds.
const (
	ViolationOverLimit = "over-limit" // more than limit slots certainly held at once
)

// SemaphoreReport is the semaphore checker's verdict.
type SemaphoreReport struct {
	Checked    int `json:"checked"`
	Slots      int `json:"slots"`
	Violations int `json:"violations"`
	// MaxHeld is the most slots of one semaphore the history proves were
	// held at once (at most its limit; equal to it when the run
	// contended).
	MaxHeld  int      `json:"max_held"`
	Limit    int      `json:"limit"`
	SlackMS  float64  `json:"slack_ms"`
	Evidence []string `json:"evidence,omitempty"`
}

// semaphore: take a slot of the worker's semaphore, hold it, release it.
func semaphoreIter(w *worker, s *scenario, due time.Duration) {
	name := s.names[w.id%len(s.names)]
	cfg := w.run.cfg
	wait := time.Duration(0)
	if cfg.QueueWait > 0 {
		wait = max(min(cfg.QueueWait, w.run.measureTo-w.now()), time.Second)
	}
	t0 := w.now()
	rep, st := w.conn.AcquireSemaphore(name, "s"+strconv.Itoa(w.id), cfg.SemLimit, cfg.LockTTL, wait)
	t1 := w.now()
	w.book(opSemAcquire, due, t1, st, classify(st, 409, 429))
	w.semEvent(SemEvent{Sem: name, Limit: cfg.SemLimit, Lease: rep.Lease, Token: rep.Token, TTL: cfg.LockTTL, Invoke: t0, Ack: t1}, st)
	if st != 200 {
		return
	}
	if cfg.Hold > 0 {
		w.clk.Sleep(cfg.Hold)
	}
	t2 := w.now()
	st = w.conn.ReleaseSemaphore(name, rep.Lease)
	t3 := w.now()
	w.book(opSemRelease, t2, t3, st, classify(st, 404))
	w.semEvent(SemEvent{Sem: name, Limit: cfg.SemLimit, Lease: rep.Lease, Token: rep.Token, Invoke: t2, Ack: t3, Release: true}, st)
}

// semEvent records a semaphore operation for the checker.
func (w *worker) semEvent(e SemEvent, st Status) {
	e.Worker = int32(w.id)
	switch {
	case st == 200:
		e.Outcome = OutcomeOK
	case st == StatusTransport || st == StatusBadReply || st >= 500:
		e.Outcome = OutcomeUnknown
	default:
		e.Outcome = OutcomeRejected
	}
	if int64(len(w.sems)) < w.run.semMax {
		w.sems = append(w.sems, e)
	}
}

// CheckSemaphores verifies that no more than limit slots of a semaphore
// were ever certainly held at once, and that its fencing tokens are unique
// and increase with the certain order of grants.
//
// A slot granted by an acquire acknowledged at Ack was held from its grant,
// some instant before Ack, until its release or expiry. It was certainly
// held from Ack until the earliest moment it may have ended: the sending
// of its release (Invoke), or, without an acknowledged release, its earliest
// possible expiry, Invoke(acquire) + TTL - Slack (the server's clock may
// differ by Slack). So at any instant, the slots whose certain intervals
// contain it were all held then; more than limit of them is a violation a
// correct server cannot produce.
func CheckSemaphores(events []SemEvent, opt CheckOptions) SemaphoreReport {
	if opt.MaxViolations <= 0 {
		opt.MaxViolations = 20
	}
	type slot struct {
		sem        string
		limit      int
		lease      LeaseID
		token      int64
		start, end time.Duration
		grant      *SemEvent
		rel        *SemEvent
	}
	bySem := map[string]map[LeaseID]*slot{}
	rep := SemaphoreReport{SlackMS: float64(opt.Slack) / 1e6}
	for i := range events {
		e := &events[i]
		if opt.Cutoff > 0 && e.Invoke >= opt.Cutoff {
			continue
		}
		rep.Checked++
		if e.Outcome != OutcomeOK {
			continue
		}
		m := bySem[e.Sem]
		if m == nil {
			m = map[LeaseID]*slot{}
			bySem[e.Sem] = m
		}
		sl := m[e.Lease]
		if sl == nil {
			sl = &slot{sem: e.Sem, limit: e.Limit, lease: e.Lease, start: forever, end: forever}
			m[e.Lease] = sl
		}
		if e.Release {
			if sl.rel == nil || e.Invoke < sl.rel.Invoke {
				sl.rel = e
			}
			continue
		}
		if e.Ack < sl.start {
			sl.start, sl.grant, sl.token = e.Ack, e, e.Token
			sl.end = e.Invoke + e.TTL - opt.Slack
		}
	}
	report := func(kind, detail string, evidence ...*SemEvent) {
		rep.Violations++
		if len(rep.Evidence) >= opt.MaxViolations {
			return
		}
		var b strings.Builder
		fmt.Fprintf(&b, "SAFETY VIOLATION %s: %s", kind, detail)
		for _, e := range evidence {
			if e != nil {
				b.WriteString("\n    " + e.String())
			}
		}
		rep.Evidence = append(rep.Evidence, b.String())
	}
	sems := make([]string, 0, len(bySem))
	for s := range bySem {
		sems = append(sems, s)
	}
	slices.Sort(sems)
	for _, name := range sems {
		var slots []*slot
		tokens := map[int64]*slot{}
		for _, sl := range bySem[name] {
			if sl.grant == nil {
				continue // a release of a grant whose answer was not kept
			}
			rep.Slots++
			rep.Limit = max(rep.Limit, sl.limit)
			if sl.rel != nil && sl.rel.Invoke < sl.end {
				sl.end = sl.rel.Invoke
			}
			if opt.Cutoff > 0 && sl.end > opt.Cutoff {
				sl.end = opt.Cutoff // a release sent after the cutoff is not in the history
			}
			if o := tokens[sl.token]; o != nil {
				report(ViolationTokenDuplicate, fmt.Sprintf("semaphore %q: slots %s and %s share fencing token %d", name, o.lease, sl.lease, sl.token), o.grant, sl.grant)
			}
			tokens[sl.token] = sl
			slots = append(slots, sl)
		}
		// Sweep the certain intervals: +1 at start, -1 at end (ends first
		// at the same instant: touching intervals do not overlap).
		type edge struct {
			at    time.Duration
			delta int
			sl    *slot
		}
		var edges []edge
		for _, sl := range slots {
			if sl.end > sl.start {
				edges = append(edges, edge{sl.start, 1, sl}, edge{sl.end, -1, sl})
			}
		}
		slices.SortFunc(edges, func(a, b edge) int {
			if c := cmp.Compare(a.at, b.at); c != 0 {
				return c
			}
			return cmp.Compare(a.delta, b.delta)
		})
		n := 0
		open := map[*slot]bool{}
		for _, e := range edges {
			n += e.delta
			if e.delta > 0 {
				open[e.sl] = true
			} else {
				delete(open, e.sl)
			}
			rep.MaxHeld = max(rep.MaxHeld, n)
			if e.delta > 0 && n > e.sl.limit {
				var ev []*SemEvent
				for o := range open {
					ev = append(ev, o.grant)
				}
				slices.SortFunc(ev, func(a, b *SemEvent) int { return cmp.Compare(a.Ack, b.Ack) })
				report(ViolationOverLimit, fmt.Sprintf("semaphore %q: %d slots certainly held at +%s, limit %d", name, n, fmtOffset(e.at), e.sl.limit), ev...)
			}
		}
		// Token order: a slot granted (answered) before another's acquire
		// was sent has the lower token.
		bySend := slices.Clone(slots)
		slices.SortFunc(bySend, func(a, b *slot) int { return cmp.Compare(a.grant.Invoke, b.grant.Invoke) })
		byAck := slices.Clone(slots)
		slices.SortFunc(byAck, func(a, b *slot) int { return cmp.Compare(a.start, b.start) })
		var maxTok *slot
		k := 0
		for _, b := range bySend {
			for k < len(byAck) && byAck[k].start < b.grant.Invoke {
				if maxTok == nil || byAck[k].token > maxTok.token {
					maxTok = byAck[k]
				}
				k++
			}
			if maxTok != nil && maxTok != b && maxTok.token >= b.token {
				report(ViolationTokenOrder, fmt.Sprintf("semaphore %q: slot %s (token %d) was granted before slot %s's acquire was sent, yet that got token %d",
					name, maxTok.lease, maxTok.token, b.lease, b.token), maxTok.grant, b.grant)
			}
		}
	}
	return rep
}
