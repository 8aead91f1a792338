package etcdstore_test

import (
	"context"
	"log"
	"time"

	"github.com/octostore/octostore/persistence/etcdstore"
)

// A node of a three-node cluster: its embedded etcd member, the election,
// and a store per term. (Not run: it needs the other two nodes.)
func Example() {
	ctx := context.Background()
	member, err := etcdstore.StartMember(ctx, etcdstore.MemberConfig{
		Name: "n1", Dir: "./n1.etcd", PeerURL: "http://10.0.0.1:2380",
		InitialCluster: "n1=http://10.0.0.1:2380,n2=http://10.0.0.2:2380,n3=http://10.0.0.3:2380",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer member.Close()

	elector, err := etcdstore.NewElector(etcdstore.ElectionConfig{
		Client: member.Client(), Name: "n1", APIURL: "http://10.0.0.1:7070", TTL: 5 * time.Second,
		OnElected: func(t *etcdstore.Term) {
			// Campaign has returned: every write of earlier terms is final.
			store, err := etcdstore.Open(ctx, member.Client(), t.Fence(), etcdstore.Options{
				MaxTxnOps: member.MaxTxnOps(), SerializableReads: true,
				OnLost: t.End, // a refused or unknown write ends the term
			})
			if err != nil {
				t.End(err)
				return
			}
			// Load state from store, start the actors, serve; on t.Done():
			// stop serving at once (503), close the actors, then the store.
			<-t.Done()
			store.Close()
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer elector.Close()

	// Any node: who leads, for forwarding.
	if st := elector.Status(); st.Known && !st.IsLeader() {
		log.Printf("forward to %s at %s", st.Leader.Name, st.Leader.APIURL)
	}
}
