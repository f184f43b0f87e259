package roles

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"

	"github.com/belay-sh/belay/inventory"
)

// contributors maps a role to the function that adds its part of the user data.
// Each role file registers itself in init(), so role files stay independent of
// each other and of this file.
var contributors = map[inventory.Role]contributor{}

// register installs fn as the contributor of role r. A second registration of
// the same role is a programming error and panics at init time.
func register(r inventory.Role, fn contributor) {
	if fn == nil {
		panic(fmt.Sprintf("roles: nil contributor for role %q", r))
	}
	if _, dup := contributors[r]; dup {
		panic(fmt.Sprintf("roles: role %q registered twice", r))
	}
	contributors[r] = fn
}

// Render returns the #cloud-config user data of the host s describes. The same
// Spec always gives the same bytes, because a change of user data replaces the
// server. It fails, naming the field, when the Spec is incomplete or malformed.
//
// The common part (users, sshd, host key, firewall, time/journal) is derived from
// the whole Spec; role contributors add their files and commands in the fixed
// role order of inventory.Roles, so the order of s.Roles does not matter.
func Render(s *Spec) ([]byte, error) {
	if s == nil {
		return nil, errors.New("roles: Spec is nil")
	}
	if err := validateCommon(s); err != nil {
		return nil, err
	}
	if err := validateConverge(s); err != nil {
		return nil, err
	}
	c := &CloudConfig{}
	if err := addCommon(s, c); err != nil {
		return nil, err
	}
	for _, r := range inventory.Roles {
		if !hasRole(s, r) {
			continue
		}
		fn, ok := contributors[r]
		if !ok {
			return nil, fmt.Errorf("roles: Spec.Roles: role %q has no renderer in this build", r)
		}
		if err := fn(s, c); err != nil {
			return nil, err
		}
	}
	addConverge(s, c)
	ops, err := opsSudoers(s)
	if err != nil {
		return nil, err
	}
	if ops != "" {
		c.WriteFiles = append(c.WriteFiles, File{Path: OpsSudoersFile, Content: ops, Owner: "root:root", Permissions: "0440"})
	}
	finishCommon(s, c)
	if err := checkFiles(c); err != nil {
		return nil, err
	}
	if err := compressScripts(c); err != nil {
		return nil, err
	}
	return marshal(c)
}

// marshal encodes c as a #cloud-config document. Commands (argv lists) are
// written one per line in flow style, so a reviewer reads `[systemctl, enable, x]`.
func marshal(c *CloudConfig) ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(c); err != nil {
		return nil, fmt.Errorf("roles: encode cloud-config: %w", err)
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if k := doc.Content[i].Value; k == "runcmd" || k == "bootcmd" {
			for _, cmd := range doc.Content[i+1].Content {
				cmd.Style = yaml.FlowStyle
			}
		}
	}
	var buf bytes.Buffer
	buf.WriteString("#cloud-config\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("roles: encode cloud-config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("roles: encode cloud-config: %w", err)
	}
	return buf.Bytes(), nil
}

// checkFiles refuses two write_files entries for one path: cloud-init would
// silently keep the last, and a role would lose its file.
func checkFiles(c *CloudConfig) error {
	seen := map[string]bool{}
	for _, f := range c.WriteFiles {
		if !strings.HasPrefix(f.Path, "/") {
			return fmt.Errorf("roles: write_files: path %q is not absolute", f.Path)
		}
		if seen[f.Path] {
			return fmt.Errorf("roles: write_files: %s is written by two roles", f.Path)
		}
		seen[f.Path] = true
	}
	return nil
}

func hasRole(s *Spec, r inventory.Role) bool {
	for _, x := range s.Roles {
		if x == r {
			return true
		}
	}
	return false
}

// hostnameRE is an RFC 1123 label: what every provider and systemd accept.
var hostnameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// userRE is a portable POSIX user name (useradd's default NAME_REGEX on Debian).
var userRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// appNameRE is what an app name may be: it becomes paths, unit instances and nginx names.
var appNameRE = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,53}[a-z0-9])?$`)

// validateCommon checks the fields every host uses, and that exactly the
// sections of the host's roles are set.
var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

func validateCommon(s *Spec) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("roles: "+format, a...)) }
	if s.Stack == "" {
		bad("Spec.Stack: empty")
	}
	if err := validateDataVolume(s.DataVolume); err != nil {
		errs = append(errs, err)
	}
	if !hostnameRE.MatchString(s.Hostname) {
		bad("Spec.Hostname: %q, expected a lowercase DNS label (a-z, 0-9, -)", s.Hostname)
	}
	if s.Site != inventory.Primary && s.Site != inventory.Standby {
		bad("Spec.Site: %q, expected primary or standby", s.Site)
	}
	if len(s.Roles) == 0 {
		bad("Spec.Roles: empty, expected at least one of %v", inventory.Roles)
	}
	if a := s.Agent; a != nil {
		if !strings.HasPrefix(a.URL, "https://") || strings.ContainsAny(a.URL, " \t\n'\"") {
			bad("Spec.Agent.URL: %q, expected an https URL without spaces or quotes", a.URL)
		}
		if !sha256RE.MatchString(a.SHA256) {
			bad("Spec.Agent.SHA256: %q, expected 64 lowercase hex digits", a.SHA256)
		}
	}
	seen := map[inventory.Role]bool{}
	for _, r := range s.Roles {
		known := false
		for _, k := range inventory.Roles {
			known = known || r == k
		}
		if !known {
			bad("Spec.Roles: unknown role %q, expected one of %v", r, inventory.Roles)
		}
		if seen[r] {
			bad("Spec.Roles: role %q listed twice", r)
		}
		seen[r] = true
	}
	if seen[inventory.RoleApp] && seen[inventory.RoleStandbyApp] {
		bad("Spec.Roles: app and standby-app on one host, expected one of them")
	}
	if !userRE.MatchString(s.DeployUser) || s.DeployUser == "root" {
		bad("Spec.DeployUser: %q, expected a non-root user name (a-z, 0-9, _, -)", s.DeployUser)
	}
	if len(s.AdminKeys) == 0 {
		bad("Spec.AdminKeys: empty, expected at least one SSH public key (nobody could log in)")
	}
	for i, k := range s.AdminKeys {
		if err := checkPublicKey(k); err != nil {
			bad("Spec.AdminKeys[%d]: %v", i, err)
		}
	}
	if s.HostKey.PrivatePEM == "" {
		bad("Spec.HostKey.PrivatePEM: empty, expected the seed-derived host key")
	} else if err := checkPrivateKey(s.HostKey.PrivatePEM, s.HostKey.Public); err != nil {
		bad("Spec.HostKey: %v", err)
	}
	for i, c := range s.SSHFrom {
		if _, err := parseSource(c); err != nil {
			bad("Spec.SSHFrom[%d]: %v", i, err)
		}
	}
	if len(s.SSHFrom) == 0 {
		bad("Spec.SSHFrom: empty, expected the admin CIDRs (nobody could reach port 22)")
	}
	n := s.Net
	if !ifaceRE.MatchString(n.PrivateInterface) {
		bad("Spec.Net.PrivateInterface: %q, expected an interface name", n.PrivateInterface)
	}
	if !ifaceRE.MatchString(n.PublicInterface) {
		bad("Spec.Net.PublicInterface: %q, expected an interface name", n.PublicInterface)
	}
	if n.PrivateAddress != "" {
		if a, err := netip.ParseAddr(n.PrivateAddress); err != nil || !a.Is4() {
			bad("Spec.Net.PrivateAddress: %q, expected an IPv4 address or \"\"", n.PrivateAddress)
		}
	}
	site, err := netip.ParsePrefix(n.SiteCIDR)
	if err != nil {
		bad("Spec.Net.SiteCIDR: %q, expected an IPv4 network", n.SiteCIDR)
	} else if a, err := netip.ParseAddr(n.PrivateAddress); err == nil && !site.Contains(a) {
		bad("Spec.Net.PrivateAddress: %s is outside Spec.Net.SiteCIDR %s", a, site)
	}
	if _, err := netip.ParsePrefix(n.PeerSiteCIDR); err != nil {
		bad("Spec.Net.PeerSiteCIDR: %q, expected an IPv4 network", n.PeerSiteCIDR)
	}

	// Exactly the sections of this host's roles are set: a stray section means
	// the caller built the Spec for another host.
	section := func(name string, set, want bool) {
		switch {
		case set && !want:
			bad("Spec.%s: set, but the host has no role that uses it (roles %v)", name, s.Roles)
		case !set && want:
			bad("Spec.%s: nil, expected it for roles %v", name, s.Roles)
		}
	}
	section("App", s.App != nil, seen[inventory.RoleApp] || seen[inventory.RoleStandbyApp])
	section("DB", s.DB != nil, seen[inventory.RoleDB] || seen[inventory.RoleDBMonitor])
	section("Backup", s.Backup != nil, seen[inventory.RoleBackupRepo])
	section("StandbyDB", s.StandbyDB != nil, seen[inventory.RoleStandbyDB])
	section("Router", s.Router != nil, seen[inventory.RoleRouter] || seen[inventory.RoleStandbyRouter])
	if seen[inventory.RoleRouter] && seen[inventory.RoleStandbyRouter] {
		bad("Spec.Roles: router and standby-router on one host, expected one of them")
	}
	return errors.Join(errs...)
}

var ifaceRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.@-]{0,14}$`)

// checkPublicKey accepts one authorized_keys line without options.
func checkPublicKey(k string) error {
	if strings.ContainsAny(k, "\n\r") {
		return errors.New("has a line break, expected one key")
	}
	if _, _, opts, rest, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
		return fmt.Errorf("not an SSH public key: %w", err)
	} else if len(opts) > 0 || len(rest) > 0 {
		return errors.New("has authorized_keys options or trailing data, expected a bare key")
	}
	return nil
}

// parseSource accepts an IPv4 address or network; the firewall and keepalived take either.
func parseSource(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		if !p.Addr().Is4() {
			return netip.Prefix{}, fmt.Errorf("%q: expected IPv4", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Prefix{}, fmt.Errorf("%q: expected an IPv4 address or CIDR", s)
	}
	return netip.PrefixFrom(a, 32), nil
}

// publicOf returns the authorized_keys form of an OpenSSH ed25519 private key.
func publicOf(privPEM string) (string, error) {
	signer, err := ssh.ParsePrivateKey([]byte(privPEM))
	if err != nil {
		return "", fmt.Errorf("PrivatePEM: %w", err)
	}
	if t := signer.PublicKey().Type(); t != ssh.KeyAlgoED25519 {
		return "", fmt.Errorf("PrivatePEM: %s key, expected ssh-ed25519", t)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))), nil
}
