package cli

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/inventory"
)

// SSHFlags are how every command that reaches hosts connects: one definition
// of --ssh-key, --known-hosts, --bastion, --bastion-host-key and
// --connect-timeout, registered by AddSSHFlags, so the deploy commands and the
// operator commands (drill, failover, backup, maintenance) mean the same thing
// by them. TestEveryHostCommandHasSSHFlags (cmd/belay) walks the tree.
type SSHFlags struct {
	// KeyFiles are private keys (the agent at SSH_AUTH_SOCK is used too).
	KeyFiles []string
	// KnownHosts are extra known_hosts files (the inventory's pinned keys always win).
	KnownHosts []string
	// Bastion is an inventory host name or user@host[:port] to jump through.
	Bastion string
	// BastionHostKey pins a bastion that is not in the inventory (authorized_keys format).
	BastionHostKey string
	// ConnectTimeout bounds TCP connect plus SSH handshake per host (and per hop).
	ConnectTimeout time.Duration
}

// Flag names of SSHFlags, for tests and belay.yaml defaults.
var SSHFlagNames = []string{"ssh-key", "known-hosts", "bastion", "bastion-host-key", "connect-timeout"}

// AddSSHFlags registers the connection flags. timeout is the command's
// default --connect-timeout: 15 s for deploys; the operator commands use 5 s
// because they redial hosts they just killed or fenced, and every dial to a
// dead host costs the whole timeout.
func AddSSHFlags(cmd *cobra.Command, s *SSHFlags, timeout time.Duration) {
	fl := cmd.Flags()
	fl.StringSliceVar(&s.KeyFiles, "ssh-key", nil, "private key file for the deploy user (the SSH agent is used too; deploy commands also try id_ed25519 beside the inventory and in ~/.ssh)")
	fl.StringSliceVar(&s.KnownHosts, "known-hosts", nil, "extra known_hosts file (hosts' keys pinned in the inventory are always checked first)")
	fl.StringVar(&s.Bastion, "bastion", "", "jump host: an inventory host name, or user@host[:port] with --bastion-host-key")
	fl.StringVar(&s.BastionHostKey, "bastion-host-key", "", `pinned host key of a bastion outside the inventory ("ssh-ed25519 AAAA...")`)
	fl.DurationVar(&s.ConnectTimeout, "connect-timeout", timeout, "TCP connect + SSH handshake timeout per host (and per bastion hop)")
}

// CheckTimeout refuses a --connect-timeout that cannot work.
func (s SSHFlags) CheckTimeout() error {
	if s.ConnectTimeout < 100*time.Millisecond || s.ConnectTimeout > 10*time.Minute {
		return fmt.Errorf("--connect-timeout %s: expected 100ms-10m", s.ConnectTimeout)
	}
	return nil
}

// HostTarget is the pinned SSH target of an inventory host.
func HostTarget(h inventory.Host) (sshx.Target, error) {
	k, err := h.HostPublicKey()
	if err != nil {
		return sshx.Target{}, err
	}
	return sshx.Target{Name: h.Name, Addr: net.JoinHostPort(h.SSHAddress, strconv.Itoa(h.SSHPort)), User: h.DeployUser, HostKeys: []ssh.PublicKey{k}}, nil
}

// BastionTarget resolves --bastion: nil without one; an inventory host by
// name (its pinned key); else user@host[:port], whose key must be pinned by
// --bastion-host-key or found in a --known-hosts file.
func (s SSHFlags) BastionTarget(inv *inventory.Inventory) (*sshx.Target, error) {
	if s.Bastion == "" {
		if s.BastionHostKey != "" {
			return nil, errors.New("--bastion-host-key without --bastion")
		}
		return nil, nil
	}
	if h := inv.Host(s.Bastion); h != nil {
		t, err := HostTarget(*h)
		return &t, err
	}
	u, hostport, ok := strings.Cut(s.Bastion, "@")
	if !ok || u == "" || hostport == "" {
		return nil, fmt.Errorf("--bastion %q: not an inventory host; expected user@host[:port]", s.Bastion)
	}
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		hostport = net.JoinHostPort(hostport, "22")
	}
	t := &sshx.Target{Name: "bastion " + hostport, Addr: hostport, User: u}
	if s.BastionHostKey != "" {
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s.BastionHostKey))
		if err != nil {
			return nil, fmt.Errorf("--bastion-host-key: not an SSH public key: %w", err)
		}
		t.HostKeys = []ssh.PublicKey{k}
	} else if len(s.KnownHosts) == 0 {
		return nil, errors.New("--bastion outside the inventory needs --bastion-host-key or --known-hosts: its key must be pinned too")
	}
	return t, nil
}
