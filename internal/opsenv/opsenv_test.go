package opsenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy/sshx/sshdtest"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/inventory"
)

// Open hands --connect-timeout and --bastion to the SSH layer, and refuses
// bad values before it touches the agent or a key.
func TestOpenPassesSSHFlags(t *testing.T) {
	inv := &inventory.Inventory{Stack: "s", Sites: map[inventory.SiteName]inventory.Site{"primary": {Provider: "hetzner"}}}
	_, pemKey := sshdtest.NewKey(t)
	keyFile := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(keyFile, pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILMANJ4qj6uGe4pZV0TFAvSORJACth9tw13/F7yvVA8h"
	tg, err := Open(inv, Flags{SSH: cli.SSHFlags{KeyFiles: []string{keyFile}, ConnectTimeout: 3 * time.Second, Bastion: "ops@jump.example:2222", BastionHostKey: key}}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	if tg.Hosts.DialTimeout != 3*time.Second {
		t.Errorf("DialTimeout %s, want 3s", tg.Hosts.DialTimeout)
	}
	if b := tg.Hosts.Bastion; b == nil || b.Addr != "jump.example:2222" || b.User != "ops" || len(b.HostKeys) != 1 {
		t.Errorf("Bastion %+v, want ops@jump.example:2222 pinned", b)
	}
	tg2, err := Open(inv, Flags{SSH: cli.SSHFlags{KeyFiles: []string{keyFile}}}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	tg2.Close()
	if tg2.Hosts.DialTimeout != DefaultConnectTimeout || tg2.Hosts.Bastion != nil {
		t.Errorf("defaults: %s %v", tg2.Hosts.DialTimeout, tg2.Hosts.Bastion)
	}
	for _, tc := range []struct {
		fl   cli.SSHFlags
		want string
	}{
		{cli.SSHFlags{ConnectTimeout: time.Millisecond}, "--connect-timeout 1ms"},
		{cli.SSHFlags{ConnectTimeout: time.Second, Bastion: "jump.example"}, `--bastion "jump.example"`},
		{cli.SSHFlags{ConnectTimeout: time.Second, Bastion: "ops@jump.example"}, "needs --bastion-host-key or --known-hosts"},
		{cli.SSHFlags{ConnectTimeout: time.Second, BastionHostKey: key}, "--bastion-host-key without --bastion"},
	} {
		if _, err := Open(inv, Flags{SSH: tc.fl}, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.fl, err, tc.want)
		}
	}
}
