package etcdstore

import (
	"context"
	"testing"
	"time"
)

// One embedded member starts on loopback, serves its in-process client and
// an external client by endpoints, and runs with octostore's settings.
func TestMemberServesInProcessAndByEndpoints(t *testing.T) {
	m := startCluster(t, 1, nil)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := m.Client().Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	ext, err := Connect(ctx, ConnectConfig{Endpoints: m.ClientURLs()})
	if err != nil {
		t.Fatal(err)
	}
	defer ext.Close()
	if got := rawGet(t, ext, "k"); string(got) != "v" {
		t.Fatalf("external client read %q, want v", got)
	}
	if m.MaxTxnOps() != DefaultEmbeddedMaxTxnOps {
		t.Fatalf("max txn ops %d, want %d", m.MaxTxnOps(), DefaultEmbeddedMaxTxnOps)
	}
	if !m.IsRaftLeader() {
		t.Fatal("a member alone is not its Raft leader")
	}
}

// A member added later (MemberAdd, then state existing) joins and sees the
// data written before it joined; a member's name must be in the cluster.
func TestMemberAddedLaterJoins(t *testing.T) {
	first := startCluster(t, 1, nil)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := first.Client().Put(ctx, "before", "1"); err != nil {
		t.Fatal(err)
	}
	peer := freeURL(t)
	cluster, err := AddMember(ctx, first.Client(), "late", peer)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testMemberConfig(t, "late", peer, cluster)
	cfg.Existing = true
	late, err := StartMember(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeMembers([]*Member{late}) })
	if got := rawGet(t, late.Client(), "before"); string(got) != "1" {
		t.Fatalf("late member read %q, want 1", got)
	}
	if err := RemoveMember(ctx, first.Client(), "nobody"); err == nil {
		t.Fatal("removing an unknown member succeeded")
	}

	bad := testMemberConfig(t, "stranger", freeURL(t), cluster)
	if _, err := StartMember(ctx, bad); err == nil {
		t.Fatal("a member not in its initial cluster started")
	}
}

// MoveRaftLeaderAway hands etcd's Raft leadership to another live member
// (not to a dead one); on a member that does not hold it, it does nothing.
func TestMoveRaftLeaderAway(t *testing.T) {
	ms := startCluster(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var leader *Member
	for leader == nil {
		for _, m := range ms {
			if m.IsRaftLeader() {
				leader = m
			}
		}
		if leader == nil {
			if ctx.Err() != nil {
				t.Fatal("no Raft leader")
			}
			time.Sleep(10 * time.Millisecond) // a Raft election in progress
		}
	}
	for _, m := range ms {
		if m != leader {
			if moved, err := m.MoveRaftLeaderAway(ctx); moved || err != nil {
				t.Fatalf("a follower moved the leadership: %v %v", moved, err)
			}
		}
	}
	// One member dead: the leadership goes to the live one, never to it
	// (whichever of the two comes first in the member list).
	var dead, live *Member
	for _, m := range ms {
		if m != leader && dead == nil {
			dead = m
		} else if m != leader {
			live = m
		}
	}
	dead.Close()
	if moved, err := leader.MoveRaftLeaderAway(ctx); !moved || err != nil {
		t.Fatalf("MoveRaftLeaderAway: %v %v", moved, err)
	}
	if leader.IsRaftLeader() || !live.IsRaftLeader() {
		t.Fatalf("after the move: old leader leads %v, the live member leads %v", leader.IsRaftLeader(), live.IsRaftLeader())
	}
}
