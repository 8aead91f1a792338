package etcdstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/octostore/octostore/actors"
)

// BenchmarkGuardedWriter measures the group-commit writer over embedded
// etcd: concurrent writers each put their own lock and wait for the commit
// (one write in flight per writer, as a lock actor's reply waits), through
// the node's in-process client, every batch one guarded Txn of up to the
// member's max-txn-ops (1024), with 1, 2 or 4 transactions in flight. With
// three members the writer runs on the Raft leader's member and on a
// follower's.
//
//	go test -run '^$' -bench GuardedWriter -benchtime 20000x ./persistence/etcdstore
func BenchmarkGuardedWriter(b *testing.B) {
	for _, members := range []int{1, 3} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			ms := startCluster(b, members, func(mc *MemberConfig) {
				mc.TickMs, mc.ElectionMs = 100, 1000 // etcd's defaults, not the tests' short ones
			})
			where := map[string]*Member{"raft=leader": nil, "raft=follower": nil}
			for _, m := range ms {
				if m.IsRaftLeader() {
					where["raft=leader"] = m
				} else {
					where["raft=follower"] = m
				}
			}
			for _, place := range []string{"raft=leader", "raft=follower"} {
				m := where[place]
				if m == nil {
					continue
				}
				for _, writers := range []int{64, 256} {
					for _, inFlight := range []int{1, 2, 4} {
						b.Run(fmt.Sprintf("%s/writers=%d/in-flight=%d", place, writers, inFlight), func(b *testing.B) {
							benchWriters(b, m, writers, inFlight)
						})
					}
				}
			}
		})
	}
}

// BenchmarkGuardedWriterRTT is BenchmarkGuardedWriter on one member with
// a round trip added to every transaction (half before etcd receives it,
// half after it answered), as with an etcd across a network: the case
// where transactions in flight at once hide latency.
//
//	go test -run '^$' -bench GuardedWriterRTT -benchtime 20000x ./persistence/etcdstore
func BenchmarkGuardedWriterRTT(b *testing.B) {
	m := startCluster(b, 1, func(mc *MemberConfig) { mc.TickMs, mc.ElectionMs = 100, 1000 })[0]
	for _, rtt := range []time.Duration{2 * time.Millisecond} {
		for _, inFlight := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("rtt=%v/writers=64/in-flight=%d", rtt, inFlight), func(b *testing.B) {
				benchWritersKV(b, m, &delayKV{KV: m.Client(), d: rtt / 2}, 64, inFlight)
			})
		}
	}
}

// delayKV delays every transaction by d before sending it and d after its
// answer.
type delayKV struct {
	clientv3.KV
	d time.Duration
}

func (k *delayKV) Txn(ctx context.Context) clientv3.Txn { return &delayTxn{Txn: k.KV.Txn(ctx), d: k.d} }

type delayTxn struct {
	clientv3.Txn
	d time.Duration
}

func (t *delayTxn) If(cs ...clientv3.Cmp) clientv3.Txn   { t.Txn = t.Txn.If(cs...); return t }
func (t *delayTxn) Then(ops ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Then(ops...); return t }
func (t *delayTxn) Commit() (*clientv3.TxnResponse, error) {
	time.Sleep(t.d)
	defer time.Sleep(t.d)
	return t.Txn.Commit()
}

func benchWriters(b *testing.B, m *Member, writers, inFlight int) {
	benchWritersKV(b, m, m.Client(), writers, inFlight)
}

func benchWritersKV(b *testing.B, m *Member, kv clientv3.KV, writers, inFlight int) {
	var txns, writes atomic.Int64
	opt := Options{
		Prefix: fmt.Sprintf("/bench-%d-%d/", writers, time.Now().UnixNano()), MaxTxnOps: m.MaxTxnOps(), TxnsInFlight: inFlight,
		OnBatch: func(n int, _ time.Duration, err error) {
			txns.Add(1)
			writes.Add(int64(n))
		},
	}
	fence, _ := testFence(b, m.Client(), opt.Prefix)
	s, err := Open(context.Background(), kv, fence, opt)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan error, 1)
			name := fmt.Sprintf("lock-%d", w)
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				rec := actors.LockRecord{Name: name, Holder: "bench", LeaseID: "l", Token: uint64(i),
					ExpiresAt: t0.Add(time.Minute), AcquiredAt: t0}
				if _, err := s.Enqueue(actors.PutLock{Lock: rec}, func(err error) { done <- err }); err != nil {
					failed.Add(1)
					continue
				}
				if err := <-done; err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d writes failed", failed.Load())
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
	b.ReportMetric(float64(s.Stats().Resent), "resent")
	if n := txns.Load(); n > 0 {
		b.ReportMetric(float64(writes.Load())/float64(n), "writes/txn")
	}
}
