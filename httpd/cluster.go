package httpd

import (
	"context"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/valyala/fasthttp"
)

// GET /cluster (cluster mode): who this node is, who leads and the members.
// Every node answers it itself (it is the one request a follower does not
// forward), so that it shows the node that answered and works while no
// leader is known. It is admitted by the node's own Authenticator, over
// the tokens in etcd (admission.go: throttled, cached; a token revoked
// anywhere leaves the cache as soon as this node's etcd watch sees it).

// ClusterStatus is the answer of GET /cluster.
type ClusterStatus struct {
	Node        string          // the node that answered
	Leader      string          // "" while no leader is known
	LeaderSince time.Time       // when the leader won, by its clock (zero: unknown)
	Members     []ClusterMember // sorted by name
}

// ClusterMember is one member of the cluster.
type ClusterMember struct {
	Name    string
	PeerURL string // etcd peer URL ("" with an external etcd)
	APIURL  string // where the node serves the API ("" while it is down)
	// Healthy: the node's process runs and keeps its registration alive
	// in etcd (which needs a quorum).
	Healthy bool
}

// clusterStatus answers GET /cluster.
func (f *Front) clusterStatus(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() {
		ctx.Response.Header.Set(fasthttp.HeaderAllow, "GET")
		writeCoded(ctx, actors.NewError(actors.CodeMethodNotAllowed, "method "+string(ctx.Method())+" not allowed on /cluster"))
		return
	}
	_, reserved, err := f.admit(ctx)
	if err != nil {
		writeCoded(ctx, actors.AsError(err))
		return
	}
	f.bodies.release(reserved) // a GET's body is not used
	c, cancel := context.WithTimeout(context.Background(), f.cfg.RequestTimeout)
	defer cancel()
	st, err := f.status(c)
	if err != nil {
		f.log.Warn("GET /cluster failed", "err", err)
		writeCoded(ctx, actors.Wrap(actors.CodeUnavailable, "cannot read the cluster's state: etcd unavailable, retry later", err))
		return
	}
	st.Node = f.node
	if info, ok := f.lead.Leader(); ok {
		st.Leader, st.LeaderSince = info.Name, info.Since
	} else {
		st.Leader, st.LeaderSince = "", time.Time{}
	}
	writeOK(ctx, appendClusterStatus(make([]byte, 0, 256), &st))
}

// appendClusterStatus renders {"node","leader","leader_since","members":[…]};
// leader and leader_since are null while unknown.
func appendClusterStatus(b []byte, st *ClusterStatus) []byte {
	b = append(b, `{"node":`...)
	b = appendString(b, st.Node)
	b = append(b, `,"leader":`...)
	if st.Leader == "" {
		b = append(b, "null"...)
	} else {
		b = appendString(b, st.Leader)
	}
	b = append(b, `,"leader_since":`...)
	if st.LeaderSince.IsZero() {
		b = append(b, "null"...)
	} else {
		b = appendTime(b, st.LeaderSince)
	}
	b = append(b, `,"members":[`...)
	for i, m := range st.Members {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendString(b, m.Name)
		b = append(b, `,"peer_url":`...)
		b = appendString(b, m.PeerURL)
		b = append(b, `,"api_url":`...)
		b = appendString(b, m.APIURL)
		b = append(b, `,"healthy":`...)
		if m.Healthy {
			b = append(b, "true"...)
		} else {
			b = append(b, "false"...)
		}
		b = append(b, '}')
	}
	return append(b, "]}"...)
}
