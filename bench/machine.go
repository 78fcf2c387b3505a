package bench

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Machine describes where figures were measured.
type Machine struct {
	CPU       string  `json:"cpu"`
	Cores     int     `json:"cores"`
	MemoryGiB float64 `json:"memory_gib"`
	Kernel    string  `json:"kernel"`
	Disk      string  `json:"disk"` // file system and device holding the WAL directory
	Go        string  `json:"go"`
	// Load averages when the run started and ended: the machine may be
	// shared, and a busy neighbour moves every absolute figure.
	LoadStart string `json:"load_average_start,omitempty"`
	LoadEnd   string `json:"load_average_end,omitempty"`
}

// LoadAverage is /proc/loadavg's 1, 5 and 15 minute figures.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// DescribeMachine reads /proc, uname, df and lsblk. Missing tools leave
// fields empty rather than failing a run.
func DescribeMachine(ctx context.Context, dir string) Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), LoadStart: LoadAverage()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				m.MemoryGiB = float64(parseKB(v)) / (1 << 20)
				m.MemoryGiB = float64(int(m.MemoryGiB*10+0.5)) / 10
			}
		}
	}
	run := func(name string, args ...string) string {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, name, args...).Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	m.Kernel = run("uname", "-srm")
	// df -T: device, type, size of the file system holding dir.
	if out := run("df", "-hT", dir); out != "" {
		lines := strings.Split(out, "\n")
		if f := strings.Fields(lines[len(lines)-1]); len(f) >= 3 {
			m.Disk = f[1] + " on " + f[0] + ", " + f[2]
			dev := f[0]
			if strings.HasPrefix(dev, "/dev/") {
				if info := run("lsblk", "-dno", "NAME,ROTA,MODEL,SIZE", dev); info != "" {
					m.Disk += " (" + strings.Join(strings.Fields(info), " ") + ")"
				} else if info := run("lsblk", "-no", "PKNAME", dev); info != "" {
					if d := run("lsblk", "-dno", "NAME,ROTA,MODEL,SIZE", "/dev/"+strings.Fields(info)[0]); d != "" {
						m.Disk += " (" + strings.Join(strings.Fields(d), " ") + ")"
					}
				}
			}
		}
	}
	return m
}
