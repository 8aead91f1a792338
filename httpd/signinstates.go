package httpd

import (
	"container/list"
	"net"
	"sync"
	"time"
)

// pendingStates are the sign-in states handed out by GET /auth/github and
// not used yet: expiring, single use (take deletes), and bounded so that no
// client can lock the others out (issue 12, item 6):
//
//   - one client address (an IPv4 address, or an IPv6 /64: one host's
//     share of a network) has at most perAddr states; a new one replaces
//     that address's oldest, so a client that floods only replaces its own
//     states, and a browser whose user clicked twice keeps its newest;
//   - beyond max states in all, the oldest state of all is dropped (the
//     expired ones first), never a new sign-in refused: an attacker with
//     many addresses shortens how long a state lives (max divided by its
//     rate), but everyone can still start a sign-in.
//
// Every state expires after the same TTL, so insertion order is expiry
// order: one list, oldest first, serves both eviction and expiry.
type pendingStates struct {
	max, perAddr int

	mu     sync.Mutex               // guards everything below
	byKey  map[string]*list.Element // state → its entry in order
	order  *list.List               // *pendingEntry, oldest first
	byAddr map[string][]*list.Element
}

type pendingState struct {
	verifier string // PKCE code verifier for this sign-in
	expires  time.Time
}

type pendingEntry struct {
	state string
	addr  string // addrKey of the client that started it
	pendingState
}

func newPendingStates(max, perAddr int) *pendingStates {
	return &pendingStates{max: max, perAddr: perAddr, byKey: map[string]*list.Element{},
		order: list.New(), byAddr: map[string][]*list.Element{}}
}

// addrKey groups client addresses: an IPv4 address is itself, an IPv6
// address its /64 (one host usually has a whole /64 to choose from).
func addrKey(ip net.IP) string {
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	if ip16 := ip.To16(); ip16 != nil {
		return ip16.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return "?"
}

// add records a state of a sign-in started from ip, making room as the type
// says. It never refuses one.
func (p *pendingStates) add(state string, ps pendingState, ip net.IP, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	addr := addrKey(ip)
	for p.order.Len() > 0 { // the expired ones go first, whoever made them
		front := p.order.Front()
		if now.Before(front.Value.(*pendingEntry).expires) {
			break
		}
		p.remove(front)
	}
	if own := p.byAddr[addr]; len(own) >= p.perAddr {
		p.remove(own[0])
	}
	if p.order.Len() >= p.max {
		p.remove(p.order.Front())
	}
	el := p.order.PushBack(&pendingEntry{state: state, addr: addr, pendingState: ps})
	p.byKey[state] = el
	p.byAddr[addr] = append(p.byAddr[addr], el)
}

// take removes state and returns it if it was pending and is not expired.
func (p *pendingStates) take(state string, now time.Time) (pendingState, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	el, ok := p.byKey[state]
	if !ok {
		return pendingState{}, false
	}
	p.remove(el)
	e := el.Value.(*pendingEntry)
	return e.pendingState, now.Before(e.expires)
}

// len is the number of states held.
func (p *pendingStates) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.order.Len()
}

// remove drops el from every index (p.mu held).
func (p *pendingStates) remove(el *list.Element) {
	e := el.Value.(*pendingEntry)
	p.order.Remove(el)
	delete(p.byKey, e.state)
	own := p.byAddr[e.addr]
	for i, x := range own {
		if x == el {
			own = append(own[:i], own[i+1:]...)
			break
		}
	}
	if len(own) == 0 {
		delete(p.byAddr, e.addr)
	} else {
		p.byAddr[e.addr] = own
	}
}
