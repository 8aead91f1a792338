package etcdstore

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// freeURL returns an http URL on a loopback port free at the time of the
// call (etcd needs the peer URLs of every member before any starts).
func freeURL(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}

// testMemberConfig is a member tuned for tests: short Raft timings (so
// elections and the minimum lease TTL are short) and quiet logs.
func testMemberConfig(tb testing.TB, name, peer, cluster string) MemberConfig {
	return MemberConfig{
		Name: name, Dir: tb.TempDir(), PeerURL: peer, ClientURL: freeURL(tb),
		InitialCluster: cluster, TickMs: 50, ElectionMs: 500, LogLevel: "fatal", // etcd logs errors while it closes
		StartTimeout: 30 * time.Second,
	}
}

// startCluster starts n members on loopback and stops them at cleanup.
// tune, if set, adjusts each member's configuration. A port found free by
// freeURL can be taken by another process (another package's test, an
// outgoing connection's ephemeral port) before etcd binds it: a start that
// fails with "address already in use" is tried again on new ports, at most
// three times.
func startCluster(tb testing.TB, n int, tune func(*MemberConfig)) []*Member {
	tb.Helper()
	for attempt := 1; ; attempt++ {
		members, errs := tryStartCluster(tb, n, tune)
		var failed error
		for i, err := range errs {
			if err != nil && failed == nil {
				failed = fmt.Errorf("member %d: %w", i+1, err)
			}
		}
		if failed == nil {
			tb.Cleanup(func() { closeMembers(members) })
			return members
		}
		closeMembers(members)
		if attempt == 3 || !strings.Contains(failed.Error(), "address already in use") {
			tb.Fatal(failed)
		}
		tb.Logf("start cluster, attempt %d: %v (again on new ports)", attempt, failed)
	}
}

// tryStartCluster starts n members at once (a new cluster is ready only
// once a quorum has started) and returns them with each one's error.
func tryStartCluster(tb testing.TB, n int, tune func(*MemberConfig)) ([]*Member, []error) {
	names, peers := make([]string, n), make([]string, n)
	var parts []string
	for i := range n {
		names[i], peers[i] = fmt.Sprintf("m%d", i+1), freeURL(tb)
		parts = append(parts, names[i]+"="+peers[i])
	}
	cluster := strings.Join(parts, ",")
	members := make([]*Member, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		cfg := testMemberConfig(tb, names[i], peers[i], cluster)
		if tune != nil {
			tune(&cfg)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			members[i], errs[i] = StartMember(context.Background(), cfg)
		}()
	}
	wg.Wait()
	return members, errs
}

// closeMembers stops members in parallel, the Raft leader last: closed
// first, it would try to hand its leadership to members that are stopping
// and wait seconds for that.
func closeMembers(ms []*Member) {
	var leaders, others []*Member
	for _, m := range ms {
		switch {
		case m == nil:
		case m.IsRaftLeader():
			leaders = append(leaders, m)
		default:
			others = append(others, m)
		}
	}
	for _, group := range [][]*Member{others, leaders} {
		var wg sync.WaitGroup
		for _, m := range group {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m.Close()
			}()
		}
		wg.Wait()
	}
}

// testFence makes c hold a lease and a key under it, as a won election
// does, and returns the fence of that "term" and its lease.
func testFence(tb testing.TB, c *clientv3.Client, prefix string) (Fence, clientv3.LeaseID) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lease, err := c.Grant(ctx, 60)
	if err != nil {
		tb.Fatal(err)
	}
	key := fmt.Sprintf("%selection/%x", newKeyspace(prefix).prefix, lease.ID)
	resp, err := c.Put(ctx, key, "test", clientv3.WithLease(lease.ID))
	if err != nil {
		tb.Fatal(err)
	}
	return Fence{Key: key, Rev: resp.Header.Revision}, lease.ID
}

// openTestStore opens a store on c for a fresh fence and closes it at
// cleanup.
func openTestStore(tb testing.TB, c *clientv3.Client, opt Options) (*Store, clientv3.LeaseID) {
	tb.Helper()
	fence, lease := testFence(tb, c, opt.Prefix)
	s, err := Open(context.Background(), c, fence, opt)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s, lease
}

// rawGet reads key directly (nil when absent).
func rawGet(tb testing.TB, c *clientv3.Client, key string) []byte {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, key)
	if err != nil {
		tb.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	return resp.Kvs[0].Value
}
