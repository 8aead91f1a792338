package actors

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Key names one resource. Locks share one namespace (Owner is empty); limits,
// flags and config keys belong to their owner.
type Key struct {
	Kind  Kind
	Owner string
	Name  string
}

// Behavior is the kind-specific part of a resource actor. All methods run on
// the actor's goroutine, one at a time.
type Behavior interface {
	// Activate loads durable state. It runs when the actor starts, and again
	// after a failed write to fall back to what is durable.
	Activate(h *Host) error
	// Handle executes one operation: op is one of the kind's operation
	// types (a pointer, which carries the operation's answer back to the
	// typed call that sent it). Writes made through h are committed before
	// the caller is answered; a non-nil error is the caller's answer.
	Handle(h *Host, op any) error
	// Passivatable reports whether the actor may be stopped now that it has
	// been idle (state is durable; nothing in memory would be lost).
	Passivatable(h *Host) bool
}

// Factory builds the Behavior for a resource.
type Factory func(k Key) Behavior

// KindSpec plugs one resource kind into the runtime. Every kind registers
// this way (NewLocks, NewLimits, NewFlags, NewConfigKeys); the runtime (System,
// shards, Host) knows nothing kind-specific.
type KindSpec struct {
	Kind Kind
	// New builds the Behavior of one resource of the kind.
	New Factory
	// Recover, if set, runs once at start (System.Recover), before the
	// server takes requests: it rebuilds what the kind derives from durable
	// state and keeps outside its actors (lock expiry timers and the holder
	// index; per-owner quota counters), and returns how many resources it
	// found (for the log). now is the runtime clock. Kinds recover in the
	// order they registered (sessions before the locks that refer to them).
	Recover func(now time.Time) (int, error)
	// Start, if set, runs once after every kind's Recover: timers whose
	// operations read what other kinds rebuilt (a session's expiry ends the
	// holds the lock recovery indexed).
	Start func(now time.Time)
	// Close, if set, runs once when the System closes, after every actor
	// stopped: it stops what the kind runs outside its actors (the lock
	// expiry schedule's timers), so that nothing of a closed System stays
	// reachable from a runtime timer (a cluster leader builds a System per
	// term).
	Close func()
}

// IdlePeriodic is implemented by a Behavior whose actor should be
// passivated sooner (or later) than Config.IdleTimeout in some states: the
// Host asks it after every operation and uses its answer as the period of
// its idle check (0: Config.IdleTimeout). A held lock's actor answers
// LockConfig.IdleTimeout.
type IdlePeriodic interface {
	IdlePeriod(h *Host) time.Duration
}

// Config configures a System.
type Config struct {
	Store Store
	// Shards is the number of shard actors (default DefaultShards).
	Shards int
	// IdleTimeout is how long a resource actor stays resident without
	// messages before it is passivated (default DefaultIdleTimeout).
	IdleTimeout time.Duration
	// Now is the clock (default time.Now). Readings are truncated to the
	// millisecond, the precision of durable timestamps.
	Now func() time.Time
	// AfterFunc schedules f after d (default time.AfterFunc); tests inject it.
	AfterFunc func(d time.Duration, f func()) Timer
	// Events receives every committed state change (default: discarded).
	Events Publisher
	Logger *slog.Logger
}

// Timer is the part of *time.Timer the runtime uses.
type Timer interface {
	Stop() bool
	Reset(d time.Duration) bool
}

// System is the actor runtime: the shard ring, the resource actors and the
// call path to them. Callers use the typed entry points of each kind
// (Locks, Limits, Flags, ConfigKeys), which call into the runtime through
// call.
type System struct {
	cfg    Config
	as     *actor.ActorSystem
	shards []*shard
	kinds  [numKinds]KindSpec
	order  []Kind // registration order (Recover)
	store  Store
	disp   *workerDispatcher // runs every mailbox of the runtime (dispatch.go)
	live   atomic.Int64
	closed atomic.Bool
	calls  sync.Pool // *request with a reply channel of capacity 1 (call)
}

// NewSystem starts the shard actors. Register every kind (NewLocks, …) and
// call Recover before serving requests.
func NewSystem(cfg Config) *System {
	if cfg.Shards <= 0 {
		cfg.Shards = DefaultShards
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
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
	s := &System{cfg: cfg, as: as, store: cfg.Store, disp: newWorkerDispatcher(dispatchWorkers(), dispatchThroughput)}
	s.calls.New = func() any { return &request{reply: make(chan error, 1)} }
	s.shards = make([]*shard, cfg.Shards)
	for i := range s.shards {
		sh := &shard{sys: s, resident: map[Key]*child{}}
		sh.pid = as.Root.Spawn(s.props(func() actor.Actor { return sh }, newMailbox()))
		s.shards[i] = sh
	}
	return s
}

// Register plugs a kind into the runtime (see KindSpec). Call it before
// serving requests; the kind constructors (NewLocks, …) do.
func (s *System) Register(spec KindSpec) {
	s.kinds[spec.Kind] = spec
	s.order = append(s.order, spec.Kind)
}

// Recover runs every registered kind's start-up recovery (KindSpec.Recover),
// in registration order, and logs what each found; then every kind's Start. Call it once, after registering
// every kind and before serving.
func (s *System) Recover() error {
	for _, kind := range s.order {
		k := s.kinds[kind]
		if k.Recover == nil {
			continue
		}
		start := time.Now()
		n, err := k.Recover(s.Now())
		if err != nil {
			return err // the kind's hook says what it was recovering
		}
		s.cfg.Logger.Info("recovered state", "kind", k.Kind.String(), "resources", n, "took", time.Since(start).Round(time.Millisecond))
	}
	for _, kind := range s.order {
		if k := s.kinds[kind]; k.Start != nil {
			k.Start(s.Now())
		}
	}
	return nil
}

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
	key Key
	op  any // a pointer to one of the kind's operation types
	// reply receives the answer (nil: the operation's own fields hold the
	// rest). nil reply: nobody waits (timers).
	reply chan error
	// gaveUp is set by the caller when it stops waiting (its context is
	// done): an actor that gets to the request afterwards drops it
	// unapplied.
	gaveUp atomic.Bool
}

// shardFor hashes a key onto a shard (FNV-1a over kind, owner, name).
func (s *System) shardFor(k Key) *shard {
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

// call sends op to the resource k and waits for its answer or for ctx.
// The typed entry points of each kind are its only callers; op is a
// pointer to one of the kind's operation types, whose fields the actor
// fills in with the answer before replying.
//
// Cancellation stops the wait, not the operation once started: if ctx is
// done before the resource actor picks the operation up, the actor drops
// it and nothing is applied; once the actor has applied it, its write is
// queued and commits (or fails) whatever happens to ctx, and only the
// answer is lost. A call that returns because ctx is done (the error is
// ctx.Err(), with its cause: errors.Is(err, context.Canceled) or
// context.DeadlineExceeded) may therefore or may not have been applied.
//
// The hop has no future and no timer: the caller's context is the only
// deadline, and the request with its reply channel is pooled (recycled
// once answered: an abandoned one is never reused, the actor may still
// answer into it). It goes straight to the resource's actor when that is
// resident, and then the caller runs the actor's turn itself if the actor
// is idle (mailbox.postAndRun): an answer that needs no commit is there
// when the post returns, and ctx is not even asked for its Done channel
// (which would start an HTTP request context's clock: httpd/reqctx.go).
func (s *System) call(ctx context.Context, k Key, op any) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if ctx.Err() != nil {
		return contextError(ctx) // given up before it was sent: nothing applied
	}
	r := s.calls.Get().(*request)
	r.key, r.op = k, op
	s.routeCall(r)
	select {
	case err := <-r.reply:
		s.recycle(r)
		return err
	default:
	}
	done := ctx.Done()
	select {
	case err := <-r.reply:
		s.recycle(r)
		return err
	case <-done:
		r.gaveUp.Store(true)
		// An answer that arrived at the same moment wins.
		select {
		case err := <-r.reply:
			return err
		default:
		}
		// The actor may still answer into r.reply (or write to op): never
		// reuse them.
		return contextError(ctx)
	}
}

// recycle returns an answered call's request to the pool.
func (s *System) recycle(r *request) {
	r.key, r.op = Key{}, nil
	s.calls.Put(r)
}

// opPool recycles the operation values of a kind's hot reads (a status, a
// get), as Limits.Check does its checks: a call's op goes back only once
// the call was answered (after a cancelled wait the actor may still write
// to it).
type opPool[T any] struct{ p sync.Pool }

func (p *opPool[T]) get() *T {
	if v, ok := p.p.Get().(*T); ok {
		return v
	}
	return new(T)
}

// callPooled is call with an op from pool; the answer is what answerOf
// reads from the op (a plain function: a closure would allocate).
func callPooled[T, A any](s *System, ctx context.Context, k Key, pool *opPool[T], answerOf func(*T) A) (A, error) {
	op := pool.get()
	if err := s.call(ctx, k, op); err != nil {
		var zero A
		return zero, err
	}
	a := answerOf(op)
	var zero T
	*op = zero
	pool.p.Put(op)
	return a, nil
}

// call is one operation of callAll: the resource, the operation, and (set
// by callAll) the operation's error.
type call struct {
	key Key
	op  any
	err error
}

// callAll hands every operation to its resource without waiting in
// between, in slice order (so operations of one resource are applied in
// that order, and operations of different resources run at once), then
// waits for every answer. Each operation's own error is in its call's
// err. callAll fails only when ctx ends first or the runtime is closed: then
// any of the operations may or may not have been applied (as for call).
//
// Order: an operation sent through its shard (the actor was not resident)
// is forwarded by the shard later; a later operation of the same resource
// sent straight to the actor (resident by then) could overtake it. So once
// a resource's operation went through its shard, the later ones of that
// resource in the batch do too, and the shard forwards them in order.
func (s *System) callAll(ctx context.Context, calls []call) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if ctx.Err() != nil {
		return contextError(ctx) // nothing sent: nothing applied
	}
	reqs := make([]*request, len(calls))
	var viaShard []Key // resources an operation of which went through the shard
	for i := range calls {
		r := s.calls.Get().(*request)
		r.key, r.op = calls[i].key, calls[i].op
		reqs[i] = r
		if slices.Contains(viaShard, r.key) {
			s.as.Root.Send(s.shardFor(r.key).pid, r)
		} else if !s.route(r) {
			viaShard = append(viaShard, r.key)
		}
	}
	done := ctx.Done()
	for i, r := range reqs {
		select {
		case err := <-r.reply:
			calls[i].err = err
			s.recycle(r)
		case <-done:
			// Operations still unanswered may answer into their requests
			// (or write to their ops) later: never reuse those.
			for _, r := range reqs[i:] {
				r.gaveUp.Store(true)
			}
			return contextError(ctx)
		}
	}
	return nil
}

// answer is the tail of a typed call: the operation's answer *v once the
// call succeeded (err from call; v is read only then).
func answer[T any](err error, v *T) (T, error) {
	if err != nil {
		var zero T
		return zero, err
	}
	return *v, nil
}

// send delivers op to k without waiting (timers, internal notifications).
func (s *System) send(k Key, op any) {
	if s.closed.Load() {
		return
	}
	s.route(&request{key: k, op: op})
}

// route delivers r to the actor of r.key: directly when it is resident and
// not stopping (the child counts it: shard.go; direct is true), else
// through the key's shard, which spawns the actor if needed.
func (s *System) route(r *request) (direct bool) {
	sh := s.shardFor(r.key)
	if c := sh.lookup(r.key); c != nil && c.enter() {
		c.mbox.PostUserMessage(r)
		return true
	}
	s.as.Root.Send(sh.pid, r)
	return false
}

// routeCall is route for a caller that waits for the answer: it runs the
// resident actor's turn itself if the actor is idle (mailbox.postAndRun).
func (s *System) routeCall(r *request) {
	sh := s.shardFor(r.key)
	if c := sh.lookup(r.key); c != nil && c.enter() {
		c.mbox.postAndRun(r)
		return
	}
	s.as.Root.Send(sh.pid, r)
}

// AfterFunc schedules op to be sent to k after d.
func (s *System) AfterFunc(k Key, d time.Duration, op any) Timer {
	return s.cfg.AfterFunc(d, func() { s.send(k, op) })
}

// Close stops the runtime: new calls fail with ErrClosed, every actor is
// stopped. Close the HTTP server first and the store after.
func (s *System) Close() {
	if s.closed.Swap(true) {
		return
	}
	for _, sh := range s.shards {
		_ = s.as.Root.PoisonFuture(sh.pid).Wait()
	}
	s.as.Shutdown()
	s.disp.stop()
	for _, kind := range s.order {
		if k := s.kinds[kind]; k.Close != nil {
			k.Close()
		}
	}
}

// props are the props of every actor of the runtime: its dispatcher and
// its mailbox (mailbox.go), mb.
func (s *System) props(p actor.Producer, mb *mailbox) *actor.Props {
	return actor.PropsFromProducer(p, actor.WithDispatcher(s.disp), actor.WithMailbox(func() actor.Mailbox { return mb }))
}
