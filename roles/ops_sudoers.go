package roles

import (
	"fmt"
	"strings"

	"github.com/belay-sh/belay/hostcmd"
)

// OpsSudoersFile lets the deploy user run belay's operations' root commands.
const OpsSudoersFile = "/etc/sudoers.d/belay-ops"

// commandPaths are the absolute paths sudoers needs for the programs
// hostcmd's commands start (Debian 12; sudo also accepts /bin/... for these,
// as it compares the file, not the name).
var commandPaths = map[string]string{
	"systemctl": "/usr/bin/systemctl",
	"runuser":   "/usr/sbin/runuser",
	"sh":        "/bin/sh",
}

// opsSudoers renders OpsSudoersFile: exactly the root commands the site switch
// (both ways), the drills and `belay backup status` run on a host with these
// roles (hostcmd.ForHost), for the deploy user, who runs them as
// `sudo -n <argv>` on a cloud stack. Nothing else: no shell, no wildcard.
func opsSudoers(s *Spec) (string, error) {
	h := hostcmd.Host{Roles: s.Roles}
	if s.App != nil {
		h.Apps = []string{s.App.Name}
	}
	if s.Router != nil {
		h.Routers = []string{s.Router.App}
	}
	switch {
	case s.Backup != nil:
		h.Stanza = s.Backup.Stanza
		for _, c := range s.Backup.Cells {
			h.CellStanzas = append(h.CellStanzas, c.Stanza)
		}
	case s.DB != nil && s.DB.Monitor:
		h.Formations = s.DB.Formations
	case s.DB != nil && s.DB.Formation != "":
		// A dedicated cell's data node: belay db copy's pair verbs, for its one database.
		h.CellDB = s.DB.Name
	case s.DB != nil:
		h.MovedCells = s.DB.MovedCells
	case s.StandbyDB != nil:
		h.Stanza = s.StandbyDB.Stanza
	}
	cmds := hostcmd.ForHost(h)
	if s.ConvergeKey != "" {
		// belay converge's root side: it verifies the signed bundle on stdin
		// itself, so the deploy user gains nothing it could not already ask.
		cmds = append(cmds, ConvergeCommand)
	}
	if len(cmds) == 0 {
		return "", nil
	}
	var lines []string
	for _, argv := range cmds {
		line, err := sudoersCommand(argv)
		if err != nil {
			return "", err
		}
		lines = append(lines, line)
	}
	return "# Rendered by belay: the exact commands belay's site switch, drills and backup status run as root\n" +
		"# on this host (through `sudo -n` over SSH as the deploy user). Generated from package hostcmd.\n" +
		"Cmnd_Alias BELAY_OPS = " + strings.Join(lines, ", \\\n    ") + "\n" +
		s.DeployUser + " ALL=(root) NOPASSWD: BELAY_OPS\n", nil
}

// sudoersCommand renders argv as one sudoers command with its exact arguments.
func sudoersCommand(argv []string) (string, error) {
	if len(argv) == 0 {
		return "", fmt.Errorf("roles: sudoers: empty command")
	}
	path := argv[0]
	if !strings.HasPrefix(path, "/") {
		p, ok := commandPaths[path]
		if !ok {
			return "", fmt.Errorf("roles: sudoers: no absolute path known for %q (add it to commandPaths)", path)
		}
		path = p
	}
	parts := []string{path}
	for _, a := range argv[1:] {
		if a == "" || strings.ContainsAny(a, "\t\n") || strings.Contains(a, "  ") {
			return "", fmt.Errorf("roles: sudoers: argument %q of %s cannot be matched exactly (empty, tab, newline or double space)", a, argv[0])
		}
		parts = append(parts, sudoersEscape(a))
	}
	return strings.Join(parts, " "), nil
}

// sudoersEscape backslash-escapes what sudoers' parser treats specially in a
// command's arguments (, : = \ and the start of a comment #) and what its
// matcher treats as a wildcard (* ? [ ] !), so each argument matches itself only.
func sudoersEscape(a string) string {
	var b strings.Builder
	for _, r := range a {
		if strings.ContainsRune(`\,:=#*?[]!"`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
