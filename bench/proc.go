package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/<pid>/stat. It is
// 100 on every Linux architecture Go supports (the kernel fixes it for the
// ABI regardless of CONFIG_HZ).
const clockTicks = 100

// ProcStats is a process's memory and CPU use from /proc.
type ProcStats struct {
	RSSKB      int64   `json:"rss_kb"`      // VmRSS: resident now
	PeakRSSKB  int64   `json:"peak_rss_kb"` // VmHWM: peak resident since start
	CPUSeconds float64 `json:"cpu_seconds"` // user + system time since start
}

// ReadProcStats reads /proc/<pid>/status and /proc/<pid>/stat.
func ReadProcStats(pid int) (ProcStats, error) {
	var st ProcStats
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, fmt.Errorf("read process status: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		line := sc.Text()
		name, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch name {
		case "VmRSS":
			st.RSSKB = parseKB(val)
		case "VmHWM":
			st.PeakRSSKB = parseKB(val)
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, fmt.Errorf("read process stat: %w", err)
	}
	cpu, err := parseStatCPU(stat)
	if err != nil {
		return st, err
	}
	st.CPUSeconds = cpu
	return st, nil
}

func parseKB(s string) int64 {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(f[0], 10, 64)
	return n
}

// parseStatCPU returns utime+stime in seconds. The command name (field 2) is
// in parentheses and may contain spaces or parentheses, so fields are counted
// after the last ')'.
func parseStatCPU(stat []byte) (float64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc stat: no command field")
	}
	f := strings.Fields(string(stat[i+1:]))
	// After the command: state(3) ppid(4) ... utime is field 14, stime 15,
	// i.e. indexes 11 and 12 here.
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc stat: %d fields", len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc stat: utime %q stime %q", f[11], f[12])
	}
	return float64(u+s) / clockTicks, nil
}

// MachineCPU is the CPU time of the whole machine from /proc/stat, summed
// over all CPUs: what every process (load generator, collector, PostgreSQL,
// S3 server, neighbours) used.
type MachineCPU struct {
	BusySeconds  float64
	TotalSeconds float64
}

// ReadMachineCPU reads the first line of /proc/stat.
func ReadMachineCPU() (MachineCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return MachineCPU{}, fmt.Errorf("read /proc/stat: %w", err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 6 || f[0] != "cpu" {
		return MachineCPU{}, fmt.Errorf("parse /proc/stat: %q", line)
	}
	var m MachineCPU
	// user nice system idle iowait irq softirq steal (guest time is already
	// counted in user).
	for i, s := range f[1:min(len(f), 9)] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return MachineCPU{}, fmt.Errorf("parse /proc/stat field %d: %w", i+1, err)
		}
		sec := float64(v) / clockTicks
		m.TotalSeconds += sec
		if i != 3 && i != 4 { // idle, iowait
			m.BusySeconds += sec
		}
	}
	return m, nil
}

// busyCores is the machine's CPU use between two readings, in cores.
func busyCores(from, to MachineCPU, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return (to.BusySeconds - from.BusySeconds) / wall.Seconds()
}
