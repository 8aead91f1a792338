package actors

import (
	"maps"

	"github.com/asynkron/protoactor-go/actor"
)

// shard owns the map of resident resource actors for its slice of the key
// space. It spawns a child on first use and stops it when the child asks to
// be passivated and no message is in flight to it.
//
// Memory after passivation: children are spawned from the root context, not
// as protoactor children of the shard, because protoactor's child set
// (PIDSet.Remove) keeps removed PIDs, and through their cached process the
// whole stopped actor, reachable in its slice's spare capacity; and the
// children map is rebuilt when it shrinks far below its peak (Go maps never
// give buckets back). So memory follows the resident actors, not every
// name ever touched.
type shard struct {
	sys      *System
	children map[Key]*child
	peak     int // largest len(children) since the map was last rebuilt
}

type child struct {
	pid       *actor.PID
	forwarded uint64 // requests sent to the child
}

// passivate is sent by an idle child to its shard.
type passivate struct {
	key     Key
	pid     *actor.PID
	handled uint64 // requests the child has processed
}

func (sh *shard) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *request:
		c := sh.children[m.key]
		if c == nil {
			f := sh.sys.kinds[m.key.Kind].New
			if f == nil {
				if m.reply != nil {
					m.reply <- errUnknownKind
				}
				return
			}
			h := &Host{sys: sh.sys, key: m.key, b: f(m.key), parent: ctx.Self()}
			pid := sh.sys.as.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return h }))
			c = &child{pid: pid}
			sh.children[m.key] = c
			sh.peak = max(sh.peak, len(sh.children))
			sh.sys.live.Add(1)
		}
		c.forwarded++
		ctx.Send(c.pid, m)
	case *passivate:
		c := sh.children[m.key]
		// Stop only if nothing was forwarded after the child decided it was
		// idle; otherwise it has work queued and will ask again later.
		if c != nil && c.pid.Equal(m.pid) && c.forwarded == m.handled {
			delete(sh.children, m.key)
			sh.sys.live.Add(-1)
			ctx.Stop(c.pid)
			if sh.peak > 1024 && len(sh.children) < sh.peak/8 {
				sh.children = maps.Clone(sh.children)
				sh.peak = len(sh.children)
			}
		}
	case *actor.Stopping:
		for _, c := range sh.children {
			ctx.Stop(c.pid)
		}
		sh.sys.live.Add(-int64(len(sh.children)))
	}
}
