package components

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/belay-sh/belay/hostspec"
)

// The belay groups a server can belong to. Group names become DigitalOcean tags
// and Hetzner label keys (scoped by stack, see groupName).
const (
	groupApp        = "app"         // every app server of the primary site
	groupDB         = "db"          // the PostgreSQL data nodes
	groupDBMonitor  = "db-monitor"  // the pg_auto_failover monitor
	groupStandbyApp = "standby-app" // every app server of the standby site
	groupStandbyDB  = "standby-db"  // the standby-site PostgreSQL
	groupBackup     = "backup"      // the backup repository host
)

// maxGroupLen is the longest Hetzner label key name (DigitalOcean allows 255).
const maxGroupLen = 63

var nonLabel = regexp.MustCompile(`[^a-z0-9-]+`)

// slug lowercases s and replaces anything but [a-z0-9-] with "-", so a stack
// name is usable in tags, label keys and host names.
func slug(s string) string {
	return strings.Trim(nonLabel.ReplaceAllString(strings.ToLower(s), "-"), "-")
}

// groupName scopes a belay group to the stack, so two stacks in one cloud
// project never share a firewall target. The underscores keep it apart from
// the apps' VRRP group tags (hostspec.GroupTag, "belay-<stack>-<app>"), so no
// app name can make a firewall meant for the database apply to its servers.
func groupName(stack, group string) string {
	return "belay_" + slug(stack) + "_" + group
}

// appGroup is the group of one app's VRRP members: the tag (DigitalOcean) or
// label (Hetzner) `belay vip peers` selects at boot.
func appGroup(stack, app string) string {
	return hostspec.GroupTag(stack, app)
}

// tagRE is what both providers accept in a tag (DO) and a label key (Hetzner).
var tagRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?$`)

// checkGroupName refuses a group name the providers would reject, naming the key to change.
func checkGroupName(name, key string) error {
	if !tagRE.MatchString(name) {
		return fmt.Errorf("%s: the derived tag/label %q may only hold letters, digits, - and _ (rename the stack or app)", key, name)
	}
	if len(name) > maxGroupLen {
		return fmt.Errorf("%s: the derived tag/label %q is %d characters, the providers accept %d (use a shorter stack or app name)", key, name, len(name), maxGroupLen)
	}
	return nil
}

// serverName is a server's name at the provider: the host name scoped by stack,
// so two stacks can share a Hetzner project (where names are unique).
func serverName(stack, host string) string {
	return hostspec.ServerName(stack, host)
}
