package loadtest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuTimes is the CPU this process used (getrusage RUSAGE_SELF).
type cpuTimes struct{ user, sys time.Duration }

func readCPU() cpuTimes {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuTimes{}
	}
	return cpuTimes{
		user: time.Duration(ru.Utime.Nano()),
		sys:  time.Duration(ru.Stime.Nano()),
	}
}

func (a cpuTimes) sub(b cpuTimes) cpuTimes { return cpuTimes{a.user - b.user, a.sys - b.sys} }

// procCPU reads another process's CPU time from /proc/PID/stat (utime and
// stime, fields 14 and 15, in clock ticks of 1/100 s: USER_HZ is 100 on
// Linux). Precision is 10ms, ample over a run of seconds.
func procCPU(pid int) (cpuTimes, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	// the command name (field 2) may contain spaces: fields restart after ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return cpuTimes{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return cpuTimes{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return cpuTimes{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	const tick = 10 * time.Millisecond
	return cpuTimes{user: time.Duration(ut) * tick, sys: time.Duration(st) * tick}, nil
}

// cpuReport: CPU over the whole run (warmup included), as cores busy and
// microseconds per request (requests counted over the whole run by scaling
// the measured count by elapsed/measured).
func cpuReport(c cpuTimes, elapsed time.Duration, ops int64, measured time.Duration) CPU {
	out := CPU{UserS: c.user.Seconds(), SysS: c.sys.Seconds()}
	if elapsed > 0 {
		out.Cores = (c.user + c.sys).Seconds() / elapsed.Seconds()
	}
	if ops > 0 && measured > 0 {
		perSec := float64(ops) / measured.Seconds()
		out.MicrosPerOp = out.Cores / perSec * 1e6
	}
	return out
}

func hostInfo() Host {
	h := Host{CPUs: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				h.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return h
}
