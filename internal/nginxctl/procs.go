package nginxctl

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Proc is one process as far as telling nginx's worker generations apart needs it.
type Proc struct {
	PID, PPID int
	// Title is the command line as the process set it ("nginx: worker process").
	Title string
}

// nginx renames its processes; these titles tell the generations apart.
const (
	WorkerTitle   = "nginx: worker process"
	ShuttingTitle = "nginx: worker process is shutting down"
)

// ProcFS lists processes from /proc.
func ProcFS() ([]Proc, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []Proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		title := strings.TrimRight(strings.ReplaceAll(string(cmd), "\x00", " "), " ")
		out = append(out, Proc{PID: pid, PPID: ppid, Title: title})
	}
	return out, nil
}
