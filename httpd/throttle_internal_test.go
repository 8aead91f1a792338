package httpd

import (
	"net"
	"testing"
	"time"
)

// The throttle's memory is bounded however many addresses fail, and an
// address whose bucket is full again is forgotten.
func TestAuthThrottleMemoryBound(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	th := newAuthThrottle(3, time.Second, func() time.Time { return now })
	for i := 0; i < 3*maxThrottled; i++ {
		th.failed(net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)))
	}
	if n := th.remembered(); n > maxThrottled {
		t.Fatalf("%d addresses remembered, bound %d", n, maxThrottled)
	}
	// IPv6: one /64 is one address.
	for i := 0; i < 100; i++ {
		th.failed(net.ParseIP("2001:db8::1").To16())
		ip := net.ParseIP("2001:db8::")
		ip[15] = byte(i)
		th.failed(ip)
	}
	if w := th.wait(net.ParseIP("2001:db8::ff")); w <= 0 {
		t.Fatal("an address of a throttled /64 is not throttled")
	}
	if w := th.wait(net.ParseIP("2001:db8:0:1::1")); w != 0 {
		t.Fatalf("the next /64 waits %s", w)
	}
	// Refilled buckets are forgotten: an hour later, new failures that
	// find their shard full sweep it.
	now = now.Add(time.Hour)
	for i := 0; i < 1000; i++ {
		th.failed(net.IPv4(172, 16, byte(i>>8), byte(i)))
	}
	if n := th.remembered(); n > 2000 {
		t.Fatalf("%d addresses still remembered an hour later, after 1000 new ones", n)
	}
}
