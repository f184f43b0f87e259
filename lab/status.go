package lab

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MachineStatus is one machine as `lab status` shows it.
type MachineStatus struct {
	Name    string `json:"name"`
	Site    string `json:"site"`
	Address string `json:"address"`
	// State is running or stopped (killed by a fault, or its process died).
	State     string `json:"state"`
	PID       int    `json:"pid,omitempty"`
	CloudInit string `json:"cloudInit"`
	// System is `systemctl is-system-running` inside (running, degraded, ...).
	System string `json:"system,omitempty"`
	// DataDisk is the second disk's file (stateful machines only).
	DataDisk string `json:"dataDisk,omitempty"`
}

// Status is the whole lab as `lab status` shows it.
type Status struct {
	Network  string          `json:"network"`
	Machines []MachineStatus `json:"machines"`
	Faults   []Fault         `json:"faults"`
}

// GetStatus reads the lab's state and asks each running machine for its
// cloud-init and systemd state through its console.
func GetStatus(ctx context.Context, p Paths, r Runner) (*Status, error) {
	if r == nil {
		r = ExecRunner{}
	}
	if err := Preflight(true); err != nil {
		return nil, err
	}
	st, err := p.loadState()
	if err != nil {
		return nil, err
	}
	out := &Status{Network: networkState(), Faults: st.Faults}
	if out.Faults == nil {
		out.Faults = []Fault{}
	}
	for name, m := range st.Machines {
		ms := MachineStatus{Name: name, Site: m.Site, Address: m.Address, State: "stopped", CloudInit: "unknown"}
		if m.DataDisk != nil {
			ms.DataDisk = m.DataDisk.Image
		}
		if running(m.PID, name) {
			ms.State, ms.PID = "running", m.PID
			if init, err := initPID(ctx, m.PID, name, 2*time.Second); err == nil {
				c, _ := r.Run(ctx, Cmd{Argv: insideCmd(init, "cloud-init", "status").Argv, IgnoreFail: true})
				ms.CloudInit = parseCloudInitStatus(string(c))
				s, _ := r.Run(ctx, Cmd{Argv: insideCmd(init, "systemctl", "is-system-running").Argv, IgnoreFail: true})
				ms.System = firstLine(string(s))
			}
		}
		out.Machines = append(out.Machines, ms)
	}
	sort.Slice(out.Machines, func(i, j int) bool { return out.Machines[i].Name < out.Machines[j].Name })
	return out, nil
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}

// Console runs argv inside a running machine as root through its namespaces
// (the lab's serial console: used for faults and for what the deploy user may
// not do, never instead of SSH for what SSH is being tested for).
func Console(ctx context.Context, p Paths, r Runner, name string, argv ...string) ([]byte, error) {
	if r == nil {
		r = ExecRunner{}
	}
	init, err := machineInit(ctx, p, name)
	if err != nil {
		return nil, err
	}
	return r.Run(ctx, insideCmd(init, argv...))
}

func machineInit(ctx context.Context, p Paths, name string) (int, error) {
	st, err := p.loadState()
	if err != nil {
		return 0, err
	}
	m, ok := st.Machines[name]
	if !ok {
		return 0, unknownMachine(st, name)
	}
	if !running(m.PID, name) {
		return 0, &notRunningError{name}
	}
	return initPID(ctx, m.PID, name, 10*time.Second)
}

type notRunningError struct{ name string }

func (e *notRunningError) Error() string { return "machine " + e.name + " is not running" }

func unknownMachine(st *State, name string) error {
	var names []string
	for n := range st.Machines {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return &unknownError{"machine " + strconv.Quote(name) + ": the lab has no machines (run `belay lab up`)"}
	}
	return &unknownError{"machine " + strconv.Quote(name) + ": not in the lab, expected one of " + strings.Join(names, ", ")}
}

type unknownError struct{ msg string }

func (e *unknownError) Error() string { return e.msg }
