package target

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tree writes files (path → content) under a temp dir and returns it.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestFindWalksUp(t *testing.T) {
	root := tree(t, map[string]string{
		"repo/belay.yaml":             "target: pulumi:org/prod\n",
		"repo/svc/api/main.go":        "package main\n",
		"repo/nested/belay.yaml":      "target: ./inv.json\n",
		"repo/nested/deeper/x/readme": "",
		"other/readme":                "",
	})
	tests := []struct {
		dir      string
		wantPath string // "" = none found
		target   string
	}{
		{"repo", "repo/belay.yaml", "pulumi:org/prod"},
		{"repo/svc/api", "repo/belay.yaml", "pulumi:org/prod"},
		{"repo/nested/deeper/x", "repo/nested/belay.yaml", "./inv.json"}, // the nearest wins
		{"other", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			f, err := Find(filepath.Join(root, tt.dir))
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantPath == "" {
				// A belay.yaml above the temp dir (e.g. in /tmp) would make this
				// test meaningless; say so instead of passing by accident.
				if f != nil && !strings.HasPrefix(f.Path, root) {
					t.Skipf("a belay.yaml above the test tree: %s", f.Path)
				}
				if f != nil {
					t.Fatalf("found %s, want none", f.Path)
				}
				return
			}
			if f == nil || f.Path != filepath.Join(root, tt.wantPath) || f.Target != tt.target {
				t.Fatalf("got %+v, want %s with target %s", f, tt.wantPath, tt.target)
			}
		})
	}
}

func TestResolvePrecedence(t *testing.T) {
	file := &File{Path: "/src/shop/belay.yaml", Target: "pulumi:prod"}
	fileInv := &File{Path: "/src/shop/belay.yaml", Target: "deploy/inventory.json"}
	tests := []struct {
		name     string
		in       Inputs
		ok       bool
		wantKind Kind
		wantRef  string
		wantSrc  string
		wantErr  string
	}{
		{name: "nothing", in: Inputs{}, ok: false},
		{name: "file without target", in: Inputs{File: &File{Path: "/x/belay.yaml"}}, ok: false},
		{name: "file stack", in: Inputs{File: file}, ok: true, wantKind: KindPulumi, wantRef: "pulumi:prod", wantSrc: "/src/shop/belay.yaml"},
		{name: "file inventory is relative to the file", in: Inputs{File: fileInv}, ok: true, wantKind: KindFile, wantRef: "/src/shop/deploy/inventory.json", wantSrc: "/src/shop/belay.yaml"},
		{name: "file lab", in: Inputs{File: &File{Path: "/a/belay.yaml", Target: "lab"}}, ok: true, wantKind: KindLab, wantRef: LabInventory},
		{name: "env beats file", in: Inputs{Env: "lab", File: file}, ok: true, wantKind: KindLab, wantRef: LabInventory, wantSrc: EnvVar},
		{name: "env relative path stays relative to cwd", in: Inputs{Env: "inv.json"}, ok: true, wantKind: KindFile, wantRef: "inv.json", wantSrc: EnvVar},
		{name: "stack flag beats env", in: Inputs{Stack: "staging", StackSet: true, Env: "lab", File: file}, ok: true, wantKind: KindPulumi, wantRef: "pulumi:staging", wantSrc: "--stack"},
		{name: "inventory flag beats all", in: Inputs{Inventory: "-", InventorySet: true, Env: "lab", File: file}, ok: true, wantKind: KindStdin, wantRef: "-", wantSrc: "--inventory"},
		{name: "lab path is the lab", in: Inputs{Inventory: LabInventory, InventorySet: true}, ok: true, wantKind: KindLab, wantRef: LabInventory},
		{name: "both flags", in: Inputs{Inventory: "lab", InventorySet: true, Stack: "prod", StackSet: true}, wantErr: "give one target"},
		{name: "empty inventory flag", in: Inputs{Inventory: "", InventorySet: true, File: file}, wantErr: "--inventory: empty"},
		{name: "bad stack", in: Inputs{Stack: "prod; rm", StackSet: true}, wantErr: "--stack: stack name"},
		{name: "bad pulumi ref", in: Inputs{Env: "pulumi:"}, wantErr: "BELAY_INVENTORY \"pulumi:\": empty stack name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := Resolve(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || ok != tt.ok {
				t.Fatalf("ok=%v err=%v, want ok=%v", ok, err, tt.ok)
			}
			if !ok {
				return
			}
			if got.Kind != tt.wantKind || got.Ref != tt.wantRef || (tt.wantSrc != "" && got.Source != tt.wantSrc) {
				t.Fatalf("got %+v, want kind %s ref %s source %s", got, tt.wantKind, tt.wantRef, tt.wantSrc)
			}
		})
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		t    Target
		want string
	}{
		{Target{Kind: KindPulumi, Name: "prod", Hosts: 14}, "stack prod (pulumi), 14 hosts"},
		{Target{Kind: KindLab, Name: "lab", Hosts: 8}, "lab, 8 hosts"},
		{Target{Kind: KindFile, Name: "/x/inv.json", Hosts: 1}, "inventory /x/inv.json, 1 host"},
		{Target{Kind: KindStdin, Name: "-", Hosts: 3}, "inventory from stdin, 3 hosts"},
	}
	for _, tt := range tests {
		if got := tt.t.String(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.t, got, tt.want)
		}
	}
}

func TestNoTargetErrorSaysHowToPickOne(t *testing.T) {
	for _, e := range []*NoTargetError{{}, {File: "/src/belay.yaml"}} {
		msg := e.Error()
		for _, want := range []string{"belay init --stack", "--inventory", EnvVar, "--inventory lab"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%q lacks %q", msg, want)
			}
		}
		if e.File != "" && !strings.Contains(msg, e.File) {
			t.Errorf("%q does not name %s", msg, e.File)
		}
	}
	var nt *NoTargetError
	if !errors.As(error(&NoTargetError{}), &nt) {
		t.Fatal("not a *NoTargetError")
	}
}

func TestParseFile(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		want    []Default
		target  string
		wantErr string
	}{
		{name: "empty", yaml: ""},
		{name: "target and defaults", yaml: "target: pulumi:prod\ndefaults:\n  deploy:\n    drain-timeout: 45s\n    steps: \"5,25,100\"\n  backup status:\n    json: true\n",
			target: "pulumi:prod",
			want:   []Default{{"deploy", "drain-timeout", "45s", 4}, {"deploy", "steps", "5,25,100", 5}, {"backup status", "json", "true", 7}}},
		{name: "list joins with commas", yaml: "defaults:\n  deploy:\n    whitelist-shops: [a.example, b.example]\n",
			want: []Default{{"deploy", "whitelist-shops", "a.example,b.example", 3}}},
		{name: "unknown top-level key", yaml: "targt: lab\n", wantErr: "field targt not found"},
		{name: "defaults not a map", yaml: "defaults: [deploy]\n", wantErr: "belay.yaml:1: defaults: expected a map"},
		{name: "command not a map", yaml: "defaults:\n  deploy: 45s\n", wantErr: "defaults.deploy: expected a map of flag"},
		{name: "nested value", yaml: "defaults:\n  deploy:\n    steps: {a: 1}\n", wantErr: "belay.yaml:3: defaults.deploy.steps: expected a value"},
		{name: "bad target", yaml: "target: \"pulumi:\"\n", wantErr: "target: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFile("/p/belay.yaml", []byte(tt.yaml))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "/p/belay.yaml") {
					t.Fatalf("err %v does not name the file", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.Target != tt.target || len(f.Defaults) != len(tt.want) {
				t.Fatalf("got %+v, want target %q defaults %+v", f, tt.target, tt.want)
			}
			for i := range tt.want {
				if f.Defaults[i] != tt.want[i] {
					t.Errorf("default %d: %+v, want %+v", i, f.Defaults[i], tt.want[i])
				}
			}
		})
	}
}
