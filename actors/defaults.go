package actors

import "time"

// Defaults of the runtime's knobs, defined once: NewSystem, the kind
// constructors (NewLocks, NewLimits, NewFlags, NewConfigKeys) and NewBroker
// give them to zero fields of their configuration, and `octostore serve`
// shows them as its flags' defaults (cmd/octostore/serve.go).
// DefaultLimitFlushInterval is in ratelimit.go; the request timeout is the
// HTTP layer's (httpd.DefaultRequestTimeout: a call's context carries it).
const (
	// DefaultShards is Config.Shards: shard actors keys are hashed onto.
	DefaultShards = 32
	// DefaultIdleTimeout is Config.IdleTimeout: a resource actor without
	// messages this long is passivated (serve --idle-timeout).
	DefaultIdleTimeout = 30 * time.Second
	// DefaultLockIdleTimeout is LockConfig.IdleTimeout: the actor of a
	// held lock without operations this long is passivated (the hold lives
	// on as a compact record in the holder index and an entry of the
	// expiry schedule). Short, because a held lock needs no actor and an
	// activation from the record reads nothing from the store; an idle
	// actor goes between one and two periods after its last operation.
	DefaultLockIdleTimeout = 250 * time.Millisecond
	// DefaultMaxLocksPerUser is LockConfig.MaxPerUser: active locks one
	// holder may hold at once (serve --max-locks-per-user).
	DefaultMaxLocksPerUser = 1000
	// DefaultMaxSessionsPerUser is SessionConfig.MaxPerUser: sessions one
	// user has at once (serve --max-sessions-per-user).
	DefaultMaxSessionsPerUser = 1000
	// DefaultMaxWaitersPerLock is LockConfig.MaxWaiters: waiting acquires
	// queued on one lock (serve --max-waiters-per-lock).
	DefaultMaxWaitersPerLock = 1000

	// Per-user quotas of the owner-scoped kinds (LimitConfig, FlagConfig,
	// ConfigKeysConfig .MaxPerUser; serve --max-limits-per-user,
	// --max-flags-per-user, --max-config-keys-per-user) and the config
	// versions kept per key (ConfigKeysConfig.History; serve
	// --config-history).
	DefaultMaxLimitsPerUser     = 10000
	DefaultMaxFlagsPerUser      = 1000
	DefaultMaxConfigKeysPerUser = 1000
	DefaultConfigHistory        = 100

	// DefaultEventBuffer is BrokerOptions.Buffer: events a subscriber may
	// fall behind before it is cut off (serve --event-buffer).
	DefaultEventBuffer = 1024
	// DefaultEventValueBytes is BrokerOptions.ValueBytes: bytes of config
	// values a config watcher may be behind before it is cut off (80 of the
	// largest values, 100 KiB each).
	DefaultEventValueBytes = 8 << 20
	// DefaultEventReplay is BrokerOptions.Replay: the recent events kept
	// for streams that resume (Last-Event-ID).
	DefaultEventReplay = 4096
)

// LimitFlushEveryBatch is the LimitConfig.FlushInterval that writes
// rate-limit counters with the very next write batch instead of at most once
// per interval (`serve --limit-flush-interval 0`). Any negative interval
// means the same.
const LimitFlushEveryBatch time.Duration = -1
