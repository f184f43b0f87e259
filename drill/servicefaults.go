package drill

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/remote"
)

// ServiceFaults injects the one fault that needs no provider API and no lab:
// stopping a systemd unit on a host (`systemctl stop`, as root: `sudo -n` over
// SSH on a cloud stack), healed by starting it again. Drills use it outside
// the lab for the variants built on it (app-node/stop-nginx,
// db-primary/stop-service); power-off, link cuts and partitions stay lab-only.
type ServiceFaults struct {
	Hosts remote.Runner

	mu      sync.Mutex
	stopped []Fault
}

var _ Faults = (*ServiceFaults)(nil)

// ServiceFaultUnits are the units ServiceFaults may stop (the sudoers allow exactly these).
var ServiceFaultUnits = []string{hostcmd.NginxUnit, hostcmd.PGAutoFailoverUnit}

// Inject stops f.Service on f.Host.
func (s *ServiceFaults) Inject(ctx context.Context, f Fault) (time.Time, error) {
	if f.Kind != FaultStopService {
		return time.Time{}, fmt.Errorf("fault %s outside the lab: %w (only stopping a service works without provider APIs)", f.Kind, ErrNoFaults)
	}
	known := false
	for _, u := range ServiceFaultUnits {
		known = known || u == f.Service
	}
	if !known {
		return time.Time{}, fmt.Errorf("fault %s: service %q is not one drills stop outside the lab (%v)", f, f.Service, ServiceFaultUnits)
	}
	s.mu.Lock()
	s.stopped = append(s.stopped, f)
	s.mu.Unlock()
	t0 := time.Now()
	if _, err := s.Hosts.RunRoot(ctx, f.Host, hostcmd.StopUnit(f.Service)...); err != nil {
		return t0, fmt.Errorf("stop %s on %s: %w", f.Service, f.Host, err)
	}
	return t0, nil
}

// Heal starts every stopped service again, newest first.
func (s *ServiceFaults) Heal(ctx context.Context) error {
	s.mu.Lock()
	stopped := s.stopped
	s.stopped = nil
	s.mu.Unlock()
	var errs []error
	for i := len(stopped) - 1; i >= 0; i-- {
		f := stopped[i]
		if _, err := s.Hosts.RunRoot(ctx, f.Host, hostcmd.StartUnit(f.Service)...); err != nil {
			errs = append(errs, fmt.Errorf("start %s on %s: %w", f.Service, f.Host, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("heal: %v", errs)
	}
	return nil
}

// Partitioned is always false: ServiceFaults never cuts the network.
func (s *ServiceFaults) Partitioned(context.Context) (bool, error) { return false, nil }
