// Package opsenv opens what the operator commands (drill, failover, backup)
// need for an inventory: SSH to its hosts, a root path, the seed, and — for
// the lab only — fault injection. It is the one place that tells the lab from
// a cloud stack.
package opsenv

import (
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/drill/labfaults"
	"github.com/belay-sh/belay/httpprobe"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/lab"
	"github.com/belay-sh/belay/remote"
)

// Flags are the connection flags every operator command shares.
type Flags struct {
	// SSH are --ssh-key, --known-hosts, --bastion, --bastion-host-key and
	// --connect-timeout, defined once for every host command (cli.AddSSHFlags).
	SSH cli.SSHFlags
	// SeedFile holds the stack's belay:hostKeySeed (cloud stacks; the lab has its own).
	SeedFile string
	// CAFile verifies the apps' HTTPS certificates in probes (--ca-file; "" = system roots).
	CAFile string
}

// Target is an opened inventory.
type Target struct {
	Inv   *inventory.Inventory
	Lab   bool
	Hosts *remote.Hosts
	// Faults is the lab's fault API (nil outside the lab).
	Faults *labfaults.Faults
	closer io.Closer
	flags  Flags
	// fenced is Hosts under the leases HoldLeases took (nil before).
	fenced *Fenced
	getenv func(string) string
}

// IsLab reports whether inv is the lab's (both sites on provider "lab").
func IsLab(inv *inventory.Inventory) bool {
	for _, s := range inv.Sites {
		if s.Provider != "lab" {
			return false
		}
	}
	return len(inv.Sites) > 0
}

// DefaultConnectTimeout is the operator commands' --connect-timeout: short,
// because drills and site switches redial hosts they just killed or fenced.
const DefaultConnectTimeout = 5 * time.Second

// AddFlags registers the shared SSH flags on an operator command.
func AddFlags(cmd *cobra.Command, fl *Flags) {
	cli.AddSSHFlags(cmd, &fl.SSH, DefaultConnectTimeout)
}

// AddSeedFlag registers --seed-file, for the commands that need the seed.
func AddSeedFlag(cmd *cobra.Command, fl *Flags) {
	cmd.Flags().StringVar(&fl.SeedFile, "seed-file", "", "file holding the stack's belay:hostKeySeed (cloud; or $BELAY_HOST_KEY_SEED); the lab uses its own")
}

// AddCAFlag registers --ca-file, for the commands that probe apps through
// their VIP or servers (drill app-node and site, failover site).
func AddCAFlag(cmd *cobra.Command, fl *Flags) {
	cmd.Flags().StringVar(&fl.CAFile, "ca-file", "", httpprobe.CAFileUsage)
}

// Roots are --ca-file's certificates (nil: the system roots).
func (t *Target) Roots() (*x509.CertPool, error) { return httpprobe.LoadRoots(t.flags.CAFile) }

// Open prepares SSH (lab: the lab's admin key and root consoles; cloud: the
// agent and --ssh-key files, root through `sudo -n`), with fl's
// --connect-timeout per hop and --bastion as the jump host.
func Open(inv *inventory.Inventory, fl Flags, getenv func(string) string) (*Target, error) {
	t := &Target{Inv: inv, Lab: IsLab(inv), flags: fl, getenv: getenv}
	if fl.SSH.ConnectTimeout == 0 {
		fl.SSH.ConnectTimeout = DefaultConnectTimeout // callers that build Flags{} themselves
	}
	if err := fl.SSH.CheckTimeout(); err != nil {
		return nil, err
	}
	bastion, err := fl.SSH.BastionTarget(inv)
	if err != nil {
		return nil, err
	}
	h := &remote.Hosts{Inv: inv, DialTimeout: fl.SSH.ConnectTimeout, Bastion: bastion, KnownHostsFiles: fl.SSH.KnownHosts}
	if t.Lab {
		f := &labfaults.Faults{Paths: lab.DefaultPaths}
		auth, err := f.Auth()
		if err != nil {
			return nil, err
		}
		h.Auth, h.Root, t.Faults = auth, f.Root, f
	} else {
		auth, closer, err := sshx.AuthFromEnv(getenv("SSH_AUTH_SOCK"), fl.SSH.KeyFiles)
		if err != nil {
			return nil, err
		}
		h.Auth, t.closer = auth, closer
	}
	t.Hosts = h
	return t, nil
}

// Seed returns the stack's host-key seed: the lab's own, else --seed-file,
// else $BELAY_HOST_KEY_SEED.
func (t *Target) Seed() (string, error) {
	if t.Lab {
		return t.Faults.Seed()
	}
	if t.flags.SeedFile != "" {
		b, err := os.ReadFile(t.flags.SeedFile)
		if err != nil {
			return "", fmt.Errorf("--seed-file: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("--seed-file %s: empty, expected the stack's belay:hostKeySeed", t.flags.SeedFile)
		}
		return s, nil
	}
	if s := strings.TrimSpace(t.getenv("BELAY_HOST_KEY_SEED")); s != "" {
		return s, nil
	}
	return "", fmt.Errorf("the stack's host-key seed is needed (the app role's password derives from it): give --seed-file or set BELAY_HOST_KEY_SEED (pulumi config get belay:hostKeySeed)")
}

// Close closes the connections.
func (t *Target) Close() {
	t.Hosts.Close()
	if t.closer != nil {
		t.closer.Close()
	}
}
