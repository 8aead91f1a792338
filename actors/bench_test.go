package actors

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// BenchmarkActorHop measures the cheapest protoactor request pattern the
// runtime uses: Send with a reply channel, versus RequestFuture.
func BenchmarkActorHop(b *testing.B) {
	as := actor.NewActorSystem()
	defer as.Shutdown()
	type ping struct{ reply chan int }
	pid := as.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *ping:
			m.reply <- 1
		case int:
			c.Respond(m)
		}
	}))
	b.Run("send+chan", func(b *testing.B) {
		b.ReportAllocs()
		ch := make(chan int, 1)
		for i := 0; i < b.N; i++ {
			as.Root.Send(pid, &ping{reply: ch})
			<-ch
		}
	})
	b.Run("request-future", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := as.Root.RequestFuture(pid, 1, time.Second).Result(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSystemDo measures a typed call through the whole runtime: a
// lock status (shard hop + resource actor hop + reply), no storage writes,
// with a context that has a deadline (as every HTTP request's has), so the
// wait selects on its Done channel.
func BenchmarkSystemDo(b *testing.B) {
	st := newMemStore(false)
	sys := NewSystem(Config{Store: st, AfterFunc: noTimers})
	defer sys.Close()
	locks := NewLocks(sys, LockConfig{Loader: st})
	names := make([]string, 1024)
	for i := range names {
		names[i] = fmt.Sprint("k", i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := locks.Status(ctx, names[i%len(names)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// genLoader is a LockLoader whose ActiveLocks gives n held locks of one
// holder (recovery benchmarks): a UUID lease each, expiries over an hour.
type genLoader struct {
	n   int
	now time.Time
}

func (g genLoader) LoadLock(name string) (LockRecord, bool, error) {
	return LockRecord{Name: name}, false, nil
}
func (g genLoader) ExpiredLocks(time.Time, func(LockRecord)) error { return nil }
func (g genLoader) ActiveLocks(now time.Time, fn func(LockRecord)) error {
	for i := 0; i < g.n; i++ {
		fn(LockRecord{Name: fmt.Sprintf("held-%07d", i), Holder: "u:1", LeaseID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			Token: uint64(i%50 + 1), ExpiresAt: now.Add(time.Hour + time.Duration(i%3600)*time.Second), AcquiredAt: now})
	}
	return nil
}

// BenchmarkRecoverHeldLocks measures the lock kind's start-up recovery of
// 1,000,000 held locks from a loader that costs only their records: the
// compact records, the holder index and the expiry schedule (the SQLite
// scan is persistence's part; docs/benchmarks.md, "Held-lock memory").
// Reported: ns per held lock, and the heap kept per held lock.
func BenchmarkRecoverHeldLocks(b *testing.B) {
	const n = 1_000_000
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		sys := NewSystem(Config{Store: newMemStore(false), Now: func() time.Time { return now }, AfterFunc: noTimers})
		locks := NewLocks(sys, LockConfig{Loader: genLoader{n: n}, MaxPerUser: -1})
		b.StartTimer()
		if err := sys.Recover(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if got := locks.Indexed(); got != n {
			b.Fatalf("%d indexed, want %d", got, n)
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/lock")
		runtime.KeepAlive(locks)
		sys.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/lock")
}
