package hostcmd_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/belay-sh/belay/failover"
	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/inventory"
)

// hostOf describes an inventory host the way the roles see it.
func hostOf(inv *inventory.Inventory, name string) hostcmd.Host {
	h := inv.Host(name)
	out := hostcmd.Host{Roles: h.Roles, Stanza: inv.Backup.Stanza}
	for _, a := range inv.Apps {
		if slices.Contains(a.Hosts, name) || a.Standby == name {
			out.Apps = append(out.Apps, a.Name)
		}
		for _, c := range a.Cells {
			if slices.Contains(c.Hosts, name) || c.Standby == name {
				out.Apps = append(out.Apps, a.Name)
			}
		}
		if r := a.Router; r != nil && (slices.Contains(r.Hosts, name) || r.Standby == name) {
			out.Routers = append(out.Routers, a.Name)
		}
	}
	return out
}

func allowed(cmds [][]string, argv []string) bool {
	for _, c := range cmds {
		if slices.Equal(c, argv) {
			return true
		}
	}
	return false
}

// TestSwitchRootStepsAreListed: every root command of both site switches is
// one ForHost lists for that host, so the rendered sudoers allow it on a cloud.
func TestSwitchRootStepsAreListed(t *testing.T) {
	for _, f := range []string{"inventory.json", "cells-inventory.json"} {
		t.Run(f, func(t *testing.T) { switchRootStepsAreListed(t, "../failover/testdata/"+f) })
	}
}

func switchRootStepsAreListed(t *testing.T, path string) {
	inv, err := inventory.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, to := range []failover.Direction{failover.ToStandby, failover.ToPrimary} {
		p, err := failover.PlanSite(inv, to)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, s := range p.Steps {
			if len(s.Argv) == 0 {
				continue
			}
			n++
			if !allowed(hostcmd.ForHost(hostOf(inv, s.Host)), s.Argv) {
				t.Errorf("switch to %s, step %s on %s: %q is not in hostcmd.ForHost for roles %v", to, s.ID, s.Host, s.Argv, inv.Host(s.Host).Roles)
			}
		}
		if n == 0 {
			t.Errorf("switch to %s has no root steps", to)
		}
	}
}

func TestForHost(t *testing.T) {
	app := hostcmd.ForHost(hostcmd.Host{Roles: []inventory.Role{inventory.RoleApp}, Apps: []string{"shop"}})
	if !allowed(app, hostcmd.FenceApp("shop")) || allowed(app, hostcmd.FenceDB()) {
		t.Errorf("app server commands: %q", app)
	}
	repo := hostcmd.ForHost(hostcmd.Host{Roles: []inventory.Role{inventory.RoleBackupRepo}, Stanza: "belay"})
	for _, want := range [][]string{hostcmd.PgBackRestInfo("belay"), hostcmd.LastWAL(), hostcmd.StartUnit(hostcmd.VerifyUnit)} {
		if !allowed(repo, want) {
			t.Errorf("repository host lacks %q", want)
		}
	}
	if allowed(repo, hostcmd.Reseed(hostcmd.ReseedPrimary)) {
		t.Error("the repository host may run the DB reseed")
	}
	rt := hostcmd.ForHost(hostcmd.Host{Roles: []inventory.Role{inventory.RoleRouter}, Routers: []string{"shop"}})
	if !allowed(rt, hostcmd.FenceRouter("shop")) || !allowed(rt, hostcmd.StartRouter("shop")) || allowed(rt, hostcmd.FenceApp("shop")) || allowed(rt, hostcmd.StartStandbyRouter("shop")) {
		t.Errorf("router commands: %q", rt)
	}
	srt := hostcmd.ForHost(hostcmd.Host{Roles: []inventory.Role{inventory.RoleStandbyRouter}, Routers: []string{"shop"}})
	if !allowed(srt, hostcmd.StartStandbyRouter("shop")) || !allowed(srt, hostcmd.StopStandbyRouter("shop")) || allowed(srt, hostcmd.FenceRouter("shop")) {
		t.Errorf("standby router commands: %q", srt)
	}
	for _, c := range append(rt, srt...) {
		for _, a := range c {
			if strings.ContainsAny(a, "*?[") || a == "sh" || a == "-c" {
				t.Errorf("router command %q: no wildcard, no shell", c)
			}
		}
	}
	both := hostcmd.ForHost(hostcmd.Host{Roles: []inventory.Role{inventory.RoleDB, inventory.RoleDB}})
	seen := map[string]bool{}
	for _, c := range both {
		k := strings.Join(c, " ")
		if seen[k] {
			t.Errorf("%q listed twice", k)
		}
		seen[k] = true
	}
}
