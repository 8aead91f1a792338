package actors

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Kind is a resource kind. Each kind has its own Behavior.
type Kind uint8

// The resource kinds.
const (
	KindLock Kind = iota
	KindLimit
	KindFlag
	KindConfig
	numKinds
)

func (k Kind) String() string {
	switch k {
	case KindLock:
		return "lock"
	case KindLimit:
		return "limit"
	case KindFlag:
		return "flag"
	case KindConfig:
		return "config"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Key names one resource. Locks share one namespace (Owner is empty); limits,
// flags and config keys belong to their owner.
type Key struct {
	Kind  Kind
	Owner string
	Name  string
}

// Result is what a resource actor answers.
type Result struct {
	Value any
	Err   error
}

// Behavior is the kind-specific part of a resource actor. All methods run on
// the actor's goroutine, one at a time.
type Behavior interface {
	// Activate loads durable state. It runs when the actor starts, and again
	// after a failed write to fall back to what is durable.
	Activate(h *Host) error
	// Handle executes one operation. Writes made through h are committed
	// before the returned result is delivered to the caller.
	Handle(h *Host, op any) (any, error)
	// Passivatable reports whether the actor may be stopped now that it has
	// been idle (state is durable; nothing in memory would be lost).
	Passivatable(h *Host) bool
}

// Factory builds the Behavior for a resource.
type Factory func(k Key) Behavior

// Config configures a System.
type Config struct {
	Store Store
	// Shards is the number of shard actors (default DefaultShards).
	Shards int
	// IdleTimeout is how long a resource actor stays resident without
	// messages before it is passivated (default DefaultIdleTimeout).
	IdleTimeout time.Duration
	// RequestTimeout bounds how long Do waits for an answer (default
	// DefaultRequestTimeout).
	RequestTimeout time.Duration
	// Now is the clock (default time.Now). Readings are truncated to the
	// millisecond, the precision of durable timestamps.
	Now func() time.Time
	// AfterFunc schedules f after d (default time.AfterFunc); tests inject it.
	AfterFunc func(d time.Duration, f func()) Timer
	// Events receives every committed state change (default: discarded).
	Events Publisher
	// MaxLocksPerUser caps active locks per holder (0: DefaultMaxLocksPerUser;
	// negative: no cap).
	MaxLocksPerUser int
	Logger          *slog.Logger
}

// Timer is the part of *time.Timer the runtime uses.
type Timer interface {
	Stop() bool
	Reset(d time.Duration) bool
}

// System is the actor runtime.
type System struct {
	cfg      Config
	as       *actor.ActorSystem
	shards   []*actor.PID
	kinds    [numKinds]Factory
	store    Store
	Holdings *Holdings
	live     atomic.Int64
	closed   atomic.Bool
	replies  sync.Pool // chan Result, capacity 1
	timers   sync.Pool // *time.Timer for Do's deadline
}

// NewSystem starts the shard actors. Register kinds before serving requests.
func NewSystem(cfg Config) *System {
	if cfg.Shards <= 0 {
		cfg.Shards = DefaultShards
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.MaxLocksPerUser == 0 {
		cfg.MaxLocksPerUser = DefaultMaxLocksPerUser
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AfterFunc == nil {
		cfg.AfterFunc = func(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
	}
	if cfg.Events == nil {
		cfg.Events = nopPublisher{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	logger := cfg.Logger
	as := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger }))
	s := &System{cfg: cfg, as: as, store: cfg.Store, Holdings: NewHoldings()}
	s.replies.New = func() any { return make(chan Result, 1) }
	s.shards = make([]*actor.PID, cfg.Shards)
	for i := range s.shards {
		sh := &shard{sys: s, children: map[Key]*child{}}
		s.shards[i] = as.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return sh }))
	}
	s.kinds[KindLock] = func(k Key) Behavior { return &lockBehavior{name: k.Name} }
	return s
}

// Register installs the Behavior factory of a kind.
func (s *System) Register(k Kind, f Factory) { s.kinds[k] = f }

// Now is the runtime clock, truncated to milliseconds, in UTC.
func (s *System) Now() time.Time { return s.cfg.Now().UTC().Truncate(time.Millisecond) }

// Events is the publisher state changes go to.
func (s *System) Events() Publisher { return s.cfg.Events }

// Store is the durable store.
func (s *System) Store() Store { return s.store }

// LiveActors is the number of resident resource actors.
func (s *System) LiveActors() int64 { return s.live.Load() }

// request is the message a shard routes to a resource actor.
type request struct {
	key   Key
	op    any
	reply chan Result // nil: nobody waits (timers)
}

// shardFor hashes a key onto a shard (FNV-1a over kind, owner, name).
func (s *System) shardFor(k Key) *actor.PID {
	h := uint32(2166136261)
	h = (h ^ uint32(k.Kind)) * 16777619
	for i := 0; i < len(k.Owner); i++ {
		h = (h ^ uint32(k.Owner[i])) * 16777619
	}
	h = (h ^ '/') * 16777619
	for i := 0; i < len(k.Name); i++ {
		h = (h ^ uint32(k.Name[i])) * 16777619
	}
	return s.shards[h%uint32(len(s.shards))]
}

// Do sends op to the resource k and waits for its answer.
func (s *System) Do(k Key, op any) (any, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	ch := s.replies.Get().(chan Result)
	s.as.Root.Send(s.shardFor(k), &request{key: k, op: op, reply: ch})
	// Timers are pooled: since Go 1.23 a stopped or fired timer can be
	// Reset and reused without draining, and pooling saves an allocation
	// per request on the hot path.
	t, _ := s.timers.Get().(*time.Timer)
	if t == nil {
		t = time.NewTimer(s.cfg.RequestTimeout)
	} else {
		t.Reset(s.cfg.RequestTimeout)
	}
	select {
	case r := <-ch:
		t.Stop()
		s.timers.Put(t)
		s.replies.Put(ch)
		return r.Value, r.Err
	case <-t.C:
		s.timers.Put(t)
		// The actor may still answer into ch: never reuse it.
		return nil, ErrTimeout
	}
}

// send delivers op to k without waiting (timers, internal notifications).
func (s *System) send(k Key, op any) {
	if s.closed.Load() {
		return
	}
	s.as.Root.Send(s.shardFor(k), &request{key: k, op: op})
}

// AfterFunc schedules op to be sent to k after d.
func (s *System) AfterFunc(k Key, d time.Duration, op any) Timer {
	return s.cfg.AfterFunc(d, func() { s.send(k, op) })
}

// Close stops the runtime: new requests fail with ErrClosed, every actor is
// stopped. Close the HTTP server first and the store after.
func (s *System) Close() {
	if s.closed.Swap(true) {
		return
	}
	for _, pid := range s.shards {
		_ = s.as.Root.PoisonFuture(pid).Wait()
	}
	s.as.Shutdown()
}

// Recover rebuilds the derived state of held locks after a start: the holder
// index and the expiry timers. Lock actors themselves load lazily.
func (s *System) Recover() (int, error) {
	now := s.Now()
	n := 0
	err := s.store.ActiveLocks(now, func(r LockRecord) {
		n++
		s.Holdings.Put(r)
		s.AfterFunc(Key{Kind: KindLock, Name: r.Name}, r.ExpiresAt.Sub(now), expireLock{})
	})
	return n, err
}
