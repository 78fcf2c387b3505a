package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
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
