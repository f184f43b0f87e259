package lab

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/belay-sh/belay/inventory"
)

func TestSegments(t *testing.T) {
	segs := Segments()
	want := []struct{ bridge, router, leg string }{
		{PrimaryBridge, "10.213.0.1", "10.213.0.126"},
		{StandbyBridge, "10.213.0.129", "10.213.0.254"},
	}
	if len(segs) != len(want) {
		t.Fatalf("%d segments", len(segs))
	}
	for i, w := range want {
		s := segs[i]
		if s.Bridge != w.bridge || s.Router.String() != w.router || s.HostLeg.String() != w.leg {
			t.Errorf("segment %d = %s router %s leg %s, want %+v", i, s.Bridge, s.Router, s.HostLeg, w)
		}
		if !s.CIDR.Contains(s.Router) || !s.CIDR.Contains(s.HostLeg) {
			t.Errorf("segment %s: router/leg outside %s", s.Bridge, s.CIDR)
		}
	}
	if _, err := SegmentFor(netip.MustParseAddr("10.214.0.1")); err == nil {
		t.Error("SegmentFor accepted an address outside the lab")
	}
}

// TestNetworkStaysInsideTheLab: every address the lab configures is in
// 10.213.0.0/24, forwarding is only turned on inside the router namespace, and
// no default route is ever added.
func TestNetworkStaysInsideTheLab(t *testing.T) {
	for _, c := range networkUpCmds() {
		line := c.String()
		if strings.Contains(line, "default") || strings.Contains(line, "0.0.0.0/0") {
			t.Errorf("route off the box: %s", line)
		}
		if strings.Contains(line, "ip_forward") && !strings.HasPrefix(line, "ip netns exec "+RouterNS+" ") {
			t.Errorf("forwarding outside the router namespace: %s", line)
		}
		for i, a := range c.Argv {
			if a == "addr" && i+2 < len(c.Argv) && c.Argv[i+1] == "add" {
				p, err := netip.ParsePrefix(c.Argv[i+2])
				if err != nil || !LabCIDR.Contains(p.Addr()) {
					t.Errorf("address outside the lab: %s", line)
				}
			}
		}
	}
	down := networkDownCmds()
	for _, c := range down {
		if !c.IgnoreFail {
			t.Errorf("teardown step fails on already-gone objects: %s", c)
		}
	}
	if got := routerForwardCmd(false).String(); got != "ip netns exec belay-router sysctl -qw net.ipv4.ip_forward=0" {
		t.Errorf("partition = %s", got)
	}
}

func TestMachineSeed(t *testing.T) {
	seg := Segments()[1]
	m := MachineSpec{Name: "backup", Site: "standby", Address: netip.MustParseAddr("10.213.0.138"), Segment: seg, UserData: []byte("#cloud-config\n")}
	var nc struct {
		Version   int
		Ethernets map[string]struct {
			Addresses []string
			Routes    []struct{ To, Via string }
		}
	}
	if err := yaml.Unmarshal(m.networkConfig(), &nc); err != nil {
		t.Fatal(err)
	}
	h0 := nc.Ethernets["host0"]
	if nc.Version != 2 || len(h0.Addresses) != 1 || h0.Addresses[0] != "10.213.0.138/25" {
		t.Errorf("network-config = %+v", nc)
	}
	if len(h0.Routes) != 1 || h0.Routes[0].To != "10.213.0.0/24" || h0.Routes[0].Via != "10.213.0.129" {
		t.Errorf("routes = %+v, want only 10.213.0.0/24 via the router", h0.Routes)
	}
	md := string(m.metaData())
	if !strings.Contains(md, "local-hostname: backup\n") || !strings.HasPrefix(md, "instance-id: belay-lab-backup-") {
		t.Errorf("meta-data = %q", md)
	}
	changed := m
	changed.UserData = []byte("#cloud-config\nhostname: x\n")
	if string(changed.metaData()) == md {
		t.Error("instance-id does not change with the user data")
	}
	base := m.hash("img", "bin")
	for name, h := range map[string]string{"user data": changed.hash("img", "bin"), "image": m.hash("img2", "bin"), "binary": m.hash("img", "bin2")} {
		if h == base {
			t.Errorf("machine hash ignores the %s", name)
		}
	}
}

func TestImageKey(t *testing.T) {
	m := Mirrors{Debian: "http://deb.debian.org/debian", Security: "http://deb.debian.org/debian-security"}
	k := imageKey("script", []string{"a", "b"}, m)
	for name, other := range map[string]string{
		"script":   imageKey("script2", []string{"a", "b"}, m),
		"packages": imageKey("script", []string{"a", "b", "c"}, m),
		"mirror":   imageKey("script", []string{"a", "b"}, Mirrors{Debian: "http://x/debian"}),
	} {
		if other == k {
			t.Errorf("image key ignores the %s", name)
		}
	}
	if !strings.Contains(buildScript, "debootstrap --variant=minbase") {
		t.Error("embedded build script is not the debootstrap one")
	}
}

func TestDetectMirrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sources.list.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := DetectMirrors(dir); got.Debian != "http://deb.debian.org/debian" || got.Security != "http://deb.debian.org/debian-security" {
		t.Errorf("defaults = %+v", got)
	}
	write("sources.list.d/debian.sources", "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://mirror.example/security\nSuites: bookworm-security\nComponents: main\n")
	if got := DetectMirrors(dir); got.Debian != "http://mirror.example/debian" || got.Security != "http://mirror.example/security" {
		t.Errorf("deb822 = %+v", got)
	}
	write("sources.list.d/debian.sources", "")
	write("sources.list", "# comment\ndeb [signed-by=/k.gpg] http://other.example/debian bookworm main\n")
	if got := DetectMirrors(dir); got.Debian != "http://other.example/debian" {
		t.Errorf("one-line = %+v", got)
	}
}

func TestAdaptStack(t *testing.T) {
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKlabkeylabkeylabkeylabkeylabkeylabkeylabkey belay-lab-admin"
	out, err := adaptStack(defaultStack, 3, key)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Config map[string]any `yaml:"config"`
	}
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	apps := doc.Config["belay:apps"].([]any)
	if len(apps) != 3 {
		t.Fatalf("--apps 3 gave %d apps", len(apps))
	}
	if a := apps[2].(map[string]any); a["name"] != "app3" || a["domains"].([]any)[0] != "app3.lab.belay.test" {
		t.Errorf("third app = %v", a)
	}
	admin := doc.Config["belay:admin"].(map[string]any)
	if keys := admin["sshKeys"].([]any); len(keys) != 1 || keys[0] != key {
		t.Errorf("sshKeys = %v", keys)
	}
	if cidrs := admin["sshCidrs"].([]any); len(cidrs) != 2 || cidrs[0] != "10.213.0.126/32" || cidrs[1] != "10.213.0.254/32" {
		t.Errorf("sshCidrs = %v", cidrs)
	}
	// A real stack file is turned into a lab one: lab sites and network, no seed of its own.
	real := []byte("config:\n  belay:sites: {primary: {provider: hetzner, region: fsn1}, standby: {provider: digitalocean, region: ams3}}\n  belay:network: {primaryCidr: 10.10.0.0/24, standbyCidr: 10.20.0.0/24}\n  belay:hostKeySeed: {secure: v1:abc}\n  belay:apps: []\n")
	out, err = adaptStack(real, 0, key)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{"provider: lab", "region: fsn1", "primaryCidr: 10.213.0.0/25", "standbyCidr: 10.213.0.128/25"} {
		if !strings.Contains(s, want) {
			t.Errorf("adapted real stack lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "hostKeySeed") {
		t.Errorf("the stack's own seed survived:\n%s", s)
	}
	for _, bad := range []struct{ name, data string }{
		{"not YAML", "config: [\n"},
		{"no config", "other: 1\n"},
	} {
		if _, err := adaptStack([]byte(bad.data), 0, key); err == nil {
			t.Errorf("%s: accepted", bad.name)
		}
	}
	if _, err := adaptStack(real, 2, key); err == nil || !strings.Contains(err.Error(), "belay:apps") {
		t.Errorf("--apps with no app to copy: %v", err)
	}
}

func TestLoadDefaultStack(t *testing.T) {
	const seed = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGf2dDm0m3ka+P5OhGw3qJsnOhCTcDpVEd8PT8zQvQ0I belay-lab-admin"
	cfg, err := LoadStack(StackInput{}, seed, key)
	if err != nil {
		t.Fatalf("default stack: %v", err)
	}
	if len(cfg.Apps) != 1 || cfg.Apps[0].Name != "shop" || cfg.Apps[0].Replicas != 2 || cfg.HostKeySeed != seed {
		t.Errorf("default stack = %+v", cfg.Apps)
	}
	if _, err := LoadStack(StackInput{File: filepath.Join(t.TempDir(), "missing.yaml")}, seed, key); err == nil || !strings.Contains(err.Error(), "--stack") {
		t.Errorf("missing stack file: %v", err)
	}
}

func TestKnownHosts(t *testing.T) {
	inv := &inventory.Inventory{Hosts: []inventory.Host{
		{Name: "b", SSHAddress: "10.213.0.11", SSHPort: 22, HostKey: "ssh-ed25519 BBBB"},
		{Name: "a", SSHAddress: "10.213.0.10", SSHPort: 2222, HostKey: "ssh-ed25519 AAAA"},
	}}
	want := "a,[10.213.0.10]:2222 ssh-ed25519 AAAA\nb,10.213.0.11 ssh-ed25519 BBBB\n"
	if got := string(knownHosts(inv)); got != want {
		t.Errorf("known_hosts =\n%s\nwant\n%s", got, want)
	}
}

func TestFaultValidate(t *testing.T) {
	tests := []struct {
		f       Fault
		wantErr string
	}{
		{Fault{Kind: FaultPartition}, ""},
		{Fault{Kind: FaultKill, Machine: "db-1"}, ""},
		{Fault{Kind: FaultKill}, "which machine"},
		{Fault{Kind: FaultStopService, Machine: "shop-1", Service: "nginx"}, ""},
		{Fault{Kind: FaultStopService, Machine: "shop-1"}, "expected a unit name"},
		{Fault{Kind: FaultStopService, Machine: "shop-1", Service: "a b"}, "expected a unit name"},
		{Fault{Kind: FaultNetem, Machine: "shop-1", Netem: []string{"delay", "100ms"}}, ""},
		{Fault{Kind: FaultNetem, Machine: "shop-1", Netem: []string{"dely", "100ms"}}, "expected tc netem parameters"},
		{Fault{Kind: FaultNetem, Machine: "shop-1"}, "expected tc netem parameters"},
		{Fault{Kind: "explode", Machine: "x"}, "expected one of kill"},
	}
	for _, tt := range tests {
		err := tt.f.Validate()
		if tt.wantErr == "" && err != nil {
			t.Errorf("%s: %v", tt.f, err)
		}
		if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: error %v, want %q", tt.f, err, tt.wantErr)
		}
	}
}

func TestLossEmulation(t *testing.T) {
	for _, tt := range []struct {
		args []string
		pct  int
		ok   bool
	}{
		{[]string{"loss", "10%"}, 10, true},
		{[]string{"loss", "random", "2.5%"}, 3, true},
		{[]string{"loss", "100%"}, 100, true},
		{[]string{"loss", "0%"}, 0, false},
		{[]string{"loss", "120%"}, 0, false},
		{[]string{"delay", "100ms"}, 0, false},
		{[]string{"loss", "10%", "delay", "5ms"}, 0, false},
	} {
		pct, ok := lossOnly(tt.args)
		if pct != tt.pct || ok != tt.ok {
			t.Errorf("lossOnly(%v) = %d, %v; want %d, %v", tt.args, pct, ok, tt.pct, tt.ok)
		}
	}
	cmds := lossCmds(lossTable("shop-1"), "vb-shop-1", 100)
	if cmds[0].String() != "nft add table bridge belay_lab_loss_shop_1" {
		t.Errorf("first = %s", cmds[0])
	}
	for _, c := range cmds {
		if strings.Contains(c.String(), "numgen") {
			t.Errorf("100%% loss uses numgen (range 0-99): %s", c)
		}
	}
	if got := lossCmds("t", "v", 30)[2].String(); got != "nft add rule bridge t forward iifname v numgen random mod 100 < 30 drop" {
		t.Errorf("rule = %s", got)
	}
}

func TestMissingTools(t *testing.T) {
	look := func(have ...string) func(string) (string, error) {
		return func(s string) (string, error) {
			for _, h := range have {
				if h == s {
					return "/usr/bin/" + s, nil
				}
			}
			return "", errors.New("not found")
		}
	}
	missing, pkgs := missingTools(look("ip", "tc", "nsenter", "fallocate", "mount", "umount", "losetup", "mkfs.ext4", "sysctl", "nft"))
	if strings.Join(missing, ",") != "debootstrap,systemd-nspawn" || strings.Join(pkgs, " ") != "debootstrap systemd-container" {
		t.Errorf("missing %v, packages %v", missing, pkgs)
	}
}

func TestParseCloudInitStatus(t *testing.T) {
	for in, want := range map[string]string{
		"status: done\n":                      "done",
		"\nstatus: error\ntime: x\n":          "error",
		"status: running\nextended_status: x": "running",
		"":                                    "unknown",
	} {
		if got := parseCloudInitStatus(in); got != want {
			t.Errorf("parseCloudInitStatus(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSSHArgsAreStrict(t *testing.T) {
	p := Paths{State: "/s"}
	args := strings.Join(SSHArgs(p, inventory.Host{Name: "db-1", SSHAddress: "10.213.0.10", SSHPort: 22, DeployUser: "deploy"}, []string{"uptime"}, false), " ")
	for _, want := range []string{"StrictHostKeyChecking=yes", "UserKnownHostsFile=/s/known_hosts", "GlobalKnownHostsFile=/dev/null", "IdentitiesOnly=yes", "-i /s/id_ed25519", "-l deploy", "PasswordAuthentication=no", "10.213.0.10 -- uptime"} {
		if !strings.Contains(args, want) {
			t.Errorf("ssh args lack %q: %s", want, args)
		}
	}
}

func TestCgroupWrapper(t *testing.T) {
	got := cgroupWrapper([]string{"/cg/a", "/cg/b"}, []string{"systemd-nspawn", "-b"})
	if got[0] != "/bin/sh" || strings.Join(got[4:], " ") != "/cg/a /cg/b -- systemd-nspawn -b" {
		t.Errorf("wrapper = %q", got)
	}
	if !strings.Contains(got[2], `exec "$@"`) {
		t.Errorf("wrapper does not exec: %s", got[2])
	}
}

func TestRouteParsing(t *testing.T) {
	if a := hexAddr("0000D50A"); a.String() != "10.213.0.0" {
		t.Errorf("hexAddr = %s", a)
	}
	if n := maskBits(netip.MustParseAddr("255.255.255.128")); n != 25 {
		t.Errorf("maskBits = %d", n)
	}
}

type recordRunner struct{ cmds []string }

func (r *recordRunner) Run(_ context.Context, c Cmd) ([]byte, error) {
	r.cmds = append(r.cmds, c.String())
	return nil, nil
}

func TestRootfsCmds(t *testing.T) {
	d := Paths{State: "/s"}.dirs("db-1")
	r := &recordRunner{}
	if err := runAll(context.Background(), r, rootfsCmds(d, "/img")); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"mkfs.ext4 -q -F -m 0 -E lazy_itable_init=1,lazy_journal_init=1 /s/machines/db-1/disk.img",
		"mount -o loop /s/machines/db-1/disk.img /s/machines/db-1/disk",
		"mkdir -p /s/machines/db-1/disk/upper /s/machines/db-1/disk/work",
		"mount -t overlay overlay -o lowerdir=/img,upperdir=/s/machines/db-1/disk/upper,workdir=/s/machines/db-1/disk/work /s/machines/db-1/root",
	}
	if strings.Join(r.cmds, "\n") != strings.Join(want, "\n") {
		t.Errorf("rootfs commands:\n%s", strings.Join(r.cmds, "\n"))
	}
}
