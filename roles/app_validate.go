package roles

// Validation of Spec.App (and its VRRP group) for app and standby-app hosts.

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/belay-sh/belay/internal/safe"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/router"
	"golang.org/x/crypto/ssh"
)

var (
	domainRE   = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)
	selectorRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:=/,!-]{0,254}$`)
	// A keepalived script line is split on spaces by keepalived, not a shell;
	// quotes and newlines would change its meaning.
	commandRE = regexp.MustCompile(`^/[^"\n\r\\]*$`)
)

// validateApp checks Spec.App for an app or standby-app host.
func validateApp(s *Spec) error {
	a := s.App
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("roles: "+format, args...)) }
	standbyRole := hasRole(s, inventory.RoleStandbyApp)
	if !appNameRE.MatchString(a.Name) {
		bad("Spec.App.Name: %q, expected at most 55 of a-z, 0-9, - (starting with a letter)", a.Name)
	}
	if a.Cell != "" && (!routerCellRE.MatchString(a.Cell) || router.CheckApp(a.Name) != nil) {
		bad("Spec.App.Cell: %q of app %q, expected a cell name ([a-z][a-z0-9-]{0,15}) of an app named like the router's (at most 40 characters)", a.Cell, a.Name)
	}
	if a.Port < 1024 || a.Port > 65534 {
		bad("Spec.App.Port: %d, expected 1024-65534 (the canary listens on Port+1)", a.Port)
	}
	// The rule config and inventory share: the path reaches keepalived's check
	// script and curl in shell commands.
	if err := safe.HealthPath(a.HealthPath); err != nil {
		bad("Spec.App.HealthPath: %v", err)
	}
	seen := map[string]bool{}
	for i, d := range a.Domains {
		if !domainRE.MatchString(d) {
			bad("Spec.App.Domains[%d]: %q, expected a lowercase domain name", i, d)
		}
		if seen[d] {
			bad("Spec.App.Domains[%d]: %q listed twice", i, d)
		}
		seen[d] = true
	}
	if err := validateTLS(appTLSSite(s)); err != nil {
		errs = append(errs, err)
	}
	if a.Standby != standbyRole {
		bad("Spec.App.Standby: %v, but the host's roles are %v (standby is true exactly for standby-app)", a.Standby, s.Roles)
	}
	if err := checkDatabaseURL(a.DatabaseURL); err != nil {
		bad("Spec.App.DatabaseURL: %v", err)
	}
	if _, _, err := resticTarget(a.ResticRepo); err != nil {
		bad("Spec.App.ResticRepo: %v", err)
	}
	if a.ResticPassword == "" || strings.ContainsAny(a.ResticPassword, "\n\r") {
		bad("Spec.App.ResticPassword: expected a non-empty single-line password")
	}
	if err := checkPrivateKey(a.BackupKey.PrivatePEM, a.BackupKey.Public); err != nil {
		bad("Spec.App.BackupKey: %v", err)
	}
	if err := checkPublicKey(a.RepoHostKey); err != nil {
		bad("Spec.App.RepoHostKey: %v", err)
	}
	if err := checkBackupCert(a); err != nil {
		bad("Spec.App.BackupCert: %v", err)
	}
	switch {
	case a.Standby && a.VRRP != nil:
		bad("Spec.App.VRRP: set on a standby server, expected nil (no keepalived on the standby site)")
	case !a.Standby && a.VRRP == nil:
		bad("Spec.App.VRRP: nil, expected the VRRP group of app %s", a.Name)
	case a.VRRP != nil:
		errs = append(errs, validateVRRP(s, a.VRRP))
	}
	return errors.Join(errs...)
}

func validateVRRP(s *Spec, v *VRRP) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("roles: "+format, args...)) }
	if v.RouterID < 1 || v.RouterID > 255 {
		bad("Spec.App.VRRP.RouterID: %d, expected 1-255", v.RouterID)
	}
	if v.Priority < 1 || v.Priority > 254 {
		bad("Spec.App.VRRP.Priority: %d, expected 1-254", v.Priority)
	}
	self := s.Net.PrivateAddress
	seen := map[string]bool{}
	for i, p := range v.Peers {
		a, err := netip.ParseAddr(p)
		switch {
		case err != nil || !a.Is4():
			bad("Spec.App.VRRP.Peers[%d]: %q, expected an IPv4 address", i, p)
		case p == self:
			bad("Spec.App.VRRP.Peers[%d]: %s is this host's own address", i, p)
		case seen[p]:
			bad("Spec.App.VRRP.Peers[%d]: %s listed twice", i, p)
		}
		seen[p] = true
	}
	if len(v.Peers) > 0 && self == "" {
		bad("Spec.Net.PrivateAddress: empty, but VRRP.Peers are pinned (unicast_src_ip needs this host's address)")
	}
	if d := v.PeerDiscovery; d != nil {
		if len(v.Peers) > 0 {
			bad("Spec.App.VRRP.PeerDiscovery: set together with Peers, expected one of them")
		}
		if d.Provider != "digitalocean" && d.Provider != "hetzner" {
			bad("Spec.App.VRRP.PeerDiscovery.Provider: %q, expected digitalocean or hetzner", d.Provider)
		}
		if !selectorRE.MatchString(d.Selector) {
			bad("Spec.App.VRRP.PeerDiscovery.Selector: %q, expected a tag or label selector", d.Selector)
		}
		if d.Token == "" || strings.ContainsAny(d.Token, "\n\r") {
			bad("Spec.App.VRRP.PeerDiscovery.Token: expected a non-empty single-line API token")
		}
	}
	if v.VIP != "" {
		if a, err := netip.ParseAddr(v.VIP); err != nil || !a.Is4() {
			bad("Spec.App.VRRP.VIP: %q, expected an IPv4 address or \"\"", v.VIP)
		}
		if !ifaceRE.MatchString(v.VIPInterface) {
			bad("Spec.App.VRRP.VIPInterface: %q, expected the interface keepalived adds the VIP to", v.VIPInterface)
		}
	}
	if v.ClaimCommand != "" && !commandRE.MatchString(v.ClaimCommand) {
		bad("Spec.App.VRRP.ClaimCommand: %q, expected an absolute command without quotes, backslashes or line breaks", v.ClaimCommand)
	}
	if strings.ContainsAny(v.ClaimToken, "\n\r") {
		bad("Spec.App.VRRP.ClaimToken: has a line break")
	}
	if v.AdvertInterval != 0 && (v.AdvertInterval < 0.01 || v.AdvertInterval > 40.95) {
		bad("Spec.App.VRRP.AdvertInterval: %g, expected 0.01-40.95 seconds (VRRPv3), or 0 for the 0.1 s default", v.AdvertInterval)
	}
	return errors.Join(errs...)
}

// checkDatabaseURL accepts a single-line libpq URL.
func checkDatabaseURL(u string) error {
	if !strings.HasPrefix(u, "postgresql://") && !strings.HasPrefix(u, "postgres://") {
		return errors.New("expected a postgresql:// URL")
	}
	if strings.ContainsAny(u, "\n\r\"'\\ ") {
		return errors.New("has a line break, quote, backslash or space")
	}
	return nil
}

// checkPrivateKey accepts a seed-derived ed25519 key pair whose halves match.
func checkPrivateKey(privPEM, public string) error {
	if privPEM == "" {
		return errors.New("PrivatePEM is empty")
	}
	pub, err := publicOf(privPEM)
	if err != nil {
		return err
	}
	if pub != strings.TrimSpace(public) {
		return errors.New("Public does not match PrivatePEM")
	}
	return nil
}

// resticTarget splits an sftp restic repository "sftp:user@host:/path".
func resticTarget(repo string) (userHost, path string, err error) {
	rest, ok := strings.CutPrefix(repo, "sftp:")
	if !ok {
		return "", "", fmt.Errorf("%q, expected sftp:USER@HOST:/PATH", repo)
	}
	userHost, path, ok = strings.Cut(rest, ":")
	user, host, okAt := strings.Cut(userHost, "@")
	if !ok || !okAt || !userRE.MatchString(user) || !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \n\"'\\") {
		return "", "", fmt.Errorf("%q, expected sftp:USER@HOST:/PATH", repo)
	}
	if a, err := netip.ParseAddr(host); err != nil || !a.Is4() {
		if !hostnameRE.MatchString(host) && !domainRE.MatchString(host) {
			return "", "", fmt.Errorf("%q: host %q is not an IPv4 address or host name", repo, host)
		}
	}
	return userHost, path, nil
}

// checkBackupCert: the restic certificate must certify BackupKey, as a user
// certificate whose one principal is the repository's user, so a mis-wired
// spec fails at render time and not at the first hourly snapshot.
func checkBackupCert(a *App) error {
	k, _, opts, rest, err := ssh.ParseAuthorizedKey([]byte(a.BackupCert))
	if err != nil || len(opts) > 0 || len(rest) > 0 || strings.ContainsAny(a.BackupCert, "\n\r") {
		return fmt.Errorf("expected one OpenSSH certificate line")
	}
	cert, ok := k.(*ssh.Certificate)
	if !ok || cert.CertType != ssh.UserCert {
		return fmt.Errorf("expected an OpenSSH user certificate, got a %s key", k.Type())
	}
	if strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert.Key))) != strings.TrimSpace(a.BackupKey.Public) {
		return fmt.Errorf("certifies another key than Spec.App.BackupKey")
	}
	userHost, _, err := resticTarget(a.ResticRepo)
	if err != nil {
		return nil // reported for ResticRepo
	}
	user, _, _ := strings.Cut(userHost, "@")
	if len(cert.ValidPrincipals) != 1 || cert.ValidPrincipals[0] != user {
		return fmt.Errorf("principals %v, expected exactly [%s] (the repository's user)", cert.ValidPrincipals, user)
	}
	return nil
}
