package etcdstore

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// What every node of a cluster needs of etcd to admit requests itself,
// leader or not (httpd/admission.go): the cluster's forwarding key, and
// notice of token changes to drop from its token cache.

// ForwardKey returns the cluster's forwarding key (meta/forward_key),
// creating it if no node has yet: 32 random bytes, base64. A node that
// forwards a request sends it with the client's address; the node that
// receives it believes the address only with the key. It is not part of
// the leader's keyspace (the writer never reads it) and is written once, by
// whichever node comes first, in a Txn that creates it only if absent.
func ForwardKey(ctx context.Context, kv clientv3.KV, prefix string) ([]byte, error) {
	key := newKeyspace(prefix).forwardKey()
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("forwarding key: %w", err)
	}
	fresh := base64.RawURLEncoding.EncodeToString(raw[:])
	resp, err := kv.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, fresh)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return nil, fmt.Errorf("forwarding key: %w", err)
	}
	if resp.Succeeded {
		return []byte(fresh), nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 || len(kvs[0].Value) == 0 {
		return nil, fmt.Errorf("forwarding key: %s is empty", key)
	}
	return kvs[0].Value, nil
}

// WatchTokens calls changed with the hash of every token that is created,
// changed or deleted under prefix (by the leader's writer, or by anything
// else that writes etcd), until ctx ends. Each time its watch is in place
// (at the start, and again after etcd was unreachable or its history
// compacted) it calls changed(nil): any token may have changed before.
// Token caches use it to drop a revoked token as soon as the watched etcd
// member has applied the revocation (httpd.Authenticator.Invalidate and
// Flush): a token cached before the watch was in place is dropped by the
// changed(nil) that follows, one revoked after it by its event.
func WatchTokens(ctx context.Context, w clientv3.Watcher, prefix string, changed func(hash *[32]byte), log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	base := newKeyspace(prefix).tokens()
	const retry = 500 * time.Millisecond
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		// WithRequireLeader: a member cut off from the quorum ends the
		// watch instead of keeping it open and silent.
		ch := w.Watch(clientv3.WithRequireLeader(wctx), base, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
		for resp := range ch {
			if err := resp.Err(); err != nil {
				log.Debug("token watch ended; watching again", "err", err)
				break
			}
			if resp.Created {
				changed(nil)
			}
			for _, ev := range resp.Events {
				if h, err := tokenHash(string(ev.Kv.Key), base); err == nil {
					changed(&h)
				}
			}
		}
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
}
