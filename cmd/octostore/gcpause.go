package main

import (
	"runtime/debug"
	"sync"
)

// Start-up recovery and the garbage collector.
//
// Recovery builds the index of every held lock (a million records for a
// million held locks) and allocates little else: what it allocates, it
// keeps. With GOGC's pacing the collector ran again each time the heap
// doubled while it grew, marking the records built so far every time:
// about a fifth of the start-up's CPU with 1M held locks
// (docs/benchmarks.md, "Start-up with 1,000,000 held locks"). pauseGC
// turns the pacing off (debug.SetGCPercent(-1)) for the recovery; the
// memory limit (serve --memory-limit, in force since the first step of
// Run) still makes the collector run if the heap nears it. The setting is
// the process's, and tests run several servers in one process, so pauses
// are counted: the first saves the setting, the last gives it back (the
// collector then runs at once, in the background, against the heap
// recovery left).

// gcPauses counts the pauses in force.
var gcPauses struct {
	mu   sync.Mutex // guards n and prev
	n    int        // pauses in force
	prev int        // the GC percentage before the first of them
}

// pauseGC turns the collector's pacing off until the returned resume is
// called (once).
func pauseGC() (resume func()) {
	gcPauses.mu.Lock()
	if gcPauses.n == 0 {
		gcPauses.prev = debug.SetGCPercent(-1)
	}
	gcPauses.n++
	gcPauses.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			gcPauses.mu.Lock()
			gcPauses.n--
			if gcPauses.n == 0 {
				debug.SetGCPercent(gcPauses.prev)
			}
			gcPauses.mu.Unlock()
		})
	}
}
