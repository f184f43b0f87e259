package cells

import (
	"strings"
	"testing"

	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/roles"
)

func TestRemoteCommands(t *testing.T) {
	if got := ShopDBCommand("shop"); got != "sudo -n /usr/local/bin/belay host shop-db --app shop" {
		t.Errorf("ShopDBCommand: %q", got)
	}
	if got := MoveHookCommand("shop", "import", "a.test"); got != "sudo -n /usr/local/bin/belay host move-hook shop import a.test" {
		t.Errorf("MoveHookCommand: %q", got)
	}
}

// TestRemoteCommandsMatchSudoers: what the commands run over SSH is what
// the roles grant (routers: shop-db; cell servers: the app's move hooks).
func TestRemoteCommandsMatchSudoers(t *testing.T) {
	if got, want := ShopDBCommand("shop"), "sudo -n "+strings.Join(roles.ShopDBCommand("shop"), " "); got != want {
		t.Errorf("ShopDBCommand = %q, sudoers grants %q", got, want)
	}
	for i, verb := range []string{"export", "import"} {
		grant := strings.TrimSuffix(roles.MoveHookCommands("shop")[i], " *")
		if got := MoveHookCommand("shop", verb, "a.test"); got != "sudo -n "+grant+" a.test" {
			t.Errorf("MoveHookCommand = %q, sudoers grants %q *", got, grant)
		}
	}
}

func TestCellHost(t *testing.T) {
	inv := &inventory.Inventory{
		Apps:  []inventory.App{{Name: "shop", Cells: []inventory.Cell{{Name: "c1", Hosts: []string{"shop-c1-1", "shop-c1-2"}}, {Name: "c2"}}}},
		Hosts: []inventory.Host{{Name: "shop-c1-1"}, {Name: "shop-c1-2"}},
	}
	o := &Options{App: "shop", inv: inv}
	if h, err := o.cellHost("c1"); err != nil || h != "shop-c1-1" {
		t.Errorf("cellHost(c1) = %q %v", h, err)
	}
	for _, c := range []string{"c2", "c9"} {
		if _, err := o.cellHost(c); err == nil {
			t.Errorf("cellHost(%s) without servers: no error", c)
		}
	}
}

func TestDefaultRouterIsTheApps(t *testing.T) {
	inv := &inventory.Inventory{Hosts: []inventory.Host{
		{Name: "blog-router-1", App: "blog", Roles: []inventory.Role{RoleRouter}},
		{Name: "shop-c1-1", App: "shop", Roles: []inventory.Role{inventory.RoleApp}},
		{Name: "shop-router-1", App: "shop", Roles: []inventory.Role{RoleRouter}},
		{Name: "shop-router-2", App: "shop", Roles: []inventory.Role{RoleRouter}},
	}}
	if r, err := defaultRouter(inv, "shop"); err != nil || r != "shop-router-1" {
		t.Errorf("defaultRouter(shop) = %q %v", r, err)
	}
	if r, err := defaultRouter(inv, "wiki"); err == nil {
		t.Errorf("defaultRouter(wiki) = %q, want an error", r)
	}
}
