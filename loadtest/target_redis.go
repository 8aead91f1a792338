package loadtest

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The Redis baseline does what Redis users do (github.com/redis/go-redis/v9):
//
//   - acquire: SET lt:lock:NAME <random 128-bit value> NX PX ttl. With
//     RedisOptions.Fencing, a Lua script does the SET NX PX and, when it
//     succeeds, INCR lt:fence:NAME in the same atomic step and returns the
//     counter as the fencing token (a separate INCR after the SET could hand
//     out tokens out of grant order when a lease expires in between);
//   - renew: a compare-and-pexpire script (PEXPIRE only if the value is ours);
//   - release: the compare-and-delete script of the Redis documentation;
//   - lock-status: GET;
//   - ratelimit-check: the common sliding-window log on a sorted set
//     (ZREMRANGEBYSCORE the old entries, ZCARD, ZADD when under the limit,
//     PEXPIRE), one script, the client's clock in milliseconds.
//
// Flags and config have no Redis counterpart here.

var (
	redisAcquireFenced = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0`)
	redisRenew = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`)
	redisRelease = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)
	redisSlidingWindow = redis.NewScript(`
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, limit - count - 1}
end
return {0, 0}`)
)

// RedisOptions configure the Redis baseline.
type RedisOptions struct {
	Fencing  bool // hand out fencing tokens (atomic SET NX PX + INCR script)
	PoolSize int
	Timeout  time.Duration
}

type redisTarget struct {
	rdb  *redis.Client
	addr string
	opt  RedisOptions
}

// NewRedisTarget returns the Redis baseline for a redis:// URL.
func NewRedisTarget(redisURL string, opt RedisOptions) (Target, error) {
	o, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("parse redis URL: %w", err)
	}
	if opt.PoolSize <= 0 {
		opt.PoolSize = 512
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 10 * time.Second
	}
	o.PoolSize = opt.PoolSize
	o.MinIdleConns = 0
	o.MaxRetries = -1 // never resend: a resent SET NX or script would blur the history
	o.ReadTimeout, o.WriteTimeout = opt.Timeout, opt.Timeout
	o.DisableIdentity = true
	return &redisTarget{rdb: redis.NewClient(o), addr: "redis://" + o.Addr, opt: opt}, nil
}

func (t *redisTarget) Kind() string { return "redis" }
func (t *redisTarget) Addr() string { return t.addr }
func (t *redisTarget) Users() int   { return 1 }
func (t *redisTarget) Close() error { return t.rdb.Close() }

func (t *redisTarget) Ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%s: %w", t.addr, err)
	}
	return nil
}
func (t *redisTarget) Fencing() bool { return t.opt.Fencing }

func (t *redisTarget) Supports(sc string) bool {
	switch sc {
	case "lock-cycle", "lock-contended", "lock-status", "ratelimit-check":
		return true
	}
	return false
}

func (t *redisTarget) Conn(user int) (Conn, error) {
	var seed [16]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return nil, err
	}
	s1, s2 := uint64(0), uint64(0)
	for i := 0; i < 8; i++ {
		s1, s2 = s1<<8|uint64(seed[i]), s2<<8|uint64(seed[8+i])
	}
	return &redisConn{t: t, ctx: context.Background(), rng: rand.New(rand.NewPCG(s1, s2)), id: s1}, nil
}

type redisConn struct {
	t   *redisTarget
	ctx context.Context
	rng *rand.Rand
	id  uint64 // distinguishes this connection's rate-limit entries
	seq uint64
}

func (c *redisConn) Close() {}

// AcquireSemaphore: no semaphores on Redis here (Supports says no).
func (c *redisConn) AcquireSemaphore(string, string, int, time.Duration, time.Duration) (LockReply, Status) {
	return LockReply{}, 501
}

// ReleaseSemaphore: see AcquireSemaphore.
func (c *redisConn) ReleaseSemaphore(string, LeaseID) Status { return 501 }

// AcquireQueued: Redis has no queue of waiters (Supports says no).
func (c *redisConn) AcquireQueued(string, string, time.Duration, time.Duration) (LockReply, Status) {
	return LockReply{}, 501
}

func redisStatus(err error) Status {
	if err == nil {
		return 200
	}
	var re redis.Error
	if errors.As(err, &re) && !errors.Is(err, redis.Nil) {
		return 500
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return StatusTransport
	}
	return StatusTransport
}

func lockKey(name string) string  { return "lt:lock:" + name }
func fenceKey(name string) string { return "lt:fence:" + name }

func (c *redisConn) Acquire(name string, ttl time.Duration) (LockReply, Status) {
	var id LeaseID
	for i := 0; i < 16; i += 8 {
		v := c.rng.Uint64()
		for j := 0; j < 8; j++ {
			id[i+j] = byte(v >> (8 * j))
		}
	}
	val := hex.EncodeToString(id[:])
	if c.t.opt.Fencing {
		n, err := redisAcquireFenced.Run(c.ctx, c.t.rdb, []string{lockKey(name), fenceKey(name)}, val, ttl.Milliseconds()).Int64()
		if err != nil {
			return LockReply{}, redisStatus(err)
		}
		if n == 0 {
			return LockReply{}, 409
		}
		return LockReply{Lease: id, Token: n}, 200
	}
	ok, err := c.t.rdb.SetNX(c.ctx, lockKey(name), val, ttl).Result()
	if err != nil {
		return LockReply{}, redisStatus(err)
	}
	if !ok {
		return LockReply{}, 409
	}
	return LockReply{Lease: id}, 200
}

func (c *redisConn) Renew(name string, lease LeaseID, ttl time.Duration) (LockReply, Status) {
	n, err := redisRenew.Run(c.ctx, c.t.rdb, []string{lockKey(name)}, hex.EncodeToString(lease[:]), ttl.Milliseconds()).Int64()
	if err != nil {
		return LockReply{}, redisStatus(err)
	}
	if n == 0 {
		return LockReply{}, 404
	}
	return LockReply{Lease: lease}, 200
}

func (c *redisConn) Release(name string, lease LeaseID) Status {
	n, err := redisRelease.Run(c.ctx, c.t.rdb, []string{lockKey(name)}, hex.EncodeToString(lease[:])).Int64()
	if err != nil {
		return redisStatus(err)
	}
	if n == 0 {
		return 404
	}
	return 200
}

func (c *redisConn) LockStatus(name string) Status {
	err := c.t.rdb.Get(c.ctx, lockKey(name)).Err()
	if errors.Is(err, redis.Nil) {
		return 200
	}
	return redisStatus(err)
}

func (c *redisConn) CheckLimit(name string, max int, window time.Duration, _ string) (bool, Status) {
	c.seq++
	member := strconv.FormatUint(c.id, 36) + ":" + strconv.FormatUint(c.seq, 36)
	res, err := redisSlidingWindow.Run(c.ctx, c.t.rdb, []string{"lt:rl:" + name},
		time.Now().UnixMilli(), window.Milliseconds(), max, member).Int64Slice()
	if err != nil {
		return false, redisStatus(err)
	}
	if len(res) != 2 {
		return false, StatusBadReply
	}
	return res[0] == 1, 200
}

func (c *redisConn) EvalFlag(name, subject string) (bool, Status) { return false, 501 }
func (c *redisConn) SetFlag(name string, percentage int) Status   { return 501 }
func (c *redisConn) ReadConfig(key string) Status                 { return 501 }
func (c *redisConn) WriteConfig(key string, n int64) Status       { return 501 }

// PerConnHolder: every connection is its own lock holder (no re-acquire by a
// shared identity as with octostore users).
func (t *redisTarget) PerConnHolder() bool { return true }

// Cleanup deletes every key of the run: lt:lock:, lt:fence: and lt:rl: keys
// whose name starts with prefix (locks and windows expire by themselves, the
// fencing counters would not).
func (t *redisTarget) Cleanup(ctx context.Context, prefix string) CleanupReport {
	set := &cleanupSet{removed: map[string]int{}}
	match := "lt:*:" + prefix + "*"
	scan := func() ([]string, error) {
		var keys []string
		iter := t.rdb.Scan(ctx, 0, match, 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		return keys, iter.Err()
	}
	keys, err := scan()
	if err != nil {
		set.fail(fmt.Errorf("scan %s: %w", match, err))
		return set.report(-1)
	}
	for len(keys) > 0 && ctx.Err() == nil {
		n := min(len(keys), 500)
		removed, err := t.rdb.Del(ctx, keys[:n]...).Result()
		if err != nil {
			set.fail(fmt.Errorf("delete keys: %w", err))
			break
		}
		set.count("keys", int(removed))
		keys = keys[n:]
	}
	left, err := scan()
	if err != nil {
		set.fail(fmt.Errorf("scan %s: %w", match, err))
		return set.report(-1)
	}
	return set.report(len(left))
}
