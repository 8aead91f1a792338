package persistence

import (
	"fmt"
	"sync"
	"testing"
	"time"
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
