package etcdstore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/persistence"
)

// reorderKV wraps a client so that, once armed, the first transaction
// reaches etcd only after the second one has been answered: the order in
// which etcd may receive two transactions in flight at once. first, if set,
// answers the first transaction instead of etcd (it is then never sent).
type reorderKV struct {
	clientv3.KV
	mu      sync.Mutex
	armed   bool
	calls   int
	gate    chan struct{} // closed when the second transaction has been answered (or by release, if manual)
	held    chan struct{} // closed when the first transaction is held
	second  chan struct{} // closed when the second transaction is sent
	manual  bool          // only release lets the first transaction go
	first   error
	results []txnResult // etcd's answers, in the order of the calls
}

func (k *reorderKV) arm() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.armed, k.calls = true, 0
	k.gate, k.held, k.second = make(chan struct{}), make(chan struct{}), make(chan struct{})
}

// release lets the held first transaction go (manual mode).
func (k *reorderKV) release() { close(k.gate) }

func (k *reorderKV) Txn(ctx context.Context) clientv3.Txn {
	return &reorderTxn{Txn: k.KV.Txn(ctx), kv: k}
}

func (k *reorderKV) answers() []txnResult {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]txnResult(nil), k.results...)
}

type reorderTxn struct {
	clientv3.Txn
	kv *reorderKV
}

func (t *reorderTxn) If(cs ...clientv3.Cmp) clientv3.Txn   { t.Txn = t.Txn.If(cs...); return t }
func (t *reorderTxn) Then(ops ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Then(ops...); return t }

func (t *reorderTxn) Commit() (*clientv3.TxnResponse, error) {
	k := t.kv
	k.mu.Lock()
	armed := k.armed
	k.calls++
	n := k.calls
	k.mu.Unlock()
	if armed && n == 2 {
		close(k.second)
	}
	if armed && n == 1 {
		close(k.held)
		select {
		case <-k.gate:
		case <-time.After(10 * time.Second): // the second never came: the test reports it
		}
		if k.first != nil {
			return nil, k.first
		}
	}
	resp, err := t.Txn.Commit()
	k.mu.Lock()
	if armed {
		k.results = append(k.results, txnResult{ok: err == nil && resp.Succeeded, err: err})
	}
	k.mu.Unlock()
	if armed && n == 2 && !k.manual {
		close(k.gate)
	}
	return resp, err
}

// openReorder opens a store on a one-member cluster through a reorderKV.
func openReorder(t *testing.T, opt Options) (*Store, *reorderKV, *clientv3.Client) {
	t.Helper()
	c := startCluster(t, 1, nil)[0].Client()
	kv := &reorderKV{KV: c}
	fence, _ := testFence(t, c, "")
	s, err := Open(context.Background(), kv, fence, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, kv, c
}

// Two transactions in flight commit in the order they were built even when
// etcd receives the second first: its chain guard requires the first one's
// effect, so etcd refuses it, and the writer sends it again once the first
// has committed. Both writes are acknowledged, in order, and the later one
// is what etcd holds. (Planted bug, once: without the chain compare the
// second commits first and the first then overwrites it: token 1.)
func TestTxnsInFlightCommitInOrder(t *testing.T) {
	s, kv, _ := openReorder(t, Options{TxnsInFlight: 2})
	kv.arm()
	var mu sync.Mutex
	var order []int
	done := make(chan error, 2)
	record := func(i int) func(error) {
		return func(err error) {
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			done <- err
		}
	}
	if _, err := s.Enqueue(lockAt("k", 1), record(1)); err != nil {
		t.Fatal(err)
	}
	<-kv.held // the first transaction is in flight, not yet at etcd
	if _, err := s.Enqueue(lockAt("k", 2), record(2)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(order) != 2 || order[0] != 1 || order[1] != 2 {
		t.Fatalf("callbacks ran in order %v, want [1 2]", order)
	}
	got, ok, err := s.LoadLock("k")
	if err != nil || !ok || got.Token != 2 {
		t.Fatalf("lock k: token %d (%v %v), want 2: the transaction built second must commit second", got.Token, ok, err)
	}
	ans := kv.answers()
	if len(ans) < 3 || ans[0].ok || ans[0].err != nil || !ans[1].ok || !ans[2].ok {
		t.Fatalf("etcd's answers %+v, want: the second refused (it came first), the first committed, the second sent again and committed", ans)
	}
	if s.Lost() != nil {
		t.Fatalf("the reorder ended the term: %v", s.Lost())
	}
}

// A transaction that fails fails the one in flight behind it: etcd refuses
// the second (its chain guard requires the first's effect), neither write
// is in etcd, both fail with ErrUnavailable but not ErrNotLeader (the
// refusal was definite), and the term goes on. (Planted bug, once: without
// the chain compare the second commits although the first failed.)
func TestFailedTxnFailsTheOneInFlightBehindIt(t *testing.T) {
	s, kv, c := openReorder(t, Options{TxnsInFlight: 2})
	kv.first = rpctypes.ErrTooManyOps // etcd refused it before proposing it
	kv.arm()
	errs := make(chan error, 2)
	if _, err := s.Enqueue(lockAt("a", 1), func(err error) { errs <- err }); err != nil {
		t.Fatal(err)
	}
	<-kv.held
	if _, err := s.Enqueue(lockAt("b", 1), func(err error) { errs <- err }); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; !errors.Is(err, actors.ErrUnavailable) || errors.Is(err, ErrNotLeader) {
			t.Fatalf("write: %v, want ErrUnavailable (not ErrNotLeader)", err)
		}
	}
	for _, k := range []string{"a", "b"} {
		if got := rawGet(t, c, s.Reader.ks.lock(k)); got != nil {
			t.Fatalf("lock %s is in etcd after its transaction (or the one before it) failed: %s", k, got)
		}
	}
	if s.Lost() != nil {
		t.Fatalf("a definite refusal ended the term: %v", s.Lost())
	}
	if ans := kv.answers(); len(ans) != 1 || ans[0].ok {
		t.Fatalf("etcd's answers %+v, want one: the second transaction refused", ans)
	}
	kv.mu.Lock()
	kv.armed = false
	kv.mu.Unlock()
	if err := s.Apply(lockAt("c", 1)); err != nil {
		t.Fatalf("a write after the failed pair: %v", err)
	}
}

// A translation that reads (here: the user sequence of a new user) sees
// the writes of the transaction in flight before it: two users created in
// two transactions in flight at once get different ids. (Without the
// overlay both would read the same sequence and bob would overwrite alice.)
func TestTranslationReadsTxnsInFlight(t *testing.T) {
	s, kv, _ := openReorder(t, Options{TxnsInFlight: 2})
	kv.arm()
	errs := make(chan error, 2)
	issue := func(login, tok string) {
		m := persistence.IssueToken{Login: login, Hash: persistence.HashToken(tok), Source: persistence.SourceStatic, Now: t0}
		if _, err := s.Enqueue(m, func(err error) { errs <- err }); err != nil {
			t.Fatal(err)
		}
	}
	issue("alice", "tok-alice")
	<-kv.held
	issue("bob", "tok-bob")
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for login, tok := range map[string]string{"alice": "tok-alice", "bob": "tok-bob"} {
		p, ok, err := s.LookupToken(persistence.HashToken(tok))
		if err != nil || !ok || p.Login != login {
			t.Fatalf("token of %s: %+v %v %v", login, p, ok, err)
		}
	}
}

// A write that fails alone (here: too large for any transaction) makes its
// resource's later writes invalid once its callback ran (actors.Host bumps
// the guard's failed generation). So no transaction is built behind one
// holding such a write until it resolved: the later guarded write is then
// read as invalid and skipped, never applied; so is one of the same
// resource in the same transaction. (Planted bugs, once: building the later
// write at once into a second transaction in flight applied it; without
// the doomed generations, the one in the same transaction was applied.)
func TestWriteFailingAloneHoldsLaterGuards(t *testing.T) {
	s, kv, c := openReorder(t, Options{MaxTxnBytes: 1024, TxnsInFlight: 2})
	var failed atomic.Uint64
	g := actors.Guard{Failed: &failed, Gen: 1}
	bump := func(errs chan<- error) func(error) {
		return func(err error) {
			if err != nil {
				failed.Store(1) // as actors.Host does
			}
			errs <- err
		}
	}
	in, gate := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s.SetFaultHook(func() error { // the first transaction waits, then fails unsent
		var err error
		once.Do(func() { close(in); <-gate; err = errors.New("held") })
		return err
	})
	if _, err := s.Enqueue(lockAt("h", 1), nil); err != nil {
		t.Fatal(err)
	}
	<-in // queue the next two behind it: they share a transaction
	errs := make(chan error, 4)
	if _, err := s.Enqueue(lockAt("x", 1), func(err error) { errs <- err }); err != nil {
		t.Fatal(err)
	}
	big := lockAt("big", 1)
	big.Lock.HolderID = strings.Repeat("b", 2048)
	if _, err := s.EnqueueGuarded(big, g, bump(errs)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnqueueGuarded(lockAt("same", 1), g, bump(errs)); err != nil { // same resource, same transaction
		t.Fatal(err)
	}
	kv.manual = true
	kv.arm()
	close(gate)
	<-kv.held // x's transaction is in flight; big failed alone
	if _, err := s.EnqueueGuarded(lockAt("after", 1), g, bump(errs)); err != nil {
		t.Fatal(err)
	}
	select { // give a wrong writer the chance to send it (the right one sends nothing)
	case <-kv.second:
	case <-time.After(300 * time.Millisecond):
	}
	kv.release()
	if err := <-errs; err != nil {
		t.Fatalf("x: %v", err)
	}
	if err := <-errs; !errors.Is(err, errTooLarge) {
		t.Fatalf("big: %v, want errTooLarge", err)
	}
	for _, k := range []string{"same", "after"} {
		if err := <-errs; !errors.Is(err, actors.ErrUnavailable) {
			t.Fatalf("write %s after the failed one: %v, want it skipped", k, err)
		}
		if got := rawGet(t, c, s.Reader.ks.lock(k)); got != nil {
			t.Fatalf("write %s, whose guard the failure invalidated, was applied: %s", k, got)
		}
	}
}
