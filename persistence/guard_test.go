package persistence

import (
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
)

func openGuardTest(t *testing.T) (*Writer, *Store) {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "guard.db"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(db, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.Close()
		db.Close()
	})
	return w, NewStore(db, w)
}

func guardLock(name string, token uint64) actors.PutLock {
	now := time.Now().Truncate(time.Millisecond)
	return actors.PutLock{Lock: actors.LockRecord{Name: name, Holder: "alice", LeaseID: "l", Token: token,
		ExpiresAt: now.Add(time.Hour), AcquiredAt: now}}
}

// A guarded write queued behind a failed write of the same generation is
// skipped, even when it lands in a later batch that commits; the other
// writes of that batch are applied.
func TestGuardSkipsWritesAfterAFailure(t *testing.T) {
	w, st := openGuardTest(t)
	var failed atomic.Uint64
	g := actors.Guard{Failed: &failed, Gen: 1}

	// Batch 1 fails (injected) and holds the writer until the rest is queued.
	gate, entered := make(chan struct{}), make(chan struct{})
	var once sync.Once
	w.SetFaultHook(func() error {
		first := false
		once.Do(func() { first = true })
		if first {
			close(entered)
			<-gate
			return errors.New("injected: disk I/O error")
		}
		return nil
	})
	results := make(chan string, 4)
	record := func(name string, onFail func()) func(error) {
		return func(err error) {
			if err != nil {
				if onFail != nil {
					onFail()
				}
				results <- name + ":failed"
				return
			}
			results <- name + ":ok"
		}
	}
	markFailed := func() { failed.Store(1) } // what a Host does in its done callback
	if _, err := w.EnqueueGuarded(guardLock("a", 1), g, record("a", markFailed)); err != nil {
		t.Fatal(err)
	}
	<-entered                                                                           // batch 1 is in commit: what follows is batch 2
	if _, err := w.EnqueueGuarded(guardLock("b", 2), g, record("b", nil)); err != nil { // derived from a: skipped
		t.Fatal(err)
	}
	seqC, err := w.EnqueueGuarded(guardLock("c", 1), actors.Guard{}, record("c", nil)) // unrelated: committed
	if err != nil {
		t.Fatal(err)
	}
	close(gate)
	got := map[string]bool{}
	for i := 0; i < 3; i++ {
		got[<-results] = true
	}
	for _, want := range []string{"a:failed", "b:failed", "c:ok"} {
		if !got[want] {
			t.Fatalf("results %v, want %s", got, want)
		}
	}
	if _, ok, _ := st.LoadLock("b"); ok {
		t.Fatal("a write derived from a failed one was committed")
	}
	if _, ok, _ := st.LoadLock("c"); !ok {
		t.Fatal("an unrelated write of the same batch was lost")
	}
	ch := make(chan error, 1)
	w.AfterCommit(seqC-1, func(err error) { ch <- err })
	if err := <-ch; !errors.Is(err, actors.ErrUnavailable) {
		t.Fatalf("AfterCommit of the skipped write: %v, want ErrUnavailable", err)
	}
	w.AfterCommit(seqC, func(err error) { ch <- err })
	if err := <-ch; err != nil {
		t.Fatalf("AfterCommit of the committed write: %v", err)
	}
	if !w.Healthy() {
		t.Fatal("a skipped write must not mark the writer unhealthy once a batch commits")
	}
	// A new generation writes again.
	if _, err := w.EnqueueGuarded(guardLock("b", 2), actors.Guard{Failed: &failed, Gen: 2}, record("b2", nil)); err != nil {
		t.Fatal(err)
	}
	if r := <-results; r != "b2:ok" {
		t.Fatalf("write of the next generation: %s", r)
	}
}
