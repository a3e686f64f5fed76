package bench

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat's CPU
// times; 100 on every Linux this runs on.
const clockTicks = 100

// cpuTime is the CPU time a process used so far (user and system), from
// /proc/<pid>/stat; zero when the process is gone.
func cpuTime(pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields after its closing
	// parenthesis are fixed: utime and stime are the 12th and 13th.
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 13 {
		return 0
	}
	user, _ := strconv.ParseInt(fields[11], 10, 64)
	sys, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(user+sys) * time.Second / clockTicks
}

// proc is a process whose CPU time a phase accounts for.
type proc struct {
	name string
	pid  int
}

// cpuMeter measures the CPU time each process spends during a phase.
type cpuMeter struct {
	procs []proc
	start []time.Duration
}

func startCPU(procs []proc) *cpuMeter {
	m := &cpuMeter{procs: procs}
	for _, p := range procs {
		m.start = append(m.start, cpuTime(p.pid))
	}
	return m
}

// stop returns each process's CPU time since start, by name.
func (m *cpuMeter) stop() map[string]time.Duration {
	out := map[string]time.Duration{}
	for i, p := range m.procs {
		out[p.name] += cpuTime(p.pid) - m.start[i]
	}
	return out
}

// latencies are one phase's durations, sorted by percentile when read.
type latencies []time.Duration

func (l latencies) percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// median of the figures of several rounds.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
