package loadtest

import (
	"cmp"
	"slices"
	"strconv"
	"time"
)

// The lock-queue scenario: every worker waits its turn for one of a few
// locks (a waiting acquire, wait_seconds), holds it for Config.Hold and
// releases it. Two figures come out of it besides the latencies:
//
//   - the hand-off latency: from the moment a holder sent its release to the
//     moment the next waiter got its 200. The next waiter is the grant with
//     the next fencing token of that lock; only grants whose acquire was
//     sent before that release count (the waiter was queued when the lock
//     was released).
//   - fairness: grants go in arrival order, so a request should never be
//     granted after one that was sent clearly later (FIFOSlack: the
//     server's arrival order is not the client's send order within a few
//     scheduling delays). Overtaken counts the grants for which such a later
//     request was granted first.
//
// Every worker is a holder of its own (holder_id "q<worker>"), so that
// workers sharing a token queue against each other, and the lock events go
// to the safety checker like the other lock scenarios'.

// FIFOSlack is the send-time difference below which two waiting acquires
// count as simultaneous for the fairness figure.
const FIFOSlack = time.Millisecond

// queueRec is one grant or release of the lock-queue scenario.
type queueRec struct {
	lock    int32 // index into the scenario's names
	release bool
	token   int64
	invoke  time.Duration // when the acquire (or release) was sent
	ack     time.Duration // when the grant's 200 arrived
}

// QueueReport is the lock-queue scenario's hand-off and fairness figures.
type QueueReport struct {
	Grants int64 `json:"grants"`
	// HandOffs are the grants to a waiter queued when the previous holder
	// released the lock: the ones the hand-off latency is measured on.
	HandOffs int64 `json:"hand_offs"`
	// HandOff is the latency from a release being sent to the next
	// waiter's 200.
	HandOff Latency `json:"hand_off_ms"`
	// Overtaken counts grants made after a grant to a request sent more
	// than FIFOSlackMS later (0: grant order followed arrival order).
	Overtaken   int64   `json:"overtaken"`
	FIFOSlackMS float64 `json:"fifo_slack_ms"`
}

// lockQueue: wait for the worker's lock, hold it, release it.
func lockQueue(w *worker, s *scenario, due time.Duration) {
	li := w.id % len(s.names)
	name := s.names[li]
	cfg := w.run.cfg
	// Wait no longer than the run lasts (and at least a second: the
	// server counts whole seconds).
	wait := max(min(cfg.QueueWait, w.run.measureTo-w.now()), time.Second)
	holder := "q" + strconv.Itoa(w.id)
	t0 := w.now()
	rep, st := w.conn.AcquireQueued(name, holder, cfg.LockTTL, wait)
	t1 := w.now()
	w.book(opAcquire, due, t1, st, classify(st, 409, 429))
	w.lockEventAs(w.queueOwner(), OpAcquire, name, LeaseID{}, rep, st, cfg.LockTTL, t0, t1)
	if st != 200 {
		return
	}
	if !rep.Held {
		w.queue = append(w.queue, queueRec{lock: int32(li), token: rep.Token, invoke: t0, ack: t1})
	}
	if cfg.Hold > 0 {
		w.clk.Sleep(cfg.Hold)
	}
	t2 := w.now()
	st = w.conn.Release(name, rep.Lease)
	t3 := w.now()
	w.book(opRelease, t2, t3, st, classify(st, 404))
	w.lockEventAs(w.queueOwner(), OpRelease, name, rep.Lease, LockReply{}, st, 0, t2, t3)
	if st == 200 {
		w.queue = append(w.queue, queueRec{lock: int32(li), release: true, token: rep.Token, invoke: t2})
	}
}

// queueOwner is the worker's identity in lock events: a holder of its own
// (holder_id), distinct from every user id.
func (w *worker) queueOwner() int32 { return 1<<20 + int32(w.id) }

// queueReport computes the hand-off latency and fairness from every
// worker's grants and releases of the measured part of the run.
func queueReport(recs []queueRec, from, to time.Duration) *QueueReport {
	type key struct {
		lock  int32
		token int64
	}
	released := map[key]time.Duration{}
	var grants []queueRec
	for _, r := range recs {
		if r.release {
			released[key{r.lock, r.token}] = r.invoke
		} else {
			grants = append(grants, r)
		}
	}
	slices.SortFunc(grants, func(a, b queueRec) int {
		if c := cmp.Compare(a.lock, b.lock); c != 0 {
			return c
		}
		return cmp.Compare(a.token, b.token)
	})
	rep := &QueueReport{FIFOSlackMS: float64(FIFOSlack) / 1e6}
	h := newHist()
	var latest time.Duration // the latest send time of an earlier grant of the same lock
	for i, g := range grants {
		if i == 0 || grants[i-1].lock != g.lock {
			latest = -1
		}
		measured := g.invoke >= from && g.invoke < to
		if measured {
			rep.Grants++
			if latest > g.invoke+FIFOSlack {
				rep.Overtaken++
			}
			if rel, ok := released[key{g.lock, g.token - 1}]; ok && g.invoke < rel {
				rep.HandOffs++
				_ = h.RecordValue(max(int64((g.ack-rel)/time.Microsecond), histMin))
			}
		}
		latest = max(latest, g.invoke)
	}
	rep.HandOff = latencyOf(h)
	return rep
}
