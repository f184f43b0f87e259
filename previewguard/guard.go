// Package previewguard reads the JSON document `pulumi preview --json` prints
// and finds the steps that would replace or delete a stateful resource: a
// data volume, a stateful server (database, monitor, standby, backup), a
// floating/static IP or a floating IP's assignment. CI runs it between preview
// and up; a deliberate replacement is allowed per resource, never wholesale.
// It also blocks an in-place resize of a database data node (the provider
// powers it off; a belay:database.size edit powers both off at once): that is
// `belay db resize`'s job, which rolls it one node at a time.
package previewguard

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
)

// Preview is the part of `pulumi preview --json` the guard reads.
type Preview struct {
	Steps []Step `json:"steps"`
}

// Step is one planned operation on one resource.
type Step struct {
	Op             string         `json:"op"`
	URN            string         `json:"urn"`
	OldState       *State         `json:"oldState,omitempty"`
	NewState       *State         `json:"newState,omitempty"`
	ReplaceReasons []string       `json:"replaceReasons,omitempty"`
	DiffReasons    []string       `json:"diffReasons,omitempty"`
	DetailedDiff   map[string]any `json:"detailedDiff,omitempty"`
}

// State is a resource's state before or after the step.
type State struct {
	Type string `json:"type"`
}

// destructive are the step ops that end a resource's life at the provider.
// A replace shows up as "replace" (or as the create-replacement/delete-replaced
// pair under --show-replacement-steps); "discard" forgets a resource without
// deleting it and is harmless.
var destructive = []string{"delete", "replace", "create-replacement", "delete-replaced"}

// Kind classifies why a resource type is stateful.
type Kind string

const (
	KindVolume     Kind = "data volume"
	KindServer     Kind = "stateful server"
	KindAddress    Kind = "public address"
	KindAssignment Kind = "floating IP assignment"
	// KindResize is an in-place size change of a database data node: the
	// provider powers the server off to resize it, so a plain up that resizes
	// both nodes (a belay:database.size edit) powers both off at once, and
	// resizing the primary is an unplanned failover. `belay db resize` rolls it.
	KindResize Kind = "data node resize"
)

// statefulTypes are the resource types whose replacement or deletion loses
// data or an address others depend on, whatever their name.
var statefulTypes = map[string]Kind{
	"hcloud:index/volume:Volume":                                   KindVolume,
	"hcloud:index/volumeAttachment:VolumeAttachment":               KindVolume,
	"digitalocean:index/volume:Volume":                             KindVolume,
	"digitalocean:index/volumeAttachment:VolumeAttachment":         KindVolume,
	"hcloud:index/primaryIp:PrimaryIp":                             KindAddress,
	"hcloud:index/floatingIp:FloatingIp":                           KindAddress,
	"digitalocean:index/reservedIp:ReservedIp":                     KindAddress,
	"hcloud:index/floatingIpAssignment:FloatingIpAssignment":       KindAssignment,
	"digitalocean:index/reservedIpAssignment:ReservedIpAssignment": KindAssignment,
}

// serverTypes are the server resource types; which servers are stateful
// depends on their name (statefulServers).
var serverTypes = []string{"hcloud:index/server:Server", "digitalocean:index/droplet:Droplet"}

// statefulServers are the Pulumi resource names of the servers that hold data
// or the failover state (components/volumes.go statefulHosts).
var statefulServers = []string{"db-1", "db-2", "db-monitor", "db-standby", "backup"}

// sizeFields are the server inputs whose update powers the server off to resize it.
var sizeFields = []string{"serverType", "size"}

// dataNode reports whether name is a PostgreSQL data node (db-1, db-2, ...).
func dataNode(name string) bool {
	rest, ok := strings.CutPrefix(name, "db-")
	if !ok || rest == "" {
		return false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// resizes reports whether update step s changes a size field.
func resizes(s Step) bool {
	for _, k := range s.DiffReasons {
		if slices.Contains(sizeFields, k) {
			return true
		}
	}
	for k := range s.DetailedDiff {
		if slices.Contains(sizeFields, k) {
			return true
		}
	}
	return false
}

// Finding is one destructive step on a stateful resource.
type Finding struct {
	URN     string   `json:"urn"`
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Op      string   `json:"op"`
	Kind    Kind     `json:"kind"`
	Reasons []string `json:"reasons,omitempty"`
	// Allowed is true when --allow named this resource.
	Allowed bool `json:"allowed"`
	// Hint says what to do instead.
	Hint string `json:"hint"`
}

// Verdict is the guard's result.
type Verdict struct {
	OK       bool      `json:"ok"`
	Steps    int       `json:"steps"`
	Findings []Finding `json:"findings"`
	// UnusedAllows are --allow values that matched no finding (a typo would
	// otherwise silently allow nothing, or the wrong thing next time).
	UnusedAllows []string `json:"unusedAllows,omitempty"`
	// Warnings never block: what to do after up (celldb.go).
	Warnings []Warning `json:"warnings,omitempty"`
}

// Parse reads a `pulumi preview --json` document.
func Parse(r io.Reader) (*Preview, error) {
	var p Preview
	dec := json.NewDecoder(r)
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("preview: expected the JSON document of `pulumi preview --json`: %w", err)
	}
	if p.Steps == nil {
		return nil, fmt.Errorf("preview: no \"steps\" array, expected the output of `pulumi preview --json`")
	}
	return &p, nil
}

// Check returns the verdict on p; allow holds URNs or resource names whose
// destructive steps are deliberate.
func Check(p *Preview, allow []string) Verdict {
	v := Verdict{Steps: len(p.Steps), Findings: []Finding{}}
	used := map[string]bool{}
	for _, s := range p.Steps {
		typ := stepType(s)
		name := urnName(s.URN)
		var kind Kind
		var ok bool
		switch {
		case s.Op == "update" && slices.Contains(serverTypes, typ) && dataNode(name) && resizes(s):
			kind, ok = KindResize, true
		case !slices.Contains(destructive, s.Op):
			continue
		default:
			kind, ok = statefulTypes[typ]
			if !ok && slices.Contains(serverTypes, typ) && slices.Contains(statefulServers, name) {
				kind, ok = KindServer, true
			}
		}
		if !ok {
			continue
		}
		f := Finding{URN: s.URN, Type: typ, Name: name, Op: s.Op, Kind: kind, Reasons: reasons(s)}
		f.Hint = hint(f)
		for _, a := range allow {
			if a == s.URN || a == name {
				f.Allowed = true
				used[a] = true
			}
		}
		v.Findings = append(v.Findings, f)
	}
	for _, a := range allow {
		if !used[a] {
			v.UnusedAllows = append(v.UnusedAllows, a)
		}
	}
	v.Warnings = cellWarnings(p)
	v.OK = true
	for _, f := range v.Findings {
		if !f.Allowed {
			v.OK = false
		}
	}
	return v
}

func stepType(s Step) string {
	if s.NewState != nil && s.NewState.Type != "" {
		return s.NewState.Type
	}
	if s.OldState != nil && s.OldState.Type != "" {
		return s.OldState.Type
	}
	// urn:pulumi:<stack>::<project>::<parent$...$type>::<name>
	parts := strings.Split(s.URN, "::")
	if len(parts) >= 4 {
		chain := strings.Split(parts[2], "$")
		return chain[len(chain)-1]
	}
	return ""
}

// urnName is the resource name, the URN's last "::" segment.
func urnName(urn string) string {
	if i := strings.LastIndex(urn, "::"); i >= 0 {
		return urn[i+2:]
	}
	return urn
}

// reasons are the properties that force the step: replaceReasons, else the
// detailed diff's replacing entries, else the plain diff.
func reasons(s Step) []string {
	if len(s.ReplaceReasons) > 0 {
		return s.ReplaceReasons
	}
	var out []string
	for k, d := range s.DetailedDiff {
		if m, ok := d.(map[string]any); ok {
			if kind, _ := m["kind"].(string); strings.HasSuffix(kind, "-replace") {
				out = append(out, k)
			}
		}
	}
	if len(out) == 0 {
		out = append(out, s.DiffReasons...)
	}
	sort.Strings(out)
	return out
}

func hint(f Finding) string {
	switch {
	case f.Kind == KindResize:
		return "a plain up powers the data node off to resize it without moving the primary away (and both nodes at once after a belay:database.size edit); run belay db resize --size <size> instead (replica first, switchover, then the old primary)"
	case f.Kind == KindAssignment && f.Op == "delete" && strings.HasPrefix(f.Type, "digitalocean:"):
		return "deleting a ReservedIpAssignment unassigns the address; if the program no longer owns it (belay lets keepalived hold DigitalOcean VIPs), drop it from the state instead: pulumi state delete '" + f.URN + "'"
	case f.Kind == KindVolume:
		return "the volume holds the data; change the config back, or move the data first and rerun with --allow " + f.Name
	case f.Kind == KindServer:
		return "replace stateful servers one at a time after moving the primary/traffic away (docs/runbook.md), then rerun with --allow " + f.Name
	}
	return "the address is in DNS, user data or clients' allow-lists; change the config back, or rerun with --allow " + f.Name
}
