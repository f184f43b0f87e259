package previewguard

import (
	"strings"
	"testing"
)

const cellURN = "urn:pulumi:prod::belay::belay:index:Belay$belay:index:CellDatabase"
const serverURN = "urn:pulumi:prod::belay::belay:index:Belay$belay:index:AppPair$hcloud:index/server:Server"

func TestCellBecomesDedicatedWarns(t *testing.T) {
	for _, c := range []struct {
		name  string
		steps []Step
		want  string // "" no warning
	}{
		{"existing cell made dedicated", []Step{
			{Op: "create", URN: cellURN + "::shop-c2-db"},
			{Op: "create", URN: cellURN + "$hcloud:index/server:Server::shop-c2-db-1"},
			{Op: "same", URN: serverURN + "::shop-c2-1"},
		}, "run belay db copy --cell shop/c2 --yes before belay converge"},
		{"ambiguous group", []Step{{Op: "create", URN: cellURN + "::my-shop-eu-2-db"}}, "--cell APP/CELL (cell my-shop-eu-2)"},
		{"new dedicated cell", []Step{
			{Op: "create", URN: cellURN + "::shop-c3-db"},
			{Op: "create", URN: serverURN + "::shop-c3-1"},
			{Op: "create", URN: serverURN + "::shop-c3-2"},
		}, ""},
		{"nothing dedicated", []Step{{Op: "create", URN: serverURN + "::shop-c3-1"}}, ""},
	} {
		v := Check(&Preview{Steps: c.steps}, nil)
		if !v.OK {
			t.Errorf("%s: blocked: %+v", c.name, v)
		}
		switch {
		case c.want == "" && len(v.Warnings) > 0:
			t.Errorf("%s: warned %+v", c.name, v.Warnings)
		case c.want != "" && (len(v.Warnings) != 1 || !strings.Contains(v.Warnings[0].Message, c.want)):
			t.Errorf("%s: warnings %+v, want %q", c.name, v.Warnings, c.want)
		}
	}
}
