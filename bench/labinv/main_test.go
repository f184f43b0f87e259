package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/belay-sh/belay/inventory"
)

const fixture = "testdata/inventory.json"

func TestAnsibleInventory(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		want      []string
		notWant   []string
		wantError string
	}{
		{name: "all servers", args: []string{"--hosts", "0"},
			want: []string{"shop-1 ansible_host=10.213.0.20 ansible_port=22 ansible_user=deploy", "shop-2 ansible_host=10.213.0.21",
				"StrictHostKeyChecking=yes", "UserKnownHostsFile=/kh", "ansible_ssh_private_key_file=/key", "app_port=3000", "app_health_path=/up"},
			notWant: []string{"shop-standby", "db-1"}},
		{name: "first server only", args: []string{"--hosts", "1"}, want: []string{"shop-1 "}, notWant: []string{"shop-2"}},
		{name: "too many", args: []string{"--hosts", "9"}, wantError: "--hosts 9: app shop has 2 servers"},
		{name: "after the first", args: []string{"--after", "1"}, want: []string{"shop-2 "}, notWant: []string{"shop-1 "}},
		{name: "after all", args: []string{"--after", "2"}, wantError: "--after 2: app shop has 2 servers, expected 0-1"},
		{name: "unknown app", args: []string{"--app", "nope"}, wantError: `--app "nope": not in the inventory (apps: shop)`},
		{name: "path with a space", args: []string{"--key", "/a key"}, wantError: "spaces and quotes are not supported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"ansible", "--inventory", fixture, "--key", "/key", "--known-hosts", "/kh"}, tc.args...)
			var out bytes.Buffer
			err := run(args, &out)
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("error %v, want it to contain %q", err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out.String(), w) {
					t.Errorf("output has %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestAnsibleNeedsPinnedKeys(t *testing.T) {
	err := run([]string{"ansible", "--inventory", fixture, "--key", "/key"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--known-hosts are required") {
		t.Fatalf("got %v, want a refusal without --known-hosts", err)
	}
}

func TestSubsetKeepsEverythingButTheAppsHosts(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"subset", "--inventory", fixture, "--hosts", "1"}, &out); err != nil {
		t.Fatal(err)
	}
	got, err := inventory.Parse(out.Bytes())
	if err != nil {
		t.Fatalf("subset is not a valid inventory: %v", err)
	}
	orig, err := inventory.Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	if h := got.App("shop").Hosts; len(h) != 1 || h[0] != "shop-1" {
		t.Errorf("app hosts %v, want [shop-1]", h)
	}
	if got.App("shop").Standby != orig.App("shop").Standby || len(got.Hosts) != len(orig.Hosts) {
		t.Errorf("subset changed more than the app's host list")
	}
	if err := run([]string{"subset", "--inventory", fixture}, &bytes.Buffer{}); err == nil {
		t.Error("subset without --hosts: want an error")
	}
	out.Reset()
	if err := run([]string{"subset", "--inventory", fixture, "--after", "1"}, &out); err != nil {
		t.Fatal(err)
	}
	rest, err := inventory.Parse(out.Bytes())
	if err != nil {
		t.Fatalf("subset --after 1: %v", err)
	}
	if h := rest.App("shop").Hosts; len(h) != 1 || h[0] != "shop-2" {
		t.Errorf("subset --after 1: hosts %v, want [shop-2]", h)
	}
}

func TestHosts(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"hosts", "--inventory", fixture, "--hosts", "2"}, &out); err != nil {
		t.Fatal(err)
	}
	want := "shop-1 10.213.0.20 22 deploy\nshop-2 10.213.0.21 22 deploy\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
	if err := run([]string{"nope", "--inventory", fixture}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "unknown subcommand") {
		t.Errorf("unknown subcommand: got %v", err)
	}
}
