package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sort"
	"sync"
	"time"

	"github.com/octostore/octostore/tools/client"
	"github.com/octostore/octostore/tools/client/clienttest"
)

// The examples run against the in-memory fake server; point client.New at a
// real server ("http://127.0.0.1:3000") the same way.

func ExampleClient_Acquire() {
	srv := clienttest.New(map[string]string{"tokA": "alice", "tokB": "bob"})
	defer srv.Close()
	ctx := context.Background()

	alice, err := client.New(srv.URL, "tokA")
	if err != nil {
		log.Fatal(err)
	}
	lease, err := alice.Acquire(ctx, "nightly-report", 30*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(lease.Status, lease.Holder, "fencing token", lease.FencingToken)

	bob, _ := client.New(srv.URL, "tokB")
	_, err = bob.Acquire(ctx, "nightly-report", 30*time.Second)
	var held *client.LockHeldError
	if errors.As(err, &held) {
		fmt.Println("held by", held.Holder)
	}

	if err := alice.Release(ctx, "nightly-report", lease.LeaseID); err != nil {
		log.Fatal(err)
	}
	// Output:
	// acquired alice fencing token 1
	// held by alice
}

func ExampleLocker() {
	srv := clienttest.New(map[string]string{"tokA": "alice"})
	defer srv.Close()
	c, _ := client.New(srv.URL, "tokA")

	l := client.NewLocker(c, "db-migration", 15*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.Lock(ctx); err != nil { // waits while someone else holds it
		log.Fatal(err)
	}
	defer l.Unlock(context.Background())

	// Renewal runs in the background every 5s. Pass the fencing token to the
	// storage you write to, and stop when the lock is lost.
	fmt.Println("fencing token", l.Lease().FencingToken)
	select {
	case <-l.Done():
		fmt.Println("lost:", l.Err())
	default:
		fmt.Println("still held")
	}
	// Output:
	// fencing token 1
	// still held
}

func ExampleClient_CheckLimit() {
	srv := clienttest.New(map[string]string{"tokA": "alice"})
	defer srv.Close()
	c, _ := client.New(srv.URL, "tokA")
	for i := 0; i < 3; i++ {
		r, err := c.CheckLimit(context.Background(), "emails", 2, time.Hour)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(r.Allowed, r.Remaining)
	}
	// Output:
	// true 1
	// true 0
	// false 0
}

func ExampleClient_SetConfig() {
	srv := clienttest.New(map[string]string{"tokA": "alice"})
	defer srv.Close()
	c, _ := client.New(srv.URL, "tokA")
	ctx := context.Background()

	e, _ := c.SetConfig(ctx, "app.pool", client.ConfigWrite{Value: map[string]int{"size": 5}})
	fmt.Println("version", e.Version, string(e.Value))

	// Compare-and-set: the write applies only if the key is still at the
	// expected version; here the caller's view (version 2) is wrong.
	_, err := c.SetConfig(ctx, "app.pool", client.ConfigWrite{Value: 8, ExpectedVersion: new(int64(2))})
	var conflict *client.ConflictError
	if errors.As(err, &conflict) {
		fmt.Println("conflict, current version", conflict.CurrentVersion)
	}
	// Output:
	// version 1 {"size":5}
	// conflict, current version 1
}

func ExampleClient_Events() {
	srv := clienttest.New(map[string]string{"tokA": "alice"})
	defer srv.Close()
	c, _ := client.New(srv.URL, "tokA")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	stream, err := c.Events(ctx, client.EventFilter{Kind: "flag"})
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close()
	c.SetFlag(ctx, "new-ui", client.FlagSpec{Enabled: true})
	ev := <-stream.C
	fmt.Println(ev.Type, ev.Name)
	// Output:
	// flag.set new-ui
}

func ExampleClient_WatchLock() {
	srv := clienttest.New(map[string]string{"tokA": "alice"})
	defer srv.Close()
	c, _ := client.New(srv.URL, "tokA")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	w, err := c.WatchLock(ctx, "deploy")
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	st := <-w.C // lock.state first; empty holder: free
	fmt.Printf("%s holder=%q\n", st.Type, st.Holder)
	lease, _ := c.Acquire(ctx, "deploy", time.Minute)
	c.Release(ctx, "deploy", lease.LeaseID)
	for ev := range w.C {
		fmt.Println(ev.Type, ev.Holder)
		if ev.Type == client.EventLockReleased {
			break
		}
	}
	// Output:
	// lock.state holder=""
	// lock.acquired alice
	// lock.released alice
}

// The functions below are the Go examples of docs/client.md, word for word
// (docs/docs_test.go checks it); the Example functions run them.

func nightlyReport(ctx context.Context, c *client.Client) error {
	lease, err := c.Acquire(ctx, "nightly-report", 30*time.Second)
	var held *client.LockHeldError
	switch {
	case errors.As(err, &held):
		fmt.Println("skipped: held by", held.Holder)
		return nil // another copy is running
	case err != nil:
		return err
	}
	defer c.Release(context.Background(), "nightly-report", lease.LeaseID)
	return runReport(ctx, lease.FencingToken) // pass the token to the storage you write to
}

func runReport(ctx context.Context, token uint64) error {
	fmt.Println("report written with fencing token", token)
	return nil
}

// While bob holds the lock alice skips the run (she gets no lease to use);
// once it is free she takes it.
func Example_nightlyReport() {
	srv := clienttest.New(map[string]string{"tokA": "alice", "tokB": "bob"})
	defer srv.Close()
	ctx := context.Background()
	alice, _ := client.New(srv.URL, "tokA")
	bob, _ := client.New(srv.URL, "tokB")

	lease, err := bob.Acquire(ctx, "nightly-report", time.Minute)
	if err != nil {
		log.Fatal(err)
	}
	if err := nightlyReport(ctx, alice); err != nil {
		log.Fatal(err)
	}
	bob.Release(ctx, "nightly-report", lease.LeaseID)
	if err := nightlyReport(ctx, alice); err != nil {
		log.Fatal(err)
	}
	// Output:
	// skipped: held by bob
	// report written with fencing token 2
}

func migrate(ctx context.Context, c *client.Client, jobs <-chan string) error {
	l := client.NewLocker(c, "db-migration", 15*time.Second)
	if err := l.Lock(ctx); err != nil { // waits in the lock's queue until granted or ctx ends
		return err
	}
	defer l.Unlock(context.Background())
	token := l.Lease().FencingToken // pass it to the storage you write to
	for work := range jobs {
		select {
		case <-l.Done(): // renewal refused, or unreachable until the lease ran out
			return l.Err() // wraps client.ErrLockLost
		default:
		}
		do(work, token)
	}
	return nil
}

func do(work string, token uint64) { fmt.Println(work, "with fencing token", token) }

func Example_migrate() {
	srv := clienttest.New(map[string]string{"tokA": "alice"})
	defer srv.Close()
	c, _ := client.New(srv.URL, "tokA")
	jobs := make(chan string, 2)
	jobs <- "add column"
	jobs <- "backfill"
	close(jobs)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := migrate(ctx, c, jobs); err != nil {
		log.Fatal(err)
	}
	fmt.Println("released:", srv.Holder("db-migration") == "")
	// Output:
	// add column with fencing token 1
	// backfill with fencing token 1
	// released: true
}

func followJobs(ctx context.Context, c *client.Client) error {
	s, err := c.Events(ctx, client.EventFilter{Kind: "lock", Prefix: "job-"}) // or c.WatchLock(ctx, name)
	if err != nil {
		return err
	}
	defer s.Close()
	for ev := range s.C { // until ctx ends or the stream breaks
		fmt.Println(ev.Seq, ev.Type, ev.Name, ev.Holder, ev.FencingToken)
	}
	return s.Err() // nil after Close or ctx's end, client.ErrLagged if the server dropped a slow reader
}

func Example_followJobs() {
	srv := clienttest.New(map[string]string{"tokA": "alice"})
	defer srv.Close()
	c, _ := client.New(srv.URL, "tokA")
	ctx := context.Background()
	done := make(chan error, 1)
	go func() { done <- followJobs(ctx, c) }()
	for srv.Subscribers() == 0 { // the stream is open
		time.Sleep(time.Millisecond)
	}
	lease, _ := c.Acquire(ctx, "job-1", time.Minute)
	c.Acquire(ctx, "other", time.Minute) // not a job: filtered out by the server
	c.Release(ctx, "job-1", lease.LeaseID)
	// The server cuts the stream off, as it does a reader that fell behind.
	srv.Publish(map[string]any{"type": "lagged", "kind": "lock", "name": "job-"})
	fmt.Println(errors.Is(<-done, client.ErrLagged))
	// Output:
	// 1 lock.acquired job-1 alice 1
	// 3 lock.released job-1 alice 1
	// 4 lagged job-  0
	// true
}

func workers(ctx context.Context, c *client.Client, shards []string) error {
	s, err := client.NewSession(ctx, c, client.WithSessionTTL(15*time.Second)) // kept alive every 5s
	if err != nil {
		return err
	}
	defer s.Close(context.Background()) // releases every lock of the session at once
	for _, shard := range shards {
		if err := s.NewLocker("shard-" + shard).TryLock(ctx); err != nil {
			continue // another worker has it
		}
		go work(ctx, shard, s.Done()) // stop when the session (and so every lock) is lost
	}
	<-ctx.Done()
	return nil
}

var worked = make(chan string, 8)

func work(ctx context.Context, shard string, lost <-chan struct{}) { worked <- shard }

func Example_workers() {
	srv := clienttest.New(map[string]string{"tokA": "alice", "tokB": "bob"})
	defer srv.Close()
	alice, _ := client.New(srv.URL, "tokA")
	bob, _ := client.New(srv.URL, "tokB")
	bob.Acquire(context.Background(), "shard-b", time.Minute) // another worker has shard b
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- workers(ctx, alice, []string{"a", "b", "c"}) }()
	got := []string{<-worked, <-worked}
	sort.Strings(got)
	fmt.Println("working on", got)
	cancel()
	<-done
	fmt.Println("shard-a released:", srv.Holder("shard-a") == "")
	// Output:
	// working on [a c]
	// shard-a released: true
}

// applyFenced is the write path of a storage service that lock holders
// write to: it applies a write only while the token it carries is the
// lock's current grant's, and never one older than a token it has applied.
func applyFenced(ctx context.Context, c *client.Client, mu *sync.Mutex, seen map[string]uint64, lock string, token uint64, apply func()) error {
	mu.Lock() // check and apply as one step
	defer mu.Unlock()
	if token < seen[lock] {
		return fmt.Errorf("token %d is older than %d: refused", token, seen[lock])
	}
	if _, err := c.CheckFence(ctx, lock, token); err != nil {
		return err // client.ErrStaleToken: the writer no longer holds the lock
	}
	seen[lock] = token
	apply()
	return nil
}

func Example_applyFenced() {
	srv := clienttest.New(map[string]string{"tokA": "alice", "tokB": "bob", "tokS": "storage"})
	defer srv.Close()
	alice, _ := client.New(srv.URL, "tokA")
	bob, _ := client.New(srv.URL, "tokB")
	storage, _ := client.New(srv.URL, "tokS")
	var mu sync.Mutex
	seen := map[string]uint64{}
	var rows []string
	write := func(token uint64, row string) error {
		return applyFenced(context.Background(), storage, &mu, seen, "accounts", token, func() { rows = append(rows, row) })
	}
	ctx := context.Background()
	a, _ := alice.Acquire(ctx, "accounts", time.Minute)
	fmt.Println(write(a.FencingToken, "alice 1"))
	srv.ExpireLock("accounts") // alice pauses too long: her lease ends
	b, _ := bob.Acquire(ctx, "accounts", time.Minute)
	err := write(a.FencingToken, "alice 2") // alice wakes up and writes
	fmt.Println(errors.Is(err, client.ErrStaleToken))
	fmt.Println(write(b.FencingToken, "bob 1"))
	fmt.Println(rows)
	// Output:
	// <nil>
	// true
	// <nil>
	// [alice 1 bob 1]
}
