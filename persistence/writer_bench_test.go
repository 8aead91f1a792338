package persistence

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
)

// BenchmarkWriterDurable measures durable writes/s through the group-commit
// writer with 1 and 256 concurrent writers (each waits for its commit).
// Reported: writes/s, commits/s and the average batch size.
func BenchmarkWriterDurable(b *testing.B) {
	for _, par := range []int{1, 16, 256} {
		b.Run(fmt.Sprint("writers=", par), func(b *testing.B) {
			_, w, st := openTest(b)
			before := w.Stats()
			start := time.Now()
			var wg sync.WaitGroup
			per := b.N/par + 1
			for g := 0; g < par; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					for i := 0; i < per; i++ {
						if err := st.Apply(lockRec(fmt.Sprintf("g%d-%d", g, i%100), uint64(i+1))); err != nil {
							b.Error(err)
							return
						}
					}
				}(g)
			}
			wg.Wait()
			el := time.Since(start).Seconds()
			s := w.Stats()
			writes := float64(s.Writes - before.Writes)
			batches := float64(s.Batches - before.Batches)
			b.ReportMetric(writes/el, "writes/s")
			b.ReportMetric(batches/el, "commits/s")
			b.ReportMetric(writes/batches, "writes/batch")
		})
	}
}

// BenchmarkWriterCommit measures one group commit of a given size: k lock
// journal writes applied and committed with synchronous=FULL (one fsync of
// the WAL), as the writer goroutine does it. Reported: wall time per commit
// (µs/commit) and the process's CPU per write (cpu-µs/write, getrusage:
// SQLite's work, the system calls, and the kernel side of the fsync that is
// charged to the process). What it shows is what a batch cap trades: a
// commit's fixed cost is spread over its writes, and its latency grows with
// them (docs/benchmarks.md).
//
//	go test -run XXX -bench WriterCommit -benchtime 200x ./persistence/
func BenchmarkWriterCommit(b *testing.B) {
	for _, k := range []int{1, 4, 16, 64, 256, 1024, 4096} {
		b.Run(fmt.Sprint("batch=", k), func(b *testing.B) {
			_, w, _ := openTest(b)
			batch := make([]entry, k)
			names := make([]string, 10000)
			for i := range names {
				names[i] = fmt.Sprint("lock-", i)
			}
			now := time.Now().Truncate(time.Millisecond)
			n := 0
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range batch {
					n++
					batch[j] = entry{seq: uint64(n), m: actors.PutLock{Lock: actors.LockRecord{
						Name: names[n%len(names)], Holder: "u-0123456789abcdef", LeaseID: "0b4c3a8e-6a57-4c7f-9d1e-3f2a1b0c9d8e",
						Token: uint64(n), ExpiresAt: now.Add(time.Minute), AcquiredAt: now}}}
				}
				if err := w.commit(batch); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cpu := cpuTime() - cpu0
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/commit")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*k), "cpu-µs/write")
		})
	}
}

// cpuTime is the CPU this process has used (user + system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
