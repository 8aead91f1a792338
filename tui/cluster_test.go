package tui

import (
	"fmt"
	"strings"
	"testing"

	"github.com/octostore/octostore/tools/client"
)

// In cluster mode the header shows the node the view talks to and the
// leader (or none); a single node (404) shows neither and is not asked again.
func TestHeaderShowsNodeAndLeader(t *testing.T) {
	m, _ := newTestModel(t)
	if strings.Contains(m.headerView(), "leader") {
		t.Fatalf("header before any cluster answer: %q", m.headerView())
	}
	if cmd := update(t, m, clusterMsg{st: client.ClusterStatus{Node: "n2", Leader: "n1"}}); cmd == nil {
		t.Fatal("no next GET /cluster scheduled")
	}
	if h := m.headerView(); !strings.Contains(h, "node n2 · leader n1") {
		t.Fatalf("header %q, want node n2 and leader n1", h)
	}
	// Names from the server cannot drive the terminal.
	update(t, m, clusterMsg{st: client.ClusterStatus{Node: "n2\x1b]0;pwned\x07", Leader: "n1\x1b[2J"}})
	if h := m.headerView(); strings.ContainsAny(h[strings.Index(h, "node "):], "\x07") || strings.Contains(h, "\x1b]0;") || strings.Contains(h, "\x1b[2J") {
		t.Fatalf("header %q passes the server's control sequences on", h)
	}
	update(t, m, clusterMsg{st: client.ClusterStatus{Node: "n2"}})
	if h := m.headerView(); !strings.Contains(h, "leader none") {
		t.Fatalf("header %q with no leader", h)
	}
	if cmd := update(t, m, clusterMsg{err: fmt.Errorf("GET /cluster: %w", client.ErrNotFound)}); cmd != nil || m.askCluster() != nil {
		t.Fatal("a single node (404) is asked again")
	}
	if h := m.headerView(); strings.Contains(h, "leader") {
		t.Fatalf("header %q on a single node", h)
	}
}
