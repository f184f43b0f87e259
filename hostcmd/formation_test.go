package hostcmd_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/inventory"
)

// TestFormationSQL: the default formation's constants are the builders'
// output for "default" (one source), every query names its formation, and a
// name that could carry SQL or shell is refused.
func TestFormationSQL(t *testing.T) {
	for _, c := range []struct {
		build func(string) (string, error)
		def   string
	}{
		{hostcmd.FormationStateSQL, hostcmd.FormationSQL},
		{hostcmd.FormationNodesSQL, hostcmd.NodeStatesSQL},
		{hostcmd.FormationSwitchoverSQL, hostcmd.SwitchoverSQL},
	} {
		got, err := c.build(hostcmd.DefaultFormation)
		if err != nil || got != c.def {
			t.Errorf("for default: %q %v, want the constant %q", got, err, c.def)
		}
		cell, err := c.build("shop_c2")
		if err != nil || !strings.Contains(cell, "'shop_c2'") || strings.Contains(cell, "'default'") {
			t.Errorf("for shop_c2: %q %v", cell, err)
		}
		for _, bad := range []string{"", "Shop", "shop-c2", "x' OR '1'='1", "a b", "shop;drop", strings.Repeat("a", 64), "shop\nx", "1abc"} {
			if sql, err := c.build(bad); err == nil || !strings.Contains(err.Error(), "formation") {
				t.Errorf("formation %q accepted: %q %v", bad, sql, err)
			}
		}
	}
}

// TestForHostFormations: the monitor's sudoers allow the three formation
// commands of "default" and of each dedicated cell's formation, nothing for
// an invalid name; the backup host reads each cell's stanza.
func TestForHostFormations(t *testing.T) {
	mon := hostcmd.ForHost(hostcmd.Host{Roles: []inventory.Role{inventory.RoleDBMonitor}, Formations: []string{"shop_c2", "x' OR true --"}})
	for _, f := range []string{"default", "shop_c2"} {
		cmds, err := hostcmd.FormationCommands(f)
		if err != nil || len(cmds) != 3 {
			t.Fatalf("FormationCommands(%s): %v %v", f, cmds, err)
		}
		for _, c := range cmds {
			if !allowed(mon, c) {
				t.Errorf("monitor lacks %q", c)
			}
		}
	}
	for _, c := range mon {
		if strings.Contains(strings.Join(c, " "), "OR true") {
			t.Errorf("an invalid formation reached sudoers: %q", c)
		}
	}
	plain := hostcmd.ForHost(hostcmd.Host{Roles: []inventory.Role{inventory.RoleDBMonitor}})
	if len(mon) != len(plain)+3 {
		t.Errorf("monitor with one cell formation: %d commands, without: %d, want 3 more", len(mon), len(plain))
	}
	repo := hostcmd.ForHost(hostcmd.Host{Roles: []inventory.Role{inventory.RoleBackupRepo}, Stanza: "belay", CellStanzas: []string{"shop_c2"}})
	for _, want := range [][]string{hostcmd.PgBackRestInfo("shop_c2"), hostcmd.LastWALOf("shop_c2"), hostcmd.PgBackRestInfo("belay"), hostcmd.LastWAL()} {
		if !allowed(repo, want) {
			t.Errorf("repository host lacks %q", want)
		}
	}
	if slices.ContainsFunc(repo, func(c []string) bool { return slices.Contains(c, "shop_c3") }) {
		t.Error("a stanza not given reached the repository host's commands")
	}
}
