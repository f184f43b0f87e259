package opsenv

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/belay-sh/belay/cloud/dns"
	"github.com/belay-sh/belay/failover"
	"github.com/belay-sh/belay/inventory"
)

// DNSFlags choose where a site switch moves the apps' records.
type DNSFlags struct {
	// Provider is digitalocean or hetzner (cloud); "" in the lab (its DNS double).
	Provider  string
	Zone      string
	TTL       int
	TokenFile string
	// RecordsFile is the lab DNS double's file (default failover.LabDNSRecordsFile).
	RecordsFile string
}

// SwitchEnv builds the site switch's environment for the target.
func (t *Target) SwitchEnv(fl DNSFlags, out io.Writer, statePath string) (*failover.Env, error) {
	env := &failover.Env{Inv: t.Inv, Hosts: t.Runner(), Out: out, StatePath: statePath, TTL: fl.TTL, Zone: fl.Zone}
	if env.TTL == 0 {
		env.TTL = 60
	}
	roots, err := t.Roots()
	if err != nil {
		return nil, err
	}
	env.Roots = roots
	if env.Zone == "" && t.Lab {
		env.Zone = zoneOf(t.Inv.Apps)
	}
	switch {
	case t.Lab && (fl.Provider == "" || fl.Provider == "lab"):
		path := fl.RecordsFile
		if path == "" {
			path = failover.LabDNSRecordsFile
		}
		env.DNS = &failover.FileDNSDouble{Path: path}
		f := t.Faults
		env.OldSiteReachable = func(ctx context.Context) (bool, string) {
			cut, err := f.Partitioned(ctx)
			if err != nil {
				return false, "lab status: " + err.Error()
			}
			if cut {
				return false, "the lab's sites are partitioned"
			}
			return true, ""
		}
	case fl.Provider == "":
		return nil, fmt.Errorf("--dns-provider: empty, expected digitalocean or hetzner (where the zone %q lives)", env.Zone)
	default:
		if fl.TokenFile == "" {
			return nil, fmt.Errorf("--dns-token-file: empty, expected a file holding the %s API token", fl.Provider)
		}
		b, err := os.ReadFile(fl.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("--dns-token-file: %w", err)
		}
		up, err := dns.New(fl.Provider, strings.TrimSpace(string(b)), "", dns.Options{Logf: func(format string, a ...any) { fmt.Fprintf(out, "  dns: "+format+"\n", a...) }})
		if err != nil {
			return nil, fmt.Errorf("--dns-provider: %w", err)
		}
		env.DNS = up
	}
	if env.Zone == "" {
		return nil, fmt.Errorf("--dns-zone: empty, expected the stack's belay:dns.zone (e.g. example.com)")
	}
	return env, nil
}

// zoneOf guesses the zone from the first app domain (its parent), as the lab's
// stack puts every domain directly under belay:dns.zone.
func zoneOf(apps []inventory.App) string {
	for _, a := range apps {
		for _, d := range a.Domains {
			d = strings.TrimPrefix(d, "*.")
			if i := strings.Index(d, "."); i > 0 && strings.Count(d[i+1:], ".") >= 1 {
				return d[i+1:]
			}
		}
	}
	return ""
}

// SiteSwitch is the site switch as the drills run it (drill.SiteSwitch): the
// plan to site to, then its read-only preflight (check) or the whole switch,
// resumable through statePath; it returns the facts the switch recorded.
func (t *Target) SiteSwitch(fl DNSFlags, statePath string) func(ctx context.Context, progress io.Writer, to failover.Direction, check bool) (map[string]string, error) {
	return func(ctx context.Context, progress io.Writer, to failover.Direction, check bool) (map[string]string, error) {
		senv, err := t.SwitchEnv(fl, progress, statePath)
		if err != nil {
			return nil, err
		}
		plan, err := failover.PlanSite(t.Inv, to)
		if err != nil {
			return nil, err
		}
		if check {
			return nil, failover.Preflight(ctx, senv, plan)
		}
		res, err := failover.Execute(ctx, senv, plan)
		if res == nil {
			return nil, err
		}
		return res.Facts, err
	}
}
