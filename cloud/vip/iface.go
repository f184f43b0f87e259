package vip

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
)

// Runner runs argv and returns its standard output; a non-zero exit is an
// error carrying the command's standard error.
type Runner func(ctx context.Context, argv []string) ([]byte, error)

// ExecRunner runs argv on this host.
func ExecRunner(ctx context.Context, argv []string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// ShowAddrCommand lists dev's IPv4 addresses, one per line (ip -o).
func ShowAddrCommand(dev string) []string {
	return []string{"ip", "-o", "-4", "addr", "show", "dev", dev}
}

// AddAddrCommand configures ip as a /32 on dev: Hetzner routes the floating IP
// to the server, but the kernel only accepts it once an interface holds it.
func AddAddrCommand(ip netip.Addr, dev string) []string {
	return []string{"ip", "addr", "add", ip.String() + "/32", "dev", dev}
}

// HasAddr reports whether `ip -o -4 addr show` output lists ip.
func HasAddr(out []byte, ip netip.Addr) bool {
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] != "inet" {
				continue
			}
			if p, err := netip.ParsePrefix(f[i+1]); err == nil && p.Addr() == ip {
				return true
			}
		}
	}
	return false
}

// ensureAddr adds ip to dev unless it is already there; reports whether it added.
func ensureAddr(ctx context.Context, run Runner, ip netip.Addr, dev string) (bool, error) {
	out, err := run(ctx, ShowAddrCommand(dev))
	if err != nil {
		return false, fmt.Errorf("list addresses of %s: %w", dev, err)
	}
	if HasAddr(out, ip) {
		return false, nil
	}
	if _, err := run(ctx, AddAddrCommand(ip, dev)); err != nil {
		return false, fmt.Errorf("add %s/32 to %s: %w", ip, dev, err)
	}
	return true, nil
}
