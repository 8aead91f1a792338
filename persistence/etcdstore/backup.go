package etcdstore

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
)

// SnapshotInfo describes a snapshot written by Snapshot.
type SnapshotInfo struct {
	Path      string        `json:"path"`
	Bytes     int64         `json:"bytes"`
	Revision  int64         `json:"revision"`   // the etcd revision it holds
	TotalKeys int           `json:"total_keys"` // keys in it (all of etcd, octostore's and others')
	Hash      uint32        `json:"hash"`
	Took      time.Duration `json:"took_ns"`
}

// Snapshot writes a consistent snapshot of the etcd cluster of c (one
// member's backend, etcd's Maintenance.Snapshot) to path: into a
// temporary file beside it, fsynced, checked (etcdutl's snapshot status:
// its integrity hash and contents), then renamed into place and the
// directory fsynced, so path never holds a partial snapshot.
func Snapshot(ctx context.Context, c *clientv3.Client, path string) (SnapshotInfo, error) {
	start := time.Now()
	info := SnapshotInfo{Path: path}
	rc, err := c.Snapshot(ctx)
	if err != nil {
		return info, fmt.Errorf("etcd snapshot: %w", err)
	}
	defer rc.Close()
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".part-*")
	if err != nil {
		return info, fmt.Errorf("etcd snapshot: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename: nothing
	if info.Bytes, err = io.Copy(f, rc); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return info, fmt.Errorf("etcd snapshot: write %s: %w", tmp, err)
	}
	st, err := snapshot.NewV3(warnLogger()).Status(tmp)
	if err != nil {
		return info, fmt.Errorf("etcd snapshot: check: %w", err)
	}
	info.Revision, info.TotalKeys, info.Hash = st.Revision, st.TotalKey, st.Hash
	if err := os.Rename(tmp, path); err != nil {
		return info, fmt.Errorf("etcd snapshot: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return info, fmt.Errorf("etcd snapshot: sync %s: %w", dir, err)
		}
	}
	info.Took = time.Since(start)
	return info, nil
}

// RestoreConfig restores one member's data directory from a snapshot.
type RestoreConfig struct {
	Snapshot string // the file Snapshot wrote
	// Name, PeerURL and InitialCluster are the member's --node, its entry
	// in --cluster, and --cluster: every member of the new cluster is
	// restored from the same snapshot with the same InitialCluster.
	Name, PeerURL, InitialCluster string
	Dir                           string // the new --etcd-dir; must not exist
}

// Restore makes a new member data directory from a snapshot (etcdutl's
// snapshot restore: the snapshot's keys, a new cluster identity and
// membership). Start each member on its directory afterwards; the data
// directory then wins over --cluster.
func Restore(rc RestoreConfig) error {
	if _, err := os.Stat(rc.Dir); err == nil {
		return fmt.Errorf("restore: %s exists; restore into a new directory", rc.Dir)
	}
	return snapshot.NewV3(warnLogger()).Restore(snapshot.RestoreConfig{
		SnapshotPath:        rc.Snapshot,
		Name:                rc.Name,
		OutputDataDir:       rc.Dir,
		PeerURLs:            []string{rc.PeerURL},
		InitialCluster:      rc.InitialCluster,
		InitialClusterToken: "octostore",
	})
}
