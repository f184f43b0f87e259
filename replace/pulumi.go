package replace

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/belay-sh/belay/previewguard"
)

// CommandRunner runs argv (no shell) in dir and returns its stdout; the
// error carries stderr. Tests give a fake: no real pulumi runs in tests.
type CommandRunner func(ctx context.Context, dir string, argv ...string) ([]byte, error)

// Pulumi replaces and resizes servers of a cloud stack through targeted
// Pulumi runs. Every destructive run is previewed first and the preview
// checked by previewguard: only the named server (and its volume attachment /
// static-IP assignment, which follow the server) may be replaced.
type Pulumi struct {
	Stack string
	// Dir is the Pulumi project directory ("" = the working directory).
	Dir string
	Run CommandRunner
	// Progress gets the commands as they start.
	Progress io.Writer
}

var _ Replacer = (*Pulumi)(nil)
var _ Resizer = (*Pulumi)(nil)

// serverTypes are the server resource types of both providers.
var serverTypes = []string{"hcloud:index/server:Server", "digitalocean:index/droplet:Droplet"}

// followers are the resources replaced with a server: its volume attachment
// (<host>-data) and, on DigitalOcean, its static IP assignment (<host>-static).
var followers = map[string]string{
	"hcloud:index/volumeAttachment:VolumeAttachment":               "-data",
	"digitalocean:index/volumeAttachment:VolumeAttachment":         "-data",
	"digitalocean:index/reservedIpAssignment:ReservedIpAssignment": "-static",
}

// exported is the part of `pulumi stack export` the replacer reads.
type exported struct {
	Deployment struct {
		Resources []struct {
			URN     string         `json:"urn"`
			Type    string         `json:"type"`
			Outputs map[string]any `json:"outputs"`
		} `json:"resources"`
	} `json:"deployment"`
}

// Target is a server's URN and the URNs replaced with it.
type Target struct {
	URN       string
	Followers []string
	// DeleteProtected is the server's provider delete protection (Hetzner).
	DeleteProtected bool
}

// FindServer finds host's server in a `pulumi stack export` document: the
// one server resource named host (the program names servers by host).
func FindServer(export []byte, host string) (*Target, error) {
	var e exported
	if err := json.Unmarshal(export, &e); err != nil {
		return nil, fmt.Errorf("pulumi stack export: %w", err)
	}
	var t *Target
	var follow []string
	for _, r := range e.Deployment.Resources {
		name := urnName(r.URN)
		if slices.Contains(serverTypes, r.Type) && name == host {
			if t != nil {
				return nil, fmt.Errorf("pulumi stack export: two servers named %s (%s, %s)", host, t.URN, r.URN)
			}
			prot, _ := r.Outputs["deleteProtection"].(bool)
			t = &Target{URN: r.URN, DeleteProtected: prot}
		}
		if suffix, ok := followers[r.Type]; ok && name == host+suffix {
			follow = append(follow, r.URN)
		}
	}
	if t == nil {
		return nil, fmt.Errorf("pulumi stack export: no server resource named %s (types %s)", host, strings.Join(serverTypes, ", "))
	}
	t.Followers = follow
	return t, nil
}

func urnName(urn string) string {
	if i := strings.LastIndex(urn, "::"); i >= 0 {
		return urn[i+2:]
	}
	return urn
}

// ReplaceArgs is the targeted up that replaces t's server alone (its
// attachment follows: --target-dependents).
func ReplaceArgs(stack string, t *Target, preview bool) []string {
	argv := []string{"pulumi", "up", "--yes", "--stack", stack}
	if preview {
		argv = []string{"pulumi", "preview", "--json", "--stack", stack}
	}
	return append(argv, "--target", t.URN, "--replace", t.URN, "--target-dependents")
}

// RefreshArgs reads t's server alone back from the provider.
func RefreshArgs(stack string, t *Target) []string {
	return []string{"pulumi", "refresh", "--yes", "--stack", stack, "--target", t.URN}
}

// ResizeArgs is the targeted up that applies the new size to t's server alone.
func ResizeArgs(stack string, t *Target, preview bool) []string {
	if preview {
		return []string{"pulumi", "preview", "--json", "--stack", stack, "--target", t.URN}
	}
	return []string{"pulumi", "up", "--yes", "--stack", stack, "--target", t.URN}
}

// SetSizeArgs records the database size in the stack config.
func SetSizeArgs(stack, size string) []string {
	return []string{"pulumi", "config", "set", "--path", "belay:database.size", size, "--stack", stack}
}

func (p *Pulumi) run(ctx context.Context, argv ...string) ([]byte, error) {
	if p.Progress != nil {
		fmt.Fprintf(p.Progress, "  $ %s\n", strings.Join(argv, " "))
	}
	out, err := p.Run(ctx, p.Dir, argv...)
	if err != nil {
		return out, fmt.Errorf("%s: %w", strings.Join(argv[:2], " "), err)
	}
	return out, nil
}

func (p *Pulumi) target(ctx context.Context, host string) (*Target, error) {
	out, err := p.run(ctx, "pulumi", "stack", "export", "--stack", p.Stack)
	if err != nil {
		return nil, err
	}
	return FindServer(out, host)
}

// guard previews argv and refuses unless every destructive step on a
// stateful resource is one of allow.
func (p *Pulumi) guard(ctx context.Context, argv []string, allow []string) error {
	out, err := p.run(ctx, argv...)
	if err != nil {
		return err
	}
	pv, err := previewguard.Parse(bytes.NewReader(out))
	if err != nil {
		return err
	}
	v := previewguard.Check(pv, allow)
	if !v.OK {
		var blocked []string
		for _, f := range v.Findings {
			if !f.Allowed {
				blocked = append(blocked, fmt.Sprintf("%s %s (%s)", f.Op, f.Name, f.Kind))
			}
		}
		return fmt.Errorf("%w: the preview of the targeted run also touches %s; nothing changed", ErrRefused, strings.Join(blocked, ", "))
	}
	return nil
}

// Replace replaces host's server through a previewed, targeted `pulumi up --replace`.
func (p *Pulumi) Replace(ctx context.Context, host string) error {
	t, err := p.target(ctx, host)
	if err != nil {
		return err
	}
	if t.DeleteProtected {
		// The state may be stale: the operator may have turned protection
		// off since. A refresh of this one server reads it back.
		if _, err := p.run(ctx, RefreshArgs(p.Stack, t)...); err != nil {
			return err
		}
		if t, err = p.target(ctx, host); err != nil {
			return err
		}
	}
	if t.DeleteProtected {
		return fmt.Errorf("%w: %s has Hetzner delete protection (the program sets it on stateful servers), so the provider refuses to delete it; "+
			"turn it off for this server first (hcloud server disable-protection %s delete rebuild), then rerun with --from replace/%s", ErrRefused, host, host, host)
	}
	allow := append([]string{t.URN}, t.Followers...)
	if err := p.guard(ctx, ReplaceArgs(p.Stack, t, true), allow); err != nil {
		return err
	}
	_, err = p.run(ctx, ReplaceArgs(p.Stack, t, false)...)
	return err
}

// SetSize records size as belay:database.size, or as the databaseSize of
// the dedicated cell key names, after checking that the stack config's
// apps[i] and its cells[j] are that app and cell (the indexes come from the
// inventory, which lists them in config order).
func (p *Pulumi) SetSize(ctx context.Context, key *SizeKey, size string) error {
	if key == nil {
		_, err := p.run(ctx, SetSizeArgs(p.Stack, size)...)
		return err
	}
	for _, c := range []struct{ path, want string }{
		{fmt.Sprintf("belay:apps[%d].name", key.AppIndex), key.App},
		{fmt.Sprintf("belay:apps[%d].cells[%d].name", key.AppIndex, key.CellIndex), key.Cell},
	} {
		out, err := p.run(ctx, "pulumi", "config", "get", "--path", c.path, "--stack", p.Stack)
		if err != nil {
			return err
		}
		if got := strings.TrimSpace(string(out)); got != c.want {
			return fmt.Errorf("stack config %s is %q, expected %q: the inventory's order differs from the stack config's; set %s by hand", c.path, got, c.want, key.Path())
		}
	}
	_, err := p.run(ctx, "pulumi", "config", "set", "--path", key.Path(), size, "--stack", p.Stack)
	return err
}

// Resize applies the recorded size to host's server alone (previewed: the
// server is updated in place, nothing is replaced).
func (p *Pulumi) Resize(ctx context.Context, host string) error {
	t, err := p.target(ctx, host)
	if err != nil {
		return err
	}
	if err := p.guard(ctx, ResizeArgs(p.Stack, t, true), []string{t.URN}); err != nil {
		return err
	}
	_, err = p.run(ctx, ResizeArgs(p.Stack, t, false)...)
	return err
}

// LabReplacer replaces a lab machine. Call is `belay lab replace HOST`, which
// another change adds to package lab: until it is there, the CLI wires Call
// to run that subcommand of this very binary (ExecLab), so connecting the
// package function later is a one-line change in internal/cli/replace.
type LabReplacer struct {
	Call func(ctx context.Context, host string) error
}

// Replace calls the lab.
func (l LabReplacer) Replace(ctx context.Context, host string) error {
	if l.Call == nil {
		return fmt.Errorf("the lab's replacement (belay lab replace) is not wired into belay replace")
	}
	return l.Call(ctx, host)
}

// ExecLab runs `<belay> lab replace HOST` through run.
func ExecLab(belay string, run CommandRunner) func(ctx context.Context, host string) error {
	return func(ctx context.Context, host string) error {
		_, err := run(ctx, "", belay, "lab", "replace", host)
		if err != nil {
			return fmt.Errorf("belay lab replace %s: %w", host, err)
		}
		return nil
	}
}
