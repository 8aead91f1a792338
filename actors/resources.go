package actors

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrNotFound is wrapped by the not-found errors of the owner-scoped kinds
// (ErrLimitNotFound, ErrFlagNotFound, ErrConfigNotFound).
var ErrNotFound = errors.New("not found")

// ResourceLoader reads the durable state of rate limits, flags and config
// keys. Package persistence implements it. It is passed to
// RegisterResources explicitly rather than added to Loader, so that test
// stores of the lock runtime need not implement it.
type ResourceLoader interface {
	// LoadLimit loads a limit's window; ok is false if it does not exist.
	LoadLimit(owner, name string) (w SlidingWindow, ok bool, err error)
	// LoadFlag loads a flag; ok is false if it does not exist.
	LoadFlag(owner, name string) (FlagRecord, bool, error)
	// LoadConfig loads a config key with its current value; ok is false if
	// the key never existed. A deleted key is returned with Deleted set and
	// Version = its last version (versions never repeat).
	LoadConfig(owner, key string) (ConfigRecord, bool, error)
	// CountOwned calls fn with the number of live resources of each kind per
	// owner (quota counters at start).
	CountOwned(fn func(k Kind, owner string, n int)) error
}

// ResourceConfig configures the owner-scoped kinds.
type ResourceConfig struct {
	Loader ResourceLoader
	// Per-user quotas (0: DefaultMaxLimitsPerUser, DefaultMaxFlagsPerUser,
	// DefaultMaxConfigKeysPerUser; negative: no cap).
	MaxLimitsPerUser     int
	MaxFlagsPerUser      int
	MaxConfigKeysPerUser int
	// ConfigHistory is how many versions of each config key are kept
	// (default DefaultConfigHistory).
	ConfigHistory int
	// LimitFlushInterval is how often rate-limit counters are written
	// behind: each changed limit at most once per interval. 0 means the
	// default, DefaultLimitFlushInterval; LimitFlushEveryBatch (or any
	// negative value) writes them with the next write batch.
	LimitFlushInterval time.Duration
}

// DefaultLimitFlushInterval bounds what a kill -9 can lose of rate-limit
// counters (plus the batch being committed). 10 ms keeps the loss to
// roughly "the last batch" under load while writing a busy limit at most
// 100 times a second instead of once per check (docs/api.md, benchmarks.md).
const DefaultLimitFlushInterval = 10 * time.Millisecond

// Resources holds what the limit, flag and config actors share: the loader,
// the settings and the per-owner quota counters.
type Resources struct {
	loader                ResourceLoader
	history               int
	limits, flags, config *quota
	flusher               *limitFlusher
	view                  *flagView
}

// RegisterResources counts every owner's limits, flags and config keys (the
// quota counters start from the database, so they are right across
// restarts) and registers the three kinds with sys. Call it before serving.
func RegisterResources(sys *System, cfg ResourceConfig) (*Resources, error) {
	if cfg.Loader == nil {
		return nil, errors.New("resources: no loader")
	}
	if cfg.ConfigHistory <= 0 {
		cfg.ConfigHistory = DefaultConfigHistory
	}
	if cfg.MaxLimitsPerUser == 0 {
		cfg.MaxLimitsPerUser = DefaultMaxLimitsPerUser
	}
	if cfg.MaxFlagsPerUser == 0 {
		cfg.MaxFlagsPerUser = DefaultMaxFlagsPerUser
	}
	if cfg.MaxConfigKeysPerUser == 0 {
		cfg.MaxConfigKeysPerUser = DefaultMaxConfigKeysPerUser
	}
	interval := cfg.LimitFlushInterval // the flusher takes 0 for "with the next batch"
	switch {
	case cfg.LimitFlushInterval == 0:
		interval = DefaultLimitFlushInterval
	case cfg.LimitFlushInterval <= LimitFlushEveryBatch:
		interval = 0
	}
	r := &Resources{
		loader:  cfg.Loader,
		history: cfg.ConfigHistory,
		limits:  newQuota(cfg.MaxLimitsPerUser, "rate limits"),
		flags:   newQuota(cfg.MaxFlagsPerUser, "flags"),
		config:  newQuota(cfg.MaxConfigKeysPerUser, "config keys"),
		view:    newFlagView(),
	}
	err := cfg.Loader.CountOwned(func(k Kind, owner string, n int) {
		if q := r.quota(k); q != nil {
			q.n[owner] += n
		}
	})
	if err != nil {
		return nil, fmt.Errorf("count resources: %w", err)
	}
	r.flusher = newLimitFlusher(sys.Store(), interval)
	sys.Register(KindLimit, func(k Key) Behavior { return &limitBehavior{key: k, res: r} })
	sys.Register(KindFlag, func(k Key) Behavior { return &flagBehavior{key: k, res: r} })
	sys.Register(KindConfig, func(k Key) Behavior { return &configBehavior{key: k, res: r} })
	return r, nil
}

func (r *Resources) quota(k Kind) *quota {
	switch k {
	case KindLimit:
		return r.limits
	case KindFlag:
		return r.flags
	case KindConfig:
		return r.config
	}
	return nil
}

// Owned is how many live resources of kind k owner has.
func (r *Resources) Owned(k Kind, owner string) int {
	q := r.quota(k)
	if q == nil {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n[owner]
}

// ConfigHistory is the number of versions kept per config key.
func (r *Resources) ConfigHistory() int { return r.history }

// LookupFlag answers a flag read from the committed read view when its
// actor is resident; ok is false otherwise (ask the actor: GetFlag).
func (r *Resources) LookupFlag(owner, name string) (FlagReply, bool) {
	return r.view.get(owner, name)
}

// SyncLimits writes every rate-limit counter changed so far and waits for
// the write: a read of the database after it sees every check acknowledged
// before the call.
func (r *Resources) SyncLimits() error { return r.flusher.sync() }

// Close writes the rate-limit counters still pending and stops the
// flusher. Call it after System.Close (no more checks) and before the store
// closes; a graceful shutdown then loses no counter.
func (r *Resources) Close() error { return r.flusher.close() }

// quota counts live resources of one kind per owner. A creation reserves a
// slot (on the actor's goroutine) before its write is queued, and the write's
// commit callback gives it back if the write fails; a deletion frees the slot
// when its write is queued, and the callback takes it again if the write
// fails. So the count never waits for an actor to reload, and it is right
// whatever the outcome of each write.
type quota struct {
	max int
	err error
	// mu guards n.
	mu sync.Mutex
	n  map[string]int
}

func newQuota(max int, what string) *quota {
	return &quota{max: max, n: map[string]int{},
		err: fmt.Errorf("%w: at most %d %s per user", ErrQuota, max, what)}
}

// reserve counts one more resource for owner unless the cap is reached.
func (q *quota) reserve(owner string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.max > 0 && q.n[owner] >= q.max {
		return false
	}
	q.n[owner]++
	return true
}

func (q *quota) add(owner string) {
	q.mu.Lock()
	q.n[owner]++
	q.mu.Unlock()
}

func (q *quota) release(owner string) {
	q.mu.Lock()
	if q.n[owner] <= 1 {
		delete(q.n, owner)
	} else {
		q.n[owner]--
	}
	q.mu.Unlock()
}

// created is the commit callback part of a creation: a failed write gives
// the reserved slot back.
func (q *quota) created(owner string, err error) {
	if err != nil {
		q.release(owner)
	}
}

// deleted is the commit callback part of a deletion: a failed write takes
// the freed slot again.
func (q *quota) deleted(owner string, err error) {
	if err != nil {
		q.add(owner)
	}
}
