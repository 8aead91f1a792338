package actors

import "sync"

// flagView is a derived, read-only view of the flags whose actors are
// resident, so that evaluating a flag (the hot path) needs no actor round
// trip. It only ever holds committed state:
//
//   - a flag actor puts what it loaded at activation (durable by definition),
//   - the commit callback of each flag write puts the new state (it runs
//     before the write's reply is delivered, so a read that starts after an
//     acknowledged write sees it),
//   - the actor removes its entry when it offers to passivate, and puts it
//     again on a read through the actor (Flags.Get) if its writes are all
//     resolved (when the shard kept it alive after all).
//
// A miss falls back to the actor. Entries exist only for resident actors, so
// the view is bounded like them.
type flagView struct {
	parts [16]flagViewPart
}

type flagViewPart struct {
	// mu guards m.
	mu sync.RWMutex
	m  map[ownedName]FlagState
}

func newFlagView() *flagView {
	v := &flagView{}
	for i := range v.parts {
		v.parts[i].m = map[ownedName]FlagState{}
	}
	return v
}

func (v *flagView) part(owner, name string) *flagViewPart {
	h := uint32(2166136261)
	for i := 0; i < len(owner); i++ {
		h = (h ^ uint32(owner[i])) * 16777619
	}
	h = (h ^ '/') * 16777619
	for i := 0; i < len(name); i++ {
		h = (h ^ uint32(name[i])) * 16777619
	}
	return &v.parts[h%uint32(len(v.parts))]
}

func (v *flagView) get(owner, name string) (FlagState, bool) {
	p := v.part(owner, name)
	p.mu.RLock()
	r, ok := p.m[ownedName{owner, name}]
	p.mu.RUnlock()
	return r, ok
}

func (v *flagView) put(r FlagState) {
	p := v.part(r.Flag.Owner, r.Flag.Name)
	p.mu.Lock()
	p.m[ownedName{r.Flag.Owner, r.Flag.Name}] = r
	p.mu.Unlock()
}

func (v *flagView) remove(owner, name string) {
	p := v.part(owner, name)
	p.mu.Lock()
	delete(p.m, ownedName{owner, name})
	p.mu.Unlock()
}

// size is the number of entries (tests).
func (v *flagView) size() int {
	n := 0
	for i := range v.parts {
		p := &v.parts[i]
		p.mu.RLock()
		n += len(p.m)
		p.mu.RUnlock()
	}
	return n
}
