package main

import (
	"context"
	"errors"
	"io/fs"
	"math"
	"runtime/debug"
	"testing"
)

func TestAvailableMemory(t *testing.T) {
	const gib = 1 << 30
	files := func(m map[string]string) func(string) ([]byte, error) {
		return func(name string) ([]byte, error) {
			if v, ok := m[name]; ok {
				return []byte(v), nil
			}
			return nil, fs.ErrNotExist
		}
	}
	phys := func() uint64 { return 24 * gib }
	for _, c := range []struct {
		name  string
		files map[string]string
		phys  func() uint64
		want  uint64
	}{
		{"no cgroup files", nil, phys, 24 * gib},
		{"cgroup v2 limit", map[string]string{"/sys/fs/cgroup/memory.max": "2147483648\n"}, phys, 2 * gib},
		{"cgroup v2 max", map[string]string{"/sys/fs/cgroup/memory.max": "max\n"}, phys, 24 * gib},
		{"cgroup v1 limit", map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "4294967296\n"}, phys, 4 * gib},
		{"cgroup v1 unlimited", map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}, phys, 24 * gib},
		{"v2 wins over v1", map[string]string{"/sys/fs/cgroup/memory.max": "max", "/sys/fs/cgroup/memory/memory.limit_in_bytes": "1073741824"}, phys, 24 * gib},
		{"cgroup above the machine", map[string]string{"/sys/fs/cgroup/memory.max": "68719476736"}, phys, 24 * gib},
		{"garbage", map[string]string{"/sys/fs/cgroup/memory.max": "lots"}, phys, 24 * gib},
		{"cgroup, machine unknown", map[string]string{"/sys/fs/cgroup/memory.max": "1073741824"}, func() uint64 { return 0 }, gib},
		{"nothing known", nil, func() uint64 { return 0 }, 0},
	} {
		if got := availableMemory(files(c.files), c.phys); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}

func TestMemoryLimitResolution(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	if v, set := memoryLimit(-1); !set || v != math.MaxInt64 {
		t.Errorf("-1: %d %v, want no limit", v, set)
	}
	if v, set := memoryLimit(123 << 20); !set || v != 123<<20 {
		t.Errorf("123 MiB: %d %v", v, set)
	}
	if d := defaultMemoryLimit(); d > 0 {
		if v, set := memoryLimit(0); !set || v != d {
			t.Errorf("0: %d %v, want the default %d", v, set, d)
		}
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	if _, set := memoryLimit(0); set {
		t.Error("the default overrode GOMEMLIMIT")
	}
	if v, set := memoryLimit(64 << 20); !set || v != 64<<20 {
		t.Errorf("a given limit with GOMEMLIMIT set: %d %v", v, set)
	}
}

// Run sets the limit for the process while the server runs and Close puts
// back the one that was in force.
func TestRunSetsAndRestoresMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	m := newTestMain(t)
	m.Config.MemoryLimit = 3 << 30
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetMemoryLimit(-1); got != 3<<30 {
		t.Errorf("while serving: limit %d, want %d", got, int64(3<<30))
	}
	if err := m.Close(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("after Close: limit %d, want %d as before", got, before)
	}
}
