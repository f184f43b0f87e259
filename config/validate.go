package config

import (
	"fmt"
	"regexp"
	"slices"
)

// MinHostKeySeedLen is the shortest belay:hostKeySeed accepted: every host key
// and internal password derives from it.
const MinHostKeySeedLen = 32

// Checks owned by package topology, which imports config and so cannot be
// imported here; it registers them from its init (see RegisterPlanner).
var (
	planCheck     func(*Config) error
	plannerNames  []string
	builtinNames  = []string{"db", "backup", "db-monitor", "db-standby"}
	maxAppNameLen = 63 - len("-standby")
)

// RegisterPlanner makes the address plan (topology.Plan) and the host names the
// topology reserves part of validation, so a plan that does not fit is refused
// as a config error before any resource is registered. Package topology calls it.
func RegisterPlanner(reserved []string, plan func(*Config) error) {
	plannerNames = slices.Clone(reserved)
	planCheck = plan
}

var (
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	linuxUser    = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	pgIdent      = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	nginxVarName = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
	headerName   = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
)

// systemUsers are accounts Debian or belay's roles already own; the deploy user
// must be a fresh one so its sudo rules and keys are belay's alone.
var systemUsers = []string{
	"root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy", "www-data",
	"backup", "list", "irc", "gnats", "nobody", "_apt", "sshd", "messagebus", "systemd-network", "systemd-resolve",
	"systemd-timesync", "postgres", "pgbackrest", "keepalived_script", "belay-app", "admin",
}

// validate records every problem with cfg into e. It skips checks whose input
// already failed to decode so one mistake is reported once.
func validate(e *errs, c *Config, o *options) {
	v := &validator{e: e, c: c, o: o}
	v.sites()
	v.admin()
	v.apps()
	v.database()
	v.backups()
	v.dns()
	v.network()
	v.deploy()
	v.agent()
	v.secrets()
	v.plan()
}

type validator struct {
	e *errs
	c *Config
	o *options
}

// add records an error unless the path (or a parent of it) already has one.
func (v *validator) add(path, format string, args ...any) {
	if v.e.covered(path) {
		return
	}
	v.e.add(path, format, args...)
}

// plan runs the topology's address plan once the inputs it reads are valid, so an
// overflow ("use a larger network") is a config error, not a failed `pulumi up`.
func (v *validator) plan() {
	if planCheck == nil {
		return
	}
	for _, p := range []string{KeyNetwork, KeyApps, KeyDatabase, KeyBackups, KeySites} {
		if v.e.under(p) {
			return
		}
	}
	if err := planCheck(v.c); err != nil {
		v.e.list = append(v.e.list, fmt.Errorf("%w; expected every server to fit the address plan", err))
	}
}
