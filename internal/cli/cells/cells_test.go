package cells

import (
	"testing"

	"github.com/belay-sh/belay/inventory"
)

func TestRemoteCommands(t *testing.T) {
	if got := ShopDBCommand("shop"); got != "sudo -n /usr/local/bin/belay host shop-db --app shop" {
		t.Errorf("ShopDBCommand: %q", got)
	}
	if got := MoveHookCommand(CellApp("shop", "c2"), "import", "a.test"); got != "sudo -n /usr/local/bin/belay host move-hook shop-c2 import a.test" {
		t.Errorf("MoveHookCommand: %q", got)
	}
}

func TestCellHost(t *testing.T) {
	o := &Options{App: "shop", inv: &inventory.Inventory{Apps: []inventory.App{{Name: "shop-c1", Hosts: []string{"c1-a", "c1-b"}}}}}
	if h, err := o.cellHost("c1"); err != nil || h != "c1-a" {
		t.Errorf("cellHost(c1) = %q %v", h, err)
	}
	if _, err := o.cellHost("c2"); err == nil {
		t.Error("cellHost(c2) without an app shop-c2: no error")
	}
}
