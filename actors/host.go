package actors

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

var (
	errUnknownKind     = errors.New("unknown resource kind")
	errDependsOnFailed = fmt.Errorf("%w: an earlier write of this resource failed", ErrUnavailable)
)

// Host is the generic resource actor: it owns one Behavior, activates it,
// runs its operations one at a time, makes their replies wait for the writes
// they depend on, and asks its shard to passivate it when idle.
type Host struct {
	sys     *System
	key     Key
	b       Behavior
	self    *actor.PID
	parent  *actor.PID
	child   *child // the shard's record of this actor: refs counts requests in flight to it
	handled uint64
	// lastSeq is the newest write replies depend on; lastAnySeq also counts
	// write-behind writes (they only hold back passivation).
	lastSeq, lastAnySeq uint64
	broken              error // activation failed: requests retry it, and fail while it fails
	// gen counts the times the actor fell back to durable state after a
	// failed write. failedGen is the newest generation one of whose writes
	// failed (set on the writer goroutine). A reply computed in generation g
	// is delivered only if no write of g failed, and the writer skips every
	// write of g queued after the failure (Guard): nothing computed from
	// state that never became durable is acknowledged or committed.
	gen       uint64
	failedGen atomic.Uint64
	// idle detection: a timer sends idleCheck every IdleTimeout; the actor is
	// idle if it handled nothing since the previous check. (protoactor's own
	// ReceiveTimeout races with the actor goroutine under -race.)
	idleTimer   *time.Timer
	idlePeriod  time.Duration // the idle timer's current period
	handledSeen uint64
	// cur is the request being handled (Park takes it over); parked says
	// Handle parked it.
	cur    *request
	parked bool
}

// Parked is an operation whose answer a Behavior gives later (Host.Park):
// a waiting acquire queued behind the current holder. The zero Parked
// answers nobody.
type Parked struct {
	reply chan error
	req   *request // its gaveUp flag; the request is not read after the answer (System.call recycles it)
}

// Gone reports whether the caller has stopped waiting for the answer (its
// context is done): answering it would reach nobody.
func (p Parked) Gone() bool { return p.req != nil && p.req.gaveUp.Load() }

// Park takes over the answer of the operation being handled: the Host does
// not answer it when Handle returns, and the Behavior answers it later with
// Answer, on the actor's goroutine (from the Handle of another operation).
// Call it only from Handle.
func (h *Host) Park() Parked {
	h.parked = true
	if h.cur == nil {
		return Parked{}
	}
	return Parked{reply: h.cur.reply, req: h.cur}
}

// Answer answers a parked operation with err, once every write queued so far
// (its grant's among them) has committed, like the answer of the operation
// being handled. Call it only from Handle or Activate.
func (h *Host) Answer(p Parked, err error) { h.reply(p.reply, err) }

// writeFailed tells the actor that one of its writes of generation gen failed.
type writeFailed struct{ gen uint64 }

// idleCheck is sent by the idle timer.
type idleCheck struct{}

// Key is the resource this actor owns.
func (h *Host) Key() Key { return h.key }

// System is the runtime.
func (h *Host) System() *System { return h.sys }

// Now is the runtime clock (ms precision, UTC).
func (h *Host) Now() time.Time { return h.sys.Now() }

// Store is the durable store (the writer; each kind reads through its own
// loader).
func (h *Host) Store() Store { return h.sys.store }

// Publish sends an event to subscribers. Use it from a Write callback so that
// only committed state is published.
func (h *Host) Publish(e Event) { h.sys.cfg.Events.Publish(e) }

// Write queues a durable write; the reply of the current operation (and of
// every later one) is delivered only after it commits. onCommit, if set,
// runs on the writer goroutine after the commit with the write's error; it
// must not touch the behavior's state (update derived indexes, publish).
func (h *Host) Write(m Mutation, onCommit func(error)) error {
	seq, err := h.enqueue(m, onCommit)
	if err != nil {
		return err
	}
	h.lastSeq = seq
	return nil
}

// WriteBehind queues a durable write that replies do not wait for (counters
// that may lose the last batch on a crash). Passivation still waits for it.
func (h *Host) WriteBehind(m Mutation, onCommit func(error)) error {
	_, err := h.enqueue(m, onCommit)
	return err
}

func (h *Host) enqueue(m Mutation, onCommit func(error)) (uint64, error) {
	self, root, gen, failed := h.self, h.sys.as.Root, h.gen, &h.failedGen
	done := func(err error) {
		if err != nil {
			for {
				if f := failed.Load(); f >= gen || failed.CompareAndSwap(f, gen) {
					break
				}
			}
			root.Send(self, writeFailed{gen: gen})
		}
		if onCommit != nil {
			onCommit(err)
		}
	}
	var seq uint64
	var err error
	if gs, ok := h.sys.store.(GuardedStore); ok {
		seq, err = gs.EnqueueGuarded(m, Guard{Failed: failed, Gen: gen}, done)
	} else {
		seq, err = h.sys.store.Enqueue(m, done)
	}
	if err != nil {
		return 0, err
	}
	h.lastAnySeq = seq
	return seq, nil
}

// AfterFunc sends op to this resource after d (through its shard, so it
// reaches a fresh actor if this one was passivated meanwhile).
func (h *Host) AfterFunc(d time.Duration, op any) Timer { return h.sys.AfterFunc(h.key, d, op) }

// Receive implements actor.Actor.
func (h *Host) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *request:
		h.handled++
		defer h.child.refs.Add(-1) // handled: the shard may stop us once none is in flight
		if m.gaveUp.Load() {
			// The caller stopped waiting before the operation started:
			// drop it unapplied (System.call). Nobody reads a reply.
			return
		}
		if h.broken != nil {
			h.activate() // the store may be back
		}
		err := h.broken
		h.cur, h.parked = m, false
		if err == nil {
			err = h.b.Handle(h, m.op)
		}
		parked := h.parked && err == nil
		h.cur, h.parked = nil, false
		if !parked {
			h.reply(m.reply, err)
		}
		if d := h.idleTimeout(); d != h.idlePeriod && h.idleTimer != nil {
			// The behavior's state changed its idle period (a lock now
			// held): check at the new one.
			h.idlePeriod = d
			h.idleTimer.Reset(d)
		}
	case writeFailed:
		if m.gen != h.gen {
			return // a later write of a generation we already left
		}
		// Memory may be ahead of what is durable: wait for every write of
		// ours to resolve, then fall back to the durable state in a new
		// generation. Replies still waiting belong to the old generation
		// and fail (reply); writes of it still queued are skipped (Guard).
		h.sys.store.WaitResolved(h.lastAnySeq)
		h.gen++
		// What we load is durable: later replies depend on nothing.
		h.lastSeq = 0
		h.activate()
	case idleCheck:
		if h.handled == h.handledSeen &&
			(h.broken != nil || (h.lastAnySeq <= h.sys.store.Resolved() && h.b.Passivatable(h))) {
			// The shard stops us only if nothing is in flight to us; if
			// something is, we stay and check again later.
			ctx.Send(h.parent, &passivate{key: h.key, pid: h.self})
		}
		h.handledSeen = h.handled
		h.idlePeriod = h.idleTimeout()
		h.idleTimer.Reset(h.idlePeriod)
	case *actor.Started:
		h.self = ctx.Self() // parent: set by the shard that spawned us
		h.gen = 1
		h.activate()
		self, root := h.self, h.sys.as.Root
		h.idlePeriod = h.idleTimeout()
		h.idleTimer = time.AfterFunc(h.idlePeriod, func() { root.Send(self, idleCheck{}) })
	case *actor.Stopping:
		if h.idleTimer != nil {
			h.idleTimer.Stop()
		}
	}
}

// idleTimeout is the period of the idle check: the behavior's
// (IdlePeriodic), else the runtime's.
func (h *Host) idleTimeout() time.Duration {
	if ip, ok := h.b.(IdlePeriodic); ok {
		if d := ip.IdlePeriod(h); d > 0 {
			return d
		}
	}
	return h.sys.cfg.IdleTimeout
}

// activate loads durable state; while that fails, requests fail with
// ErrUnavailable (and retry it).
func (h *Host) activate() {
	if err := h.b.Activate(h); err != nil {
		if h.broken == nil {
			h.sys.cfg.Logger.Error("activate resource", "kind", h.key.Kind.String(), "name", h.key.Name, "err", err)
		}
		h.broken = errors.Join(ErrUnavailable, err)
		return
	}
	h.broken = nil
}

// reply answers the caller once every write the answer depends on has
// committed (the answer itself is already in the operation's fields); if
// one of them, or any earlier write of the same generation, failed, the
// caller gets ErrUnavailable instead.
func (h *Host) reply(ch chan error, err error) {
	if ch == nil {
		return
	}
	if h.lastSeq == 0 {
		ch <- err
		return
	}
	if h.lastSeq <= h.sys.store.Resolved() && h.failedGen.Load() < h.gen {
		// Everything the answer depends on is resolved, and nothing of this
		// generation failed (a failed write's done callback marks failedGen
		// before Resolved passes it: Store): committed. Answer now, without
		// a callback to register (the common case for reads of a resource
		// whose last write committed long ago).
		ch <- err
		return
	}
	gen, failed := h.gen, &h.failedGen
	h.sys.store.AfterCommit(h.lastSeq, func(werr error) {
		if werr == nil && failed.Load() >= gen {
			werr = errDependsOnFailed
		}
		if werr != nil {
			ch <- werr
			return
		}
		ch <- err
	})
}
