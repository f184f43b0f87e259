package hostspec

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/drill"
	"github.com/belay-sh/belay/roles"
)

// TestCellPasswordPurpose: the site drill derives a cell role's password
// with the purpose hostspec renders it with.
func TestCellPasswordPurpose(t *testing.T) {
	if got, want := drill.CellPasswordPurpose("shop", "c2"), cellPassword("shop", "c2"); got != want {
		t.Errorf("drill.CellPasswordPurpose = %q, hostspec renders %q", got, want)
	}
}

// fileContent is the content of the file cc writes at path.
func fileContent(t *testing.T, cc roles.CloudConfig, path string) string {
	t.Helper()
	for _, f := range cc.WriteFiles {
		if f.Path == path {
			text, err := f.Text()
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			return text
		}
	}
	t.Fatalf("no file %s in the user data", path)
	return ""
}

// TestBuildCellStandbyDB: a dedicated cell's standby database is the stack's
// standby-db role restoring the cell's stanza, its database and role the
// cell's (with the cell's password), admitting the cell's standby server
// only; the stack's standby database no longer lists the cell as a tenant
// nor admits its standby server; the cell's standby server's DATABASE_URL
// names its own standby database; it keeps its data on a volume.
func TestBuildCellStandbyDB(t *testing.T) {
	cfg := cellsConfig(t)
	eu := &cfg.Apps[0].Cells[1]
	eu.Replicas, eu.Database, eu.DatabaseSize = 2, config.DatabaseDedicated, cfg.Database.Size
	specs, topo := build(t, cfg, true, nil)
	app := cfg.Apps[0].Name
	c1, eu2 := topo.Cell(app, "c1"), topo.Cell(app, "eu-2")
	addr := func(n string) string { return topo.Host(n).PrivateAddress.String() }
	if eu2.StandbyDB == "" || c1.StandbyDB != "" {
		t.Fatalf("StandbyDB: eu-2 %q, c1 %q", eu2.StandbyDB, c1.StandbyDB)
	}
	s := specs[eu2.StandbyDB]
	if _, err := roles.Render(s); err != nil {
		t.Fatalf("Render %s: %v", eu2.StandbyDB, err)
	}
	d, shared := s.StandbyDB, specs[topo.StandbyDB].StandbyDB
	if d == nil || d.Stanza != CellStanza(eu2) || d.Name != eu2.Database || d.AppUser != eu2.Database || len(d.Tenants) != 0 {
		t.Fatalf("%s StandbyDB = %+v", eu2.StandbyDB, d)
	}
	if strings.Join(d.AllowFrom, ",") != addr(eu2.Standby) {
		t.Errorf("AllowFrom = %v, want exactly %s (the cell's standby server)", d.AllowFrom, eu2.Standby)
	}
	if d.RepoHost != shared.RepoHost || d.RepoHostKey != shared.RepoHostKey || d.ClientKey.Public == shared.ClientKey.Public {
		t.Errorf("repository %s (key %q), client key shared with db-standby: %v", d.RepoHost, d.RepoHostKey, d.ClientKey.Public == shared.ClientKey.Public)
	}
	if d.AppPassword != specs[eu2.DBNodes[0]].DB.AppPassword || d.AppPassword == shared.AppPassword {
		t.Error("AppPassword: want the cell's password (the pair's), not the stack's")
	}
	if s.DataVolume == nil || s.DataVolume.MountPoint != PgHome {
		t.Errorf("data volume %+v", s.DataVolume)
	}
	if len(shared.Tenants) != 1 || shared.Tenants[0].Database != c1.Database {
		t.Errorf("db-standby tenants = %+v, want c1's only (eu-2's data is not in the stack's stanza)", shared.Tenants)
	}
	if contains(shared.AllowFrom, addr(eu2.Standby)) || !contains(shared.AllowFrom, addr(c1.Standby)) {
		t.Errorf("db-standby AllowFrom = %v: want c1's standby server, not eu-2's", shared.AllowFrom)
	}
	if u := specs[eu2.Standby].App.DatabaseURL; !strings.Contains(u, "://"+eu2.Database+":") || !strings.Contains(u, "@"+addr(eu2.StandbyDB)+":5432/"+eu2.Database+"?") {
		t.Errorf("%s DATABASE_URL = %s, want its standby database %s", eu2.Standby, u, addr(eu2.StandbyDB))
	}
	if u := specs[c1.Standby].App.DatabaseURL; !strings.Contains(u, "@"+addr(topo.StandbyDB)+":5432/") {
		t.Errorf("%s DATABASE_URL = %s, want the stack's standby database", c1.Standby, u)
	}
	// The reseed script on the pair restores the cell's stanza and
	// re-registers in the cell's formation (belay-db-setup ensures it first).
	for _, n := range eu2.DBNodes {
		ud, err := roles.Render(specs[n])
		if err != nil {
			t.Fatal(err)
		}
		var cc roles.CloudConfig
		if err := yaml.Unmarshal(ud, &cc); err != nil {
			t.Fatal(err)
		}
		reseed, setup := fileContent(t, cc, roles.DBReseedScript), fileContent(t, cc, roles.DBSetupScript)
		if !strings.Contains(reseed, "--stanza="+CellStanza(eu2)+" ") || strings.Contains(reseed, "--stanza="+Stanza+" ") {
			t.Errorf("%s reseed does not restore stanza %s only", n, CellStanza(eu2))
		}
		if !strings.Contains(setup, "ensure_formation && as_pg pg_autoctl create") || !strings.Contains(setup, "--formation "+eu2.Formation) {
			t.Errorf("%s setup does not ensure formation %s before registering", n, eu2.Formation)
		}
	}
}
