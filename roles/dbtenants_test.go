package roles

import (
	"strings"
	"testing"
)

func TestDBTenants(t *testing.T) {
	s := dbSpec(t, "db-1", "10.213.0.10")
	s.DB.Tenants = []DBTenant{
		{Database: "shop_c1", User: "shop_c1", Password: "cell-one-secret-password", AllowFrom: []string{"10.213.0.71", "10.213.0.72"}},
		{Database: "shop_c2", User: "shop_c2", Password: "cell-two-secret-password", AllowFrom: []string{"10.213.0.67"}},
	}
	hba := dbHBABlock(s)
	for _, want := range []string{"hostssl shop_c1 shop_c1 10.213.0.71/32 scram-sha-256", "hostssl shop_c2 shop_c2 10.213.0.67/32 scram-sha-256"} {
		if !strings.Contains(hba, want) {
			t.Errorf("pg_hba lacks %q:\n%s", want, hba)
		}
	}
	if strings.Contains(hba, "shop_c1 shop_c1 10.213.0.67") || strings.Contains(hba, "shop_c2 shop_c2 10.213.0.71") {
		t.Errorf("a cell's servers reach another cell's database:\n%s", hba)
	}
	sql := dbBootstrapSQL(s.DB)
	for _, want := range []string{"CREATE DATABASE shop_c2 OWNER shop_c2", "REVOKE ALL ON DATABASE shop_c1 FROM PUBLIC", "ALTER ROLE shop_c1 LOGIN NOSUPERUSER"} {
		if !strings.Contains(sql, want) {
			t.Errorf("bootstrap SQL lacks %q", want)
		}
	}
	if strings.Contains(sql, "cell-one-secret-password") {
		t.Error("a cell password reached the SQL in clear text")
	}
	if _, err := Render(s); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*DBTenant){
		"stack database": func(d *DBTenant) { d.Database = s.DB.Name },
		"bad role":       func(d *DBTenant) { d.User = "pg_cell" },
		"no password":    func(d *DBTenant) { d.Password = "" },
		"bad source":     func(d *DBTenant) { d.AllowFrom = []string{"cell-1"} },
	} {
		t.Run(name, func(t *testing.T) {
			s := dbSpec(t, "db-1", "10.213.0.10")
			tn := DBTenant{Database: "shop_c1", User: "shop_c1", Password: "cell-one-secret-password", AllowFrom: []string{"10.213.0.71"}}
			edit(&tn)
			s.DB.Tenants = []DBTenant{tn}
			if _, err := Render(s); err == nil || !strings.Contains(err.Error(), "Spec.DB.Tenants[0]") {
				t.Fatalf("Render() = %v, want an error naming Spec.DB.Tenants[0]", err)
			}
		})
	}
	hs := standbyHBAConf(&StandbyDB{Name: "app", Tenants: s.DB.Tenants[:1]})
	if !strings.Contains(hs, "hostssl shop_c1 shop_c1 10.213.0.72/32") {
		t.Errorf("standby pg_hba lacks the cell:\n%s", hs)
	}
}
