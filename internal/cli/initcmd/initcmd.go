// Package initcmd is `belay init`: it writes belay.yaml (the target and
// per-command defaults) and a .github/workflows/deploy.yml that builds the
// repository's release artifact and deploys it with a whitelist canary and a
// second, hand-started stage as the approval gate. It asks nothing.
package initcmd

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"text/template"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/cli/target"
	"github.com/belay-sh/belay/internal/shq"
)

// Pinned versions the workflow uses; bump them together with the other
// workflows (.github/workflows/up.yml).
const (
	PulumiVersion    = "3.262.0"
	GoVersion        = "1.26.6"
	checkoutAction   = "v4.2.2"
	setupGoAction    = "v5.5.0"
	uploadAction     = "v4.6.2"
	downloadAction   = "v4.3.0"
	pulumiAction     = "v6.5.0"
	WorkflowPath     = ".github/workflows/deploy.yml"
	defaultBuild     = "make release"
	defaultArtifact  = "release.tar.gz"
	defaultRunner    = "belay-deploy"
	sshSelfHosted    = "self-hosted"
	sshBastion       = "bastion"
	moduleBelay      = "github.com/belay-sh/belay"
	latestBelayLabel = "latest"
)

//go:embed workflow.tmpl
var workflowTmpl string

// Options are `belay init`'s inputs.
type Options struct {
	IO cli.IO
	// Dir is where belay.yaml goes (the repository root); the workflow goes to
	// Dir/.github/workflows/deploy.yml.
	Dir string

	Stack     string
	Inventory string
	Lab       bool

	App            string
	WhitelistShops []string
	WhitelistIPs   []string
	Branch         string
	BuildCommand   string
	Artifact       string

	SSHAccess      string
	RunnerLabel    string
	Bastion        string
	BastionHostKey string

	// PinTarget writes the target into the workflow's env too, for a
	// repository that does not commit belay.yaml (belay's own).
	PinTarget    bool
	NoWorkflow   bool
	Force        bool
	BelayVersion string
}

// NewCmdInit returns `belay init`; version is the running belay's.
func NewCmdInit(f *cli.Factory, version string) *cobra.Command {
	o := &Options{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "init (--stack STACK | --inventory FILE | --lab)",
		Short: "Write belay.yaml (the default target) and a deploy workflow",
		Long: `Write belay.yaml, which names the target every belay command in this directory
and below acts on, and .github/workflows/deploy.yml, a GitHub Actions workflow
that builds your release artifact (--build-command, --artifact), deploys it as
a canary on every push (stopping after the whitelist or the first % step), and continues to 100 % (or abandons) when a
person with write access runs its second stage by hand.

The workflow reaches the hosts from a self-hosted runner whose address is in
the stack's belay:admin.sshCidrs (--ssh-access self-hosted, the default), or
from a GitHub-hosted runner through a bastion (--ssh-access bastion).
Existing files are left alone unless --force. Nothing is asked.`,
		Example: `  # a Pulumi stack; the app's build leaves dist/shop.tar.gz; the canary
  # serves two shops first and stops there until the rollout stage is run
  belay init --stack acme/prod --app shop --whitelist-shops alpha.example.com,beta.example.com \
    --build-command "make dist/shop.tar.gz" --artifact dist/shop.tar.gz

  # through a bastion from GitHub-hosted runners
  belay init --stack acme/prod --ssh-access bastion \
    --bastion deploy@bastion.example.com --bastion-host-key "ssh-ed25519 AAAA..."

  # the local lab, no workflow
  belay init --lab`,
		Args: cobra.NoArgs,
		// init replaces a broken belay.yaml with --force: it must not parse it.
		Annotations: map[string]string{cli.NoProjectFile: "true"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.BelayVersion == "" {
				o.BelayVersion = belayVersion(version)
			}
			return Run(o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Dir, "dir", ".", "repository root to write into")
	fl.StringVar(&o.Stack, "stack", "", "target: a Pulumi stack (stack, org/stack or org/project/stack)")
	fl.StringVar(&o.Inventory, "inventory", "", "target: an inventory file (relative to --dir, committed with it)")
	fl.BoolVar(&o.Lab, "lab", false, "target: the local lab (writes no workflow)")
	fl.StringVar(&o.App, "app", "", "default --app of deploy, rollback, status, releases and audit (needed when the stack has several apps)")
	fl.StringSliceVar(&o.WhitelistShops, "whitelist-shops", nil, "shops (domains) the canary serves first: belay.yaml's deploy default; the workflow's canary then stops after the whitelist")
	fl.StringSliceVar(&o.WhitelistIPs, "whitelist-ips", nil, "client IPs/CIDRs the canary serves first (as --whitelist-shops)")
	fl.StringVar(&o.Branch, "branch", "main", "branch whose pushes start a canary")
	fl.StringVar(&o.BuildCommand, "build-command", defaultBuild, "shell command that builds the release artifact in the workflow")
	fl.StringVar(&o.Artifact, "artifact", defaultArtifact, "path the build leaves the artifact at: .tar/.tar.gz with ./start at its root, or one executable")
	fl.StringVar(&o.SSHAccess, "ssh-access", sshSelfHosted, `how the workflow's runner reaches SSH: "self-hosted" (a runner inside belay:admin.sshCidrs) or "bastion"`)
	fl.StringVar(&o.RunnerLabel, "runner-label", defaultRunner, "label of the self-hosted runner (--ssh-access self-hosted)")
	fl.StringVar(&o.Bastion, "bastion", "", "user@host[:port] of the bastion (--ssh-access bastion), written to belay.yaml's defaults")
	fl.StringVar(&o.BastionHostKey, "bastion-host-key", "", `the bastion's host key ("ssh-ed25519 AAAA..."), pinned in belay.yaml`)
	fl.BoolVar(&o.PinTarget, "pin-target", false, "also pin the target in the workflow (env BELAY_INVENTORY), for a repository that does not commit belay.yaml")
	fl.BoolVar(&o.NoWorkflow, "no-workflow", false, "write belay.yaml only")
	fl.BoolVar(&o.Force, "force", false, "overwrite existing belay.yaml and workflow")
	fl.StringVar(&o.BelayVersion, "belay-version", "", `belay version the workflow installs (default: this belay's; "checkout": build ./cmd/belay of the repository, for belay's own repo or a fork)`)
	cmd.MarkFlagsMutuallyExclusive("stack", "inventory", "lab")
	cmd.MarkFlagsOneRequired("stack", "inventory", "lab")
	return cmd
}

// belayVersion is the version the workflow pins: the release build's, else
// the module version Go recorded, else "latest" (a development build).
func belayVersion(v string) string {
	if v != "" && v != "dev" {
		return v
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Path == moduleBelay && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return latestBelayLabel
}

var (
	labelRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	branchRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
	versionRE = regexp.MustCompile(`^(latest|checkout|v[0-9]+\.[0-9]+\.[0-9]+[A-Za-z0-9.+-]*)$`)
	appRE     = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	pathRE    = regexp.MustCompile(`^[A-Za-z0-9._/+-]+$`)
	shopRE    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)
)

// check validates the options; every value ends up in YAML or a shell line.
func (o *Options) check() error {
	if o.Stack != "" {
		if _, err := target.Parse("pulumi:"+o.Stack, "--stack", ""); err != nil {
			return err
		}
	}
	if o.App != "" && !appRE.MatchString(o.App) {
		return fmt.Errorf("--app %q: expected an app name as in the inventory ([a-z][a-z0-9-]*)", o.App)
	}
	for _, d := range o.WhitelistShops {
		if !shopRE.MatchString(d) {
			return fmt.Errorf("--whitelist-shops %q: expected a domain", d)
		}
	}
	for _, a := range o.WhitelistIPs {
		if _, err := netip.ParsePrefix(a); err != nil {
			if _, err := netip.ParseAddr(a); err != nil {
				return fmt.Errorf("--whitelist-ips %q: expected an IP address or CIDR", a)
			}
		}
	}
	if o.Lab {
		o.NoWorkflow = true // the lab lives on this machine, not behind a CI runner
	}
	if o.NoWorkflow {
		return nil
	}
	switch {
	case !branchRE.MatchString(o.Branch) || strings.Contains(o.Branch, ".."):
		return fmt.Errorf("--branch %q: expected a branch name", o.Branch)
	case strings.TrimSpace(o.BuildCommand) == "" || strings.ContainsAny(o.BuildCommand, "\n\r"):
		return fmt.Errorf("--build-command %q: expected one shell command line", o.BuildCommand)
	case !pathRE.MatchString(o.Artifact) || filepath.IsAbs(o.Artifact) || strings.HasPrefix(filepath.Clean(o.Artifact), ".."):
		return fmt.Errorf("--artifact %q: expected a path inside the repository (letters, digits, . _ / + -)", o.Artifact)
	case !versionRE.MatchString(o.BelayVersion):
		return fmt.Errorf("--belay-version %q: expected vX.Y.Z, latest, or checkout (build ./cmd/belay of the repository itself)", o.BelayVersion)
	}
	switch o.SSHAccess {
	case sshSelfHosted:
		if !labelRE.MatchString(o.RunnerLabel) {
			return fmt.Errorf("--runner-label %q: expected a runner label (letters, digits, . _ -)", o.RunnerLabel)
		}
		if o.Bastion != "" || o.BastionHostKey != "" {
			return errors.New("--bastion and --bastion-host-key need --ssh-access bastion")
		}
	case sshBastion:
		if o.Bastion == "" || !strings.Contains(o.Bastion, "@") || strings.ContainsAny(o.Bastion, " \t'\"") {
			return fmt.Errorf("--bastion %q: expected user@host[:port] with --ssh-access bastion", o.Bastion)
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(o.BastionHostKey)); err != nil {
			return fmt.Errorf("--bastion-host-key: expected the bastion's SSH public key (\"ssh-ed25519 AAAA...\"): %w", err)
		}
	default:
		return fmt.Errorf("--ssh-access %q: expected self-hosted or bastion", o.SSHAccess)
	}
	return nil
}

// Run writes the files; nothing is written if any target exists without --force.
func Run(o *Options) error {
	if err := o.check(); err != nil {
		return err
	}
	files, err := Render(o)
	if err != nil {
		return err
	}
	if !o.Force {
		for _, fl := range files {
			if _, err := os.Stat(filepath.Join(o.Dir, fl.Path)); err == nil {
				return fmt.Errorf("%s exists: not overwritten (--force replaces it)", filepath.Join(o.Dir, fl.Path))
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	for _, fl := range files {
		p := filepath.Join(o.Dir, fl.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, fl.Content, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(o.IO.ErrOut, "wrote %s\n", p)
	}
	fmt.Fprintln(o.IO.ErrOut, nextSteps(o))
	return nil
}

func nextSteps(o *Options) string {
	if o.NoWorkflow {
		return "Next: belay status (from this directory or below) acts on the target in belay.yaml."
	}
	s := "Next: commit both files; set the secret BELAY_DEPLOY_KEY"
	if o.Stack != "" {
		s += " and PULUMI_ACCESS_TOKEN"
	}
	if o.SSHAccess == sshSelfHosted {
		s += "; register a self-hosted runner labelled " + o.RunnerLabel + " whose address is in belay:admin.sshCidrs"
	}
	return s + "; check the build step (" + o.BuildCommand + " → " + o.Artifact + ")."
}

// File is one file Render produces, Path relative to Options.Dir.
type File struct {
	Path    string
	Content []byte
}

// Render returns the files init writes, without touching the disk.
func Render(o *Options) ([]File, error) {
	files := []File{{Path: target.FileName, Content: []byte(belayYAML(o))}}
	if o.NoWorkflow {
		return files, nil
	}
	wf, err := workflow(o)
	if err != nil {
		return nil, err
	}
	return append(files, File{Path: WorkflowPath, Content: wf}), nil
}

// targetRef is the belay.yaml target.
func (o *Options) targetRef() string {
	switch {
	case o.Lab:
		return target.Lab
	case o.Stack != "":
		return "pulumi:" + o.Stack
	}
	return o.Inventory
}

func belayYAML(o *Options) string {
	var b strings.Builder
	b.WriteString(`# belay.yaml: the target of every belay command run in this directory or
# below (belay looks upwards from the working directory, like git for .git).
# --inventory / --stack, then $BELAY_INVENTORY, take precedence over it.
# target: pulumi:<stack> | an inventory file (relative to this file) | lab
`)
	fmt.Fprintf(&b, "target: %s\n", yamlString(o.targetRef()))
	b.WriteString(`
# Defaults for flags not given on the command line, by command and long flag
# name ("belay deploy --help" lists them). An unknown command or flag is an
# error. For example:
#   deploy: {drain-timeout: 45s, steps: "5,25,100", whitelist-shops: [alpha.example.com]}
#   backup status: {json: true}
`)
	var per []string
	if o.App != "" {
		per = append(per, "app: "+o.App)
	}
	if o.SSHAccess == sshBastion {
		per = append(per, "bastion: "+yamlString(o.Bastion), "bastion-host-key: "+yamlString(o.BastionHostKey))
	}
	deployOnly := []string{}
	if len(o.WhitelistShops) > 0 {
		deployOnly = append(deployOnly, "whitelist-shops: ["+strings.Join(o.WhitelistShops, ", ")+"]")
	}
	if len(o.WhitelistIPs) > 0 {
		deployOnly = append(deployOnly, "whitelist-ips: ["+yamlList(o.WhitelistIPs)+"]")
	}
	if len(per)+len(deployOnly) == 0 {
		b.WriteString("defaults: {}\n")
		return b.String()
	}
	b.WriteString("defaults:\n")
	for _, c := range []string{"deploy", "rollback", "status", "releases", "audit"} {
		lines := per
		if c == "deploy" {
			lines = append(append([]string{}, per...), deployOnly...)
		}
		if len(lines) == 0 {
			continue
		}
		fmt.Fprintf(&b, "  %s:\n", c)
		for _, l := range lines {
			fmt.Fprintf(&b, "    %s\n", l)
		}
	}
	return b.String()
}

func yamlList(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = yamlString(v)
	}
	return strings.Join(q, ", ")
}

// yamlString quotes s as a YAML double-quoted scalar when it needs it.
func yamlString(s string) string {
	if pathRE.MatchString(s) && !strings.HasPrefix(s, "-") {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

type workflowData struct {
	InitArgs, BelayVersion, GoVersion, PulumiVersion                  string
	Branch, BuildCommand, Artifact, TargetLine                        string
	SSHAccess, RunnerLabel, Bastion, RunsOn                           string
	TargetRef, CanaryStop                                             string
	Pulumi, PinTarget                                                 bool
	Checkout, SetupGo, UploadArtifact, DownloadArtifact, PulumiAction string
}

func workflow(o *Options) ([]byte, error) {
	d := workflowData{
		InitArgs: initArgs(o), BelayVersion: o.BelayVersion, GoVersion: GoVersion, PulumiVersion: PulumiVersion,
		Branch: o.Branch, BuildCommand: o.BuildCommand, Artifact: o.Artifact, TargetLine: "target: " + o.targetRef(),
		SSHAccess: o.SSHAccess, RunnerLabel: o.RunnerLabel, Bastion: o.Bastion, Pulumi: o.Stack != "",
		TargetRef: yamlString(o.targetRef()), PinTarget: o.PinTarget, CanaryStop: "10%",
		Checkout: checkoutAction, SetupGo: setupGoAction, UploadArtifact: uploadAction, DownloadArtifact: downloadAction, PulumiAction: pulumiAction,
	}
	if len(o.WhitelistShops)+len(o.WhitelistIPs) > 0 {
		d.CanaryStop = "whitelist"
	}
	d.RunsOn = "[self-hosted, " + o.RunnerLabel + "]"
	if o.SSHAccess == sshBastion {
		d.RunsOn = "ubuntu-24.04"
	}
	t, err := template.New("deploy.yml").Parse(workflowTmpl)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// initArgs records in the workflow's header how it was made (flags that differ
// from the defaults), so `belay init --force` with them makes it again.
func initArgs(o *Options) string {
	var a []string
	add := func(flag, v, def string) {
		if v != def {
			a = append(a, "--"+flag+" "+shq.Quote(v))
		}
	}
	add("stack", o.Stack, "")
	add("inventory", o.Inventory, "")
	add("app", o.App, "")
	add("whitelist-shops", strings.Join(o.WhitelistShops, ","), "")
	add("whitelist-ips", strings.Join(o.WhitelistIPs, ","), "")
	add("branch", o.Branch, "main")
	add("build-command", o.BuildCommand, defaultBuild)
	add("artifact", o.Artifact, defaultArtifact)
	add("ssh-access", o.SSHAccess, sshSelfHosted)
	add("runner-label", o.RunnerLabel, defaultRunner)
	add("bastion", o.Bastion, "")
	if o.PinTarget {
		a = append(a, "--pin-target")
	}
	if o.BelayVersion == "checkout" {
		add("belay-version", o.BelayVersion, "")
	}
	if len(a) == 0 {
		return ""
	}
	return " " + strings.Join(a, " ")
}
