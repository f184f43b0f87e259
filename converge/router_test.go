package converge_test

import (
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/belay-sh/belay/converge"
)

// TestRouterFileEffects: the router's files are converged with the effect
// their reader needs; map.conf is router-sync's after the first boot.
func TestRouterFileEffects(t *testing.T) {
	restart := []converge.Cmd{{"systemctl", "try-restart", "belay-router-sync@shop.service"}}
	for _, p := range []string{"/etc/belay/router/shop/cells.conf", "/etc/belay/router/shop/db.conf"} {
		if e := converge.EffectOf(p); e.Skip || !slices.EqualFunc(e.Activate, restart, func(a, b converge.Cmd) bool { return slices.Equal(a, b) }) {
			t.Errorf("EffectOf(%s) = %+v, want a try-restart of router-sync", p, e)
		}
	}
	if !converge.EffectOf("/etc/belay/router/shop/map.conf").Skip {
		t.Error("map.conf is not seeded-only")
	}
	if e := converge.EffectOf("/etc/nginx/conf.d/belay-router-shop.conf"); len(e.Validate) == 0 || len(e.Activate) == 0 {
		t.Errorf("the router's server block: %+v, want nginx -t and a reload", e)
	}
}

// TestPlanOfRouterEdit: on the cells stack, changing the router's unknown
// shop answer changes the routers' cells.conf and server block, and nothing
// on any other host; map.conf is never planned.
func TestPlanOfRouterEdit(t *testing.T) {
	raw, err := os.ReadFile("../lab/cells-stack.yaml")
	if err != nil {
		t.Fatal(err)
	}
	stack := string(raw)
	if !strings.Contains(stack, "unknownShop: 404") {
		t.Fatal("lab/cells-stack.yaml no longer sets unknownShop: 404; update this test")
	}
	before := hostsForStack(t, stack)
	after := hostsForStack(t, strings.Replace(stack, "unknownShop: 404", "unknownShop: 421", 1))
	changed := changedPaths(before, after)
	var routers []string
	for name, paths := range changed {
		if !strings.Contains(name, "router") {
			t.Errorf("%s: %v changed by a router edit", name, paths)
			continue
		}
		routers = append(routers, name)
		sort.Strings(paths)
		want := []string{"/etc/belay/router/shop/cells.conf", "/etc/nginx/conf.d/belay-router-shop.conf"}
		if !slices.Equal(paths, want) {
			t.Errorf("%s: changed %v, want %v", name, paths, want)
		}
	}
	if len(routers) < 2 {
		t.Errorf("routers changed: %v, want every router", routers)
	}
	for name, h := range before {
		for _, f := range h.Files {
			if strings.HasSuffix(f.Path, "/map.conf") {
				t.Errorf("%s: converge manages %s (router-sync owns it)", name, f.Path)
			}
		}
	}
}
