package main

// `octostore cluster status` (GET /cluster through the API) and `octostore
// cluster member list|add|remove` (etcd's member API, through the embedded
// members' client URLs or the external etcd: docs/operations.md "Replacing
// a dead member").

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/octostore/octostore/actors/names"
	"github.com/octostore/octostore/persistence/etcdstore"
	"github.com/octostore/octostore/tools/client"
	"github.com/octostore/octostore/tools/termtext"
	"github.com/urfave/cli/v2"
)

func clusterCommand() *cli.Command {
	list := leaf("list", "list the etcd members", "", etcdFlags(jsonFlag()), memberList)
	add := leaf("add", "add a member before starting it with --cluster-state existing", "NAME PEER_URL", etcdFlags(), memberAdd)
	remove := leaf("remove", "remove a (dead) member", "NAME", etcdFlags(), memberRemove)
	return groupCommand("cluster", "cluster mode: status, etcd members, restore",
		clientCommand("status", "show the node that answers, the leader and the members (GET /cluster)", "", clusterStatusAction),
		groupCommand("member", "list, add or remove etcd members (replacing a dead node)", list, add, remove),
		restoreCommand(),
	)
}

func clusterStatusAction(c *cli.Context, _ []string) error {
	return clientRun(c, func(cl *client.Client, ctx context.Context) (client.ClusterStatus, error) {
		return cl.Cluster(ctx)
	}, func(w io.Writer, st client.ClusterStatus) error {
		leader := st.Leader
		if leader == "" {
			leader = "(none)"
		} else if st.LeaderSince != nil {
			leader += " since " + st.LeaderSince.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "node %s, leader %s\n", termtext.Clean(st.Node), termtext.Clean(leader))
		rows := clusterRows(st)
		return printTable(w, []col{{title: "NAME"}, {title: "ROLE"}, {title: "HEALTHY"}, {title: "API URL", cut: true}, {title: "PEER URL", cut: true}}, rows)
	})
}

// clusterRows are the rows of cluster status's table: NAME, ROLE (leader,
// follower, "-" when down), HEALTHY, API URL ("(down)" when the node has no
// registration to read it from) and PEER URL.
func clusterRows(st client.ClusterStatus) [][]string {
	rows := make([][]string, 0, len(st.Members))
	for _, m := range st.Members {
		h, role, api := "no", "-", m.APIURL
		if m.Healthy {
			h, role = "yes", "follower"
		}
		if m.Name == st.Leader {
			role = "leader"
		}
		if api == "" {
			api = "(down)"
		}
		rows = append(rows, []string{m.Name, role, h, api, m.PeerURL})
	}
	return rows
}

// etcdFlags are the flags of the commands that talk to etcd directly.
func etcdFlags(extra ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{
		etcdEndpointsFlag(defaultEtcdClientURL),
		&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "per-request timeout"},
	}, extra...)
}

// etcdEndpointsFlag is --etcd-endpoints, the same on every command that
// has it (serve's, backup's and the member commands'), with value its
// default.
func etcdEndpointsFlag(value string) *cli.StringFlag {
	return &cli.StringFlag{Name: "etcd-endpoints", Value: value, EnvVars: []string{"OCTOSTORE_ETCD_ENDPOINTS"},
		Usage: "etcd client URLs, comma-separated: a node's --etcd-client-url, or an external etcd cluster's"}
}

// etcdRun connects to --etcd-endpoints and runs fn within --timeout;
// connection failures exit 6 (unavailable).
func etcdRun(c *cli.Context, fn func(ctx context.Context, cl *clientv3.Client) error) error {
	eps := splitList(c.String("etcd-endpoints"))
	if len(eps) == 0 {
		return errUsage(c, "--etcd-endpoints URL is required")
	}
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	cl, err := etcdstore.Connect(ctx, etcdstore.ConnectConfig{Endpoints: eps})
	if err != nil {
		return exitCode(exitUnavailable, err)
	}
	defer cl.Close()
	return fn(ctx, cl)
}

// memberJSON is one member in member list's --json (etcd's member list,
// which has no API answer of octostore's to print).
type memberJSON struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peer_urls"`
	ClientURLs []string `json:"client_urls"`
}

func memberList(c *cli.Context, _ []string) error {
	return etcdRun(c, func(ctx context.Context, cl *clientv3.Client) error {
		ms, err := etcdstore.Members(ctx, cl, false)
		if err != nil {
			return exitCode(exitUnavailable, err)
		}
		if c.Bool("json") {
			out := make([]memberJSON, 0, len(ms))
			for _, m := range ms {
				out = append(out, memberJSON{ID: fmt.Sprintf("%x", m.ID), Name: m.Name,
					PeerURLs: orEmpty(m.PeerURLs), ClientURLs: orEmpty(m.ClientURLs)})
			}
			b, err := json.Marshal(out)
			if err != nil {
				return exitCode(exitFailure, err)
			}
			_, err = fmt.Fprintln(c.App.Writer, string(b))
			return err
		}
		rows := make([][]string, 0, len(ms))
		for _, m := range ms {
			name := m.Name
			if name == "" {
				name = "(not started)"
			}
			rows = append(rows, []string{fmt.Sprintf("%x", m.ID), name, strings.Join(m.PeerURLs, ","), strings.Join(m.ClientURLs, ",")})
		}
		return printTable(c.App.Writer, []col{{title: "ID"}, {title: "NAME"}, {title: "PEER URLS", cut: true}, {title: "CLIENT URLS", cut: true}}, rows)
	})
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func memberAdd(c *cli.Context, args []string) error {
	name, peer := args[0], args[1]
	if !names.Login.Valid(name) {
		return errUsage(c, fmt.Sprintf("member name %q: %s", name, names.Login.Requirement()))
	}
	if u, err := url.Parse(peer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errUsage(c, fmt.Sprintf("peer URL %q: want http://HOST:PORT", peer))
	}
	return etcdRun(c, func(ctx context.Context, cl *clientv3.Client) error {
		initial, err := etcdstore.AddMember(ctx, cl, name, peer)
		if errors.Is(err, etcdstore.ErrUnsafeReconfig) {
			return exitCode(exitUnavailable, err)
		}
		if err != nil {
			return exitCode(exitFailure, err)
		}
		fmt.Fprintf(c.App.Writer, "member %s added; start it with:\n  octostore serve --node %s --cluster %s --cluster-state existing --etcd-dir ./%s.etcd\n",
			name, name, initial, name)
		return nil
	})
}

func memberRemove(c *cli.Context, args []string) error {
	name := args[0]
	return etcdRun(c, func(ctx context.Context, cl *clientv3.Client) error {
		if err := etcdstore.RemoveMember(ctx, cl, name); err != nil {
			switch {
			case errors.Is(err, etcdstore.ErrNoSuchMember):
				return exitCode(exitNotFound, err)
			case errors.Is(err, etcdstore.ErrUnsafeReconfig):
				return exitCode(exitUnavailable, err) // retry later
			}
			return exitCode(exitFailure, err)
		}
		fmt.Fprintf(c.App.Writer, "member %s removed\n", name)
		return nil
	})
}

// restoreCommand is `octostore cluster restore`: a member data directory
// from an etcd snapshot (`octostore backup --etcd-endpoints`), one per
// node of the new cluster (docs/operations.md "Backup and restore in
// cluster mode").
func restoreCommand() *cli.Command {
	c := leaf("restore", "make a new etcd member directory from a snapshot (run once per node, then serve with it)", "SNAPSHOT", []cli.Flag{
		&cli.StringFlag{Name: "node", Usage: "cluster mode: this node's name (its name in --cluster)", EnvVars: []string{"OCTOSTORE_NODE"}},
		&cli.StringFlag{Name: "cluster", Usage: `every member's peer URL, "n1=http://10.0.0.1:2380,n2=…" (the same on every node)`, EnvVars: []string{"OCTOSTORE_CLUSTER"}},
		&cli.StringFlag{Name: "etcd-dir", Usage: "the embedded etcd member's data directory (default ./NODE.etcd)", EnvVars: []string{"OCTOSTORE_ETCD_DIR"}},
	}, restoreAction)
	c.UsageText = "octostore cluster restore --node n1 --cluster n1=URL,n2=URL,n3=URL [--etcd-dir ./n1.etcd] SNAPSHOT"
	return c
}

func restoreAction(c *cli.Context, args []string) error {
	node, peers := c.String("node"), c.String("cluster")
	if node == "" || peers == "" {
		return errUsage(c, "--node NAME and --cluster n1=URL,… are required")
	}
	peer, err := peerURL(peers, node)
	if err != nil {
		return errUsage(c, err.Error())
	}
	dir := c.String("etcd-dir")
	if dir == "" {
		dir = "./" + node + ".etcd"
	}
	if err := etcdstore.Restore(etcdstore.RestoreConfig{Snapshot: args[0], Name: node, PeerURL: peer,
		InitialCluster: peers, Dir: dir}); err != nil {
		return exitCode(exitFailure, err)
	}
	fmt.Fprintf(c.App.Writer, "restored %s into %s; start it with:\n  octostore serve --node %s --cluster %s --etcd-dir %s\n",
		args[0], dir, node, peers, dir)
	return nil
}

// etcdBackup is `octostore backup --etcd-endpoints URL OUT`.
func etcdBackup(c *cli.Context, out string) error {
	eps := splitList(c.String("etcd-endpoints"))
	if len(eps) == 0 {
		return errUsage(c, "--etcd-endpoints URL is required")
	}
	cl, err := etcdstore.Connect(c.Context, etcdstore.ConnectConfig{Endpoints: eps})
	if err != nil {
		return exitCode(exitUnavailable, err)
	}
	defer cl.Close()
	info, err := etcdstore.Snapshot(c.Context, cl, out)
	if err != nil {
		return exitCode(exitFailure, err)
	}
	if c.Bool("json") {
		b, err := json.Marshal(info)
		if err != nil {
			return exitCode(exitFailure, err)
		}
		fmt.Fprintln(c.App.Writer, string(b))
		return nil
	}
	fmt.Fprintf(c.App.Writer, "etcd snapshot written to %s: %d bytes, revision %d, %d keys, hash %08x, took %s\n",
		info.Path, info.Bytes, info.Revision, info.TotalKeys, info.Hash, info.Took.Round(time.Millisecond))
	return nil
}
