package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/octostore/octostore/persistence"
	"github.com/urfave/cli/v2"
)

// `octostore backup --db PATH OUT`: a consistent online copy of the
// database (SQLite's backup API), safe while the server runs. Restore:
// docs/operations.md, "Backup and restore".
func backupCommand() *cli.Command {
	return &cli.Command{
		Name:      "backup",
		Usage:     "write a consistent copy of the database to OUT (safe while the server runs)",
		UsageText: "octostore backup --db PATH OUT\n   octostore backup --etcd-endpoints URL OUT   (cluster mode: an etcd snapshot)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "db", Value: "./octostore.db", Usage: "SQLite database file of the server", EnvVars: []string{"OCTOSTORE_DB", "DATABASE_URL"}},
			&cli.StringFlag{Name: "etcd-endpoints", Usage: "cluster mode: snapshot the etcd cluster at these client URLs instead (a node's --etcd-client-url)"},
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
		},
		Action: backupAction,
	}
}

func backupAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return exitCode(exitUsage, errors.New("usage: octostore backup --db PATH OUT (exactly one output file)"))
	}
	out := c.Args().First()
	if c.IsSet("etcd-endpoints") {
		return etcdBackup(c, out) // cluster.go
	}
	info, err := persistence.Backup(c.Context, c.String("db"), out)
	if err != nil {
		return exitCode(exitFailure, err)
	}
	if c.Bool("json") {
		b, _ := json.Marshal(info)
		fmt.Fprintln(c.App.Writer, string(b))
		return nil
	}
	fmt.Fprintf(c.App.Writer, "backup of %s written to %s: %d bytes, %d pages, schema version %d, %d locks, integrity ok, took %s\n",
		c.String("db"), info.Path, info.Bytes, info.Pages, info.SchemaVersion, info.Locks, info.Took.Round(1e6))
	return nil
}
