package deploy

import (
	"testing"

	"github.com/belay-sh/belay/deploy/plan"
	"github.com/belay-sh/belay/deploy/traffic"
	"github.com/belay-sh/belay/inventory"
)

// The stack's belay:deploy keys reach the deploy through the inventory, for
// the flags the user did not give; a given flag wins; an inventory without
// the section keeps the flags' own defaults.
func TestStackDeployKeysAreFlagDefaults(t *testing.T) {
	stack := &inventory.Deploy{KeepReleases: 9, ShopParam: "store", ShopHeader: "X-Store", ShopCookie: "store_id"}
	flags := plan.Strategy{KeepReleases: 5, Keys: traffic.Keys{Param: traffic.DefaultShopParam, Header: traffic.DefaultShopHeader, Cookie: traffic.DefaultShopCookie}}
	tests := []struct {
		name    string
		inv     *inventory.Deploy
		changed []string
		want    plan.Strategy
	}{
		{"stack values for unset flags", stack, nil, plan.Strategy{KeepReleases: 9, Keys: traffic.Keys{Param: "store", Header: "X-Store", Cookie: "store_id"}}},
		{"given flags win", stack, []string{"keep", "shop-header"}, plan.Strategy{KeepReleases: 5, Keys: traffic.Keys{Param: "store", Header: traffic.DefaultShopHeader, Cookie: "store_id"}}},
		{"older inventory without the section", nil, nil, flags},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := map[string]bool{}
			for _, f := range tt.changed {
				set[f] = true
			}
			o := &DeployOptions{changed: func(f string) bool { return set[f] }}
			st := flags
			o.stackDefaults(&inventory.Inventory{Deploy: tt.inv}, &st)
			if st.KeepReleases != tt.want.KeepReleases || st.Keys != tt.want.Keys {
				t.Errorf("got keep %d keys %+v, want keep %d keys %+v", st.KeepReleases, st.Keys, tt.want.KeepReleases, tt.want.Keys)
			}
		})
	}
}
