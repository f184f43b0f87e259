package inventory

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/belay-sh/belay/internal/safe"
)

var (
	// linuxUserRE is config's rule for belay:admin.deployUser.
	linuxUserRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	// nginxArgRE and headerRE are config's rules for belay:deploy's shop keys.
	nginxArgRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
	headerRE   = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
	// stackRE is a Pulumi stack name (it names local state files: no "/").
	stackRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)
	pgIdentRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	labelRE   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// checkValues refuses values that would be syntax somewhere downstream: names
// and paths reach shell commands (quoted, but also unit names, file paths,
// sudoers lines), domains reach nginx, addresses reach ssh and DNS. The
// document may come from a file or a stack output, so nothing in it is
// trusted. Each error names the field by index (a hostile name is not a label).
func (inv *Inventory) checkValues() []error {
	var errs []error
	bad := func(field string, err error) { errs = append(errs, fmt.Errorf("%s: %w", field, err)) }
	badf := func(field, format string, a ...any) { errs = append(errs, fmt.Errorf(field+": "+format, a...)) }
	if !stackRE.MatchString(inv.Stack) || strings.Contains(inv.Stack, "..") {
		badf("stack", "%q, expected a stack name (letters, digits, _ . -, starting with a letter or digit, no \"..\")", inv.Stack)
	}
	if d := inv.Deploy; d != nil {
		if d.KeepReleases < 2 || d.KeepReleases > 100 {
			badf("deploy.keepReleases", "%d, expected 2..100", d.KeepReleases)
		}
		if !nginxArgRE.MatchString(d.ShopParam) {
			badf("deploy.shopParam", "%q, expected 1-64 letters, digits or '_'", d.ShopParam)
		}
		if !headerRE.MatchString(d.ShopHeader) {
			badf("deploy.shopHeader", "%q, expected 1-64 letters, digits or '-'", d.ShopHeader)
		}
		if !nginxArgRE.MatchString(d.ShopCookie) {
			badf("deploy.shopCookie", "%q, expected 1-64 letters, digits or '_'", d.ShopCookie)
		}
	}
	for i, h := range inv.Hosts {
		p := fmt.Sprintf("hosts[%d]", i)
		if h.Name != "" { // empty is reported by Validate
			if err := safe.Name(h.Name); err != nil {
				bad(p+".name", err)
			}
		}
		if h.App != "" {
			if err := safe.Name(h.App); err != nil {
				bad(p+".app", err)
			}
		}
		if h.DeployUser != "" && !linuxUserRE.MatchString(h.DeployUser) {
			badf(p+".deployUser", "%q, expected a Linux user name ([a-z_][a-z0-9_-]{0,31})", h.DeployUser)
		}
		if h.SSHAddress != "" && !ipOrHostname(h.SSHAddress) {
			badf(p+".sshAddress", "%q, expected an IP address or a host name", h.SSHAddress)
		}
		if h.PublicAddress != "" {
			if _, err := netip.ParseAddr(h.PublicAddress); err != nil {
				badf(p+".publicAddress", "%q, expected an IP address", h.PublicAddress)
			}
		}
	}
	for i, a := range inv.Apps {
		p := fmt.Sprintf("apps[%d]", i)
		if err := safe.Name(a.Name); err != nil {
			bad(p+".name", err)
		}
		if err := safe.HealthPath(a.HealthPath); err != nil {
			bad(p+".healthPath", err)
		}
		if a.Port < 1 || a.Port > 65534 {
			badf(p+".port", "%d, expected 1-65534 (port+1 is the canary's)", a.Port)
		}
		if a.VIP != "" {
			if _, err := netip.ParseAddr(a.VIP); err != nil {
				badf(p+".vip", "%q, expected an IP address", a.VIP)
			}
		}
		for j, d := range a.Domains {
			if !hostname(strings.TrimPrefix(d, "*.")) {
				badf(fmt.Sprintf("%s.domains[%d]", p, j), "%q, expected a lowercase host name (a leading *. allowed)", d)
			}
		}
	}
	if inv.Database.Name != "" && !pgIdentRE.MatchString(inv.Database.Name) {
		badf("database.name", "%q, expected a lowercase PostgreSQL identifier", inv.Database.Name)
	}
	for field, hn := range map[string]string{"database.monitor": inv.Database.Monitor, "database.standbyHost": inv.Database.Standby, "backup.host": inv.Backup.Host} {
		if hn != "" && inv.Host(hn) == nil {
			badf(field, "unknown host %q", hn)
		}
	}
	if inv.Backup.Stanza != "" {
		if err := safe.Stanza(inv.Backup.Stanza); err != nil {
			bad("backup.stanza", err)
		}
	}
	return errs
}

// hostname reports whether s is a lowercase DNS name of one or more labels.
func hostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !labelRE.MatchString(l) {
			return false
		}
	}
	return true
}

func ipOrHostname(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	return hostname(s)
}
