package actors

import (
	"context"
	"fmt"
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
