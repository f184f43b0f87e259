package failover

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/opsenv"
	"github.com/belay-sh/belay/inventory"
)

func factory(t *testing.T) (*cli.Factory, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var out, errb bytes.Buffer
	f := &cli.Factory{
		IO: cli.IO{Out: &out, ErrOut: &errb},
		Inventory: func(string) (*inventory.Inventory, error) {
			return inventory.Load("../../../failover/testdata/inventory.json")
		},
		Getenv: func(string) string { return "" },
	}
	return f, &out, &errb
}

// noOpen fails the test if the command tries to touch a host.
func noOpen(t *testing.T) func(*inventory.Inventory, opsenv.Flags, func(string) string) (*opsenv.Target, error) {
	return func(*inventory.Inventory, opsenv.Flags, func(string) string) (*opsenv.Target, error) {
		t.Fatal("the command connected to the hosts")
		return nil, nil
	}
}

func TestSiteWithoutYesPrintsPlanOnly(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    []string
		wantErr string
	}{
		{"no --yes", []string{"--to", "standby"}, []string{"[promote-db]", "[fence-db/db-1]"}, ""},
		{"dry run", []string{"--to", "standby", "--yes", "--dry-run"}, []string{"[dns/shop.lab.belay.test]"}, ""},
		{"back to primary, no --yes", []string{"--to", "primary"}, []string{"[reseed-primary/db-1]", "[archive-standby-db]", "[reseed-standby-db]"}, ""},
		{"bad direction", []string{"--to", "west"}, nil, `--to "west": expected standby or primary`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, out, _ := factory(t)
			var opts *SiteOptions
			cmd := NewCmdSite(f, func(o *SiteOptions) error { opts = o; return nil })
			cmd.SetArgs(tt.args)
			cmd.SetOut(&bytes.Buffer{})
			cmd.SetErr(&bytes.Buffer{})
			if err := cmd.Execute(); err != nil {
				t.Fatal(err)
			}
			// Connecting to a host would be a change: the test fails if it happens.
			opts.Open = noOpen(t)
			err := runSite(context.Background(), opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestSiteJSONPlan(t *testing.T) {
	f, out, _ := factory(t)
	var opts *SiteOptions
	cmd := NewCmdSite(f, func(o *SiteOptions) error { opts = o; return nil })
	cmd.SetArgs([]string{"--to", "standby", "--dry-run", "--json"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	opts.Open = noOpen(t)
	if err := runSite(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	var plan struct {
		Stack string
		Steps []struct{ ID, Kind string }
	}
	if err := json.Unmarshal(out.Bytes(), &plan); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	if plan.Stack != "lab" || len(plan.Steps) < 10 {
		t.Errorf("plan = %+v", plan)
	}
}
