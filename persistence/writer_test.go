package persistence

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
)

func openTest(tb testing.TB) (*DB, *Writer, *Store) {
	tb.Helper()
	db, err := Open(filepath.Join(tb.TempDir(), "test.db"))
	if err != nil {
		tb.Fatal(err)
	}
	w, err := NewWriter(db, WriterOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	st := NewStore(db, w)
	tb.Cleanup(func() {
		w.Close()
		db.Close()
	})
	return db, w, st
}

func lockRec(name string, token uint64) actors.PutLock {
	return actors.PutLock{Lock: actors.LockRecord{Name: name, Holder: "alice", LeaseID: "l", Token: token,
		ExpiresAt: time.Now().Add(time.Hour).Truncate(time.Millisecond), AcquiredAt: time.Now().Truncate(time.Millisecond)}}
}

// Writes queued while a commit is in progress are committed together in the
// next batch: batches grow under load by themselves.
func TestWriterGroupsConcurrentWrites(t *testing.T) {
	_, w, st := openTest(t)
	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	var once sync.Once
	w.FaultHook = func() error {
		once.Do(func() { entered <- struct{}{}; <-gate }) // hold the first batch open
		return nil
	}
	const n = 500
	var wg sync.WaitGroup
	errs := make(chan error, n+1)
	wg.Add(1)
	if _, err := w.Enqueue(lockRec("first", 1), func(err error) { errs <- err; wg.Done() }); err != nil {
		t.Fatal(err)
	}
	<-entered
	for i := 0; i < n; i++ {
		wg.Add(1)
		if _, err := w.Enqueue(lockRec(fmt.Sprint("k", i), uint64(i+1)), func(err error) { errs <- err; wg.Done() }); err != nil {
			t.Fatal(err)
		}
	}
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s := w.Stats()
	if s.Writes != n+1 {
		t.Fatalf("writes = %d, want %d", s.Writes, n+1)
	}
	if s.Batches != 2 {
		t.Fatalf("batches = %d, want 2 (the held one and one group of %d)", s.Batches, n)
	}
	for i := 0; i < n; i += 97 {
		r, ok, err := st.LoadLock(fmt.Sprint("k", i))
		if err != nil || !ok || r.Token != uint64(i+1) {
			t.Fatalf("k%d: %+v ok=%v err=%v", i, r, ok, err)
		}
	}
}

// Callbacks run in sequence order; AfterCommit waiters run after the
// callback of the write they wait for.
func TestWriterOrdering(t *testing.T) {
	_, w, _ := openTest(t)
	var mu sync.Mutex
	var order []string
	rec := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	var last uint64
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		i := i
		wg.Add(2)
		seq, err := w.Enqueue(lockRec("same", uint64(i+1)), func(error) { rec(fmt.Sprint("w", i)); wg.Done() })
		if err != nil {
			t.Fatal(err)
		}
		if seq <= last {
			t.Fatalf("seq %d after %d", seq, last)
		}
		last = seq
		w.AfterCommit(seq, func(err error) {
			if err != nil {
				t.Error(err)
			}
			rec(fmt.Sprint("a", i))
			wg.Done()
		})
	}
	wg.Wait()
	pos := map[string]int{}
	for i, s := range order {
		pos[s] = i
	}
	for i := 0; i < 200; i++ {
		if i > 0 && pos[fmt.Sprint("w", i)] < pos[fmt.Sprint("w", i-1)] {
			t.Fatalf("write %d completed before write %d", i, i-1)
		}
		if pos[fmt.Sprint("a", i)] < pos[fmt.Sprint("w", i)] {
			t.Fatalf("waiter %d ran before its write", i)
		}
	}
	if w.Resolved() != last {
		t.Fatalf("resolved = %d, want %d", w.Resolved(), last)
	}
}

// A failed batch fails every write in it, marks the writer unhealthy,
// leaves no trace in the database, and health recovers with the next commit.
func TestWriterFailure(t *testing.T) {
	_, w, st := openTest(t)
	var fail sync.Mutex
	failing := true
	w.FaultHook = func() error {
		fail.Lock()
		defer fail.Unlock()
		if failing {
			return errors.New("injected: disk I/O error")
		}
		return nil
	}
	done := make(chan error, 1)
	seq, err := w.Enqueue(lockRec("x", 1), func(err error) { done <- err })
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, actors.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	got := make(chan error, 1)
	w.AfterCommit(seq, func(err error) { got <- err })
	if err := <-got; !errors.Is(err, actors.ErrUnavailable) {
		t.Fatalf("AfterCommit on failed seq: %v", err)
	}
	if w.Healthy() || w.LastError() == "" {
		t.Fatal("writer healthy after a failed batch")
	}
	if _, ok, _ := st.LoadLock("x"); ok {
		t.Fatal("failed write is in the database")
	}
	fail.Lock()
	failing = false
	fail.Unlock()
	if err := st.Apply(lockRec("y", 1)); err != nil {
		t.Fatal(err)
	}
	if !w.Healthy() {
		t.Fatal("writer unhealthy after a successful commit")
	}
}

func TestWriterOverloadAndClose(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "o.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w, err := NewWriter(db, WriterOptions{MaxQueue: 10})
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	entered := make(chan struct{})
	var once sync.Once
	w.FaultHook = func() error { once.Do(func() { close(entered); <-gate }); return nil }
	var wg sync.WaitGroup
	wg.Add(1)
	w.Enqueue(lockRec("a", 1), func(error) { wg.Done() })
	<-entered
	for i := 0; i < 10; i++ {
		wg.Add(1)
		if _, err := w.Enqueue(lockRec(fmt.Sprint("b", i), 1), func(error) { wg.Done() }); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if _, err := w.Enqueue(lockRec("c", 1), nil); !errors.Is(err, actors.ErrOverloaded) {
		t.Fatalf("11th queued write: err = %v, want ErrOverloaded", err)
	}
	close(gate)
	w.Close() // drains the queue
	wg.Wait()
	if _, err := w.Enqueue(lockRec("d", 1), nil); !errors.Is(err, actors.ErrClosed) {
		t.Fatalf("after Close: err = %v, want ErrClosed", err)
	}
	st := NewStore(db, w)
	if _, ok, _ := st.LoadLock("b9"); !ok {
		t.Fatal("queued write lost on Close")
	}
}

// TestWriterCrashConsistency runs a writer in a child process that prints
// each sequence number once its commit is acknowledged, kills it with
// SIGKILL mid-stream, and checks that every acknowledged write is in the
// database.
func TestWriterCrashConsistency(t *testing.T) {
	if os.Getenv("OCTOSTORE_CRASH_CHILD") != "" {
		crashChild(os.Getenv("OCTOSTORE_CRASH_CHILD"))
		return
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	for round := 0; round < 3; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestWriterCrashConsistency$")
		cmd.Env = append(os.Environ(), "OCTOSTORE_CRASH_CHILD="+path, fmt.Sprint("OCTOSTORE_CRASH_ROUND=", round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		acked := map[string]uint64{}
		n := 0
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 2 || f[0][0] != 'k' {
				continue
			}
			v, _ := strconv.ParseUint(f[1], 10, 64)
			acked[f[0]] = v
			n++
			if n == 2000+round*500 {
				cmd.Process.Kill() // SIGKILL
				break
			}
		}
		cmd.Wait()
		if n < 2000 {
			t.Fatalf("child acknowledged only %d writes", n)
		}
		db, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		// Opening a writer folds the lock journal, as a restarted server does.
		w, err := NewWriter(db, WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		st := NewStore(db, w)
		for k, v := range acked {
			r, ok, err := st.LoadLock(k)
			if err != nil || !ok || r.Token < v {
				t.Fatalf("round %d: acknowledged %s=%d, database has %+v ok=%v err=%v", round, k, v, r, ok, err)
			}
			if r.Token > v+1000 {
				t.Fatalf("round %d: %s=%d in the database, far beyond the last acknowledged %d", round, k, r.Token, v)
			}
		}
		w.Close()
		db.Close()
	}
}

// crashChild writes ever-increasing tokens from 8 goroutines, each to its own
// 6 keys, and prints "key token" after each commit. Tokens of a later round
// are larger than any of an earlier one.
func crashChild(path string) {
	db, err := Open(path)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	w, err := NewWriter(db, WriterOptions{})
	if err != nil {
		os.Exit(1)
	}
	st := NewStore(db, w)
	round, _ := strconv.ParseUint(os.Getenv("OCTOSTORE_CRASH_ROUND"), 10, 64)
	base := round << 40
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := uint64(1); i < 1e6; i++ {
				key := fmt.Sprintf("k%d_%d", g, i%6)
				tok := base + i
				if err := st.Apply(lockRec(key, tok)); err != nil {
					return
				}
				mu.Lock()
				fmt.Fprintf(out, "%s %d\n", key, tok)
				out.Flush()
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
}

// A batch holds at most MaxBatch writes: what is queued beyond the cap is
// committed in the next batches, in order, and nothing is lost. Without
// options the cap is DefaultMaxBatch.
func TestWriterCapsBatches(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "test.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if w, err := NewWriter(db, WriterOptions{}); err != nil || w.maxBatch != DefaultMaxBatch {
		t.Fatalf("default cap: %v, %v; want %d", w, err, DefaultMaxBatch)
	} else {
		w.Close()
	}
	const limit = 64
	w, err := NewWriter(db, WriterOptions{MaxBatch: limit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	st := NewStore(db, w)
	batches := make(chan int, 16) // OnBatch runs after a batch's callbacks, on the writer goroutine
	w.OnBatch = func(n int, _ time.Duration, err error) {
		if err != nil {
			t.Error(err)
		}
		batches <- n
	}
	gate := make(chan struct{})
	entered := make(chan struct{})
	var once sync.Once
	w.FaultHook = func() error {
		once.Do(func() { close(entered); <-gate }) // hold the first batch open while the rest queue
		return nil
	}
	const n = 3*limit + 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	var order []uint64
	enqueue := func(name string, token uint64) {
		wg.Add(1)
		seq, err := w.Enqueue(lockRec(name, token), func(err error) {
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			order = append(order, token)
			mu.Unlock()
			wg.Done()
		})
		if err != nil || seq != token {
			t.Fatalf("enqueue %s: seq %d, %v", name, seq, err)
		}
	}
	enqueue("first", 1)
	<-entered
	for i := 2; i <= n+1; i++ {
		enqueue(fmt.Sprint("k", i), uint64(i))
	}
	close(gate)
	wg.Wait()
	var sizes []int
	for sum := 0; sum < n+1; {
		sizes = append(sizes, <-batches)
		sum += sizes[len(sizes)-1]
	}
	want := []int{1, limit, limit, limit, 10}
	if fmt.Sprint(sizes) != fmt.Sprint(want) {
		t.Fatalf("batch sizes %v, want %v", sizes, want)
	}
	for i, tok := range order {
		if tok != uint64(i+1) {
			t.Fatalf("write %d completed in place %d: %v", tok, i+1, order)
		}
	}
	for i := 2; i <= n+1; i += 31 {
		r, ok, err := st.LoadLock(fmt.Sprint("k", i))
		if err != nil || !ok || r.Token != uint64(i) {
			t.Fatalf("k%d: %+v ok=%v err=%v", i, r, ok, err)
		}
	}
}
