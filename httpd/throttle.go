package httpd

import (
	"hash/maphash"
	"net"
	"sync"
	"time"

	"github.com/octostore/octostore/actors"
)

// Defaults of the authentication-failure throttle (ServerConfig, and the
// `octostore serve` flags that set it).
const (
	// DefaultAuthFailureBurst is how many failed authentications a client
	// address may make in a row before it is throttled.
	DefaultAuthFailureBurst = 20
	// DefaultAuthFailureInterval is how often a throttled address earns
	// one more attempt.
	DefaultAuthFailureInterval = time.Second
	// maxThrottled bounds the addresses the throttle remembers (about 64
	// bytes each).
	maxThrottled = 1 << 16
)

// authThrottle slows down guessing of credentials (issue 12, item 10): a
// token bucket per client address (an IPv4 address, or an IPv6 /64) that
// each failed authentication (an unknown bearer token, a wrong admin key)
// takes one token from. It holds burst tokens and earns one back every
// interval. While an address has no token left, every request of it that
// carries a credential is answered 429 + Retry-After without looking the
// credential up, so a guess costs the guesser time, not the server a
// database read: an address makes at most burst guesses and then one per
// interval. Requests without a credential, and addresses that never fail,
// are not affected; a client behind the same address as a guesser is,
// while the guessing lasts.
//
// Memory is bounded: an address whose bucket is full again is forgotten,
// and at most maxThrottled addresses are remembered; beyond that (attempts
// from more addresses than that at once) a remembered address is forgotten
// early, which only gives it its burst again.
//
// The addresses are split over shards by hash, each with its own mutex
// guarding its map, so checks from many connections do not queue on one
// lock.
type authThrottle struct {
	burst    float64
	interval time.Duration
	now      func() time.Time
	seed     maphash.Seed
	shards   [16]throttleShard
}

type throttleShard struct {
	mu        sync.Mutex // guards m and lastSweep
	m         map[[16]byte]bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64   // attempts left
	at     time.Time // when tokens was computed
}

func newAuthThrottle(burst int, interval time.Duration, now func() time.Time) *authThrottle {
	if now == nil {
		now = time.Now
	}
	t := &authThrottle{burst: float64(burst), interval: interval, now: now, seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].m = map[[16]byte]bucket{}
	}
	return t
}

// throttleKey is the address a bucket belongs to: IPv4 as itself (in its
// IPv4-mapped form), IPv6 by its /64.
func throttleKey(ip net.IP) (k [16]byte) {
	if ip4 := ip.To4(); ip4 != nil {
		copy(k[:], ip4.To16())
		return k
	}
	copy(k[:8], ip.To16())
	return k
}

func (t *authThrottle) shard(k [16]byte) *throttleShard {
	return &t.shards[maphash.Comparable(t.seed, k)%uint64(len(t.shards))]
}

// refill is b as of now.
func (t *authThrottle) refill(b bucket, now time.Time) bucket {
	if d := now.Sub(b.at); d > 0 {
		b.tokens += float64(d) / float64(t.interval)
		if b.tokens > t.burst {
			b.tokens = t.burst
		}
		b.at = now
	}
	return b
}

// wait is how long ip must wait before its next attempt; 0 when it may try
// now.
func (t *authThrottle) wait(ip net.IP) time.Duration {
	k := throttleKey(ip)
	s := t.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[k]
	if !ok {
		return 0
	}
	now := t.now()
	b = t.refill(b, now)
	if b.tokens >= t.burst {
		delete(s.m, k) // nothing to remember
		return 0
	}
	s.m[k] = b
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(t.interval))
}

// failed takes one attempt from ip's bucket.
func (t *authThrottle) failed(ip net.IP) {
	k := throttleKey(ip)
	s := t.shard(k)
	now := t.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[k]
	if !ok {
		if len(s.m) >= maxThrottled/len(t.shards) {
			t.makeRoom(s, now)
		}
		b = bucket{tokens: t.burst, at: now}
	}
	b = t.refill(b, now)
	b.tokens = max(0, b.tokens-1)
	s.m[k] = b
}

// makeRoom forgets the addresses of s whose buckets are full again (at most
// once an interval: it walks the map), and if that freed nothing, one
// address. s.mu is held.
func (t *authThrottle) makeRoom(s *throttleShard, now time.Time) {
	if now.Sub(s.lastSweep) >= t.interval {
		s.lastSweep = now
		for k, b := range s.m {
			if t.refill(b, now).tokens >= t.burst {
				delete(s.m, k)
			}
		}
	}
	if len(s.m) >= maxThrottled/len(t.shards) {
		for k := range s.m { // Go's map order: an arbitrary one
			delete(s.m, k)
			break
		}
	}
}

// remembered is the number of addresses the throttle holds (tests).
func (t *authThrottle) remembered() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// errThrottled answers a request from an address that failed to
// authenticate too often.
func errThrottled(wait time.Duration) error {
	return &actors.Error{Code: actors.CodeTooManyRequests, RetryAfter: wait,
		Message: "too many failed authentication attempts from this address; retry later"}
}
