package etcdstore

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
)

// BenchmarkGuardedWriter measures the group-commit writer over embedded
// etcd: concurrent writers each put their own lock and wait for the commit
// (one write in flight per writer, as a lock actor's reply waits), through
// the node's in-process client, every batch one guarded Txn of up to the
// member's max-txn-ops (1024). With three members the writer runs on the
// Raft leader's member and on a follower's.
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
					b.Run(fmt.Sprintf("%s/writers=%d", place, writers), func(b *testing.B) {
						benchWriters(b, m, writers)
					})
				}
			}
		})
	}
}

func benchWriters(b *testing.B, m *Member, writers int) {
	var txns, writes atomic.Int64
	s, _ := openTestStore(b, m.Client(), Options{
		Prefix: fmt.Sprintf("/bench-%d-%d/", writers, time.Now().UnixNano()), MaxTxnOps: m.MaxTxnOps(),
		OnBatch: func(n int, _ time.Duration, err error) {
			txns.Add(1)
			writes.Add(int64(n))
		},
	})
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
	if n := txns.Load(); n > 0 {
		b.ReportMetric(float64(writes.Load())/float64(n), "writes/txn")
	}
}
