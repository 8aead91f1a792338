package actors

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// Callers send to resident actors directly while their shards stop idle
// ones (System.route, shard.go): no request may be lost (sent to an actor
// that is stopped without handling it), none handled by a stale actor, and
// state must carry over every passivation. Actors here passivate after 1 ms
// without requests. The callers work in phases: a burst of requests, then
// every caller pauses for a random 0.5-4 ms, so that the actors go idle
// together and their stops race with the requests of the callers that
// start again first. The test fails if no actor was ever re-activated
// (nothing raced).
func TestDirectSendsRacePassivation(t *testing.T) {
	st := newMemStore(false)
	locks, sys, _ := newTestLocks(t, st, time.Millisecond, 0)
	const names, workers, phases, burst = 4, 8, 40, 8
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for p := 0; p < phases; p++ {
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), uint64(p)))
				// The load pattern, not a wait for a condition: the pause
				// that lets the actors be passivated.
				time.Sleep(time.Duration(500+rng.IntN(3500)) * time.Microsecond)
				for i := 0; i < burst; i++ {
					name := fmt.Sprint("race-", (w+i)%names)
					// A lost request would never be answered: bound each wait.
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					g, err := locks.Acquire(ctx, name, "alice", time.Hour)
					cancel()
					if err != nil {
						errs <- fmt.Errorf("worker %d phase %d: acquire %s: %w", w, p, name, err)
						return
					}
					// Every grant of a name is alice's one hold: token 1, always.
					if g.Lock.Token != 1 || g.Lock.Holder != "alice" {
						errs <- fmt.Errorf("worker %d phase %d: %s is %+v, want alice's hold with token 1", w, p, name, g.Lock)
						return
					}
				}
			}(w)
		}
		wg.Wait()
		if len(errs) > 0 {
			break
		}
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Held locks activate from their record in the holder index (no load):
	// count activations.
	loads := locks.activations.Load()
	if loads <= names {
		t.Fatalf("%d activations for %d names: no actor was passivated and re-activated, nothing raced", loads, names)
	}
	t.Logf("%d activations of %d names", loads, names)
	waitFor(t, func() bool { return sys.LiveActors() == 0 })
}
