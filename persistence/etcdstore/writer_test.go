package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/persistence"
)

var t0 = time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)

func lockAt(name string, token uint64) actors.PutLock {
	return actors.PutLock{Lock: actors.LockRecord{Name: name, Holder: "alice", LeaseID: "l", Token: token,
		ExpiresAt: t0.Add(time.Hour), AcquiredAt: t0}}
}

// holdWriter blocks the writer's next transaction until the returned
// release is called; entered is closed once it is blocked.
func holdWriter(s *Store) (entered <-chan struct{}, release func()) {
	in, gate := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s.SetFaultHook(func() error {
		once.Do(func() { close(in); <-gate })
		return nil
	})
	return in, func() { close(gate) }
}

// batchSizes records OnBatch calls.
type batchSizes struct {
	mu    sync.Mutex
	sizes []int
	errs  []error
}

func (b *batchSizes) hook(n int, _ time.Duration, err error) {
	b.mu.Lock()
	b.sizes = append(b.sizes, n)
	b.errs = append(b.errs, err)
	b.mu.Unlock()
}

// A deposed leader commits nothing: once the fence's session is revoked,
// the next transaction fails its guard, the write fails with ErrNotLeader
// (an ErrUnavailable), nothing of it is in etcd, the store calls OnLost
// once and refuses every later write.
func TestGuardRefusesDeposedLeader(t *testing.T) {
	c := startCluster(t, 1, nil)[0].Client()
	var lost atomic.Int32
	var lostErr atomic.Pointer[error]
	s, lease := openTestStore(t, c, Options{OnLost: func(err error) { lost.Add(1); lostErr.Store(&err) }})
	if err := s.Apply(lockAt("before", 1)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Revoke(ctx, lease); err != nil { // the session ends: the election key goes with it
		t.Fatal(err)
	}
	err := s.Apply(lockAt("after", 2))
	if !errors.Is(err, ErrNotLeader) || !errors.Is(err, actors.ErrUnavailable) {
		t.Fatalf("write after the term: %v, want ErrNotLeader and ErrUnavailable", err)
	}
	if got := rawGet(t, c, s.Reader.ks.lock("after")); got != nil {
		t.Fatalf("a deposed leader's write is in etcd: %s", got)
	}
	if err := s.Apply(lockAt("later", 3)); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a later write: %v, want ErrNotLeader", err)
	}
	if got := rawGet(t, c, s.Reader.ks.lock("later")); got != nil {
		t.Fatalf("a deposed leader's later write is in etcd: %s", got)
	}
	if n := lost.Load(); n != 1 {
		t.Fatalf("OnLost called %d times, want 1", n)
	}
	if !errors.Is(*lostErr.Load(), ErrNotLeader) || !errors.Is(s.Lost(), ErrNotLeader) {
		t.Fatalf("lost with %v / %v", *lostErr.Load(), s.Lost())
	}
	if s.Healthy() {
		t.Fatal("a deposed store reports healthy")
	}
	if _, ok, err := s.LoadLock("before"); err != nil || !ok {
		t.Fatalf("the write before the revoke: %v %v", ok, err)
	}
}

// The fence's Done channel fails writes at once, before any transaction.
func TestFenceDoneFailsFast(t *testing.T) {
	c := startCluster(t, 1, nil)[0].Client()
	fence, _ := testFence(t, c, "")
	done := make(chan struct{})
	fence.Done = done
	s, err := Open(context.Background(), c, fence, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Apply(lockAt("a", 1)); err != nil {
		t.Fatal(err)
	}
	close(done)
	var sent atomic.Int32
	s.SetFaultHook(func() error { sent.Add(1); return nil })
	if err := s.Apply(lockAt("b", 2)); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("write after Done: %v, want ErrNotLeader", err)
	}
	if sent.Load() != 0 {
		t.Fatal("a transaction was sent after the term ended")
	}
}

// Writes queued while a transaction commits go together in the next one;
// writes of one key merge (etcd refuses a Txn that writes a key twice) and
// the last one wins; callbacks run in enqueue order.
func TestSameKeyWritesMergeLastWins(t *testing.T) {
	c := startCluster(t, 1, nil)[0].Client()
	var batches batchSizes
	s, _ := openTestStore(t, c, Options{OnBatch: batches.hook})
	entered, release := holdWriter(s)
	var order []uint64
	var mu sync.Mutex
	record := func(seq *uint64) func(error) {
		return func(err error) {
			if err != nil {
				t.Errorf("write %d: %v", *seq, err)
			}
			mu.Lock()
			order = append(order, *seq)
			mu.Unlock()
		}
	}
	first := new(uint64)
	var err error
	if *first, err = s.Enqueue(lockAt("x", 1), record(first)); err != nil {
		t.Fatal(err)
	}
	<-entered // the first transaction is held: the rest queue behind it
	const n = 50
	seqs := make([]*uint64, n)
	for i := range n {
		seqs[i] = new(uint64)
		// Two keys, each written many times, plus a delete/put pair.
		if *seqs[i], err = s.Enqueue(lockAt(fmt.Sprintf("k%d", i%2), uint64(i+10)), record(seqs[i])); err != nil {
			t.Fatal(err)
		}
	}
	flagA := actors.FlagRecord{Owner: "alice", Name: "f", Enabled: true, Percentage: actors.NoPercentage, CreatedAt: t0, UpdatedAt: t0}
	var last *uint64
	for _, m := range []actors.Mutation{actors.PutFlag{Flag: flagA}, actors.RemoveFlag{Owner: "alice", Name: "f"}} {
		last = new(uint64)
		if *last, err = s.Enqueue(m, record(last)); err != nil {
			t.Fatal(err)
		}
	}
	release()
	s.WaitResolved(*last)
	if t.Failed() {
		return
	}
	for i := 1; i < len(order); i++ {
		if order[i] <= order[i-1] {
			t.Fatalf("callbacks out of order: %v", order)
		}
	}
	for k, want := range map[string]uint64{"k0": n - 2 + 10, "k1": n - 1 + 10} {
		got, ok, err := s.LoadLock(k)
		if err != nil || !ok || got.Token != want {
			t.Fatalf("%s: token %d (%v %v), want %d: the last write must win", k, got.Token, ok, err, want)
		}
	}
	if _, ok, _ := s.LoadFlag("alice", "f"); ok {
		t.Fatal("flag put then removed in one transaction exists")
	}
	batches.mu.Lock()
	defer batches.mu.Unlock()
	if len(batches.sizes) != 2 || batches.sizes[1] != n+2 {
		t.Fatalf("batches %v, want [1 %d]: the queued writes should commit in one transaction", batches.sizes, n+2)
	}
}

// A transaction carries at most MaxTxnOps writes; a member whose
// --max-txn-ops is that cap accepts every one of them.
func TestBatchCapIsMaxTxnOps(t *testing.T) {
	const cap = 8
	c := startCluster(t, 1, func(mc *MemberConfig) { mc.MaxTxnOps = cap })[0].Client()
	var batches batchSizes
	s, _ := openTestStore(t, c, Options{MaxTxnOps: cap, OnBatch: batches.hook})
	entered, release := holdWriter(s)
	if _, err := s.Enqueue(lockAt("first", 1), nil); err != nil {
		t.Fatal(err)
	}
	<-entered
	const n = 30
	var failed atomic.Int32
	var last uint64
	for i := range n {
		seq, err := s.Enqueue(lockAt(fmt.Sprintf("l%02d", i), 1), func(err error) {
			if err != nil {
				failed.Add(1)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		last = seq
	}
	// A mutation of more parts than a transaction holds (here a static
	// token sync of 20 new users, 4 writes each) is split between
	// transactions at part boundaries, and resolves once, after its last.
	static := map[[32]byte]string{}
	for i := range 20 {
		static[persistence.HashToken(fmt.Sprintf("tok%d", i))] = fmt.Sprintf("user%02d", i)
	}
	limitsDone := make(chan error, 1)
	if _, err := s.Enqueue(persistence.SyncStaticTokens{Tokens: static, Now: t0}, func(err error) { limitsDone <- err }); err != nil {
		t.Fatal(err)
	}
	release()
	if err := <-limitsDone; err != nil {
		t.Fatalf("sync of 20 static tokens: %v", err)
	}
	s.WaitResolved(last)
	if failed.Load() != 0 {
		t.Fatalf("%d writes failed", failed.Load())
	}
	for i := range n {
		if _, ok, err := s.LoadLock(fmt.Sprintf("l%02d", i)); !ok || err != nil {
			t.Fatalf("lock l%02d: %v %v", i, ok, err)
		}
	}
	for h, login := range static {
		p, ok, err := s.LookupToken(h)
		if !ok || err != nil || p.Login != login || p.Source != persistence.SourceStatic {
			t.Fatalf("static token of %s: %+v %v %v", login, p, ok, err)
		}
	}
	batches.mu.Lock()
	defer batches.mu.Unlock()
	total := 0
	for i, sz := range batches.sizes {
		if sz > cap {
			t.Fatalf("transaction %d carried %d writes, cap %d (sizes %v)", i, sz, cap, batches.sizes)
		}
		if batches.errs[i] != nil {
			t.Fatalf("transaction %d: %v", i, batches.errs[i])
		}
		total += sz
	}
	if total != 1+n+1 {
		t.Fatalf("resolved %d writes, want %d", total, 1+n+1)
	}
}

// A transaction etcd refuses before proposing it (here: more ops than the
// member's --max-txn-ops) fails its writes with ErrUnavailable but does not
// end the term: it certainly did not commit.
func TestRefusedTxnFailsWritesNotTerm(t *testing.T) {
	c := startCluster(t, 1, func(mc *MemberConfig) { mc.MaxTxnOps = 4 })[0].Client()
	s, _ := openTestStore(t, c, Options{MaxTxnOps: 16})
	entered, release := holdWriter(s)
	if _, err := s.Enqueue(lockAt("first", 1), nil); err != nil {
		t.Fatal(err)
	}
	<-entered
	errs := make(chan error, 10)
	for i := range 10 {
		if _, err := s.Enqueue(lockAt(fmt.Sprintf("x%d", i), 1), func(err error) { errs <- err }); err != nil {
			t.Fatal(err)
		}
	}
	release()
	for range 10 {
		if err := <-errs; !errors.Is(err, actors.ErrUnavailable) || errors.Is(err, ErrNotLeader) {
			t.Fatalf("write in a refused transaction: %v, want ErrUnavailable (not ErrNotLeader)", err)
		}
	}
	if s.Lost() != nil {
		t.Fatalf("a refused transaction ended the term: %v", s.Lost())
	}
	if err := s.Apply(lockAt("alone", 1)); err != nil {
		t.Fatalf("a write after the refused transaction: %v", err)
	}
}

// A guarded write whose guard is no longer valid fails alone: the other
// writes of its transaction commit.
func TestGuardSkipsOnlyItsWrite(t *testing.T) {
	c := startCluster(t, 1, nil)[0].Client()
	s, _ := openTestStore(t, c, Options{})
	var failed atomic.Uint64
	failed.Store(1)
	skipped := make(chan error, 1)
	if _, err := s.EnqueueGuarded(lockAt("skipped", 1), actors.Guard{Failed: &failed, Gen: 1}, func(err error) { skipped <- err }); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(lockAt("kept", 1)); err != nil {
		t.Fatal(err)
	}
	if err := <-skipped; !errors.Is(err, actors.ErrUnavailable) {
		t.Fatalf("skipped write: %v", err)
	}
	if _, ok, _ := s.LoadLock("skipped"); ok {
		t.Fatal("a write whose guard failed was applied")
	}
	if _, ok, _ := s.LoadLock("kept"); !ok {
		t.Fatal("the unguarded write was not applied")
	}
}

// Deleting a config key and re-creating it in one batch: the re-created
// version's put falls in the range the delete removes, which etcd cannot
// take in one transaction; the writer splits and both apply in order.
func TestDeleteThenRecreateConfigInOneBatch(t *testing.T) {
	c := startCluster(t, 1, nil)[0].Client()
	var batches batchSizes
	s, _ := openTestStore(t, c, Options{OnBatch: batches.hook})
	v1 := actors.ConfigRecord{Owner: "alice", Key: "db", Version: 1, Value: []byte(`{"a":1}`), CreatedAt: t0, UpdatedAt: t0}
	if err := s.Apply(actors.PutConfig{Config: v1, Keep: 5}); err != nil {
		t.Fatal(err)
	}
	entered, release := holdWriter(s)
	if _, err := s.Enqueue(lockAt("hold", 1), nil); err != nil {
		t.Fatal(err)
	}
	<-entered
	errs := make(chan error, 2)
	v3 := actors.ConfigRecord{Owner: "alice", Key: "db", Version: 3, Value: []byte(` [ 3 ] `), CreatedAt: t0.Add(time.Hour), UpdatedAt: t0.Add(time.Hour)}
	for _, m := range []actors.Mutation{
		actors.RemoveConfig{Owner: "alice", Key: "db", Version: 2, At: t0.Add(time.Minute)},
		actors.PutConfig{Config: v3, Keep: 5},
	} {
		if _, err := s.Enqueue(m, func(err error) { errs <- err }); err != nil {
			t.Fatal(err)
		}
	}
	release()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	got, ok, err := s.LoadConfig("alice", "db")
	if err != nil || !ok || got.Version != 3 || got.Deleted || string(got.Value) != ` [ 3 ] ` {
		t.Fatalf("re-created key: %+v %v %v", got, ok, err)
	}
	hist, _, _, err := s.ConfigHistory(t.Context(), "alice", "db", 0, 1000)
	if err != nil || len(hist) != 1 || hist[0].Version != 3 {
		t.Fatalf("history of the re-created key: %+v %v (the delete must drop version 1)", hist, err)
	}
	batches.mu.Lock()
	defer batches.mu.Unlock()
	if len(batches.sizes) < 3 {
		t.Fatalf("batches %v: the delete and the re-creation cannot share a transaction", batches.sizes)
	}
}

// A write queued before Close commits; Enqueue after Close is refused.
func TestCloseDrainsQueue(t *testing.T) {
	c := startCluster(t, 1, nil)[0].Client()
	fence, _ := testFence(t, c, "")
	s, err := Open(context.Background(), c, fence, Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	if _, err := s.Enqueue(lockAt("queued", 7), func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(lockAt("late", 1), nil); !errors.Is(err, actors.ErrClosed) {
		t.Fatalf("enqueue after close: %v", err)
	}
	if r, ok, _ := NewReader(c, Options{}).LoadLock("queued"); !ok || r.Token != 7 {
		t.Fatalf("queued write after close: %+v %v", r, ok)
	}
}
