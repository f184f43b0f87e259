package failover

import (
	"slices"
	"strings"
	"testing"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/inventory"
)

// dedicatedInventory is cellsInventory with cell c2 dedicated: its own pair
// shop-c2-db-1/-2 in formation shop_c2 and its standby database
// shop-c2-standby-db; c1 stays on the shared cluster. mixed adds the app
// without cells.
func dedicatedInventory(t *testing.T, mixed bool) *inventory.Inventory {
	t.Helper()
	inv := cellsInventory(t, mixed)
	add := func(name, like string, role inventory.Role, addr string) {
		h := *inv.Host(like)
		h.Name, h.App, h.Cell, h.Roles = name, "shop", "c2", []inventory.Role{role}
		h.PrivateAddress, h.SSHAddress = addr, addr
		inv.Hosts = append(inv.Hosts, h)
	}
	add("shop-c2-db-1", "db-1", inventory.RoleDB, "10.213.0.70")
	add("shop-c2-db-2", "db-2", inventory.RoleDB, "10.213.0.69")
	add("shop-c2-standby-db", inv.Database.Standby, inventory.RoleStandbyDB, "10.213.0.190")
	c := inv.App("shop").Cell("c2")
	c.DBNodes, c.Formation, c.Database, c.StandbyDB = []string{"shop-c2-db-1", "shop-c2-db-2"}, "shop_c2", "shop_c2", "shop-c2-standby-db"
	if err := inv.Validate(); err != nil {
		t.Fatalf("the dedicated fixture is not a valid inventory: %v", err)
	}
	return inv
}

// TestPlanDedicatedCellToStandby: a stack with a shared cell (c1) and a
// dedicated cell (c2) switches: c2's standby database is checked with the
// stack's, c2's pair fenced with the stack's nodes before the monitor, c2's
// standby database records its RPO edge and is promoted after the stack's,
// before any standby app server starts. Not refused.
func TestPlanDedicatedCellToStandby(t *testing.T) {
	for _, mixed := range []bool{false, true} {
		inv := dedicatedInventory(t, mixed)
		p, err := PlanSite(inv, ToStandby)
		if err != nil {
			t.Fatalf("PlanSite: %v", err)
		}
		if p.Refusal != "" {
			t.Fatalf("refused: %s", p.Refusal)
		}
		got := ids(p)
		i := slices.Index(got, "check-standby-db")
		j := slices.Index(got, "fence-db/db-1")
		if i < 0 || j < 0 {
			t.Fatalf("steps %v", got)
		}
		want := []string{"check-standby-db", "check-standby-db/shop-c2-standby-db"}
		if !slices.Equal(got[i:i+2], want) {
			t.Errorf("checks %v, want %v", got[i:i+2], want)
		}
		want = []string{
			"fence-db/db-1", "fence-db/db-2", "fence-db/shop-c2-db-1", "fence-db/shop-c2-db-2", "fence-db/db-monitor",
			"rpo", "promote-db", "check-promoted",
			"rpo/shop-c2-standby-db", "promote-db/shop-c2-standby-db", "check-promoted/shop-c2-standby-db",
			"start-app/shop-c1-standby",
		}
		if !slices.Equal(got[j:j+len(want)], want) {
			t.Errorf("database steps:\n got %v\nwant %v", got[j:j+len(want)], want)
		}
		byID := map[string]Step{}
		for _, s := range p.Steps {
			byID[s.ID] = s
		}
		for id, argv := range map[string][]string{
			"check-standby-db/shop-c2-standby-db": hostcmd.Psql(hostcmd.InRecoverySQL),
			"rpo/shop-c2-standby-db":              hostcmd.Psql(hostcmd.ReplayTimestampSQL),
			"promote-db/shop-c2-standby-db":       hostcmd.Psql(hostcmd.PromoteSQL),
			"check-promoted/shop-c2-standby-db":   hostcmd.Psql(hostcmd.InRecoverySQL),
		} {
			if s := byID[id]; s.Host != "shop-c2-standby-db" || s.Kind != KindRoot || !slices.Equal(s.Argv, argv) {
				t.Errorf("%s: %+v", id, s)
			}
		}
		if s := byID["fence-db/shop-c2-db-2"]; s.Kind != KindFence || !slices.Equal(s.Argv, hostcmd.FenceDB()) {
			t.Errorf("fence of c2's pair: %+v", s)
		}
		if byID["promote-db/shop-c2-standby-db"].Expect != "t" || byID["check-promoted/shop-c2-standby-db"].Expect != "f" {
			t.Error("c2's promotion is not checked like the stack's")
		}
	}
}

// TestPlanDedicatedCellToPrimary: the way back carries c2's data: its
// standby database is checked promoted, made read-only, archived and stopped
// after every standby app stopped; its pair is fenced with the stack's before
// the monitor's reseed, reseeded (primary then replica) after it, and its
// formation checked before any app server starts; the full backup (every
// stanza) comes before its standby database's resync and check.
func TestPlanDedicatedCellToPrimary(t *testing.T) {
	inv := dedicatedInventory(t, true)
	p, err := PlanSite(inv, ToPrimary)
	if err != nil {
		t.Fatalf("PlanSite: %v", err)
	}
	if p.Refusal != "" {
		t.Fatalf("refused: %s", p.Refusal)
	}
	const sdb = "shop-c2-standby-db"
	requireOrder(t, p, [][2]string{
		{"check-standby-serving", "check-standby-serving/" + sdb},
		{"check-standby-serving/" + sdb, "check-reachable/shop-c2-db-1"},
		{"check-reachable/shop-c2-db-2", "fence-db/shop-c2-db-1"},
		{"fence-db/db-2", "fence-db/shop-c2-db-1"},
		{"fence-db/shop-c2-db-2", "fence-db/db-monitor"},
		{"fence-db/db-monitor", "reseed-monitor"},
		{"stop-standby-app/shop-c2-standby", "readonly-standby-db/" + sdb},
		{"stop-standby-app/blog-standby", "readonly-standby-db/" + sdb},
		{"stop-standby-db", "readonly-standby-db/" + sdb},
		{"readonly-standby-db/" + sdb, "archive-standby-db/" + sdb},
		{"archive-standby-db/" + sdb, "stop-standby-db/" + sdb},
		{"stop-standby-db/" + sdb, "reseed-primary/shop-c2-db-1"},
		{"reseed-monitor", "reseed-primary/shop-c2-db-1"},
		{"check-formation", "reseed-primary/shop-c2-db-1"},
		{"reseed-primary/shop-c2-db-1", "reseed-replica/shop-c2-db-2"},
		{"reseed-replica/shop-c2-db-2", "check-formation/shop_c2"},
		{"check-formation/shop_c2", "start-app/shop-c1-1"},
		{"check-formation/shop_c2", "start-app/blog-1"},
		{"verify/shop", "backup-full"},
		{"backup-full", "reseed-standby-db/" + sdb},
		{"check-standby-db", "reseed-standby-db/" + sdb},
		{"reseed-standby-db/" + sdb, "check-standby-db/" + sdb},
	})
	byID := map[string]Step{}
	for _, s := range p.Steps {
		byID[s.ID] = s
	}
	formSQL, err := hostcmd.FormationStateSQL("shop_c2")
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]Step{
		"check-standby-serving/" + sdb: {Host: sdb, Argv: hostcmd.Psql(hostcmd.InRecoverySQL), Expect: "f"},
		"readonly-standby-db/" + sdb:   {Host: sdb, Argv: hostcmd.ReadOnly()},
		"archive-standby-db/" + sdb:    {Host: sdb, Argv: hostcmd.FinalArchive()},
		"stop-standby-db/" + sdb:       {Host: sdb, Argv: hostcmd.StopUnit(hostcmd.StandbyDBUnit)},
		"fence-db/shop-c2-db-1":        {Host: "shop-c2-db-1", Argv: hostcmd.FenceDB()},
		"reseed-primary/shop-c2-db-1":  {Host: "shop-c2-db-1", Argv: hostcmd.Reseed(hostcmd.ReseedPrimary)},
		"reseed-replica/shop-c2-db-2":  {Host: "shop-c2-db-2", Argv: hostcmd.Reseed(hostcmd.ReseedReplica)},
		"check-formation/shop_c2":      {Host: "db-monitor", Argv: hostcmd.MonitorPsql(formSQL), Expect: "1/1"},
		"reseed-standby-db/" + sdb:     {Host: sdb, Argv: hostcmd.Resync()},
		"check-standby-db/" + sdb:      {Host: sdb, Argv: hostcmd.Psql(hostcmd.InRecoverySQL), Expect: "t"},
	} {
		s, ok := byID[id]
		if !ok || s.Kind != KindRoot || s.Host != want.Host || !slices.Equal(s.Argv, want.Argv) || s.Expect != want.Expect {
			t.Errorf("%s = %+v, want host %s argv %v expect %q", id, s, want.Host, want.Argv, want.Expect)
		}
	}
	if s := byID["check-formation/shop_c2"]; !s.Retry {
		t.Error("check-formation/shop_c2 does not retry (the replica registers after a clone)")
	}
	if s := byID["check-standby-db/"+sdb]; !s.Retry {
		t.Error("check-standby-db/" + sdb + " does not retry")
	}
	// The stack's own steps keep their IDs: one check-formation of the
	// default formation, one reseed of the stack's pair.
	if s := byID["check-formation"]; !slices.Equal(s.Argv, hostcmd.MonitorPsql(hostcmd.FormationSQL)) {
		t.Errorf("check-formation = %+v", s)
	}
	if n := strings.Count(strings.Join(ids(p), " "), "reseed-monitor"); n != 1 {
		t.Errorf("%d monitor reseeds, want 1", n)
	}
}

// TestPlanDedicatedCellErrors: a dedicated cell whose standby database or
// pair is missing from the inventory, or whose formation is malformed, is
// an error naming the field, both ways.
func TestPlanDedicatedCellErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*inventory.Inventory)
		want   string
	}{
		{"no standby db", func(i *inventory.Inventory) { i.App("shop").Cell("c2").StandbyDB = "" }, `apps[shop].cells[c2].standbyDB ""`},
		{"unknown standby db", func(i *inventory.Inventory) { i.App("shop").Cell("c2").StandbyDB = "nope" }, `apps[shop].cells[c2].standbyDB "nope"`},
		{"unknown data node", func(i *inventory.Inventory) { i.App("shop").Cell("c2").DBNodes[1] = "nope" }, `apps[shop].cells[c2].dbNodes: "nope"`},
		{"bad formation", func(i *inventory.Inventory) { i.App("shop").Cell("c2").Formation = "shop-c2; drop" }, `apps[shop].cells[c2].formation`},
	}
	for _, tt := range tests {
		for _, to := range []Direction{ToStandby, ToPrimary} {
			inv := dedicatedInventory(t, false)
			tt.mutate(inv)
			if p, err := PlanSite(inv, to); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s, %s: plan %v, err %v, want %q", tt.name, to, p != nil, err, tt.want)
			}
		}
	}
}
