package etcdstore

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/persistence"
)

// Every node gets the same forwarding key, whichever asks first, and it
// stays the same.
func TestForwardKeyIsSharedAndStable(t *testing.T) {
	ms := startCluster(t, 3, nil)
	keys := make([][]byte, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := ForwardKey(t.Context(), m.Client(), "/fk/")
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if len(keys[0]) < 40 {
		t.Fatalf("forwarding key of %d bytes", len(keys[0]))
	}
	for i, k := range keys {
		if !bytes.Equal(k, keys[0]) {
			t.Fatalf("node %d got another forwarding key", i)
		}
	}
	again, err := ForwardKey(t.Context(), ms[1].Client(), "/fk/")
	if err != nil || !bytes.Equal(again, keys[0]) {
		t.Fatalf("asked again: %v, a different key: %v", err, !bytes.Equal(again, keys[0]))
	}
	other, err := ForwardKey(t.Context(), ms[1].Client(), "/other/")
	if err != nil || bytes.Equal(other, keys[0]) {
		t.Fatalf("another keyspace shares the key (%v)", err)
	}
}

// WatchTokens reports a flush once it watches, then each token issued,
// rotated or revoked by the leader's writer, by hash; and it ends with its
// context.
func TestWatchTokensReportsChanges(t *testing.T) {
	c := startCluster(t, 1, nil)[0].Client()
	s, _ := openTestStore(t, c, Options{Prefix: "/watch/"})
	got := make(chan *[32]byte, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		WatchTokens(ctx, c, "/watch/", func(h *[32]byte) { got <- h }, discardLogger())
	}()
	next := func(what string) *[32]byte {
		t.Helper()
		select {
		case h := <-got:
			return h
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not reported", what)
			return nil
		}
	}
	if h := next("the watch in place"); h != nil {
		t.Fatalf("first report %x, want a flush (nil)", *h)
	}
	a := persistence.HashToken("tok-a")
	if err := s.Apply(persistence.IssueToken{Login: "alice", Hash: a, Source: persistence.SourceCLI, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if h := next("issue"); h == nil || *h != a {
		t.Fatalf("issue reported %v", h)
	}
	raw, b, err := s.Rotate(a)
	if err != nil || raw == "" {
		t.Fatal(err)
	}
	seen := map[[32]byte]bool{}
	for range 2 {
		if h := next("rotate"); h != nil {
			seen[*h] = true
		}
	}
	if !seen[a] || !seen[b] {
		t.Fatalf("rotation reported %v, want the old and the new token", seen)
	}
	if err := s.Revoke(b); err != nil {
		t.Fatal(err)
	}
	if h := next("revoke"); h == nil || *h != b {
		t.Fatalf("revoke reported %v", h)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("WatchTokens did not end with its context")
	}
}
