// Package layers is the import direction of belay's packages, as data: each
// package's layer, lowest first. A package may import only packages of its own
// layer or lower, and outside deploy/ only the executor's other halves
// (remote over deploy/sshx, hostroute over traffic.Spec, its wire format) and
// the front end may import deploy/...: the operations (drills, failover, cells
// routing) and everything below the deploy plan never reach into the deployer. The test in this package checks the whole module with
// `go list` against these rules, so an import "up" the pipeline fails CI.
//
// The layers follow the import graph of the pipeline config → topology →
// hostspec → roles → components → inventory → deploy plan → executor, with
// two readings of it written down here:
//   - inventory is the contract every stage shares (role and site names, the
//     stack output's schema) and imports no belay package but internal/safe:
//     it sits with the leaves, so topology and roles may name roles.
//   - hostspec builds the roles.Spec that roles renders, so it sits above
//     roles (as components sits above both); roles imports neither config,
//     topology nor hostspec.
package layers

import "strings"

// Layer is a rank: a package imports only packages of its own rank or lower.
type Layer int

// The layers, lowest first.
const (
	Leaf       Layer = iota // shared helpers and contracts: import only other leaves
	Config                  // config
	Topology                // topology
	Render                  // roles and what diffs its output (converge)
	HostSpec                // hostspec
	Provision               // components, the lab
	Plan                    // deploy plan and its data (release, traffic, analysis, ...)
	Executor                // SSH executor, the deployer, root-side host helpers
	Operations              // drills, failover, cells routing, benchmarks
	Front                   // CLI commands and their wiring
	Main                    // cmd/belay and the Pulumi program
)

var layerNames = [...]string{"leaf", "config", "topology", "render", "hostspec", "provision", "plan", "executor", "operations", "front", "main"}

func (l Layer) String() string { return layerNames[l] }

// Module is the module path the rules speak of.
const Module = "github.com/belay-sh/belay"

// Rules maps a package path relative to Module ("" for the root) or a prefix
// of it (a path followed by "/..." covers the package and all below it) to its
// layer. The longest match wins.
var Rules = map[string]Layer{
	"internal/shq/...":     Leaf,
	"internal/safe":        Leaf,
	"internal/clock":       Leaf,
	"internal/streamcount": Leaf,
	"internal/layers":      Leaf,
	"internal/nginxctl":    Leaf,
	"internal/pgtest":      Leaf,
	"internal/labapp":      Leaf,
	"internal/labtest":     Leaf,
	"seedkeys":             Leaf,
	"inventory":            Leaf,
	"hostcmd":              Leaf,
	"hostexec":             Leaf,
	"previewguard":         Leaf,
	"cloud/...":            Leaf,
	"hostrelease/...":      Leaf,
	"deploy/sshx/sshdtest": Leaf,
	"config":               Config,
	"topology":             Topology,
	"roles":                Render,
	"converge":             Render,
	"hostconverge":         Render,
	"hostspec":             HostSpec,
	"components":           Provision,
	"lab":                  Provision,
	"deploy/...":           Plan,
	"deploy/sshx":          Executor,
	"deploy/lease":         Executor,
	"deploy/run":           Executor,
	"deploy":               Executor,
	"remote/...":           Executor,
	"hostroute":            Executor,
	"drill/...":            Operations,
	"failover/...":         Operations,
	"router/...":           Operations,
	"router":               Render,
	"shopkeys":             Leaf,
	"httpprobe":            Executor,
	"replace/...":          Operations,
	"celldb":               Operations,
	"bench/...":            Operations,
	"internal/opsenv":      Front,
	"internal/cli/...":     Front,
	"cmd/...":              Main,
	"":                     Main,
}

// Of returns the layer of rel (a path relative to Module) and whether a rule covers it.
func Of(rel string) (Layer, bool) {
	best, found, l := -1, false, Leaf
	for pat, layer := range Rules {
		n := -1
		if p, ok := strings.CutSuffix(pat, "/..."); ok {
			if rel == p || strings.HasPrefix(rel, p+"/") {
				n = len(p)
			}
		} else if rel == pat {
			n = len(pat) + 1 // an exact rule beats a prefix of the same path
		}
		if n > best {
			best, found, l = n, true, layer
		}
	}
	return l, found
}

// Allowed lists the imports that break a rule today, each with why it is
// tolerated; remove an entry when the import goes. (belay replace once read
// the deployer's host layout and journal from deploy/...; both moved below
// deploy and replace, to hostrelease.)
var Allowed = map[[2]string]string{}

// Check lists every rule an import graph breaks. imports maps each package
// (relative to Module) to the module packages it imports (relative too).
func Check(imports map[string][]string) []string {
	var out []string
	for pkg, deps := range imports {
		pl, ok := Of(pkg)
		if !ok {
			out = append(out, "package "+show(pkg)+": no layer; add it to layers.Rules")
			continue
		}
		for _, dep := range deps {
			if _, ok := Allowed[[2]string{pkg, dep}]; ok {
				continue
			}
			dl, ok := Of(dep)
			if !ok {
				continue // reported as its own package
			}
			if dl > pl {
				out = append(out, show(pkg)+" ("+pl.String()+") imports "+show(dep)+" ("+dl.String()+"): up the pipeline")
			}
			if isDeploy(dep) && !isDeploy(pkg) && pl != Executor && pl < Front {
				out = append(out, show(pkg)+" ("+pl.String()+") imports "+show(dep)+": outside deploy/, only the executor and the front end may import deploy/...")
			}
		}
	}
	return out
}

func isDeploy(rel string) bool { return rel == "deploy" || strings.HasPrefix(rel, "deploy/") }

func show(rel string) string {
	if rel == "" {
		return "(module root)"
	}
	return rel
}
