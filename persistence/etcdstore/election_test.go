package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
)

// waitStatus waits until cond holds for e's status, or fails after d.
func waitStatus(t *testing.T, e *Elector, d time.Duration, what string, cond func(Status) bool) Status {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		ch := e.Changed()
		if st := e.Status(); cond(st) {
			return st
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("%s: not within %v (status %+v)", what, d, e.Status())
		}
	}
}

type electedNode struct {
	e        *Elector
	elected  chan *Term
	deposed  chan *Term
	name     string
	memberIx int
}

func startElectors(t *testing.T, members []*Member, ttl time.Duration) []*electedNode {
	t.Helper()
	nodes := make([]*electedNode, len(members))
	for i, m := range members {
		n := &electedNode{name: fmt.Sprintf("n%d", i+1), memberIx: i,
			elected: make(chan *Term, 4), deposed: make(chan *Term, 4)}
		e, err := NewElector(ElectionConfig{
			Client: m.Client(), Name: n.name, APIURL: fmt.Sprintf("http://127.0.0.1:%d", 8000+i), TTL: ttl,
			OnElected: func(t *Term) { n.elected <- t },
			OnDeposed: func(t *Term) { n.deposed <- t },
		})
		if err != nil {
			t.Fatal(err)
		}
		n.e = e
		nodes[i] = n
		t.Cleanup(func() { e.Close() })
	}
	return nodes
}

// Three nodes on three members: exactly one leads, every node learns who
// (name and API URL) and since when; when the leader stands down another
// wins, the old term's fence commits nothing, and the new term's does.
func TestElectionOneLeaderThenFailover(t *testing.T) {
	members := startCluster(t, 3, nil)
	nodes := startElectors(t, members, time.Second)

	leader, term := awaitTerm(t, nodes, "no leader elected")
	for _, n := range nodes {
		st := waitStatus(t, n.e, 10*time.Second, n.name+" learns the leader", func(s Status) bool {
			return s.Known && s.Leader.Name == leader.name && !s.Leader.Since.IsZero()
		})
		if want := fmt.Sprintf("http://127.0.0.1:%d", 8000+leader.memberIx); st.Leader.APIURL != want {
			t.Fatalf("%s: leader API URL %q, want %q", n.name, st.Leader.APIURL, want)
		}
		if n == leader != st.IsLeader() {
			t.Fatalf("%s: IsLeader %v", n.name, st.IsLeader())
		}
	}
	if !term.Fresh() {
		t.Fatal("a new term is not fresh")
	}

	c := members[leader.memberIx].Client()
	old, err := Open(context.Background(), c, term.Fence(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := old.Apply(lockAt("during", 1)); err != nil {
		t.Fatalf("write during the term: %v", err)
	}

	leader.e.Resign()
	select {
	case <-term.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("resigned term did not end")
	}
	if !errors.Is(term.Err(), ErrResigned) || term.Fresh() {
		t.Fatalf("ended term: err %v fresh %v", term.Err(), term.Fresh())
	}
	select {
	case <-leader.deposed:
	case <-time.After(5 * time.Second):
		t.Fatal("OnDeposed not called")
	}

	// The next leader is one of the others (they were queued first).
	next, nextTerm := awaitTerm(t, nodes, "no new leader after the resignation")
	if next == leader {
		t.Fatalf("%s won again ahead of the nodes already waiting", leader.name)
	}
	if nextTerm.Key == term.Key {
		t.Fatal("the new term reuses the old election key")
	}

	// A stale fence, used by hand (its Done is ignored here), commits
	// nothing: the guard is the protection, not the node's belief.
	stale, err := Open(context.Background(), c, Fence{Key: term.Key, Rev: term.Rev}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer stale.Close()
	if err := stale.Apply(lockAt("stale", 2)); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("write under the old term: %v, want ErrNotLeader", err)
	}
	if err := old.Apply(lockAt("stale", 3)); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("write of the old term's store: %v, want ErrNotLeader", err)
	}
	if got := rawGet(t, c, old.Reader.ks.lock("stale")); got != nil {
		t.Fatalf("a deposed term's write is in etcd: %s", got)
	}
	fresh, err := Open(context.Background(), members[next.memberIx].Client(), nextTerm.Fence(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if err := fresh.Apply(lockAt("after", 4)); err != nil {
		t.Fatalf("write of the new leader: %v", err)
	}
	if r, ok, err := fresh.LoadLock("during"); !ok || err != nil || r.Token != 1 {
		t.Fatalf("the new leader reads the old term's write: %+v %v %v", r, ok, err)
	}
}

// awaitTerm waits for the first term any of nodes wins.
func awaitTerm(t *testing.T, nodes []*electedNode, failure string) (*electedNode, *Term) {
	t.Helper()
	var who *electedNode
	select {
	case term := <-firstElected(nodes, &who):
		return who, term
	case <-time.After(20 * time.Second):
		t.Fatal(failure)
	}
	return nil, nil
}

// firstElected returns a channel that yields the first term won by any of
// nodes, and sets *who to its node.
func firstElected(nodes []*electedNode, who **electedNode) <-chan *Term {
	out := make(chan *Term, 1)
	stop := make(chan struct{})
	for _, n := range nodes {
		go func() {
			select {
			case t := <-n.elected:
				select {
				case <-stop:
					n.elected <- t // not the first: put it back
				default:
					close(stop)
					*who = n
					out <- t
				}
			case <-stop:
			}
		}()
	}
	return out
}

// Revoking the leader's session (what etcd does when its lease expires)
// ends the term at once: the key's deletion is watched, the writer's fence
// fails fast, Fresh turns false, and a follower takes over.
func TestRevokedSessionEndsTermAtOnce(t *testing.T) {
	members := startCluster(t, 3, nil)
	nodes := startElectors(t, members, time.Second)
	leader, term := awaitTerm(t, nodes, "no leader elected")
	other := members[(leader.memberIx+1)%3].Client()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := other.Revoke(ctx, term.Lease); err != nil {
		t.Fatal(err)
	}
	select {
	case <-term.Done():
	case <-time.After(3 * time.Second): // well under the TTL's worth of renewals
		t.Fatal("the term outlived its revoked session")
	}
	if !errors.Is(term.Err(), ErrSessionLost) {
		t.Fatalf("term ended with %v, want ErrSessionLost", term.Err())
	}
	if term.Fresh() {
		t.Fatal("a lost term is fresh")
	}
	s, err := Open(context.Background(), members[leader.memberIx].Client(), term.Fence(), Options{})
	if err == nil {
		defer s.Close()
		if err := s.Apply(lockAt("x", 1)); !errors.Is(err, ErrNotLeader) || !errors.Is(err, actors.ErrUnavailable) {
			t.Fatalf("write after the session was revoked: %v", err)
		}
	} else if !errors.Is(err, ErrNotLeader) {
		t.Fatalf("open for a lost term: %v", err)
	}
	awaitTerm(t, nodes, "no leader after the revocation")
}

// Freshness is a function of now: fresh until the lease's certain end
// minus a third of the TTL, never after the term ended. A process paused
// past that point wakes up stale whatever it last heard.
func TestTermFreshAt(t *testing.T) {
	start := time.Now()
	term := newTerm("k", 7, 1, 3*time.Second, start, start.Add(3*time.Second))
	for _, c := range []struct {
		after time.Duration
		want  bool
	}{
		{0, true},
		{1999 * time.Millisecond, true},
		{2 * time.Second, false}, // 3 s lease, 1 s margin
		{time.Hour, false},       // a long pause
	} {
		if got := term.FreshAt(start.Add(c.after)); got != c.want {
			t.Errorf("fresh %v after start: %v, want %v", c.after, got, c.want)
		}
	}
	// A keepalive sent 1 s in, answered with the full TTL, extends it; an
	// older answer arriving late does not shorten it.
	term.renewed(start.Add(time.Second), 3*time.Second)
	term.renewed(start.Add(500*time.Millisecond), 3*time.Second)
	if !term.FreshAt(start.Add(2999*time.Millisecond)) || term.FreshAt(start.Add(3*time.Second)) {
		t.Fatalf("after a renewal at 1 s: alive until %v", term.AliveUntil().Sub(start))
	}
	term.End(nil)
	if term.FreshAt(start) || !errors.Is(term.Err(), ErrResigned) {
		t.Fatalf("ended term: fresh %v err %v", term.FreshAt(start), term.Err())
	}
}

// A leader cut off from the etcd majority (two of three members stopped)
// stops leading once its session can no longer be known alive — within
// TTL - TTL/3 of its last renewal, without waiting for any error — and
// its writes fail.
func TestQuorumLossEndsTerm(t *testing.T) {
	members := startCluster(t, 3, nil)
	nodes := startElectors(t, members[:1], time.Second)
	var term *Term
	select {
	case term = <-nodes[0].elected:
	case <-time.After(20 * time.Second):
		t.Fatal("no leader elected")
	}
	s, err := Open(context.Background(), members[0].Client(), term.Fence(), Options{TxnTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Apply(lockAt("before", 1)); err != nil {
		t.Fatal(err)
	}
	closeMembers(members[1:])
	stopped := time.Now()
	select {
	case <-term.Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("the term outlived the quorum (alive until %v)", term.AliveUntil())
	}
	if !errors.Is(term.Err(), ErrSessionStale) && !errors.Is(term.Err(), ErrSessionLost) {
		t.Fatalf("term ended with %v", term.Err())
	}
	if term.Fresh() {
		t.Fatal("a term without quorum is fresh")
	}
	t.Logf("term ended %v after the majority stopped: %v", time.Since(stopped).Round(time.Millisecond), term.Err())
	if err := s.Apply(lockAt("after", 2)); !errors.Is(err, actors.ErrUnavailable) {
		t.Fatalf("write without quorum: %v", err)
	}
}

// Close ends a term whose OnElected blocks until the term ends, resigns the
// election key (a successor need not wait for the lease) and revokes the
// session.
func TestCloseEndsBlockedTermAndResigns(t *testing.T) {
	m := startCluster(t, 1, nil)[0]
	won := make(chan *Term, 1)
	e, err := NewElector(ElectionConfig{Client: m.Client(), Name: "solo", TTL: 5 * time.Second,
		OnElected: func(t *Term) {
			won <- t
			<-t.Done()
		}})
	if err != nil {
		t.Fatal(err)
	}
	var term *Term
	select {
	case term = <-won:
	case <-time.After(20 * time.Second):
		t.Fatal("no leader")
	}
	closed := make(chan struct{})
	go func() {
		e.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs while OnElected waits for the term")
	}
	if !errors.Is(term.Err(), ErrResigned) {
		t.Fatalf("term ended with %v", term.Err())
	}
	if got := rawGet(t, m.Client(), term.Key); got != nil {
		t.Fatalf("election key %s still there after Close: %s", term.Key, got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if ttl, err := m.Client().TimeToLive(ctx, term.Lease); err != nil || ttl.TTL > 0 {
		t.Fatalf("session lease after Close: ttl %v, err %v (want revoked)", ttl.TTL, err)
	}
}
