package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/internal/cli/target"
)

const testInventory = "../../deploy/plan/testdata/inventory.json"

// project makes a directory holding a copy of the test inventory and, when
// yaml is not "", a belay.yaml; it returns the directory and a subdirectory to
// run from.
func project(t *testing.T, yaml string) (dir, sub string) {
	t.Helper()
	dir = t.TempDir()
	b, err := os.ReadFile(testInventory)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "inventory.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if yaml != "" {
		if err := os.WriteFile(filepath.Join(dir, target.FileName), []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sub = filepath.Join(dir, "src", "app")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, sub
}

// runCLI runs a two-command tree through the production Factory: "touch"
// reads its inventory and prints JSON (a command that changes hosts), "lab
// status" has no --inventory. touch's --inventory defaults to the lab's path,
// as a careless new command might: that must never become a target.
func runCLI(t *testing.T, cwd string, env map[string]string, args ...string) (stdout, stderr string, ref string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	f := New()
	f.IO = IO{Out: &targetWriter{Writer: &out, f: f}, ErrOut: &errOut}
	f.Getenv = func(k string) string { return env[k] }
	f.Getwd = func() (string, error) { return cwd, nil }
	root := &cobra.Command{Use: "belay", SilenceUsage: true, SilenceErrors: true}
	touch := &cobra.Command{Use: "touch", RunE: func(cmd *cobra.Command, _ []string) error {
		inv, err := f.Inventory(ref)
		if err != nil {
			return err
		}
		if _, err := f.Inventory(ref); err != nil { // read twice, announced once
			return err
		}
		return PrintJSON(f.IO.Out, map[string]any{"hosts": len(inv.Hosts)})
	}}
	touch.Flags().StringVar(&ref, "inventory", DefaultInventory, InventoryUsage)
	touch.Flags().String("parallel", "0", "")
	lab := &cobra.Command{Use: "lab"}
	lab.AddCommand(&cobra.Command{Use: "status", RunE: func(*cobra.Command, []string) error { return nil }})
	root.AddCommand(touch, lab)
	AddTargetFlags(root)
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error { return f.Prepare(root, cmd) }
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), errOut.String(), ref, err
}

func TestPrepareTargets(t *testing.T) {
	inv, _ := filepath.Abs(testInventory)
	tests := []struct {
		name       string
		yaml       string
		env        map[string]string
		args       []string
		wantErr    string // "" = success
		noTarget   bool
		lab        bool // the lab may or may not be up on this machine
		wantStderr string
	}{
		{name: "no target refuses", args: []string{"touch"}, noTarget: true},
		{name: "belay.yaml without target refuses", yaml: "defaults:\n  touch:\n    parallel: 2\n", args: []string{"touch"}, noTarget: true},
		{name: "belay.yaml from a subdirectory", yaml: "target: inventory.json\n", args: []string{"touch"}, wantStderr: "target: inventory DIR/inventory.json, 3 hosts (from DIR/belay.yaml)\n"},
		{name: "env beats belay.yaml", yaml: "target: pulumi:prod\n", env: map[string]string{target.EnvVar: inv}, args: []string{"touch"}, wantStderr: "target: inventory " + inv + ", 3 hosts (from BELAY_INVENTORY)\n"},
		{name: "flag beats env", env: map[string]string{target.EnvVar: "pulumi:prod"}, args: []string{"touch", "--inventory", inv}, wantStderr: "target: inventory " + inv + ", 3 hosts (from --inventory)\n"},
		{name: "--stack and --inventory", args: []string{"touch", "--stack", "prod", "--inventory", inv}, wantErr: "give one target"},
		{name: "lab explicit", env: map[string]string{target.EnvVar: "lab"}, args: []string{"touch"}, lab: true},
		{name: "unknown key in belay.yaml fails every command", yaml: "target: lab\ndefaults:\n  touch:\n    paralel: 2\n", args: []string{"lab", "status"}, wantErr: "belay.yaml:4: defaults.touch.paralel: belay touch has no flag --paralel"},
		{name: "a command without --inventory needs no target", args: []string{"lab", "status"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, sub := project(t, tt.yaml)
			stdout, stderr, _, err := runCLI(t, sub, tt.env, tt.args...)
			var nt *target.NoTargetError
			switch {
			case tt.noTarget:
				if !errors.As(err, &nt) {
					t.Fatalf("err = %v, want a refusal", err)
				}
				if stdout != "" || stderr != "" {
					t.Fatalf("a refusal printed %q / %q", stdout, stderr)
				}
				if tt.yaml != "" && nt.File != filepath.Join(dir, target.FileName) {
					t.Fatalf("refusal names %q, want the belay.yaml", nt.File)
				}
				return
			case tt.lab:
				if err != nil && !strings.Contains(err.Error(), "target lab: ") || err == nil && !strings.HasPrefix(stderr, "target: lab, ") {
					t.Fatalf("err = %v, stderr %q: want the lab (or that it is not up)", err, stderr)
				}
				return
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if want := strings.ReplaceAll(tt.wantStderr, "DIR", dir); stderr != want {
				t.Fatalf("stderr %q, want %q", stderr, want)
			}
		})
	}
}

func TestJSONCarriesTheTarget(t *testing.T) {
	dir, sub := project(t, "target: inventory.json\n")
	stdout, stderr, ref, err := runCLI(t, sub, nil, "touch")
	if err != nil {
		t.Fatal(err)
	}
	if ref != filepath.Join(dir, "inventory.json") {
		t.Fatalf("the command's --inventory is %q, want the resolved file", ref)
	}
	if !strings.HasPrefix(stderr, "target: ") {
		t.Fatalf("first stderr line %q", stderr)
	}
	if !strings.HasPrefix(stdout, "{\n  \"target\": {") {
		t.Fatalf("target is not the first key:\n%s", stdout)
	}
	var doc struct {
		Target target.Target `json:"target"`
		Hosts  int           `json:"hosts"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatal(err)
	}
	want := target.Target{Kind: target.KindFile, Name: ref, Ref: ref, Source: filepath.Join(dir, target.FileName), Hosts: 3}
	if doc.Target != want || doc.Hosts != 3 {
		t.Fatalf("got %+v hosts %d, want %+v", doc.Target, doc.Hosts, want)
	}
}

func TestWithTargetLeavesOthersAlone(t *testing.T) {
	f := &Factory{Target: &target.Target{Kind: target.KindLab, Name: "lab", Hosts: 2}}
	w := &targetWriter{Writer: &bytes.Buffer{}, f: f}
	tests := []struct{ in, want string }{
		{`[1,2]`, `[1,2]`},
		{`{"target":"x"}`, `{"target":"x"}`},
		{`{}`, `{"target":{"kind":"lab","name":"lab","ref":"","source":"","hosts":2}}`},
		{`{"a":1}`, `{"target":{"kind":"lab","name":"lab","ref":"","source":"","hosts":2},"a":1}`},
	}
	for _, tt := range tests {
		if got := string(withTarget(w, []byte(tt.in))); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.in, got, tt.want)
		}
	}
	if got := string(withTarget(&bytes.Buffer{}, []byte(`{"a":1}`))); got != `{"a":1}` {
		t.Errorf("a plain writer got %s", got)
	}
}
