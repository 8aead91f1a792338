package etcdstore

import (
	"fmt"
	"sync/atomic"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/octostore/octostore/persistence/storetest"
)

// The store contract (persistence/storetest), against etcd: one member,
// each test in its own keyspace (prefix) so that each starts empty.
func TestStoreContract(t *testing.T) {
	c := startCluster(t, 1, nil)[0].Client()
	storetest.Run(t, contractOpener(c, Options{}))
}

// contractOpener opens each test's store in a keyspace of its own.
func contractOpener(c *clientv3.Client, opt Options) storetest.Opener {
	var n atomic.Int32
	return func(t *testing.T) storetest.Store {
		opt := opt
		opt.Prefix = fmt.Sprintf("/contract%d/", n.Add(1))
		s, _ := openTestStore(t, c, opt)
		return s
	}
}

// The contract holds with serializable reads on the node's own member, and
// with transactions capped at a few ops (every batch splits).
func TestStoreContractSerializableSmallTxns(t *testing.T) {
	c := startCluster(t, 1, func(mc *MemberConfig) { mc.MaxTxnOps = 8 })[0].Client()
	storetest.Run(t, contractOpener(c, Options{MaxTxnOps: 8, SerializableReads: true}))
}

// The contract holds with two transactions in flight, capped at a few ops
// (batches split across transactions in flight at once).
func TestStoreContractTxnsInFlight(t *testing.T) {
	c := startCluster(t, 1, func(mc *MemberConfig) { mc.MaxTxnOps = 8 })[0].Client()
	storetest.Run(t, contractOpener(c, Options{MaxTxnOps: 8, TxnsInFlight: 2}))
}
