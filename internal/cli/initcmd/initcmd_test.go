package initcmd

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/cli/target"
)

var update = flag.Bool("update", false, "rewrite the shipped .github/workflows/deploy.yml from the template")

const testHostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILMANJ4qj6uGe4pZV0TFAvSORJACth9tw13/F7yvVA8h"

// shipped are the settings of the repository's own .github/workflows/deploy.yml:
// it builds the lab app of this repository and belay from the checkout.
func shipped() *Options {
	return &Options{Stack: "org/production", Branch: "main",
		BuildCommand: "CGO_ENABLED=0 go build -o dist/labapp ./deploy/testdata/labapp", Artifact: "dist/labapp",
		SSHAccess: sshSelfHosted, RunnerLabel: defaultRunner, BelayVersion: "checkout", PinTarget: true}
}

func variants() map[string]*Options {
	return map[string]*Options{
		"stack, self-hosted": {Stack: "acme/prod", App: "shop", WhitelistShops: []string{"alpha.example.com", "beta.example.com"}, WhitelistIPs: []string{"198.51.100.7", "2001:db8::/64"}, Branch: "main", BuildCommand: "make dist/shop.tar.gz", Artifact: "dist/shop.tar.gz",
			SSHAccess: sshSelfHosted, RunnerLabel: "deployer", BelayVersion: "v1.2.3"},
		"inventory, bastion": {Inventory: "ops/inventory.json", Branch: "release/v2", BuildCommand: "npm ci && npm run build && tar -C build -czf app.tar.gz .", Artifact: "app.tar.gz",
			SSHAccess: sshBastion, Bastion: "jump@bastion.example.com:2222", BastionHostKey: testHostKey, BelayVersion: "latest"},
		"shipped": shipped(),
	}
}

// actionlint returns the command that runs actionlint: from PATH, else built
// by the Go toolchain at a pinned version. It skips (saying why) only when
// neither works, e.g. offline with an empty module cache.
func actionlint(t *testing.T) []string {
	t.Helper()
	if p, err := exec.LookPath("actionlint"); err == nil {
		return []string{p}
	}
	// Built once per machine into the temp dir; go install uses the module
	// cache and proxy, outside this module (no go.mod entry needed).
	bin := filepath.Join(os.TempDir(), "belay-test-actionlint-v1.7.7")
	if _, err := os.Stat(bin); err != nil {
		gobin := t.TempDir()
		inst := exec.Command("go", "install", "github.com/rhysd/actionlint/cmd/actionlint@v1.7.7")
		inst.Dir, inst.Env = gobin, append(os.Environ(), "GOBIN="+gobin)
		if out, err := inst.CombinedOutput(); err != nil {
			t.Skipf("actionlint is not installed and cannot be built (apt-get install actionlint, or network for the Go module proxy): %v\n%s", err, out)
		}
		if err := os.Rename(filepath.Join(gobin, "actionlint"), bin); err != nil {
			t.Fatal(err)
		}
	}
	return []string{bin}
}

// lint runs actionlint on a workflow file, with the self-hosted label known.
func lint(t *testing.T, argv []string, dir, wf, label string) {
	t.Helper()
	conf := filepath.Join(dir, "actionlint.yaml")
	if err := os.WriteFile(conf, []byte("self-hosted-runner:\n  labels: ["+label+"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], append(argv[1:], "-config-file", conf, wf)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("actionlint %s: %v\n%s", wf, err, out)
	}
}

func TestInitOutputParsesAndPassesActionlint(t *testing.T) {
	argv := actionlint(t)
	for name, o := range variants() {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			o.Dir = dir
			var errb bytes.Buffer
			o.IO = cli.IO{ErrOut: &errb}
			if err := Run(o); err != nil {
				t.Fatal(err)
			}
			wf := filepath.Join(dir, WorkflowPath)
			lint(t, argv, dir, wf, o.RunnerLabel)
			checkWorkflow(t, wf, o)
			f, err := target.Load(filepath.Join(dir, target.FileName))
			if err != nil {
				t.Fatal(err)
			}
			if f.Target != o.targetRef() {
				t.Fatalf("belay.yaml target %q, want %q", f.Target, o.targetRef())
			}
			got := map[string]string{}
			for _, d := range f.Defaults {
				got[d.Key()] = d.Value
			}
			if len(o.WhitelistShops) > 0 && got["defaults.deploy.whitelist-shops"] != strings.Join(o.WhitelistShops, ",") {
				t.Errorf("whitelist-shops default %q", got["defaults.deploy.whitelist-shops"])
			}
			if len(o.WhitelistIPs) > 0 && got["defaults.deploy.whitelist-ips"] != strings.Join(o.WhitelistIPs, ",") {
				t.Errorf("whitelist-ips default %q", got["defaults.deploy.whitelist-ips"])
			}
			if _, ok := got["defaults.status.whitelist-shops"]; ok {
				t.Error("whitelist defaults on status, which has no such flag")
			}
		})
	}
}

// checkWorkflow reads the workflow as YAML and checks what makes it run:
// checkout before anything reads the stack, pinned actions and CLIs, the
// canary stopping at the whitelist, a rollout that reuses the canary's bytes.
func checkWorkflow(t *testing.T, path string, o *Options) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		Env  map[string]string `yaml:"env"`
		Jobs map[string]struct {
			RunsOn any `yaml:"runs-on"`
			Steps  []struct {
				Uses string            `yaml:"uses"`
				Run  string            `yaml:"run"`
				With map[string]string `yaml:"with"`
				Env  map[string]string `yaml:"env"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(b, &wf); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	pinned := regexp.MustCompile(`^[a-z-]+/[a-z-]+@v\d+\.\d+\.\d+$`)
	for _, job := range []string{"canary", "rollout", "abandon"} {
		j, ok := wf.Jobs[job]
		if !ok {
			t.Fatalf("no job %s", job)
		}
		checkedOut, belayRan := false, false
		for _, s := range j.Steps {
			if s.Uses != "" && !pinned.MatchString(s.Uses) {
				t.Errorf("%s: %s is not pinned to vX.Y.Z", job, s.Uses)
			}
			if strings.HasPrefix(s.Uses, "actions/checkout@") {
				checkedOut = true
			}
			if strings.HasPrefix(s.Uses, "pulumi/actions@") && s.With["pulumi-version"] == "" {
				t.Errorf("%s: Pulumi CLI not pinned", job)
			}
			if strings.Contains(s.Run, "belay deploy") || strings.Contains(s.Run, "belay rollback") {
				belayRan = true
				if !checkedOut {
					t.Errorf("%s: belay runs before the checkout (belay.yaml, the stack)", job)
				}
				if o.Stack != "" && s.Env["PULUMI_ACCESS_TOKEN"] == "" {
					t.Errorf("%s: belay reads the stack without PULUMI_ACCESS_TOKEN", job)
				}
				if strings.Contains(s.Run, "--inventory") || strings.Contains(s.Run, "${{") {
					t.Errorf("%s: the target comes from belay.yaml and inputs go through env, got %q", job, s.Run)
				}
			}
		}
		if !belayRan {
			t.Errorf("%s: runs no belay", job)
		}
	}
	if o.Stack != "" && wf.Env["PULUMI_VERSION"] != PulumiVersion {
		t.Errorf("PULUMI_VERSION %q", wf.Env["PULUMI_VERSION"])
	}
	if wf.Env["ARTIFACT"] != o.Artifact {
		t.Errorf("ARTIFACT %q, want %q", wf.Env["ARTIFACT"], o.Artifact)
	}
	if o.PinTarget != (wf.Env["BELAY_INVENTORY"] == o.targetRef()) {
		t.Errorf("PinTarget %v, env BELAY_INVENTORY %q", o.PinTarget, wf.Env["BELAY_INVENTORY"])
	}
	text := string(b)
	wantStop := "10%"
	if len(o.WhitelistShops)+len(o.WhitelistIPs) > 0 {
		wantStop = "whitelist"
	}
	if wf.Env["CANARY_STOP"] != wantStop {
		t.Errorf("CANARY_STOP %q, want %q", wf.Env["CANARY_STOP"], wantStop)
	}
	for _, want := range []string{o.BuildCommand, `--stop-after "$CANARY_STOP"`, "run-id: ${{ inputs.canary_run }}", "--abandon"} {
		if !strings.Contains(text, want) {
			t.Errorf("workflow lacks %q", want)
		}
	}
}

func TestShippedWorkflowIsInitOutput(t *testing.T) {
	o := shipped()
	files, err := Render(o)
	if err != nil {
		t.Fatal(err)
	}
	shippedPath := filepath.Join("..", "..", "..", WorkflowPath)
	got := files[1].Content
	if *update {
		if err := os.WriteFile(shippedPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(shippedPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from `belay init` output for its settings (go test ./internal/cli/initcmd -update)", shippedPath)
	}
}

// TestShippedWorkflowsPassActionlint lints every workflow of this repository
// with its own .github/actionlint.yaml, as `actionlint` at the root does.
func TestShippedWorkflowsPassActionlint(t *testing.T) {
	argv := actionlint(t)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = filepath.Join("..", "..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("actionlint in the repository root: %v\n%s", err, out)
	}
}

func TestRunRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	wf := filepath.Join(dir, WorkflowPath)
	if err := os.MkdirAll(filepath.Dir(wf), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wf, []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := variants()["stack, self-hosted"]
	o.Dir, o.IO = dir, cli.IO{ErrOut: &bytes.Buffer{}}
	err := Run(o)
	if err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("err = %v, want a refusal naming --force", err)
	}
	if _, err := os.Stat(filepath.Join(dir, target.FileName)); err == nil {
		t.Fatal("belay.yaml written although the workflow exists: nothing must change")
	}
	if b, _ := os.ReadFile(wf); string(b) != "mine\n" {
		t.Fatal("workflow overwritten")
	}
	o.Force = true
	if err := Run(o); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(wf); string(b) == "mine\n" {
		t.Fatal("--force did not overwrite")
	}
}

func TestCheckRefusesBadInput(t *testing.T) {
	base := func() *Options { o := *variants()["stack, self-hosted"]; return &o }
	tests := []struct {
		name    string
		mod     func(*Options)
		wantErr string
	}{
		{"bad stack", func(o *Options) { o.Stack = "a b" }, "--stack"},
		{"bad app", func(o *Options) { o.App = "Shop!" }, "--app"},
		{"bad shop", func(o *Options) { o.WhitelistShops = []string{"a b"} }, "--whitelist-shops"},
		{"bad ip", func(o *Options) { o.WhitelistIPs = []string{"300.1.1.1"} }, "--whitelist-ips"},
		{"multi-line build", func(o *Options) { o.BuildCommand = "make\nrm -rf /" }, "--build-command"},
		{"empty build", func(o *Options) { o.BuildCommand = " " }, "--build-command"},
		{"artifact outside", func(o *Options) { o.Artifact = "../x.tgz" }, "--artifact"},
		{"artifact absolute", func(o *Options) { o.Artifact = "/tmp/x.tgz" }, "--artifact"},
		{"artifact with quotes", func(o *Options) { o.Artifact = `a"b` }, "--artifact"},
		{"branch", func(o *Options) { o.Branch = "main]" }, "--branch"},
		{"version", func(o *Options) { o.BelayVersion = "main; curl" }, "--belay-version"},
		{"ssh access", func(o *Options) { o.SSHAccess = "firewall" }, "--ssh-access"},
		{"runner label", func(o *Options) { o.RunnerLabel = "a b" }, "--runner-label"},
		{"bastion without mode", func(o *Options) { o.Bastion = "u@h" }, "need --ssh-access bastion"},
		{"bastion without key", func(o *Options) { o.SSHAccess, o.Bastion = sshBastion, "u@h" }, "--bastion-host-key"},
		{"bastion without user", func(o *Options) { o.SSHAccess, o.Bastion, o.BastionHostKey = sshBastion, "h", testHostKey }, "--bastion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base()
			tt.mod(o)
			o.Dir = t.TempDir()
			o.IO = cli.IO{ErrOut: &bytes.Buffer{}}
			err := Run(o)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if entries, _ := os.ReadDir(o.Dir); len(entries) != 0 {
				t.Fatal("bad input wrote files")
			}
		})
	}
}

func TestLabWritesNoWorkflow(t *testing.T) {
	o := &Options{Dir: t.TempDir(), Lab: true, IO: cli.IO{ErrOut: &bytes.Buffer{}}}
	if err := Run(o); err != nil {
		t.Fatal(err)
	}
	f, err := target.Load(filepath.Join(o.Dir, target.FileName))
	if err != nil || f.Target != "lab" || len(f.Defaults) != 0 {
		t.Fatalf("%+v %v", f, err)
	}
	if _, err := os.Stat(filepath.Join(o.Dir, WorkflowPath)); err == nil {
		t.Fatal("a workflow for the lab")
	}
}
