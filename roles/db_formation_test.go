package roles

import (
	"strings"
	"testing"
)

// TestDBFormation: a dedicated cell's data node registers in its own
// formation after ensuring it; the stack's pair renders as before; bad
// formations are refused naming the field.
func TestDBFormation(t *testing.T) {
	s := dbSpec(t, "shop-c2-db-1", "10.213.0.100")
	s.DB.Formation = "shop_c2"
	args := strings.Join(pgAutoctlCreateArgs(s), " ")
	if !strings.Contains(args, "--formation shop_c2 ") {
		t.Errorf("create args %q lack --formation shop_c2", args)
	}
	shared := dbSpec(t, "db-1", "10.213.0.10")
	c, _ := renderParsed(t, shared)
	if setup := fileAt(t, c, DBSetupScript).Content; strings.Contains(setup, "ensure_formation") || strings.Contains(setup, "--formation") {
		t.Errorf("the stack's pair mentions a formation (it uses the default one):\n%s", setup)
	}
	for name, mut := range map[string]func(*Spec){
		"default":    func(s *Spec) { s.DB.Formation = "default" },
		"not ident":  func(s *Spec) { s.DB.Formation = "shop-c2" },
		"on monitor": nil,
	} {
		t.Run(name, func(t *testing.T) {
			sp := dbSpec(t, "shop-c2-db-1", "10.213.0.100")
			if mut == nil {
				sp = monitorSpec(t)
				sp.DB.Formation = "shop_c2"
			} else {
				mut(sp)
			}
			if _, err := Render(sp); err == nil || !strings.Contains(err.Error(), "Spec.DB.Formation") {
				t.Errorf("Render = %v, want Spec.DB.Formation refused", err)
			}
		})
	}
}
