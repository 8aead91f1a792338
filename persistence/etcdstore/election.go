package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// ElectionConfig configures an Elector.
type ElectionConfig struct {
	// Client is the node's etcd client (Member.Client or Connect).
	Client *clientv3.Client
	// Prefix is the keyspace prefix (Options.Prefix); election keys live
	// under <prefix>election/.
	Prefix string
	// Name identifies this node (--node) and APIURL is where the others
	// forward requests to it (--advertise-url): the election value.
	Name, APIURL string
	// TTL is the session's lease (--leader-ttl, default 5 s). etcd leases
	// count whole seconds: it is rounded up, and etcd may grant more (its
	// minimum is 1.5 × the election timeout). A deposed leader stops acting
	// within TTL - TTL/3 of its last renewal; a dead one is replaced after
	// its lease expires, within TTL (plus an etcd election if etcd's Raft
	// leader died with it).
	TTL time.Duration
	// OnElected runs on the elector's goroutine when this node wins, before
	// anything else (start the actors: load the state, then serve). The
	// term may end while it runs: watch t.Done(). It may block until then
	// (Close ends the term).
	OnElected func(t *Term)
	// OnDeposed runs on the elector's goroutine when the term has ended,
	// before the election key is resigned (stop the actors at once).
	OnDeposed func(t *Term)
	// Logger gets the elector's few messages (default slog.Default()).
	Logger *slog.Logger
}

// LeaderInfo identifies the leader: the election value.
type LeaderInfo struct {
	Name   string    `json:"name"`
	APIURL string    `json:"api_url"`
	Since  time.Time `json:"since,omitzero"` // when it won (its clock); zero until it proclaims it
}

// Status is what the elector knows.
type Status struct {
	// Leader is the current leader; Known is false while there is none
	// (or the elector cannot reach etcd).
	Leader LeaderInfo
	Known  bool
	// Term is this node's term while it leads, nil otherwise.
	Term *Term
}

// IsLeader reports whether this node leads (its term has not ended).
func (s Status) IsLeader() bool {
	if s.Term == nil {
		return false
	}
	select {
	case <-s.Term.Done():
		return false
	default:
		return true
	}
}

// Elector campaigns for octostore's leadership with etcd's election recipe
// (client/v3/concurrency: a Session whose lease is TTL, an Election under
// the keyspace's election prefix) and observes who leads. Only the leader
// runs the actors; the writes of a term are fenced by its election key
// (Term.Fence), so being wrong about leadership costs availability, never
// safety.
type Elector struct {
	cfg    ElectionConfig
	ks     keyspace
	log    *slog.Logger
	stop   context.CancelFunc
	ctx    context.Context
	done   chan struct{}
	closed sync.Once

	// mu guards status and changed.
	mu      sync.Mutex
	status  Status
	changed chan struct{} // closed and replaced at every change of status
}

// DefaultLeaderTTL is --leader-ttl's default.
const DefaultLeaderTTL = 5 * time.Second

// NewElector starts campaigning and observing. Close stops both (resigning
// if this node leads).
func NewElector(cfg ElectionConfig) (*Elector, error) {
	if cfg.Client == nil || cfg.Name == "" {
		return nil, errors.New("elector: client and node name are required")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultLeaderTTL
	}
	ctx, stop := context.WithCancel(context.Background())
	e := &Elector{cfg: cfg, ks: newKeyspace(cfg.Prefix), log: cfg.Logger, ctx: ctx, stop: stop,
		done: make(chan struct{}), changed: make(chan struct{})}
	if e.log == nil {
		e.log = slog.Default()
	}
	observed := make(chan struct{})
	go func() {
		defer close(observed)
		e.observe()
	}()
	go func() {
		defer close(e.done)
		e.campaign()
		<-observed
	}()
	return e, nil
}

// Status returns what the elector knows now.
func (e *Elector) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status
}

// Changed returns a channel closed at the next change of Status: wait for
// a leader with `for !e.Status().Known { <-e.Changed() … }` (take the
// channel before reading the status).
func (e *Elector) Changed() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.changed
}

func (e *Elector) update(f func(*Status)) {
	e.mu.Lock()
	f(&e.status)
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
}

// Resign ends this node's term if it leads; it campaigns again (behind the
// nodes already waiting).
func (e *Elector) Resign() {
	if t := e.Status().Term; t != nil {
		t.End(ErrResigned)
	}
}

// Close stops campaigning, ends the term (resigning the election key, so a
// successor need not wait for the lease to expire) and revokes the session.
func (e *Elector) Close() error {
	e.closed.Do(e.stop)
	<-e.done
	return nil
}

// ttlSeconds rounds the TTL up to whole seconds.
func (e *Elector) ttlSeconds() int {
	return int((e.cfg.TTL + time.Second - 1) / time.Second)
}

func (e *Elector) campaign() {
	retry := min(e.cfg.TTL/5, time.Second)
	for e.ctx.Err() == nil {
		if err := e.campaignOnce(); err != nil && e.ctx.Err() == nil {
			e.log.Warn("leader election", "node", e.cfg.Name, "err", err)
			select {
			case <-e.ctx.Done():
			case <-time.After(retry):
			}
		}
	}
}

// campaignOnce opens a session, campaigns until it wins, leads until the
// term ends, and steps down.
func (e *Elector) campaignOnce() error {
	c := e.cfg.Client
	// Grant the lease ourselves, with a timeout (NewSession's Grant would
	// wait forever without a quorum).
	gctx, cancel := context.WithTimeout(e.ctx, e.cfg.TTL)
	grant, err := c.Grant(gctx, int64(e.ttlSeconds()))
	cancel()
	if err != nil {
		return fmt.Errorf("grant session lease: %w", err)
	}
	sess, err := concurrency.NewSession(c, concurrency.WithLease(grant.ID),
		concurrency.WithTTL(e.ttlSeconds()), concurrency.WithContext(context.Background()))
	if err != nil {
		c.Revoke(context.Background(), grant.ID)
		return fmt.Errorf("session: %w", err)
	}
	defer sess.Close() // revokes the lease (bounded by the TTL)

	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	stopOnLoss := context.AfterFunc(sess.Ctx(), cancel)
	defer stopOnLoss()

	el := concurrency.NewElection(sess, e.ks.election())
	me := LeaderInfo{Name: e.cfg.Name, APIURL: e.cfg.APIURL}
	if err := el.Campaign(ctx, string(mustJSON(me))); err != nil {
		return fmt.Errorf("campaign: %w", err)
	}
	// Campaign returns once every older key is gone, even if ours expired
	// meanwhile: confirm the key, and learn how long the lease certainly
	// lives, before acting as leader.
	sent := time.Now()
	ka, err := c.KeepAliveOnce(ctx, sess.Lease())
	if err != nil {
		return fmt.Errorf("confirm session: %w", err)
	}
	got, err := c.Get(ctx, el.Key())
	if err != nil {
		return fmt.Errorf("confirm election key: %w", err)
	}
	if len(got.Kvs) == 0 || got.Kvs[0].CreateRevision != el.Rev() {
		return fmt.Errorf("confirm election key: %w: %s is gone", ErrSessionLost, el.Key())
	}
	ttl := time.Duration(ka.TTL) * time.Second
	t := newTerm(el.Key(), el.Rev(), sess.Lease(), ttl, sent, sent.Add(ttl))
	go t.keepAlive(c)
	go t.watchKey(c)
	stopOnLoss() // from here the term's own watchers decide
	context.AfterFunc(sess.Ctx(), func() { t.End(fmt.Errorf("%w: session ended", ErrSessionLost)) })
	stopOnClose := context.AfterFunc(e.ctx, func() { t.End(ErrResigned) })
	defer stopOnClose()

	me.Since = t.Since
	e.update(func(s *Status) { s.Term, s.Leader, s.Known = t, me, true })
	e.log.Info("leader elected", "node", e.cfg.Name, "key", t.Key, "rev", t.Rev, "ttl", ttl)
	if err := el.Proclaim(ctx, string(mustJSON(me))); err != nil {
		t.End(fmt.Errorf("%w: proclaim: %v", ErrSessionLost, err))
	}
	if e.cfg.OnElected != nil {
		e.cfg.OnElected(t)
	}
	<-t.Done()
	e.update(func(s *Status) {
		s.Term = nil
		if s.Leader.Name == me.Name {
			s.Known = false // until the observer sees the next leader
		}
	})
	e.log.Warn("leader term ended", "node", e.cfg.Name, "err", t.Err())
	if e.cfg.OnDeposed != nil {
		e.cfg.OnDeposed(t)
	}
	// Delete the key so that the next leader need not wait for the lease.
	rctx, rcancel := context.WithTimeout(context.Background(), e.cfg.TTL)
	defer rcancel()
	if err := el.Resign(rctx); err != nil {
		return fmt.Errorf("resign: %w", err)
	}
	return nil
}

// observe follows the election: the leader is the owner of the oldest key
// under the election prefix.
func (e *Elector) observe() {
	c := e.cfg.Client
	pfx := e.ks.election() + "/"
	retry := min(e.cfg.TTL/5, time.Second)
	// The view is confirmed with a linearizable read at least every TTL/2:
	// a node cut off from the quorum (whose watch simply goes quiet) knows
	// no leader within about a TTL, so it stops forwarding to one and its
	// /health fails.
	confirm := e.cfg.TTL / 2
	for e.ctx.Err() == nil {
		gctx, gcancel := context.WithTimeout(e.ctx, confirm)
		resp, err := c.Get(gctx, pfx, clientv3.WithFirstCreate()...)
		gcancel()
		if err != nil {
			e.update(func(s *Status) {
				if !s.IsLeader() {
					s.Known = false
				}
			})
			select {
			case <-e.ctx.Done():
			case <-time.After(retry):
			}
			continue
		}
		var info LeaderInfo
		known := len(resp.Kvs) > 0
		if known {
			if err := json.Unmarshal(resp.Kvs[0].Value, &info); err != nil {
				e.log.Warn("leader election: unreadable election value", "key", string(resp.Kvs[0].Key), "err", err)
				known = false
			}
		}
		e.update(func(s *Status) {
			if s.IsLeader() {
				return // our own term is the truth while it lasts
			}
			s.Leader, s.Known = info, known
		})
		// Wait for any change under the prefix, then read the leader again.
		wctx, cancel := context.WithCancel(e.ctx)
		wc := c.Watch(wctx, pfx, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
		recheck := time.NewTimer(confirm)
	watch:
		for {
			select {
			case wr, ok := <-wc:
				if !ok || len(wr.Events) > 0 || wr.Err() != nil {
					break watch
				}
			case <-recheck.C:
				break watch
			}
		}
		recheck.Stop()
		cancel()
	}
}
