package httpd_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/httpd"
	"github.com/octostore/octostore/persistence"
)

// Memory and recovery measurements (docs/guarantees.md, "Memory" and
// "Recovery time"). They are reports, not wall-clock assertions. `go test`
// runs them at a small scale (2,000 resources, a few seconds each), which
// checks what they check (every lock held and recovered, every idle actor
// passivated); the documented numbers come from the full scale, one process
// per test (`just mem-report`):
//
//	go test ./httpd -run '^TestRecoveryTime$' -count=1 -v -timeout 60m -reliability.scale=1000000
var (
	relScale       = flag.Int("reliability.scale", 2000, "resources for TestMemory*/TestRecoveryTime (1000000 for the documented numbers)")
	relHeapProfile = flag.String("reliability.heapprofile", "", "write a heap profile at the end of each TestMemory* to this path prefix")
	relCPUProfile  = flag.String("reliability.cpuprofile", "", "write a CPU profile of the start in TestRecoveryTime to this file")
)

func heapProfile(t *testing.T) {
	if *relHeapProfile == "" {
		return
	}
	path := *relHeapProfile + "-" + t.Name() + ".prof"
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		t.Fatal(err)
	}
	t.Logf("heap profile: %s", path)
}

// scale is the number of resources of a memory or recovery test.
func scale(t *testing.T) int {
	if *relScale <= 0 {
		t.Fatalf("-reliability.scale=%d: want at least 1", *relScale)
	}
	return *relScale
}

// memSample is the process's memory after a full GC.
type memSample struct {
	rss, heap uint64
}

func sampleMem() memSample {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{rss: rssBytes(), heap: ms.HeapAlloc}
}

func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// parallel runs f(i) for i in [0, n) on 64 goroutines.
func parallel(n int, f func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var first atomic.Value
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || first.Load() != nil {
					return
				}
				if err := f(i); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := first.Load().(error); err != nil {
		return err
	}
	return nil
}

// waitPassivated waits until the resident actors drop to at most n.
func waitPassivated(t *testing.T, sys *actors.System, n int64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for sys.LiveActors() > n {
		if time.Now().After(deadline) {
			t.Fatalf("%d actors still resident after %s", sys.LiveActors(), within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMemoryIdleNames touches N distinct lock names once (a status read
// each, which activates an actor and loads the name from the database) and
// reports resident memory before, right after, and after passivation.
func TestMemoryIdleNames(t *testing.T) {
	n := scale(t)
	e := relStart(t, func(o *httpd.TestOptions) { o.Actors.IdleTimeout = 2 * time.Second })
	sys, locks, ctx := e.app.Sys, e.app.Locks, t.Context()
	base := sampleMem()
	start := time.Now()
	if err := parallel(n, func(i int) error {
		_, err := locks.Status(ctx, "idle-"+strconv.Itoa(i))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	peakLive := sys.LiveActors()
	touched := sampleMem()
	waitPassivated(t, sys, 0, 5*time.Minute)
	after := sampleMem()
	heapProfile(t)
	t.Logf("touched %d names in %s (%.0f/s); resident actors right after: %d", n, took.Round(time.Millisecond), float64(n)/took.Seconds(), peakLive)
	t.Logf("RSS  baseline %s, after touching %s, after passivation %s (%.0f%% of the growth returned)",
		mib(base.rss), mib(touched.rss), mib(after.rss), 100*float64(int64(touched.rss)-int64(after.rss))/float64(max(1, int64(touched.rss)-int64(base.rss))))
	t.Logf("heap baseline %s, after touching %s, after passivation %s", mib(base.heap), mib(touched.heap), mib(after.heap))
}

// TestMemoryHeldLocks holds N locks at once (distinct names, 1000 users)
// and reports the memory each held lock costs once its actor is passivated
// (holder index entry and expiry timer), and while actors are resident.
func TestMemoryHeldLocks(t *testing.T) {
	n := scale(t)
	e := relStart(t, func(o *httpd.TestOptions) { o.Actors.IdleTimeout = 2 * time.Second; o.Locks.MaxPerUser = -1 })
	sys, locks, ctx := e.app.Sys, e.app.Locks, t.Context()
	base := sampleMem()
	start := time.Now()
	if err := parallel(n, func(i int) error {
		_, err := locks.Acquire(ctx, "held-"+strconv.Itoa(i), "user"+strconv.Itoa(i%1000), time.Hour)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	resident := sampleMem()
	live := sys.LiveActors()
	waitPassivated(t, sys, 0, 5*time.Minute)
	after := sampleMem()
	heapProfile(t)
	if got := locks.Indexed(); got != n {
		t.Fatalf("holder index has %d entries, want %d", got, n)
	}
	t.Logf("acquired %d locks in %s (%.0f durable grants/s)", n, took.Round(time.Millisecond), float64(n)/took.Seconds())
	t.Logf("with %d actors resident: heap %.0f B/lock, RSS %.0f B/lock", live,
		float64(resident.heap-base.heap)/float64(n), float64(int64(resident.rss)-int64(base.rss))/float64(n))
	t.Logf("passivated (held, idle): heap %.0f B/lock, RSS %.0f B/lock (target < 1536)",
		float64(after.heap-base.heap)/float64(n), float64(int64(after.rss)-int64(base.rss))/float64(n))
}

// TestRecoveryTime stores N held locks and measures a start on that
// database: open + migrations + quick_check + recovery of the holder index
// and expiry timers, until the server listens.
func TestRecoveryTime(t *testing.T) {
	n := scale(t)
	path := filepath.Join(t.TempDir(), "big.db")
	db, err := persistence.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	fill := time.Now()
	tx, err := db.WriteDB().Begin()
	if err != nil {
		t.Fatal(err)
	}
	stmt, err := tx.Prepare(`INSERT INTO locks(name, holder, lease_id, fencing_token, expires_at, acquired_at) VALUES(?, ?, ?, ?, ?, ?)`)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := 0; i < n; i++ {
		// Expiries spread over the next hour, as with real traffic.
		exp := now.Add(time.Hour + time.Duration(i%3600)*time.Second).UnixMilli()
		if _, err := stmt.Exec(fmt.Sprintf("stored-%07d", i), "user"+strconv.Itoa(i%1000), fmt.Sprintf("00000000-0000-4000-8000-%012d", i), i%50+1, exp, now.UnixMilli()); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	db.WriteDB().Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	db.Close()
	st, _ := os.Stat(path)
	t.Logf("stored %d held locks in %s (database %s)", n, time.Since(fill).Round(time.Millisecond), mib(uint64(st.Size())))

	base := sampleMem()
	o := relOptions(t)
	o.DBPath = path
	o.Locks.MaxPerUser = -1
	if *relCPUProfile != "" {
		f, err := os.Create(*relCPUProfile)
		if err != nil {
			t.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer f.Close()
	}
	start := time.Now()
	a, err := httpd.StartTestServer(t, o)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if *relCPUProfile != "" {
		pprof.StopCPUProfile()
	}
	defer a.Close()
	if got := a.Locks.Indexed(); got != n {
		t.Fatalf("recovered %d held locks, want %d", got, n)
	}
	after := sampleMem()
	t.Logf("start with %d stored held locks: %s until listening (target < 10s); heap +%s, RSS +%s", n, took.Round(time.Millisecond),
		mib(after.heap-base.heap), mib(after.rss-base.rss))
}
