// Package labfaults connects the drills and the site switch to the lab: fault
// injection through the lab's fault API, root commands through the machines'
// consoles, and the lab's seed and admin key. Nothing else in drill/ or
// failover/ knows the lab exists.
package labfaults

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/belay-sh/belay/drill"
	"github.com/belay-sh/belay/lab"
)

// Faults injects drill faults into the lab's machines.
type Faults struct {
	Paths lab.Paths
}

var _ drill.Faults = Faults{}

// Inject applies f through the lab's fault API and returns when the
// successful attempt started (waits for the lab's lock are not fault time).
func (f Faults) Inject(ctx context.Context, d drill.Fault) (time.Time, error) {
	lf := lab.Fault{Machine: d.Host}
	switch d.Kind {
	case drill.FaultKill:
		lf.Kind = lab.FaultKill
	case drill.FaultCutLink:
		lf.Kind = lab.FaultCutLink
	case drill.FaultStopService:
		lf.Kind, lf.Service = lab.FaultStopService, d.Service
	case drill.FaultPartition:
		lf = lab.Fault{Kind: lab.FaultPartition}
	default:
		return time.Time{}, fmt.Errorf("lab: fault %q not supported", d.Kind)
	}
	var at time.Time
	err := retryLocked(ctx, func() error {
		at = time.Now()
		return lab.Inject(ctx, f.Paths, nil, lf)
	})
	return at, err
}

// retryLocked retries fn while another lab command holds the lab's lock (other
// lab users' short commands); anything else, or 3 minutes of waiting, ends it.
func retryLocked(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		err := fn()
		if err == nil || !strings.Contains(err.Error(), "another belay lab command is running") || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Heal undoes every fault the lab recorded and waits for killed machines to boot.
func (f Faults) Heal(ctx context.Context) error {
	return retryLocked(ctx, func() error {
		_, err := lab.Heal(ctx, f.Paths, nil, nil)
		return err
	})
}

// Partitioned reports whether the lab's sites are partitioned now.
func (f Faults) Partitioned(ctx context.Context) (bool, error) {
	st, err := lab.GetStatus(ctx, f.Paths, nil)
	if err != nil {
		return false, err
	}
	for _, x := range st.Faults {
		if x.Kind == lab.FaultPartition {
			return true, nil
		}
	}
	return false, nil
}

// Root runs argv as root inside a lab machine (its console): what the deploy
// user's sudoers do not allow.
func (f Faults) Root(ctx context.Context, host string, argv ...string) ([]byte, error) {
	out, err := lab.Console(ctx, f.Paths, nil, host, argv...)
	if err != nil {
		return out, fmt.Errorf("host %s (as root): %w", host, err)
	}
	return out, nil
}

// Auth is the lab's admin key (the deploy user's login on every machine).
func (f Faults) Auth() ([]ssh.AuthMethod, error) {
	s, err := lab.AdminSigner(f.Paths)
	if err != nil {
		return nil, err
	}
	return []ssh.AuthMethod{ssh.PublicKeys(s)}, nil
}

// Seed reads the lab's host-key seed.
func (f Faults) Seed() (string, error) {
	b, err := os.ReadFile(f.Paths.State + "/seed")
	if err != nil {
		return "", fmt.Errorf("lab seed (run `belay lab up` first): %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
