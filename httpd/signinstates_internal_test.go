package httpd

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// The bounds of pending sign-in states (issue 12, item 6): a flooding
// address only replaces its own states; beyond the global bound the oldest
// go, never a new sign-in; expired states go first; an IPv6 /64 is one
// address.
func TestPendingStatesBounds(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	ps := func(ttl time.Duration) pendingState { return pendingState{verifier: "v", expires: now.Add(ttl)} }
	a, b := net.ParseIP("192.0.2.1"), net.ParseIP("198.51.100.7")

	p := newPendingStates(100, 4)
	p.add("b-1", ps(time.Minute), b, now)
	for i := 0; i < 1000; i++ {
		p.add(fmt.Sprint("a-", i), ps(time.Minute), a, now)
	}
	if n := p.len(); n != 5 {
		t.Fatalf("after a flood from one address %d states are held, want its 4 newest and b's", n)
	}
	if _, ok := p.take("b-1", now); !ok {
		t.Fatal("the other address's sign-in was pushed out by the flood")
	}
	if _, ok := p.take("a-999", now); !ok {
		t.Fatal("the flooding address lost its newest state")
	}
	if _, ok := p.take("a-995", now); ok {
		t.Fatal("the flooding address kept more than its share")
	}

	// Many addresses: the global bound drops the oldest, never the new one.
	p = newPendingStates(10, 4)
	for i := 0; i < 30; i++ {
		p.add(fmt.Sprint("s-", i), ps(time.Minute), net.IPv4(10, 0, 0, byte(i)), now)
	}
	if n := p.len(); n != 10 {
		t.Fatalf("%d states held, want the bound 10", n)
	}
	if _, ok := p.take("s-29", now); !ok {
		t.Fatal("the newest sign-in was refused at the global bound")
	}
	if _, ok := p.take("s-19", now); ok {
		t.Fatal("a state older than the newest 10 is still held")
	}

	// Expired states go first, and are not taken.
	p = newPendingStates(10, 4)
	p.add("old", ps(time.Second), a, now)
	if _, ok := p.take("old", now.Add(2*time.Second)); ok {
		t.Fatal("an expired state was taken")
	}
	p.add("old2", ps(time.Second), a, now)
	p.add("new", ps(time.Minute), b, now.Add(2*time.Second))
	if n := p.len(); n != 1 {
		t.Fatalf("%d states after an add past the expiry, want 1", n)
	}

	// One IPv6 /64 is one address.
	p = newPendingStates(100, 2)
	for i := 0; i < 10; i++ {
		p.add(fmt.Sprint("v6-", i), ps(time.Minute), net.ParseIP(fmt.Sprintf("2001:db8:1:2::%x", i+1)), now)
	}
	p.add("other-64", ps(time.Minute), net.ParseIP("2001:db8:1:3::1"), now)
	if n := p.len(); n != 3 {
		t.Fatalf("%d states, want 2 for the flooding /64 and 1 for the other", n)
	}
}
