package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/octostore/octostore/actors"
)

// Store implements actors.Store, actors.GuardedStore and the kinds' stores
// (actors.LockLoader, LimitStore, FlagStore, ConfigStore) over etcd: the Writer for durable writes and reads
// of the keyspace for loaders and listings. One Store writes for one term
// (Fence); when the term ends it fails every write, and the next term gets
// a new Store.
type Store struct {
	*Writer
	*Reader
	now func() time.Time
}

var (
	_ actors.Store          = (*Store)(nil)
	_ actors.GuardedStore   = (*Store)(nil)
	_ actors.LockLoader     = (*Store)(nil)
	_ actors.LimitStore     = (*Store)(nil)
	_ actors.FlagStore      = (*Store)(nil)
	_ actors.ConfigStore    = (*Store)(nil)
	_ actors.SessionStore   = (*Store)(nil)
	_ actors.SemaphoreStore = (*Store)(nil)
)

// Options tunes a Store. Zero values take the defaults.
type Options struct {
	// Prefix is where the keyspace lives (default DefaultPrefix). Nodes of
	// one octostore cluster use the same prefix; two clusters sharing an
	// etcd use different ones.
	Prefix string
	// MaxTxnOps is the most writes in one transaction. It must not exceed
	// the server's --max-txn-ops (etcd's default, and ours for an external
	// etcd, 128; an embedded member raises it: MemberConfig.MaxTxnOps).
	MaxTxnOps int
	// MaxTxnBytes bounds the size of one transaction's writes, below the
	// server's --max-request-bytes (etcd's default 1.5 MiB). Default 1 MiB.
	MaxTxnBytes int
	// MaxQueue is the queued writes before Enqueue answers ErrOverloaded
	// (default 100000).
	MaxQueue int
	// MaxBatch is the most queued writes the writer considers for one
	// transaction (default 4 × MaxTxnOps; same-key writes merge, so a
	// transaction may carry more writes than ops).
	MaxBatch int
	// TxnsInFlight is how many transactions the writer keeps in flight at
	// once (default DefaultTxnsInFlight). Each after the first is guarded
	// by the effect of the one before it (Writer), so they commit in order
	// and one that fails fails every later one. 1 sends a transaction only
	// after the previous one's answer.
	TxnsInFlight int
	// TxnTimeout bounds one transaction or read (default 5 s). A
	// transaction that times out has an unknown outcome and ends the term.
	TxnTimeout time.Duration
	// SerializableReads makes loaders and listings read the local member
	// without a quorum round trip. Only correct on the node's own embedded
	// member (Member.Client): a transaction returns after that member applied
	// it, and Campaign returns after it applied everything before the term,
	// so its local state holds every write. Never with an external etcd,
	// where each request may reach a different member.
	SerializableReads bool
	// OnLost is called once, on the writer goroutine, when the store learns
	// that its term is over (guard failed, session ended, outcome unknown).
	OnLost func(error)
	// OnBatch is called after every transaction (metrics).
	OnBatch func(size int, d time.Duration, err error)
	// Now is the clock of the token operations (sign-in, rotation);
	// default time.Now.
	Now func() time.Time
}

// DefaultMaxTxnOps is etcd's default --max-txn-ops.
const DefaultMaxTxnOps = 128

// DefaultTxnsInFlight is Options.TxnsInFlight's default: one transaction
// at a time. Measured with three members on one 2-core machine
// (docs/benchmarks.md "Cluster mode"), a second in flight did not raise
// throughput, nor with a 2 ms round trip added to every transaction: it
// splits the same writes into smaller batches, and etcd received about one
// chained transaction in four (in twelve with the round trip) before the
// one it chains to, which costs a second send. With four in flight nearly
// every chained one was sent twice.
const DefaultTxnsInFlight = 1

func (o *Options) defaults() {
	if o.MaxTxnOps <= 0 {
		o.MaxTxnOps = DefaultMaxTxnOps
	}
	if o.MaxTxnBytes <= 0 {
		o.MaxTxnBytes = 1 << 20
	}
	if o.MaxQueue <= 0 {
		o.MaxQueue = 100000
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 4 * o.MaxTxnOps
	}
	if o.TxnsInFlight <= 0 {
		o.TxnsInFlight = DefaultTxnsInFlight
	}
	if o.TxnTimeout <= 0 {
		o.TxnTimeout = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// ErrNewerLayout means the keyspace was written by a newer octostore.
var ErrNewerLayout = errors.New("etcd keyspace layout is newer than this octostore")

// ErrOldLayout means the keyspace has a layout this octostore does not
// migrate (LayoutVersion).
var ErrOldLayout = errors.New("etcd keyspace layout is older than this octostore reads")

// Open checks the keyspace's layout version (writing it, guarded, on first
// use) and starts a writer for the term fence. kv is the node's client
// (Member.Client, or Connect).
func Open(ctx context.Context, kv clientv3.KV, fence Fence, opt Options) (*Store, error) {
	opt.defaults()
	if fence.Key == "" || fence.Rev <= 0 {
		return nil, errors.New("etcdstore: open: no fence (win an election first)")
	}
	s := &Store{Reader: NewReader(kv, opt), now: opt.Now}
	resp, err := kv.Get(ctx, s.Reader.ks.layout())
	if err != nil {
		return nil, fmt.Errorf("etcdstore: open: %w", err)
	}
	if len(resp.Kvs) == 1 {
		v, err := strconv.Atoi(string(resp.Kvs[0].Value))
		if err != nil {
			return nil, fmt.Errorf("etcdstore: open: layout %q: %w", resp.Kvs[0].Value, err)
		}
		if v > LayoutVersion {
			return nil, fmt.Errorf("%w: %s has layout %d, this binary knows up to %d; upgrade octostore",
				ErrNewerLayout, s.Reader.ks.layout(), v, LayoutVersion)
		}
		if v < LayoutVersion {
			return nil, fmt.Errorf("%w: %s has layout %d (owners named by login), this octostore names them by user id (layout %d); "+
				"layout %d came only from development builds and is not migrated: start from an empty --etcd prefix",
				ErrOldLayout, s.Reader.ks.layout(), v, LayoutVersion, v)
		}
	} else {
		put, err := kv.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(fence.Key), "=", fence.Rev),
				clientv3.Compare(clientv3.CreateRevision(s.Reader.ks.layout()), "=", 0)).
			Then(clientv3.OpPut(s.Reader.ks.layout(), strconv.Itoa(LayoutVersion))).
			Commit()
		if err != nil {
			return nil, fmt.Errorf("etcdstore: open: write layout: %w", err)
		}
		if !put.Succeeded {
			return nil, fmt.Errorf("etcdstore: open: %w", ErrNotLeader)
		}
	}
	s.Writer = newWriter(kv, s.Reader.ks, fence, opt)
	return s, nil
}

// Close closes the writer after committing (or failing) everything queued.
func (s *Store) Close() error { return s.Writer.Close() }

// Apply enqueues m and waits for its commit (rare, synchronous writes:
// tokens, start-up).
func (s *Store) Apply(m actors.Mutation) error {
	ch := make(chan error, 1)
	if _, err := s.Enqueue(m, func(err error) { ch <- err }); err != nil {
		return err
	}
	return <-ch
}

// Barrier waits until every write queued before the call is resolved.
func (s *Store) Barrier() error {
	seq, err := s.Enqueue(nil, nil)
	if err != nil {
		return err
	}
	s.WaitResolved(seq)
	return nil
}
