package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CPU accounting (Linux, /proc): what each side of a run spent, which on
// a busy machine says more than throughput does. Other work slows a run
// down; it hardly changes the CPU time a refresh costs.

// cpuSample is the CPU time used so far by this process, by the server
// process, and by every process named postgres on the machine (0 when
// not asked for or not readable).
type cpuSample struct {
	tool, server, postgres time.Duration
}

func sampleCPU(serverPID int, postgres bool) cpuSample {
	s := cpuSample{tool: cpuTime()}
	if serverPID > 0 {
		s.server, _ = procCPU(serverPID, false)
	}
	if postgres {
		dirs, _ := filepath.Glob("/proc/[0-9]*")
		for _, d := range dirs {
			pid, err := strconv.Atoi(filepath.Base(d))
			if err != nil {
				continue
			}
			// The postmaster's children times hold the backends that
			// ended: a backend's time moves there when it exits.
			if t, ok := procCPU(pid, true); ok {
				s.postgres += t
			}
		}
	}
	return s
}

// procCPU reads utime+stime of pid from /proc/PID/stat. With
// postgresOnly it reads only a process named postgres (ok false for
// others), its waited-for children's times included.
func procCPU(pid int, postgresOnly bool) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	line := string(b)
	open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || end < open {
		return 0, false
	}
	if postgresOnly && line[open+1:end] != "postgres" {
		return 0, false
	}
	// The fields after the command, from state (field 3 of stat(5)):
	// utime (14) and stime (15) are f[11] and f[12], cutime (16) and
	// cstime (17) f[13] and f[14].
	f := strings.Fields(line[end+1:])
	if len(f) < 15 {
		return 0, false
	}
	fields := f[11:13]
	if postgresOnly {
		fields = f[11:15]
	}
	var ticks int64
	for _, x := range fields {
		v, _ := strconv.ParseInt(x, 10, 64)
		ticks += v
	}
	// /proc counts in USER_HZ, 100 per second on Linux.
	return time.Duration(ticks) * 10 * time.Millisecond, true
}

func (a cpuSample) sub(b cpuSample) cpuSample {
	return cpuSample{tool: a.tool - b.tool, server: a.server - b.server, postgres: a.postgres - b.postgres}
}

func (a cpuSample) total() time.Duration { return a.tool + a.server + a.postgres }
