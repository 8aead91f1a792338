//go:build !linux

package main

// physicalMemory is the machine's RAM in bytes: unknown here (0), so the
// default memory limit is none unless a cgroup says otherwise.
func physicalMemory() uint64 { return 0 }
