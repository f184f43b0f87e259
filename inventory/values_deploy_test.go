package inventory

import (
	"strings"
	"testing"
)

// The deploy section reaches nginx ($arg_, $http_, $cookie_) and the
// deployer's cleanup: bad values are refused naming the field.
func TestDeploySectionValues(t *testing.T) {
	tests := []struct {
		name  string
		d     Deploy
		field string
	}{
		{"keep 1", Deploy{KeepReleases: 1, ShopParam: "shop", ShopHeader: "X-Shop", ShopCookie: "shop"}, "deploy.keepReleases"},
		{"param with a dollar", Deploy{KeepReleases: 5, ShopParam: "shop$x", ShopHeader: "X-Shop", ShopCookie: "shop"}, "deploy.shopParam"},
		{"header with a space", Deploy{KeepReleases: 5, ShopParam: "shop", ShopHeader: "X Shop", ShopCookie: "shop"}, "deploy.shopHeader"},
		{"cookie with a semicolon", Deploy{KeepReleases: 5, ShopParam: "shop", ShopHeader: "X-Shop", ShopCookie: "a;b"}, "deploy.shopCookie"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.d
			inv := &Inventory{Stack: "prod", Deploy: &d}
			errs := inv.checkValues()
			var msgs []string
			for _, e := range errs {
				msgs = append(msgs, e.Error())
			}
			if !strings.Contains(strings.Join(msgs, "\n"), tt.field+":") {
				t.Errorf("errors %q, want one naming %s", msgs, tt.field)
			}
		})
	}
	ok := &Inventory{Stack: "prod", Deploy: &Deploy{KeepReleases: 5, ShopParam: "shop", ShopHeader: "X-Shop", ShopCookie: "shop"}}
	if errs := ok.checkValues(); len(errs) != 0 {
		t.Errorf("good section refused: %v", errs)
	}
}
