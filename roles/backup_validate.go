package roles

// Validation of Spec.Backup for the repository host.

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

var stanzaRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

func validateBackup(s *Spec) error {
	bk := s.Backup
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("roles: "+format, args...)) }
	if !stanzaRE.MatchString(bk.Stanza) {
		bad("Spec.Backup.Stanza: %q, expected a pgBackRest stanza name (A-Z, a-z, 0-9, _, -)", bk.Stanza)
	}
	if len(bk.DBHosts) == 0 {
		bad("Spec.Backup.DBHosts: empty, expected the data nodes to back up")
	}
	names := map[string]bool{}
	for i, h := range bk.DBHosts {
		if !hostnameRE.MatchString(h.Name) || names[h.Name] {
			bad("Spec.Backup.DBHosts[%d].Name: %q, expected a unique host name", i, h.Name)
		}
		names[h.Name] = true
		if a, err := netip.ParseAddr(h.Address); err != nil || !a.Is4() {
			bad("Spec.Backup.DBHosts[%d].Address: %q, expected an IPv4 address", i, h.Address)
		}
		if err := checkPublicKey(h.HostKey); err != nil {
			bad("Spec.Backup.DBHosts[%d].HostKey: %v", i, err)
		}
	}
	if len(bk.ClientKeys) == 0 {
		bad("Spec.Backup.ClientKeys: empty, expected the pgBackRest clients' keys (data nodes, standby DB)")
	}
	for i, k := range bk.ClientKeys {
		if err := checkPublicKey(k); err != nil {
			bad("Spec.Backup.ClientKeys[%d]: %v", i, err)
		}
	}
	apps := map[string]bool{}
	for i, app := range bk.ResticApps {
		if !appNameRE.MatchString(app) || apps[app] {
			bad("Spec.Backup.ResticApps[%d]: %q, expected a unique app name", i, app)
		}
		apps[app] = true
	}
	if err := checkPublicKey(bk.ResticCA); err != nil {
		bad("Spec.Backup.ResticCA: %v", err)
	}
	if err := checkPrivateKey(bk.RepoKey.PrivatePEM, bk.RepoKey.Public); err != nil {
		bad("Spec.Backup.RepoKey: %v", err)
	}
	if bk.FullEvery != "daily" && bk.FullEvery != "weekly" {
		bad("Spec.Backup.FullEvery: %q, expected daily or weekly", bk.FullEvery)
	}
	if bk.RetentionDays < 1 || bk.RetentionDays > 9999 {
		bad("Spec.Backup.RetentionDays: %d, expected 1-9999", bk.RetentionDays)
	}
	if bk.ResticPassword == "" || strings.ContainsAny(bk.ResticPassword, "\n\r") {
		bad("Spec.Backup.ResticPassword: expected a non-empty single-line password")
	}
	if bk.PostgresVersion < 10 || bk.PostgresVersion > 99 {
		bad("Spec.Backup.PostgresVersion: %d, expected a PostgreSQL major version such as 15", bk.PostgresVersion)
	}
	if err := validateBackupCells(bk); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
