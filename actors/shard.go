package actors

import (
	"github.com/asynkron/protoactor-go/actor"
)

// shard owns the map of resident resource actors for its slice of the key
// space. It spawns a child on first use and stops it when the child asks to
// be passivated and no message is in flight to it.
type shard struct {
	sys      *System
	children map[Key]*child
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
			f := sh.sys.kinds[m.key.Kind]
			if f == nil {
				if m.reply != nil {
					m.reply <- Result{Err: errUnknownKind}
				}
				return
			}
			h := &Host{sys: sh.sys, key: m.key, b: f(m.key)}
			pid := ctx.Spawn(actor.PropsFromProducer(func() actor.Actor { return h }))
			c = &child{pid: pid}
			sh.children[m.key] = c
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
		}
	case *actor.Stopping:
		sh.sys.live.Add(-int64(len(sh.children)))
	}
}
