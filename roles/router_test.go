package roles

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/belay-sh/belay/inventory"
)

// routerSpec is shop-router-1, the first router of app shop's two cells.
func routerSpec(t testing.TB) *Spec {
	t.Helper()
	s := abBase(t, "shop-router-1", inventory.Primary, "10.213.0.20", inventory.RoleRouter)
	s.Router = &Router{
		App:         "shop",
		Cells:       []RouterCell{{Name: "c1", Address: "10.213.0.125", Port: 80}, {Name: "eu-2", Address: "10.213.0.124", Port: 80}},
		UnknownShop: "421",
		ShopParam:   "shop", ShopHeader: "X-Shop-Domain", ShopCookie: "shop",
		DatabaseURL: "postgresql://app:secretpw@10.213.0.10:5432,10.213.0.11:5432/app?target_session_attrs=read-write&connect_timeout=3",
		VRRP: &VRRP{
			RouterID: 51, Priority: 150, Peers: []string{"10.213.0.21"},
			VIP: "10.213.0.100", VIPInterface: "eth0", AdvertInterval: 0.1,
		},
	}
	return s
}

func standbyRouterSpec(t testing.TB) *Spec {
	t.Helper()
	s := abBase(t, "shop-router-standby", inventory.Standby, "10.213.0.148", inventory.RoleStandbyRouter)
	r := *routerSpec(t).Router
	r.Standby, r.VRRP = true, nil
	r.UnknownShop, r.DefaultCell = "default", "eu-2"
	s.Router = &r
	return s
}

func TestRouterGolden(t *testing.T) {
	for name, mk := range map[string]func(testing.TB) *Spec{"router": routerSpec, "standby-router": standbyRouterSpec} {
		t.Run(name, func(t *testing.T) { checkGolden(t, name, mustRender(t, mk(t))) })
	}
}

func TestRouterRole(t *testing.T) {
	c, _ := renderParsed(t, routerSpec(t))
	if f := fileAt(t, c, RouterDSNFile("shop")); f.Permissions != "0600" || f.Owner != "root:root" || f.Content != routerSpec(t).Router.DatabaseURL+"\n" {
		t.Errorf("db.conf holds the DB password, root 0600, the DSN alone: %+v", f)
	}
	ka := fileAt(t, c, "/etc/keepalived/keepalived.conf").Content
	if !strings.Contains(ka, "vrrp_instance belay_router_shop") || strings.Contains(ka, "belay_app") {
		t.Errorf("router keepalived tracks nginx only:\n%s", ka)
	}
	sc, _ := renderParsed(t, standbyRouterSpec(t))
	for _, f := range sc.WriteFiles {
		if strings.Contains(f.Path, "keepalived") {
			t.Errorf("standby router renders %s", f.Path)
		}
	}
}

func TestRouterValidation(t *testing.T) {
	tests := []struct {
		name string
		edit func(s *Spec)
		want string
	}{
		{"no cells", func(s *Spec) { s.Router.Cells = nil }, "Spec.Router.Cells"},
		{"bad cell name", func(s *Spec) { s.Router.Cells[0].Name = "c1;evil" }, "Spec.Router.Cells[0].Name"},
		{"duplicate cell", func(s *Spec) { s.Router.Cells[1].Name = "c1" }, "Spec.Router.Cells[1].Name"},
		{"bad address", func(s *Spec) { s.Router.Cells[0].Address = "cell.example.com" }, "Spec.Router.Cells[0].Address"},
		{"bad unknown", func(s *Spec) { s.Router.UnknownShop = "500" }, "Spec.Router.UnknownShop"},
		{"default without cell", func(s *Spec) { s.Router.UnknownShop = "default" }, "Spec.Router.DefaultCell"},
		{"header syntax", func(s *Spec) { s.Router.ShopHeader = "X Shop" }, "Spec.Router.ShopHeader"},
		{"no vrrp", func(s *Spec) { s.Router.VRRP = nil }, "Spec.Router.VRRP"},
		{"missing section", func(s *Spec) { s.Router = nil }, "Spec.Router"},
		{"app too long for the router", func(s *Spec) { s.Router.App = strings.Repeat("a", 41) }, "Spec.Router.App"},
		{"bad port", func(s *Spec) { s.Router.Cells[0].Port = 0 }, "Spec.Router.Cells[0].Port"},
		{"bad cookie", func(s *Spec) { s.Router.ShopCookie = "a-b" }, "Spec.Router.ShopParam/ShopCookie"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := routerSpec(t)
			tt.edit(s)
			_, err := Render(s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Render() = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

func TestRouterKeepalivedConfigTest(t *testing.T) {
	keepalived := tool(t, "keepalived")
	unshare := tool(t, "unshare")
	ip := tool(t, "ip")
	s := routerSpec(t)
	c, _ := renderParsed(t, s)
	dir := t.TempDir()
	conf := strings.ReplaceAll(fileAt(t, c, "/etc/keepalived/keepalived.conf").Content, "script_user "+KeepalivedScriptUser, "script_user root")
	f := writeTemp(t, dir, "keepalived.conf", conf, 0o644)
	var setup []string
	for i, iface := range uniq(s.Net.PrivateInterface, s.Router.VRRP.VIPInterface) {
		setup = append(setup, ip+" link add "+iface+" type veth peer name belaytst"+string(rune('0'+i)))
	}
	script := strings.Join(setup, " && ") + " && { " + keepalived + " -t -l -n -f " + f + "; rc=$?; echo keepalived -t exit $rc; exit $rc; }"
	out, err := exec.Command(unshare, "-rn", "sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("keepalived -t: %v\n%s\n%s", err, out, conf)
	}
	if strings.Contains(string(out), "WARNING") || strings.Contains(string(out), "Unknown") {
		t.Errorf("keepalived -t complained:\n%s", out)
	}
}
