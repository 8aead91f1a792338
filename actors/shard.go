package actors

import (
	"maps"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// shard owns the map of resident resource actors for its slice of the key
// space. It spawns a child on first use and stops it when the child asks to
// be passivated and no message is in flight to it.
//
// Callers send to a resident child directly (System.route): the shard
// publishes its map (resident, read under mu by callers, written only by the
// shard actor), and each child counts the requests sent to it and not yet
// handled (child.refs). The shard stops a child only by turning that count
// from 0 to -1, which no caller can pass (child.enter): a request either
// reaches a child that will handle it, or goes to the shard, which spawns a
// fresh child for it. The shard hop (a mailbox post, a goroutine hand-off
// and the shard's map lookup) is left only for the first request of a
// non-resident resource.
//
// Memory after passivation: children are spawned from the root context, not
// as protoactor children of the shard, because protoactor's child set
// (PIDSet.Remove) keeps removed PIDs, and through their cached process the
// whole stopped actor, reachable in its slice's spare capacity; and the
// children map is rebuilt when it shrinks far below its peak (Go maps never
// give buckets back). So memory follows the resident actors, not every
// name ever touched.
type shard struct {
	sys *System
	pid *actor.PID

	// mu guards resident: written by the shard actor (spawn, passivate,
	// rebuild), read by callers looking for a child to send to.
	mu       sync.RWMutex
	resident map[Key]*child
	peak     int // largest len(resident) since the map was last rebuilt (shard actor only)
}

type child struct {
	pid  *actor.PID
	mbox *mailbox // the child's mailbox: callers post to it directly (System.route)
	// refs counts the requests sent to the child and not yet handled; -1
	// once the shard has decided to stop it (then nobody may send to it).
	refs atomic.Int64
}

// enter counts a request about to be sent to c; false if c is stopping.
func (c *child) enter() bool {
	for {
		n := c.refs.Load()
		if n < 0 {
			return false
		}
		if c.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// lookup is the resident child of k, or nil (any goroutine).
func (sh *shard) lookup(k Key) *child {
	sh.mu.RLock()
	c := sh.resident[k]
	sh.mu.RUnlock()
	return c
}

// passivate is sent by an idle child to its shard.
type passivate struct {
	key Key
	pid *actor.PID
}

func (sh *shard) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *request:
		c := sh.resident[m.key] // only this actor writes the map: no lock to read it
		if c == nil {
			f := sh.sys.kinds[m.key.Kind].New
			if f == nil {
				if m.reply != nil {
					m.reply <- errUnknownKind
				}
				return
			}
			c = &child{mbox: newMailbox()}
			h := &Host{sys: sh.sys, key: m.key, b: f(m.key), parent: ctx.Self(), child: c}
			c.pid = sh.sys.as.Root.Spawn(sh.sys.props(func() actor.Actor { return h }, c.mbox))
			sh.mu.Lock()
			sh.resident[m.key] = c
			sh.mu.Unlock()
			sh.peak = max(sh.peak, len(sh.resident))
			sh.sys.live.Add(1)
		}
		c.refs.Add(1) // the map holds only children this actor has not stopped: refs >= 0
		c.mbox.PostUserMessage(m)
	case *passivate:
		c := sh.resident[m.key]
		// Stop only if nothing is in flight to the child; otherwise it has
		// work queued and will ask again later.
		if c != nil && c.pid.Equal(m.pid) && c.refs.CompareAndSwap(0, -1) {
			sh.mu.Lock()
			delete(sh.resident, m.key)
			if sh.peak > 1024 && len(sh.resident) < sh.peak/8 {
				sh.resident = maps.Clone(sh.resident)
				sh.peak = len(sh.resident)
			}
			sh.mu.Unlock()
			sh.sys.live.Add(-1)
			ctx.Stop(c.pid)
		}
	case *actor.Stopping:
		sh.mu.Lock()
		for _, c := range sh.resident {
			c.refs.Store(-1)
			ctx.Stop(c.pid)
		}
		sh.sys.live.Add(-int64(len(sh.resident)))
		sh.resident = map[Key]*child{}
		sh.mu.Unlock()
	}
}
