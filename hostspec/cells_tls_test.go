package hostspec

import (
	"testing"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/roles"
)

// TestCellsTLSAtTheRouter: an app with cells gets its HTTPS at the router
// tier (both sites' routers carry the app's domains and tls), and every
// cell server, primary or standby, serves plain HTTP to the routers.
func TestCellsTLSAtTheRouter(t *testing.T) {
	for _, mode := range []string{config.TLSACME, config.TLSOff} {
		t.Run(mode, func(t *testing.T) {
			cfg := cellsConfig(t)
			a := &cfg.Apps[0]
			a.TLS.Mode, a.TLS.Email = mode, "ops@example.com"
			specs, topo := build(t, cfg, true, nil)
			rt := topo.Routers[a.Name]
			for _, h := range append(append([]string{}, rt.Hosts...), rt.Standby) {
				r := specs[h].Router
				switch {
				case mode == config.TLSOff && r.TLS != nil:
					t.Errorf("%s: tls off, router TLS = %+v", h, r.TLS)
				case mode == config.TLSACME && (r.TLS == nil || r.TLS.Mode != roles.TLSModeACME || r.TLS.Email != "ops@example.com"):
					t.Errorf("%s: router TLS = %+v, want the app's acme", h, r.TLS)
				}
				if len(r.Domains) != len(a.Domains) || r.Domains[0] != a.Domains[0] {
					t.Errorf("%s: router domains %v, want the app's %v", h, r.Domains, a.Domains)
				}
			}
			for _, c := range topo.Cells[a.Name] {
				for _, h := range append(append([]string{}, c.Hosts...), c.Standby) {
					if s := specs[h].App; s == nil || s.TLS != nil {
						t.Errorf("%s: cell server App = %+v, want plain HTTP (TLS nil)", h, s)
					}
				}
			}
			for name, s := range specs {
				if _, err := roles.Render(s); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
		})
	}
}
