package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Paths is where the lab keeps its files. Tests point it elsewhere only for pure parts;
// the machines themselves always need root.
type Paths struct {
	// State holds the seed, the admin key, known_hosts, the inventory, state.json and the machines.
	State string
	// Cache holds built images (keyed by a hash of their inputs) and the package download cache.
	Cache string
}

// DefaultPaths is the production layout.
var DefaultPaths = Paths{State: "/var/lib/belay/lab", Cache: "/var/cache/belay/lab"}

func (p Paths) seed() string               { return filepath.Join(p.State, "seed") }
func (p Paths) adminKey() string           { return filepath.Join(p.State, "id_ed25519") }
func (p Paths) knownHosts() string         { return filepath.Join(p.State, "known_hosts") }
func (p Paths) inventory() string          { return filepath.Join(p.State, "inventory.json") }
func (p Paths) stateFile() string          { return filepath.Join(p.State, "state.json") }
func (p Paths) machineDir(n string) string { return filepath.Join(p.State, "machines", n) }

// AdminKeyPath is the deploy user's private key for the lab.
func (p Paths) AdminKeyPath() string { return p.adminKey() }

// KnownHostsPath is the OpenSSH known_hosts file with every machine's pinned key.
func (p Paths) KnownHostsPath() string { return p.knownHosts() }

// InventoryPath is the inventory `lab up` writes.
func (p Paths) InventoryPath() string { return p.inventory() }

// State is what the lab remembers between commands (state.json).
type State struct {
	Stack    string                   `json:"stack"`
	Image    string                   `json:"image"`
	Machines map[string]*MachineState `json:"machines"`
	// Faults are the injected faults not yet healed, oldest first.
	Faults []Fault `json:"faults"`
}

// MachineState is one machine's bookkeeping.
type MachineState struct {
	Name    string `json:"name"`
	Site    string `json:"site"`
	Address string `json:"address"`
	Bridge  string `json:"bridge"`
	// PID is the systemd-nspawn process; 0 when the machine is not running.
	PID int `json:"pid"`
	// UserDataHash identifies the user data the machine was created with; a change recreates it.
	UserDataHash string    `json:"userDataHash"`
	Created      time.Time `json:"created"`
	// DataDisk is the machine's second disk (stateful hosts only); it survives
	// `lab replace` and a replacement by `lab up`, and goes with `lab down`.
	DataDisk *DataDisk `json:"dataDisk,omitempty"`
}

func (p Paths) loadState() (*State, error) {
	st := &State{Machines: map[string]*MachineState{}}
	b, err := os.ReadFile(p.stateFile())
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lab state: %w", err)
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("lab state %s: %w (remove it after `belay lab down` if it is damaged)", p.stateFile(), err)
	}
	if st.Machines == nil {
		st.Machines = map[string]*MachineState{}
	}
	return st, nil
}

func (p Paths) saveState(st *State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(p.stateFile(), append(b, '\n'), 0o600)
}

// lockWait bounds how long a lab command waits for another to finish.
const lockWait = 15 * time.Minute

// lock serialises lab commands (two `lab up`s would fight over the same bridges).
func (p Paths) lock() (func(), error) {
	if err := os.MkdirAll(p.State, 0o700); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(p.State, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lab lock: %w", err)
	}
	// Wait for the command holding it (a drill's fault waits for a running heal);
	// give up after lockWait so a stuck command is reported rather than waited on forever.
	// A reservation by another process (a test run checking faults) is waited
	// out the same way.
	deadline := time.Now().Add(lockWait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			pid, who, other := reservedByOther(p)
			if !other {
				break
			}
			_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			err = fmt.Errorf("reserved by %s (pid %d)", who, pid)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lab: waited %s for %s: %v", lockWait, f.Name(), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
