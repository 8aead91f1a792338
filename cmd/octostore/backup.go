package main

import (
	"encoding/json"
	"fmt"

	"github.com/octostore/octostore/persistence"
	"github.com/urfave/cli/v2"
)

// `octostore backup --db PATH OUT`: a consistent online copy of the
// database (SQLite's backup API), safe while the server runs. Restore:
// docs/operations.md, "Backup and restore". Flags may come before or after
// OUT (leafAction).
func backupCommand() *cli.Command {
	c := leaf("backup", "write a consistent copy of the database to OUT (safe while the server runs)", "OUT", []cli.Flag{
		&cli.StringFlag{Name: "db", Value: "./octostore.db", Usage: "SQLite database file of the server", EnvVars: []string{"OCTOSTORE_DB", "DATABASE_URL"}},
		etcdEndpointsFlag(""), // cluster mode: an etcd snapshot instead
		jsonFlag(),
	}, backupAction)
	c.UsageText = "octostore backup --db PATH OUT [--json]\n   octostore backup --etcd-endpoints URL OUT [--json]   (cluster mode: an etcd snapshot)"
	return c
}

// backupAction writes the copy; with --json it prints persistence.BackupInfo
// (etcdstore.SnapshotInfo with --etcd-endpoints) as one line of JSON
// (docs/operations.md names their fields).
func backupAction(c *cli.Context, args []string) error {
	if c.IsSet("etcd-endpoints") {
		return etcdBackup(c, args[0]) // cluster.go
	}
	db := dbPath(c.String("db"))
	info, err := persistence.Backup(c.Context, db, args[0])
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
	fmt.Fprintf(c.App.Writer, "backup of %s written to %s: %d bytes, %d pages, schema version %d, %d locks, integrity ok, took %s\n",
		db, info.Path, info.Bytes, info.Pages, info.SchemaVersion, info.Locks, info.Took.Round(1e6))
	return nil
}
