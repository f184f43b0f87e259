package roles

import (
	"strings"
	"testing"

	"github.com/belay-sh/belay/inventory"
)

// cellStandbyDBSpec is a dedicated cell's standby-site database: the
// standby-db role on the cell's stanza, its database and role the cell's,
// admitting the cell's standby server only, no tenants.
func cellStandbyDBSpec(t testing.TB) *Spec {
	t.Helper()
	s := abBase(t, "shop-c2-standby-db", inventory.Standby, "10.213.0.190", inventory.RoleStandbyDB)
	s.StandbyDB = &StandbyDB{
		PostgresVersion: 15,
		Name:            "shop_c2",
		AppUser:         "shop_c2",
		Port:            5432,
		Stanza:          "shop_c2",
		RepoHost:        "10.213.0.138",
		RepoHostKey:     abKey(t, "host-backup").Public,
		ClientKey:       abKey(t, "pgbackrest-shop-c2-standby-db"),
		AllowFrom:       []string{"10.213.0.161"},
		AppPassword:     tAppPW,
	}
	return s
}

func TestCellStandbyDBGolden(t *testing.T) {
	checkGolden(t, "standby-db-cell", mustRender(t, cellStandbyDBSpec(t)))
}

// TestCellStandbyDB: the cell's standby restores and, once promoted,
// archives its own stanza; its pg_hba admits the cell's role to the cell's
// database from the cell's standby server only; its sudoers are the stack's
// standby database's (the same fixed commands: the site switch runs the same
// steps on it).
func TestCellStandbyDB(t *testing.T) {
	c, _ := renderParsed(t, cellStandbyDBSpec(t))
	restore := fileAt(t, c, StandbyRestoreScript).Content
	if !strings.Contains(restore, "\nstanza=shop_c2\n") {
		t.Errorf("restore script does not restore stanza shop_c2")
	}
	if conf := fileAt(t, c, belayPGConf).Content; !strings.Contains(conf, "archive_command = 'pgbackrest --stanza=shop_c2 archive-push %p'") {
		t.Errorf("archive_command does not push to stanza shop_c2:\n%s", conf)
	}
	if pb := fileAt(t, c, "/etc/pgbackrest/pgbackrest.conf").Content; !strings.Contains(pb, "[shop_c2]") || strings.Contains(pb, "[belay]") {
		t.Errorf("pgbackrest.conf is not the cell stanza's:\n%s", pb)
	}
	hba := fileAt(t, c, standbyHBA).Content
	var hosts []string
	for _, l := range strings.Split(hba, "\n") {
		if strings.HasPrefix(l, "hostssl") {
			hosts = append(hosts, l)
		}
	}
	if len(hosts) != 1 || hosts[0] != "hostssl shop_c2 shop_c2 10.213.0.161/32 scram-sha-256" {
		t.Errorf("pg_hba hostssl lines %q, want the cell's role and database from its standby server only", hosts)
	}
	cell, err := opsSudoers(cellStandbyDBSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	stack, err := opsSudoers(standbyDBSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	if cell != stack || !strings.Contains(cell, StandbyFinalArchiveScript) {
		t.Errorf("sudoers of the cell's standby database differ from the stack's:\n%s\n---\n%s", cell, stack)
	}
}
