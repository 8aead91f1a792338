package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Term is one stretch of leadership: from the moment this node's Campaign
// returned (and its election key and session were confirmed) until the
// first of: its session's lease could not be renewed before the freshness
// deadline, the lease or the election key is gone, the writer found its
// guard refused or an outcome unknown (End), or the elector resigned or
// closed. A Term never restarts; the next win is a new Term with a new
// election key, so a transaction fenced by an old term can never commit
// again.
type Term struct {
	// Key is this node's election key and Rev its create revision: the
	// Fence of every write of the term.
	Key string
	Rev int64
	// Lease is the session's lease; TTL its granted time to live.
	Lease clientv3.LeaseID
	TTL   time.Duration
	// Since is when the term began (this node's clock).
	Since time.Time

	// aliveUntil is the newest time up to which the lease certainly lives:
	// the send time of the newest acknowledged keepalive plus the TTL it
	// answered (the server renewed it no earlier than we sent it).
	aliveUntil atomic.Pointer[time.Time]

	// mu guards err; done is closed (once) after err is set.
	mu   sync.Mutex
	err  error
	done chan struct{}
}

// Reasons a term ends.
var (
	// ErrSessionLost: the session's lease expired or was revoked, or the
	// election key was deleted.
	ErrSessionLost = errors.New("leader session lost")
	// ErrSessionStale: no keepalive was acknowledged in time to keep the
	// session certainly alive (etcd unreachable, no quorum, or a pause).
	ErrSessionStale = errors.New("leader session not renewed in time")
	// ErrResigned: this node stood down (Elector.Resign, Term.End, Close).
	ErrResigned = errors.New("leader resigned")
)

func newTerm(key string, rev int64, lease clientv3.LeaseID, ttl time.Duration, since, aliveUntil time.Time) *Term {
	t := &Term{Key: key, Rev: rev, Lease: lease, TTL: ttl, Since: since, done: make(chan struct{})}
	t.aliveUntil.Store(&aliveUntil)
	return t
}

// Fence is the guard of the term's writes (Open).
func (t *Term) Fence() Fence { return Fence{Key: t.Key, Rev: t.Rev, Done: t.done} }

// Done is closed when the term has ended.
func (t *Term) Done() <-chan struct{} { return t.done }

// Err is why the term ended (nil while it lasts).
func (t *Term) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// End ends the term (the owner stands down, e.g. after a write's outcome
// was unknown). The elector resigns the election key and campaigns again.
func (t *Term) End(err error) {
	if err == nil {
		err = ErrResigned
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err != nil {
		return
	}
	t.err = err
	close(t.done)
}

// Margin is how long before the lease could expire the term stops counting
// as fresh: a third of the TTL, which absorbs clock-rate differences
// between this node and etcd's leader and the time between a check and the
// answer it guards.
func (t *Term) Margin() time.Duration { return t.TTL / 3 }

// Fresh reports whether the leader's session is known alive now, with
// Margin to spare: the condition for serving a read that the API promises
// to be linearizable. Check it after reading the state, before answering.
func (t *Term) Fresh() bool { return t.FreshAt(time.Now()) }

// FreshAt is Fresh at now (now must come from time.Now: its monotonic
// reading is what makes a pause of the process count).
func (t *Term) FreshAt(now time.Time) bool {
	select {
	case <-t.done:
		return false
	default:
	}
	return now.Before(t.AliveUntil().Add(-t.Margin()))
}

// AliveUntil is the time up to which the lease certainly lives.
func (t *Term) AliveUntil() time.Time { return *t.aliveUntil.Load() }

// renewed records a keepalive sent at sent that etcd answered with ttl.
func (t *Term) renewed(sent time.Time, ttl time.Duration) time.Time {
	until := sent.Add(ttl)
	if until.After(t.AliveUntil()) {
		t.aliveUntil.Store(&until)
	}
	return t.AliveUntil()
}

// keepAlive renews the lease every TTL/3 and ends the term when the lease
// is gone, or when it is no longer fresh (a deadline timer, so a renewal
// that hangs does not delay it). It returns when the term ends.
func (t *Term) keepAlive(c *clientv3.Client) {
	interval := t.TTL / 3
	retry := max(t.TTL/10, 50*time.Millisecond)
	deadline := time.NewTimer(time.Until(t.AliveUntil().Add(-t.Margin())))
	defer deadline.Stop()
	renew := time.NewTimer(interval)
	defer renew.Stop()
	type result struct {
		sent time.Time
		ttl  int64
		err  error
	}
	results := make(chan result, 1)
	inFlight := false
	for {
		select {
		case <-t.done:
			return
		case <-deadline.C:
			t.End(fmt.Errorf("%w: no keepalive acknowledged since %v", ErrSessionStale,
				t.AliveUntil().Add(-t.TTL).Format(time.RFC3339Nano)))
			return
		case <-renew.C:
			if inFlight {
				renew.Reset(retry)
				continue
			}
			inFlight = true
			go func() {
				sent := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), interval)
				defer cancel()
				resp, err := c.KeepAliveOnce(ctx, t.Lease)
				r := result{sent: sent, err: err}
				if err == nil {
					r.ttl = resp.TTL
				}
				results <- r
			}()
		case r := <-results:
			inFlight = false
			switch {
			case r.err == nil && r.ttl > 0:
				until := t.renewed(r.sent, time.Duration(r.ttl)*time.Second)
				deadline.Reset(time.Until(until.Add(-t.Margin())))
				renew.Reset(interval)
			case r.err == nil || errors.Is(r.err, rpctypes.ErrLeaseNotFound):
				t.End(fmt.Errorf("%w: lease %x expired or revoked", ErrSessionLost, t.Lease))
				return
			default:
				renew.Reset(retry)
			}
		}
	}
}

// watchKey ends the term as soon as the election key is deleted (lease
// revoked, key removed by an operator) or recreated by another session.
func (t *Term) watchKey(c *clientv3.Client) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-t.done
		cancel()
	}()
	rev := t.Rev + 1
	for ctx.Err() == nil {
		wc := c.Watch(ctx, t.Key, clientv3.WithRev(rev))
		for wr := range wc {
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.DELETE || ev.Kv.CreateRevision != t.Rev {
					t.End(fmt.Errorf("%w: election key %s deleted", ErrSessionLost, t.Key))
					return
				}
			}
			if wr.Err() != nil {
				break
			}
		}
		if ctx.Err() != nil {
			return
		}
		// The watch ended (compaction, a lost stream): check the key, then
		// watch again from now.
		resp, err := c.Get(ctx, t.Key)
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(t.TTL / 10):
			}
			continue
		}
		if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != t.Rev {
			t.End(fmt.Errorf("%w: election key %s deleted", ErrSessionLost, t.Key))
			return
		}
		rev = resp.Header.Revision + 1
	}
}
