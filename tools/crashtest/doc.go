// Package crashtest proves octostore's durability and linearizability
// promises (docs/guarantees.md) against the real binary: its tests build
// `octostore`, run it as a subprocess under concurrent clients, kill it with
// SIGKILL at random moments, restart it on the same database and check that
// every acknowledged operation survived (locks, sessions, semaphore slots,
// lock-delays, config keys, flags), that fencing tokens and config versions
// never went backwards or repeated, and that the recorded client histories
// of locks, semaphores and config keys are linearizable (porcupine, models
// in model.go; the workloads of sessions, semaphores and lock-delay in
// kinds_test.go).
//
//	go test ./tools/crashtest                                   # short: a few cycles
//	go test ./tools/crashtest -run CrashLoop -count=1 -crash.cycles=50   # just crash-test
package crashtest
