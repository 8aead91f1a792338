package etcdstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/octostore/octostore/persistence/storetest"
)

// The store contract (persistence/storetest), against etcd: one member,
// each test in its own keyspace (prefix) so that each starts empty.
func TestStoreContract(t *testing.T) {
	c := startCluster(t, 1, nil)[0].Client()
	var n atomic.Int32
	storetest.Run(t, func(t *testing.T) storetest.Store {
		opt := Options{Prefix: fmt.Sprintf("/contract%d/", n.Add(1))}
		fence, _ := testFence(t, c, opt.Prefix)
		s, err := Open(context.Background(), c, fence, opt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// The contract holds with serializable reads on the node's own member, and
// with transactions capped at a few ops (every batch splits).
func TestStoreContractSerializableSmallTxns(t *testing.T) {
	c := startCluster(t, 1, func(mc *MemberConfig) { mc.MaxTxnOps = 8 })[0].Client()
	var n atomic.Int32
	storetest.Run(t, func(t *testing.T) storetest.Store {
		opt := Options{Prefix: fmt.Sprintf("/small%d/", n.Add(1)), MaxTxnOps: 8, SerializableReads: true}
		fence, _ := testFence(t, c, opt.Prefix)
		s, err := Open(context.Background(), c, fence, opt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
