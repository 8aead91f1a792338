//go:build race

package loadtest

// raceEnabled: the race detector adds allocations of its own.
const raceEnabled = true
