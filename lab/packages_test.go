package lab

import (
	"slices"
	"testing"

	"github.com/belay-sh/belay/roles"
)

// The lab image stands in for a cloud's stock image plus the packages the roles
// install at first boot there; if a role gains a package, the image must too.
func TestImageCarriesEveryRolePackage(t *testing.T) {
	for _, p := range roles.AllPackages(15) {
		if !slices.Contains(ImagePackages, p) {
			t.Errorf("lab ImagePackages lacks %q, which roles.Packages installs on clouds", p)
		}
	}
}
