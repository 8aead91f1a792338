package etcdstore

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/persistence"
)

// A snapshot of a running member, restored into a new data directory and
// started as a new one-member cluster, holds every record written before
// it (a lock with its token, a config version, a token); the restored
// directory refuses to be overwritten; neither the snapshot nor the
// restored directory is readable by others.
func TestSnapshotRestore(t *testing.T) {
	c := startCluster(t, 1, nil)[0].Client()
	s, _ := openTestStore(t, c, Options{})
	lock := actors.LockRecord{Name: "deploy", Holder: "alice", LeaseID: "l-1", Token: 41,
		ExpiresAt: time.UnixMilli(2_000_000_000_000).UTC(), AcquiredAt: time.UnixMilli(1_900_000_000_000).UTC()}
	cfg := actors.ConfigRecord{Owner: "alice", Key: "k", Value: []byte(`"v"`), Version: 3,
		CreatedAt: time.UnixMilli(1_900_000_000_000), UpdatedAt: time.UnixMilli(1_900_000_000_000)}
	for _, m := range []actors.Mutation{actors.PutLock{Lock: lock}, actors.PutConfig{Config: cfg, Keep: 10},
		persistence.IssueToken{Login: "alice", Hash: persistence.HashToken("tok"), Source: persistence.SourceCLI, Now: time.Now()}} {
		if err := s.Apply(m); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	snap := filepath.Join(dir, "backup.db")
	info, err := Snapshot(context.Background(), c, snap)
	if err != nil {
		t.Fatal(err)
	}
	if info.Bytes == 0 || info.Revision == 0 || info.TotalKeys == 0 {
		t.Fatalf("snapshot info %+v", info)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.part-*")); len(m) > 0 {
		t.Fatalf("temporary files left: %v", m)
	}

	peer := freeURL(t)
	rdir := filepath.Join(dir, "restored.etcd")
	if err := Restore(RestoreConfig{Snapshot: snap, Name: "r1", PeerURL: peer, InitialCluster: "r1=" + peer, Dir: rdir}); err != nil {
		t.Fatal(err)
	}
	if err := Restore(RestoreConfig{Snapshot: snap, Name: "r1", PeerURL: peer, InitialCluster: "r1=" + peer, Dir: rdir}); err == nil {
		t.Fatal("restore over an existing directory succeeded")
	}
	// Private at rest, as a single node's backup (issue 12): the snapshot
	// and the restored member's directory are their owner's only.
	for _, p := range []string{snap, rdir, filepath.Join(rdir, "member")} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if perm := st.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %04o: readable by others", p, perm)
		}
	}
	mc := testMemberConfig(t, "r1", peer, "r1="+peer)
	mc.Dir = rdir
	m, err := StartMember(context.Background(), mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	r := NewReader(m.Client(), Options{})
	if got, ok, err := r.LoadLock("deploy"); err != nil || !ok || got != lock {
		t.Fatalf("restored lock: %+v %v %v, want %+v", got, ok, err, lock)
	}
	if got, ok, err := r.LoadConfig("alice", "k"); err != nil || !ok || got.Version != 3 || string(got.Value) != `"v"` {
		t.Fatalf("restored config: %+v %v %v", got, ok, err)
	}
	if p, ok, err := r.LookupToken(persistence.HashToken("tok")); err != nil || !ok || p.Login != "alice" {
		t.Fatalf("restored token: %+v %v %v", p, ok, err)
	}
}
