package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// NodeInfo is a running octostore node as it registers itself: what GET
// /cluster shows of the members besides etcd's own member list.
type NodeInfo struct {
	Name    string    `json:"name"`
	APIURL  string    `json:"api_url"`
	PeerURL string    `json:"peer_url,omitempty"` // "" with an external etcd
	Since   time.Time `json:"since"`              // when it registered (its clock)
}

// Registration keeps a node's key (node/<name>) alive under a lease of its
// own, so that the key disappears within the TTL of the node's death or
// isolation from the quorum. It is not part of the leader's keyspace: the
// leader's writer never reads it, so it needs no fence.
type Registration struct {
	c      *clientv3.Client
	key    string
	val    string
	ttl    int64
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}
}

// Register writes info under prefix and keeps it alive (ttl rounded up to
// whole seconds, at least 2 s) until Close; if the lease is lost (etcd
// unreachable longer than ttl) it registers again once etcd answers.
func Register(c *clientv3.Client, prefix string, info NodeInfo, ttl time.Duration, log *slog.Logger) *Registration {
	if log == nil {
		log = slog.Default()
	}
	secs := max(int64((ttl+time.Second-1)/time.Second), 2)
	ctx, cancel := context.WithCancel(context.Background())
	r := &Registration{c: c, key: newKeyspace(prefix).node(info.Name), val: string(mustJSON(info)), ttl: secs,
		log: log, cancel: cancel, done: make(chan struct{})}
	go r.run(ctx)
	return r
}

func (r *Registration) run(ctx context.Context) {
	defer close(r.done)
	retry := time.Duration(r.ttl) * time.Second / 4
	for ctx.Err() == nil {
		err := r.once(ctx)
		if ctx.Err() != nil {
			return
		}
		r.log.Debug("node registration lost; registering again", "key", r.key, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
	}
}

// once grants a lease, writes the key under it and keeps it alive until
// the lease is lost or ctx ends (then the lease is revoked).
func (r *Registration) once(ctx context.Context) error {
	gctx, cancel := context.WithTimeout(ctx, time.Duration(r.ttl)*time.Second)
	defer cancel()
	lease, err := r.c.Grant(gctx, r.ttl)
	if err != nil {
		return err
	}
	defer func() {
		rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
		defer rcancel()
		r.c.Revoke(rctx, lease.ID)
	}()
	if _, err := r.c.Put(gctx, r.key, r.val, clientv3.WithLease(lease.ID)); err != nil {
		return err
	}
	ka, err := r.c.KeepAlive(ctx, lease.ID)
	if err != nil {
		return err
	}
	for range ka {
	}
	return errors.New("keepalive ended")
}

// Close deletes the registration (revokes its lease) and stops.
func (r *Registration) Close() error {
	r.cancel()
	<-r.done
	return nil
}

// Nodes reads every registered node, sorted by name. opts may make the
// read serializable (the node's own embedded member).
func Nodes(ctx context.Context, kv clientv3.KV, prefix string, opts ...clientv3.OpOption) ([]NodeInfo, error) {
	ks := newKeyspace(prefix)
	var out []NodeInfo
	err := scan(ctx, kv, ks.nodes(), false, func(k string, v []byte) error {
		var n NodeInfo
		if err := json.Unmarshal(v, &n); err != nil {
			return fmt.Errorf("node %s: %w", strings.TrimPrefix(k, ks.nodes()), err)
		}
		out = append(out, n)
		return nil
	}, opts...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// MemberInfo is one etcd member as MemberList reports it.
type MemberInfo struct {
	Name       string
	ID         uint64
	PeerURLs   []string
	ClientURLs []string
	Learner    bool
}

// Members lists the etcd cluster's members; serializable reads the local
// member's view (works without a quorum).
func Members(ctx context.Context, c *clientv3.Client, serializable bool) ([]MemberInfo, error) {
	var opts []clientv3.OpOption
	if serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	resp, err := c.MemberList(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("etcd member list: %w", err)
	}
	out := make([]MemberInfo, 0, len(resp.Members))
	for _, m := range resp.Members {
		out = append(out, MemberInfo{Name: m.Name, ID: m.ID, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
