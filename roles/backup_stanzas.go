package roles

// Several stanzas in one repository: the stack's pair (Backup.Stanza) and
// each dedicated cell's pair (Backup.Cells). What differs per stanza is data
// — a config section, a line of PgBackRestStanzasFile, pinned host keys and
// client keys bound to their stanza — and every script and unit is shared:
// the jobs read the list, so adding a dedicated cell (by `belay converge`
// after first boot) needs no new unit and adds no script text.

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/belay-sh/belay/hostcmd"
)

// PgBackRestStanzasFile lists the repository's stanzas, "<stanza> <data node
// address>..." a line, the stack's first: the backup, first-backup,
// verification and last-WAL jobs read their stanzas and data nodes from it.
const PgBackRestStanzasFile = "/etc/belay/pgbackrest-stanzas"

// cellVerifyDir holds the cells' verification results (hostcmd.CellVerifyResultFile),
// the pgbackrest user's: /var/lib/belay itself is root's.
const cellVerifyDir = "/var/lib/belay/verified"

// stanzas is every stanza of the repository, the stack's first.
func (bk *Backup) stanzas() []BackupStanza {
	return append([]BackupStanza{{Stanza: bk.Stanza, DBHosts: bk.DBHosts, ClientKeys: bk.ClientKeys}}, bk.Cells...)
}

// stanzasList renders PgBackRestStanzasFile.
func stanzasList(bk *Backup) string {
	var b strings.Builder
	for _, st := range bk.stanzas() {
		b.WriteString(st.Stanza)
		for _, h := range st.DBHosts {
			b.WriteString(" " + h.Address)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// validateBackupCells checks Spec.Backup.Cells: stanza names unique across
// the repository (the stack's included), data nodes and keys as the stack's.
func validateBackupCells(bk *Backup) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("roles: "+format, args...)) }
	stanzas := map[string]bool{bk.Stanza: true}
	hosts := map[string]bool{}
	for _, h := range bk.DBHosts {
		hosts[h.Name] = true
	}
	for i, c := range bk.Cells {
		f := fmt.Sprintf("Spec.Backup.Cells[%d]", i)
		// A cell's stanza is its formation's name: the stricter rule of both.
		if hostcmd.CheckFormation(c.Stanza) != nil || stanzas[c.Stanza] {
			bad("%s.Stanza: %q, expected a unique stanza name (a lowercase identifier: a-z, 0-9, _)", f, c.Stanza)
		}
		stanzas[c.Stanza] = true
		if len(c.DBHosts) == 0 {
			bad("%s.DBHosts: empty, expected the cell's data nodes", f)
		}
		for j, h := range c.DBHosts {
			if !hostnameRE.MatchString(h.Name) || hosts[h.Name] {
				bad("%s.DBHosts[%d].Name: %q, expected a unique host name", f, j, h.Name)
			}
			hosts[h.Name] = true
			if a, err := netip.ParseAddr(h.Address); err != nil || !a.Is4() {
				bad("%s.DBHosts[%d].Address: %q, expected an IPv4 address", f, j, h.Address)
			}
			if err := checkPublicKey(h.HostKey); err != nil {
				bad("%s.DBHosts[%d].HostKey: %v", f, j, err)
			}
		}
		if len(c.ClientKeys) == 0 {
			bad("%s.ClientKeys: empty, expected the cell's data nodes' pgBackRest keys", f)
		}
		for j, k := range c.ClientKeys {
			if err := checkPublicKey(k); err != nil {
				bad("%s.ClientKeys[%d]: %v", f, j, err)
			}
		}
	}
	return errors.Join(errs...)
}

// stanzaHostsShell is the shell the jobs share to read their stanza's data
// nodes from PgBackRestStanzasFile: hosts_of STANZA prints them, space
// separated, and fails for a stanza the list does not name.
const stanzaHostsShell = `list=` + PgBackRestStanzasFile + `
hosts_of() { # hosts_of STANZA: its data nodes; fails when the list does not name it
    awk -v s="$1" '$1 == s { $1 = ""; sub(/^ /, ""); print; found = 1 } END { exit !found }' "$list"
}
`
