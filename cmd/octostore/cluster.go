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
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/octostore/octostore/persistence/etcdstore"
	"github.com/octostore/octostore/tools/client"
	"github.com/urfave/cli/v2"
)

func clusterCommand() *cli.Command {
	return groupCommand("cluster", "cluster mode: status, etcd members, restore",
		clientCommand("status", "show the node that answers, the leader and the members (GET /cluster)", "", clusterStatusAction),
		groupCommand("member", "list, add or remove etcd members (replacing a dead node)",
			&cli.Command{Name: "list", Usage: "list the etcd members", Flags: etcdFlags(), Action: memberList},
			&cli.Command{Name: "add", Usage: "add a member before starting it with --cluster-state existing", ArgsUsage: "NAME PEER_URL",
				Flags: etcdFlags(), Action: memberAdd},
			&cli.Command{Name: "remove", Usage: "remove a (dead) member", ArgsUsage: "NAME", Flags: etcdFlags(), Action: memberRemove},
		),
		restoreCommand(),
	)
}

func clusterStatusAction(c *cli.Context, args []string) error {
	return checkedRun(c, args, 0, "cluster status", func(cl *client.Client, ctx context.Context) (client.ClusterStatus, error) {
		return cl.Cluster(ctx)
	}, func(w io.Writer, st client.ClusterStatus) error {
		leader := st.Leader
		if leader == "" {
			leader = "(none)"
		} else if st.LeaderSince != nil {
			leader += " since " + st.LeaderSince.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "node %s, leader %s\n", st.Node, leader)
		rows := make([][]string, 0, len(st.Members))
		for _, m := range st.Members {
			h := "no"
			if m.Healthy {
				h = "yes"
			}
			role := ""
			if m.Name == st.Leader {
				role = "leader"
			}
			rows = append(rows, []string{m.Name, role, h, m.APIURL, m.PeerURL})
		}
		return printTable(w, []string{"NAME", "ROLE", "HEALTHY", "API URL", "PEER URL"}, rows)
	})
}

// etcdFlags are the flags of the commands that talk to etcd directly.
func etcdFlags(extra ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "etcd-endpoints", Value: defaultEtcdClientURL, Usage: "etcd client URLs, comma-separated (a node's --etcd-client-url, or the external etcd)", EnvVars: []string{"OCTOSTORE_ETCD_ENDPOINTS"}},
		&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "bound on the whole operation"},
	}, extra...)
}

// etcdRun connects to --etcd-endpoints and runs fn; connection failures
// exit 6 (unavailable).
func etcdRun(c *cli.Context, fn func(ctx context.Context, cl *clientv3.Client) error) error {
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	eps := splitList(c.String("etcd-endpoints"))
	if len(eps) == 0 {
		return exitCode(exitUsage, errors.New("--etcd-endpoints URL is required"))
	}
	cl, err := etcdstore.Connect(ctx, etcdstore.ConnectConfig{Endpoints: eps})
	if err != nil {
		return exitCode(exitUnavailable, err)
	}
	defer cl.Close()
	return fn(ctx, cl)
}

func memberList(c *cli.Context) error {
	if c.NArg() != 0 {
		return exitCode(exitUsage, errors.New("usage: octostore cluster member list [--etcd-endpoints URL]"))
	}
	return etcdRun(c, func(ctx context.Context, cl *clientv3.Client) error {
		ms, err := etcdstore.Members(ctx, cl, false)
		if err != nil {
			return exitCode(exitUnavailable, err)
		}
		rows := make([][]string, 0, len(ms))
		for _, m := range ms {
			name := m.Name
			if name == "" {
				name = "(not started)"
			}
			rows = append(rows, []string{fmt.Sprintf("%x", m.ID), name, strings.Join(m.PeerURLs, ","), strings.Join(m.ClientURLs, ",")})
		}
		return printTable(c.App.Writer, []string{"ID", "NAME", "PEER URLS", "CLIENT URLS"}, rows)
	})
}

func memberAdd(c *cli.Context) error {
	if c.NArg() != 2 {
		return exitCode(exitUsage, errors.New("usage: octostore cluster member add NAME PEER_URL"))
	}
	name, peer := c.Args().Get(0), c.Args().Get(1)
	return etcdRun(c, func(ctx context.Context, cl *clientv3.Client) error {
		initial, err := etcdstore.AddMember(ctx, cl, name, peer)
		if err != nil {
			return exitCode(exitFailure, err)
		}
		fmt.Fprintf(c.App.Writer, "member %s added; start it with:\n  octostore serve --node %s --cluster %s --cluster-state existing --etcd-dir ./%s.etcd\n",
			name, name, initial, name)
		return nil
	})
}

func memberRemove(c *cli.Context) error {
	if c.NArg() != 1 {
		return exitCode(exitUsage, errors.New("usage: octostore cluster member remove NAME"))
	}
	name := c.Args().First()
	return etcdRun(c, func(ctx context.Context, cl *clientv3.Client) error {
		if err := etcdstore.RemoveMember(ctx, cl, name); err != nil {
			if strings.Contains(err.Error(), "no such member") {
				return exitCode(exitNotFound, err)
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
	return &cli.Command{
		Name:      "restore",
		Usage:     "make a new etcd member directory from a snapshot (run once per node, then serve with it)",
		UsageText: "octostore cluster restore --node n1 --cluster n1=URL,n2=URL,n3=URL --etcd-dir ./n1.etcd SNAPSHOT",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "node", Usage: "the member's name (required)", EnvVars: []string{"OCTOSTORE_NODE"}},
			&cli.StringFlag{Name: "cluster", Usage: "every member of the new cluster: n1=URL,… (required)", EnvVars: []string{"OCTOSTORE_CLUSTER"}},
			&cli.StringFlag{Name: "etcd-dir", Usage: "the new data directory (must not exist; default ./NODE.etcd)", EnvVars: []string{"OCTOSTORE_ETCD_DIR"}},
		},
		Action: func(c *cli.Context) error {
			node, peers := c.String("node"), c.String("cluster")
			if c.NArg() != 1 || node == "" || peers == "" {
				return exitCode(exitUsage, errors.New("usage: octostore cluster restore --node NAME --cluster n1=URL,… [--etcd-dir DIR] SNAPSHOT"))
			}
			peer, err := peerURL(peers, node)
			if err != nil {
				return exitCode(exitUsage, err)
			}
			dir := c.String("etcd-dir")
			if dir == "" {
				dir = "./" + node + ".etcd"
			}
			if err := etcdstore.Restore(etcdstore.RestoreConfig{Snapshot: c.Args().First(), Name: node, PeerURL: peer,
				InitialCluster: peers, Dir: dir}); err != nil {
				return exitCode(exitFailure, err)
			}
			fmt.Fprintf(c.App.Writer, "restored %s into %s; start it with:\n  octostore serve --node %s --cluster %s --etcd-dir %s\n",
				c.Args().First(), dir, node, peers, dir)
			return nil
		},
	}
}

// etcdBackup is `octostore backup --etcd-endpoints URL OUT`.
func etcdBackup(c *cli.Context, out string) error {
	eps := splitList(c.String("etcd-endpoints"))
	if len(eps) == 0 {
		return exitCode(exitUsage, errors.New("--etcd-endpoints URL is required"))
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
		b, _ := json.Marshal(info)
		fmt.Fprintln(c.App.Writer, string(b))
		return nil
	}
	fmt.Fprintf(c.App.Writer, "etcd snapshot written to %s: %d bytes, revision %d, %d keys, hash %08x, took %s\n",
		info.Path, info.Bytes, info.Revision, info.TotalKeys, info.Hash, info.Took.Round(time.Millisecond))
	return nil
}
