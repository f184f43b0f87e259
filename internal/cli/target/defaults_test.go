package target

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// testTree is a small belay-like command tree: deploy (with --inventory),
// backup status, lab up (whose --stack is a file, not a target).
type testTree struct {
	root, deploy, status, labUp *cobra.Command
	drain                       time.Duration
	steps                       string
	shops                       []string
	json                        bool
}

func newTree() *testTree {
	tt := &testTree{}
	run := func(*cobra.Command, []string) error { return nil }
	tt.root = &cobra.Command{Use: "belay"}
	tt.deploy = &cobra.Command{Use: "deploy", RunE: run}
	tt.deploy.Flags().DurationVar(&tt.drain, "drain-timeout", 30*time.Second, "")
	tt.deploy.Flags().StringVar(&tt.steps, "steps", "10,50", "")
	tt.deploy.Flags().StringSliceVar(&tt.shops, "whitelist-shops", nil, "")
	tt.deploy.Flags().String("inventory", "", "")
	tt.deploy.Flags().String("stack", "", "")
	backup := &cobra.Command{Use: "backup"}
	backup.PersistentFlags().BoolVar(&tt.json, "json", false, "")
	tt.status = &cobra.Command{Use: "status", RunE: run}
	backup.AddCommand(tt.status)
	lab := &cobra.Command{Use: "lab"}
	tt.labUp = &cobra.Command{Use: "up", RunE: run}
	tt.labUp.Flags().String("stack", "", "")
	lab.AddCommand(tt.labUp)
	tt.root.AddCommand(tt.deploy, backup, lab)
	return tt
}

func TestCheckNamesUnknownKeys(t *testing.T) {
	tests := []struct {
		name    string
		d       Default
		wantErr string // "" = valid
	}{
		{"deploy flag", Default{Command: "deploy", Flag: "drain-timeout"}, ""},
		{"inherited flag of a subcommand", Default{Command: "backup status", Flag: "json"}, ""},
		{"lab up's own --stack", Default{Command: "lab up", Flag: "stack"}, ""},
		{"unknown command", Default{Command: "deplyo", Flag: "steps"}, `defaults.deplyo.steps: belay has no command "deplyo"`},
		{"unknown subcommand", Default{Command: "backup stats", Flag: "json"}, `no command "backup stats"`},
		{"the root", Default{Command: "", Flag: "json"}, "no command"},
		{"unknown flag", Default{Command: "deploy", Flag: "drain"}, "defaults.deploy.drain: belay deploy has no flag --drain"},
		{"target per command", Default{Command: "deploy", Flag: "inventory"}, "top-level `target:`"},
		{"stack per command", Default{Command: "deploy", Flag: "stack"}, "top-level `target:`"},
		{"help", Default{Command: "deploy", Flag: "help"}, "not a setting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.d.Line = 7
			f := &File{Path: "/src/belay.yaml", Defaults: []Default{tt.d}}
			err := f.Check(newTree().root)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "/src/belay.yaml:7: ") {
				t.Fatalf("err = %v, want /src/belay.yaml:7: ... %s", err, tt.wantErr)
			}
		})
	}
}

func TestApplyOnlyToUnsetFlags(t *testing.T) {
	f, err := ParseFile("/src/belay.yaml", []byte(`
defaults:
  deploy:
    drain-timeout: 45s
    steps: "5,25,100"
    whitelist-shops: [a.example, b.example]
  backup status:
    json: true
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		args      []string
		wantDrain time.Duration
		wantSteps string
		wantShops string
		wantJSON  bool
	}{
		{"all from the file", []string{"deploy"}, 45 * time.Second, "5,25,100", "a.example,b.example", false},
		{"command line wins", []string{"deploy", "--steps", "none", "--whitelist-shops", "c.example"}, 45 * time.Second, "none", "c.example", false},
		{"explicit value equal to the built-in default still wins", []string{"deploy", "--drain-timeout", "30s"}, 30 * time.Second, "5,25,100", "a.example,b.example", false},
		{"other command untouched", []string{"backup", "status"}, 30 * time.Second, "10,50", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTree()
			hook := func(cmd *cobra.Command, _ []string) error {
				if err := f.Check(tr.root); err != nil {
					return err
				}
				_, err := f.Apply(cmd)
				return err
			}
			tr.root.PersistentPreRunE = hook
			tr.root.SetArgs(tc.args)
			if err := tr.root.Execute(); err != nil {
				t.Fatal(err)
			}
			if tr.drain != tc.wantDrain || tr.steps != tc.wantSteps || strings.Join(tr.shops, ",") != tc.wantShops || tr.json != tc.wantJSON {
				t.Fatalf("drain %s steps %q shops %q json %v; want %s %q %q %v", tr.drain, tr.steps, tr.shops, tr.json, tc.wantDrain, tc.wantSteps, tc.wantShops, tc.wantJSON)
			}
		})
	}
}

func TestApplyBadValueNamesKeyAndFile(t *testing.T) {
	f := &File{Path: "/src/belay.yaml", Defaults: []Default{{Command: "deploy", Flag: "drain-timeout", Value: "soon", Line: 3}}}
	tr := newTree()
	tr.root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error { _, err := f.Apply(cmd); return err }
	tr.root.SetArgs([]string{"deploy"})
	tr.root.SilenceUsage, tr.root.SilenceErrors = true, true
	err := tr.root.Execute()
	if err == nil || !strings.Contains(err.Error(), `/src/belay.yaml:3: defaults.deploy.drain-timeout: "soon"`) {
		t.Fatalf("err = %v", err)
	}
}
