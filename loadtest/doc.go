// Package loadtest is the engine behind `octostore loadtest`: scenarios that
// drive an octostore server (or, as a baseline, Redis) at a fixed concurrency
// (closed loop) or a fixed arrival rate (open loop), HDR latency histograms
// per operation, a safety checker for the lock scenarios, and the reports
// (table, JSON, comparison of two JSON reports).
//
// A run names everything it creates Prefix(RunID) + … and deletes it at the
// end (cleanup.go), also when it is interrupted or its setup fails, unless
// told to keep it; Report.Judge says whether the run passed (error rate,
// safety, cleanup).
//
// Ownership, so that the hot path needs no locks:
//   - every worker goroutine owns its connection (Conn), its scratch buffers,
//     its per-operation histograms and its slice of lock events; the runner
//     merges them after the workers have stopped;
//   - the once-a-second terminal progress line reads per-worker counters (atomics) and a
//     per-worker interval histogram guarded by its own mutex, which the worker
//     holds only for the few nanoseconds of one RecordValue;
//   - the safety checker (Check) is a pure function of the merged history.
//
// Times are offsets from the start of the run on the monotonic clock, so the
// checker and the open-loop schedule never see wall-clock jumps.
package loadtest
