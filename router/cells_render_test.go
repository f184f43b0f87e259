package router

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/belay-sh/belay/shopkeys"
)

// TestRenderCellsRoundTrip: what the router role renders is what
// router-sync parses back, field for field.
func TestRenderCellsRoundTrip(t *testing.T) {
	two := []Cell{
		{Name: "c1", Addrs: []netip.AddrPort{netip.MustParseAddrPort("10.0.1.10:80")}},
		{Name: "eu-2", Addrs: []netip.AddrPort{netip.MustParseAddrPort("10.0.2.10:80"), netip.MustParseAddrPort("10.0.2.11:8080")}},
	}
	for name, c := range map[string]Cells{
		"404":     {App: "shop", Cells: two, Unknown: 404, RetryAfter: 30, Keys: shopkeys.Keys{}.WithDefaults()},
		"421":     {App: "shop-x", Cells: two, Unknown: 421, RetryAfter: 5, Keys: shopkeys.Keys{Param: "s", Header: "X-Shop", Cookie: "sc"}},
		"default": {App: "shop", Cells: two, Default: "eu-2", Unknown: DefaultUnknown, RetryAfter: 3600, Keys: shopkeys.Keys{}.WithDefaults()},
	} {
		t.Run(name, func(t *testing.T) {
			raw := RenderCells(c)
			got, err := ParseCells(c.App, raw)
			if err != nil {
				t.Fatalf("ParseCells(RenderCells()) = %v\n%s", err, raw)
			}
			if !reflect.DeepEqual(got, c) {
				t.Errorf("round trip:\n got %+v\nwant %+v\n%s", got, c, raw)
			}
		})
	}
}

func TestParseCellsUnknown(t *testing.T) {
	for conf, want := range map[string]int{
		"cell c1 10.0.0.1:80\n":                        421,
		"cell c1 10.0.0.1:80\nunknown 404\n":           404,
		"cell c1 10.0.0.1:80\nunknown 421 # comment\n": 421,
	} {
		c, err := ParseCells("shop", []byte(conf))
		if err != nil || c.Unknown != want {
			t.Errorf("%q: Unknown %d (%v), want %d", conf, c.Unknown, err, want)
		}
		if sc := ServerConf(c, "80"); !strings.Contains(sc, "return "+itoa(want)+" ") {
			t.Errorf("%q: ServerConf does not answer %d:\n%s", conf, want, sc)
		}
	}
}

func TestDSNConf(t *testing.T) {
	if got := string(DSNConf("  postgresql://u:p@h/db\n")); got != "postgresql://u:p@h/db\n" {
		t.Errorf("DSNConf = %q", got)
	}
}
