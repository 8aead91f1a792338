package httpd

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/persistence"
	"github.com/valyala/fasthttp"
)

// GET /cluster (cluster mode): who this node is, who leads and the members.
// Every node answers it itself (it is the one request a follower does not
// forward), so that it shows the node that answered and works while no
// leader is known. It is authenticated against the tokens in etcd on every
// request, without a cache: a revoked token is refused as soon as this
// node's etcd member has applied the revocation.

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

// ClusterDeps serve GET /cluster.
type ClusterDeps struct {
	// Status reads the cluster's state (etcd: members, registrations,
	// election); ctx bounds it.
	Status func(ctx context.Context) (ClusterStatus, error)
	// Lookup finds the user of a token hash (etcdstore.Reader.LookupToken).
	Lookup func(hash [32]byte) (persistence.Principal, bool, error)
	// AdminKey is --admin-key ("": no admin principal).
	AdminKey string
}

// authenticate checks the request's credentials against the admin key and
// the stored tokens (no cache).
func (d *ClusterDeps) authenticate(ctx *fasthttp.RequestCtx) error {
	matches := func(k []byte) bool {
		if d.AdminKey == "" {
			return false
		}
		x, y := sha256.Sum256(k), sha256.Sum256([]byte(d.AdminKey))
		return subtle.ConstantTimeCompare(x[:], y[:]) == 1
	}
	if k := ctx.Request.Header.Peek("X-Admin-Key"); len(k) > 0 {
		if matches(k) {
			return nil
		}
		return errBadAdminKey
	}
	tok := bearer(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization))
	if len(tok) == 0 || len(tok) > 512 {
		return errBadToken
	}
	if matches(tok) {
		return nil
	}
	if d.Lookup == nil {
		return errBadToken
	}
	_, found, err := d.Lookup(sha256.Sum256(tok))
	if err != nil {
		return actors.Wrap(actors.CodeUnavailable, "cannot check the token: etcd unavailable, retry later", err)
	}
	if !found {
		return errBadToken
	}
	return nil
}

// clusterStatus answers GET /cluster.
func (f *Front) clusterStatus(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() {
		ctx.Response.Header.Set(fasthttp.HeaderAllow, "GET")
		writeCoded(ctx, actors.NewError(actors.CodeMethodNotAllowed, "method "+string(ctx.Method())+" not allowed on /cluster"))
		return
	}
	if err := f.cluster.authenticate(ctx); err != nil {
		e := actors.AsError(err)
		if e.Code == actors.CodeUnauthorized {
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="octostore"`)
		} else {
			f.log.Warn("GET /cluster: token check failed", "err", err)
		}
		writeCoded(ctx, e)
		return
	}
	c, cancel := context.WithTimeout(context.Background(), f.cfg.RequestTimeout)
	defer cancel()
	st, err := f.cluster.Status(c)
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
