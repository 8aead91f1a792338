package client

import (
	"context"
	"time"
)

// ClusterStatus is GET /cluster (cluster mode): the node that answered, the
// leader ("" while none is known) and the members.
type ClusterStatus struct {
	Node        string          `json:"node"`
	Leader      string          `json:"leader"`
	LeaderSince *time.Time      `json:"leader_since"`
	Members     []ClusterMember `json:"members"`
}

// ClusterMember is one member of the cluster.
type ClusterMember struct {
	Name    string `json:"name"`
	PeerURL string `json:"peer_url"`
	APIURL  string `json:"api_url"`
	Healthy bool   `json:"healthy"`
}

// Cluster reads GET /cluster. A single-node server answers ErrNotFound;
// a node that cannot read etcd, ErrUnavailable.
func (c *Client) Cluster(ctx context.Context) (ClusterStatus, error) {
	var out ClusterStatus
	err := c.call(ctx, "GET", "/cluster", nil, true, &out)
	return out, err
}
