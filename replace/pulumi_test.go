package replace

import (
	"context"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// fakePulumi answers pulumi commands from recorded documents and logs them.
type fakePulumi struct {
	t       *testing.T
	preview string // testdata file the preview prints
	export  string
	calls   []string
}

func (f *fakePulumi) run(_ context.Context, dir string, argv ...string) ([]byte, error) {
	f.calls = append(f.calls, strings.Join(argv, " "))
	read := func(name string) []byte {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.t.Fatal(err)
		}
		return b
	}
	switch {
	case len(argv) > 2 && argv[1] == "stack" && argv[2] == "export":
		return read(f.export), nil
	case argv[1] == "preview":
		return read(f.preview), nil
	case argv[1] == "up", argv[1] == "config", argv[1] == "refresh":
		return nil, nil
	}
	return nil, errors.New("fake pulumi: unexpected " + strings.Join(argv, " "))
}

const db2URN = "urn:pulumi:prod::belay::belay:index:Belay$belay:index:Database$hcloud:index/server:Server::db-2"

func TestPulumiReplace(t *testing.T) {
	tests := []struct {
		name      string
		host      string
		preview   string
		wantErr   string
		wantCalls []string
	}{
		{"the server and its attachment only", "db-2", "preview-replace-db-2.json", "", []string{
			"pulumi stack export --stack prod",
			"pulumi preview --json --stack prod --target " + db2URN + " --replace " + db2URN + " --target-dependents",
			"pulumi up --yes --stack prod --target " + db2URN + " --replace " + db2URN + " --target-dependents",
		}},
		{"a preview that also replaces the volume is refused before the up", "db-2", "preview-replace-db-2-and-volume.json",
			"the preview of the targeted run also touches replace db-2-data (data volume); nothing changed", []string{
				"pulumi stack export --stack prod",
				"pulumi preview --json --stack prod --target " + db2URN + " --replace " + db2URN + " --target-dependents",
			}},
		{"delete protection still on after a refresh", "db-1", "preview-replace-db-2.json", "has Hetzner delete protection", nil},
		{"no such server", "db-9", "preview-replace-db-2.json", "no server resource named db-9", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakePulumi{t: t, preview: tc.preview, export: "export.json"}
			err := (&Pulumi{Stack: "prod", Run: f.run}).Replace(context.Background(), tc.host)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if tc.wantCalls != nil && !reflect.DeepEqual(f.calls, tc.wantCalls) {
				t.Errorf("calls\n got %q\nwant %q", f.calls, tc.wantCalls)
			}
			for _, c := range f.calls {
				if strings.HasPrefix(c, "pulumi up") && tc.wantErr != "" {
					t.Errorf("ran %q although refused", c)
				}
			}
		})
	}
}

func TestPulumiResize(t *testing.T) {
	f := &fakePulumi{t: t, preview: "preview-resize-db-2.json", export: "export.json"}
	p := &Pulumi{Stack: "prod", Run: f.run}
	if err := p.SetSize(context.Background(), nil, "cpx42"); err != nil {
		t.Fatal(err)
	}
	if err := p.Resize(context.Background(), "db-2"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"pulumi config set --path belay:database.size cpx42 --stack prod",
		"pulumi stack export --stack prod",
		"pulumi preview --json --stack prod --target " + db2URN,
		"pulumi up --yes --stack prod --target " + db2URN,
	}
	if !reflect.DeepEqual(f.calls, want) {
		t.Errorf("calls\n got %q\nwant %q", f.calls, want)
	}
	// A targeted preview that resizes the other node too is refused.
	f = &fakePulumi{t: t, preview: "preview-resize-db-2.json", export: "export.json"}
	if err := (&Pulumi{Stack: "prod", Run: f.run}).Resize(context.Background(), "db-1"); err == nil || !strings.Contains(err.Error(), "touches update db-2 (data node resize)") {
		t.Fatalf("err = %v", err)
	}
}

func TestFindServer(t *testing.T) {
	b, err := os.ReadFile("testdata/export.json")
	if err != nil {
		t.Fatal(err)
	}
	tg, err := FindServer(b, "db-2")
	if err != nil {
		t.Fatal(err)
	}
	if tg.URN != db2URN || len(tg.Followers) != 1 || !strings.HasSuffix(tg.Followers[0], "VolumeAttachment::db-2-data") || tg.DeleteProtected {
		t.Errorf("target %+v", tg)
	}
	if _, err := FindServer([]byte("{"), "db-2"); err == nil {
		t.Error("a broken export was accepted")
	}
}

func TestLabReplacer(t *testing.T) {
	var got []string
	run := func(_ context.Context, dir string, argv ...string) ([]byte, error) {
		got = argv
		return nil, nil
	}
	if err := (LabReplacer{Call: ExecLab("/usr/bin/belay", run)}).Replace(context.Background(), "shop-2"); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []string{"/usr/bin/belay", "lab", "replace", "shop-2"}) {
		t.Errorf("argv %q", got)
	}
	if err := (LabReplacer{}).Replace(context.Background(), "shop-2"); err == nil {
		t.Error("an unwired lab replacer succeeded")
	}
}
