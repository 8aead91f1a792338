package main

import (
	"math"
	"os"
	"strconv"
	"strings"
)

// The Go heap's soft limit (serve --memory-limit, runtime/debug.SetMemoryLimit).
//
// Without a limit the garbage collector lets the heap grow to twice what is
// live (GOGC=100) however close that comes to the memory the machine or the
// container has: a server holding a burst of locks (each one an actor while
// it is taken, docs/benchmarks.md) can be killed for memory it would have
// given back at the next collection. With the limit, the collector runs
// more often as the heap nears it and keeps it under (it gives up at half
// of the CPU, so a server whose live data does not fit degrades instead of
// thrashing). Far below the limit nothing changes: the limit costs nothing
// when it does not bind (measured: docs/benchmarks.md, "GC").

// memoryLimitFraction is the part of the memory available to the process
// (the cgroup's limit, else the machine's) that the Go heap may use by
// default: SQLite's page caches (64 MiB for the writer's connection and up
// to 8 readers'), the stacks and the rest of the process live outside it.
const memoryLimitFraction = 0.75

// cgroupLimitFiles hold the memory limit of the process's cgroup (v2, then
// v1); "max", or v1's page-rounded 2^63-1, mean none.
var cgroupLimitFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// defaultMemoryLimit is the default of serve --memory-limit:
// memoryLimitFraction of the memory available (availableMemory), or 0 when
// that is unknown (then there is no limit).
func defaultMemoryLimit() int64 {
	return int64(float64(availableMemory(os.ReadFile, physicalMemory)) * memoryLimitFraction)
}

// availableMemory is the smaller of the cgroup's memory limit (if any) and
// the machine's physical memory, in bytes (0: unknown). read and physical
// are os.ReadFile and physicalMemory (tests give others).
func availableMemory(read func(string) ([]byte, error), physical func() uint64) uint64 {
	mem := physical()
	for _, f := range cgroupLimitFiles {
		b, err := read(f)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		v, err := strconv.ParseUint(s, 10, 64)
		if s == "max" || err != nil || v >= math.MaxInt64/4096*4096 {
			break // no limit in the cgroup (or not a number): the machine's memory
		}
		if mem == 0 || v < mem {
			mem = v
		}
		break
	}
	return mem
}
