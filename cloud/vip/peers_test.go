package vip

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/belay-sh/belay/cloud/api"
	"github.com/belay-sh/belay/cloud/double"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestDigitalOceanMembersPaginates(t *testing.T) {
	d := newDODouble(t)
	d.AddDroplet(double.DODroplet{ID: 444, Name: "shop-3", Region: "fra1", Tags: []string{"belay-shop"}, PrivateIP: "10.114.0.10"})
	d.AddDroplet(double.DODroplet{ID: 555, Name: "shop-4", Region: "fra1", Tags: []string{"belay-shop", "x"}})
	old := doPerPage
	doPerPage = 2
	t.Cleanup(func() { doPerPage = old })
	c, err := api.NewDigitalOcean(testToken, d.URL())
	if err != nil {
		t.Fatal(err)
	}
	ms, err := DigitalOceanMembers(context.Background(), c, "belay-shop", fastPol)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, m := range ms {
		got = append(got, m.ID)
	}
	if want := []int64{111, 222, 444, 555}; !equalInts(got, want) {
		t.Fatalf("members %v, want %v", got, want)
	}
	if n := d.CountRequests("GET", "/v2/droplets"); n != 2 {
		t.Errorf("%d list requests, want 2 pages", n)
	}
	if ms[3].PrivateIP.IsValid() {
		t.Errorf("droplet without VPC got private address %s", ms[3].PrivateIP)
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestHetznerMembers(t *testing.T) {
	h := newHetznerDouble(t)
	h.AddServer(double.HetznerServer{ID: 14, Name: "shop-3", Labels: map[string]string{"belay-app": "shop", "stack": "staging"}, PrivateIP: "10.0.2.14", NetworkID: 8})
	tests := []struct {
		selector string
		network  int64
		want     []string // "id=addr"
	}{
		{"belay-app=shop", 0, []string{"11=10.0.1.11", "12=10.0.1.12", "14=10.0.2.14"}},
		{"belay-app=shop,stack=prod", 0, []string{"11=10.0.1.11", "12=10.0.1.12"}},
		{"belay-app=shop,stack!=prod", 0, []string{"14=10.0.2.14"}},
		{"belay-app=shop", 7, []string{"11=10.0.1.11", "12=10.0.1.12", "14=invalid IP"}},
	}
	for _, tt := range tests {
		t.Run(tt.selector, func(t *testing.T) {
			ms, err := HetznerMembers(context.Background(), api.NewHetzner(testToken, h.URL()), tt.selector, tt.network, fastPol)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range ms {
				got = append(got, itoa(m.ID)+"="+m.PrivateIP.String())
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("members %v, want %v", got, tt.want)
			}
		})
	}
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

func TestPeers(t *testing.T) {
	members := []Member{
		{ID: 3, Name: "c", PrivateIP: netip.MustParseAddr("10.0.0.30")},
		{ID: 1, Name: "a", PrivateIP: netip.MustParseAddr("10.0.0.9")},
		{ID: 2, Name: "b", PrivateIP: netip.MustParseAddr("10.0.0.10")},
		{ID: 4, Name: "d"},
	}
	tests := []struct {
		name    string
		members []Member
		self    int64
		want    []netip.Addr
		wantErr string
	}{
		{name: "others sorted numerically, self and address-less skipped", members: members, self: 2, want: addrs("10.0.0.9", "10.0.0.30")},
		{name: "self missing from group", members: members, self: 9, wantErr: "is not among the 4 server(s)"},
		{name: "no peer", members: members[1:2], self: 1, wantErr: "found no peer"},
		{name: "only address-less peer", members: []Member{members[1], members[3]}, self: 1, wantErr: "found no peer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logged []string
			got, err := Peers(tt.members, tt.self, "belay-shop", func(f string, a ...any) { logged = append(logged, f) })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("peers %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("peers %v, want %v", got, tt.want)
				}
			}
			if len(logged) != 1 {
				t.Errorf("want one log line about the address-less member, got %v", logged)
			}
		})
	}
}

func TestRenderPeers(t *testing.T) {
	got := string(RenderPeers(addrs("10.0.0.9", "10.0.0.30"), `digitalocean tag "belay-shop"`))
	want := `# Written by belay vip peers from digitalocean tag "belay-shop". Do not edit: rewritten at boot.
10.0.0.9
10.0.0.30
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "peers.conf")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(path, []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "new\n" {
		t.Fatalf("content %q, err %v", b, err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary files left behind: %v", ents)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "x.conf"), []byte("x"), 0o644); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}
