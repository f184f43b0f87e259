package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
)

// hostTools maps each program the lab runs on the host to the Debian package providing it.
var hostTools = map[string]string{
	"systemd-nspawn": "systemd-container",
	"debootstrap":    "debootstrap",
	"nsenter":        "util-linux",
	"fallocate":      "util-linux",
	"mount":          "mount",
	"umount":         "mount",
	"losetup":        "mount",
	"mkfs.ext4":      "e2fsprogs",
	"ip":             "iproute2",
	"tc":             "iproute2",
	"sysctl":         "procps",
	"nft":            "nftables",
}

// Preflight refuses clearly when the lab cannot run here: not root, a missing
// program (naming the apt-get line that fixes it), or no overlayfs.
func Preflight(needRoot bool) error {
	if needRoot && os.Geteuid() != 0 {
		return errors.New("belay lab needs root: it creates bridges, a network namespace, loop mounts and systemd-nspawn machines (run it with sudo)")
	}
	// Root's tools live in sbin, which `su` without "-" and some sudo setups
	// leave out of PATH; the lab runs them by name.
	path := os.Getenv("PATH")
	for _, d := range []string{"/usr/local/sbin", "/usr/sbin", "/sbin"} {
		if !strings.Contains(":"+path+":", ":"+d+":") {
			path += ":" + d
		}
	}
	_ = os.Setenv("PATH", path)
	missing, pkgs := missingTools(exec.LookPath)
	if len(missing) > 0 {
		return fmt.Errorf("belay lab needs %s, not found in PATH; install with: apt-get install -y %s", strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
	fs, err := os.ReadFile("/proc/filesystems")
	if err == nil && !strings.Contains(string(fs), "\toverlay\n") {
		return errors.New("belay lab needs overlayfs (the kernel lists no \"overlay\" in /proc/filesystems; try modprobe overlay)")
	}
	return nil
}

// missingTools lists absent programs and the packages that bring them, sorted.
func missingTools(look func(string) (string, error)) (missing, pkgs []string) {
	seen := map[string]bool{}
	for tool, pkg := range hostTools {
		if _, err := look(tool); err != nil {
			missing = append(missing, tool)
			if !seen[pkg] {
				seen[pkg] = true
				pkgs = append(pkgs, pkg)
			}
		}
	}
	sort.Strings(missing)
	sort.Strings(pkgs)
	return missing, pkgs
}
