package main

import (
	"runtime/debug"
	"sync"
	"testing"
)

// Pauses nest and overlap (several servers start in one test process): the
// collector's setting is off while any is in force and comes back, as it
// was, when the last ends, whatever the order; a resume called twice
// counts once.
func TestPauseGCNestsAndRestores(t *testing.T) {
	before := debug.SetGCPercent(137)
	defer debug.SetGCPercent(before)
	percent := func() int { p := debug.SetGCPercent(-1); debug.SetGCPercent(p); return p }

	a := pauseGC()
	b := pauseGC()
	if p := percent(); p != -1 {
		t.Fatalf("GC percent %d during two pauses, want -1 (off)", p)
	}
	a()
	a() // a second call changes nothing
	if p := percent(); p != -1 {
		t.Fatalf("GC percent %d with one pause left, want -1", p)
	}
	b()
	if p := percent(); p != 137 {
		t.Fatalf("GC percent %d after the last pause, want 137 back", p)
	}

	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				pauseGC()()
			}
		}()
	}
	wg.Wait()
	if p := percent(); p != 137 {
		t.Fatalf("GC percent %d after concurrent pauses, want 137", p)
	}
}
