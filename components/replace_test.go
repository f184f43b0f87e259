package components

import (
	"crypto/ed25519"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"golang.org/x/crypto/ssh"

	"github.com/belay-sh/belay/config"
)

// secondAdminKey is another valid authorized_keys line.
func secondAdminKey(t *testing.T) string {
	t.Helper()
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = 7
	pub, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(seed).Public())
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " second@test"
}

// replacement is one resource the provider would replace (or that is gone).
type replacement struct {
	Key, Why string
}

// replacements compares two runs' registrations of the resource types in
// forceNew: a resource missing from the second run would be deleted; one whose
// ForceNew input changed (and is not in its ignoreChanges) would be replaced.
func replacements(before, after []registration) []replacement {
	idx := map[string]registration{}
	for _, r := range after {
		idx[r.Type+"::"+r.Name] = r
	}
	var out []replacement
	for _, b := range before {
		fields, ok := forceNew[b.Type]
		if !ok {
			continue
		}
		key := b.Type + "::" + b.Name
		a, ok := idx[key]
		if !ok {
			out = append(out, replacement{key, "deleted"})
			continue
		}
		for _, f := range fields {
			if has(a.IgnoreChanges, f) {
				continue
			}
			pk := resource.PropertyKey(f)
			bv, bok := b.Inputs[pk]
			av, aok := a.Inputs[pk]
			if bok != aok || (bok && !bv.DeepEquals(av)) {
				out = append(out, replacement{key, f + " changed"})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// TestConfigEditsReplaceNothing runs the program before and after each
// ordinary config edit and asserts that no server, volume, volume attachment,
// floating/static IP or IP assignment would be replaced or deleted, judged by
// the pinned providers' ForceNew fields (forcenew_test.go).
func TestConfigEditsReplaceNothing(t *testing.T) {
	appAt := func(d map[string]any, i int) map[string]any { return d["apps"].([]any)[i].(map[string]any) }
	obj := func(d map[string]any, k string) map[string]any { return d[k].(map[string]any) }
	edits := []struct {
		name string
		edit func(t *testing.T, p config.Provider, d map[string]any)
	}{
		{"add admin key", func(t *testing.T, _ config.Provider, d map[string]any) {
			a := obj(d, "admin")
			a["sshKeys"] = append(a["sshKeys"].([]any), secondAdminKey(t))
		}},
		{"add admin CIDR", func(_ *testing.T, _ config.Provider, d map[string]any) {
			a := obj(d, "admin")
			a["sshCidrs"] = append(a["sshCidrs"].([]any), "192.0.2.64/29")
		}},
		{"add app", func(_ *testing.T, p config.Provider, d map[string]any) {
			more := testDoc(p, otherProvider(p), 3)
			d["apps"] = more["apps"]
		}},
		{"change replicas", func(_ *testing.T, _ config.Provider, d map[string]any) { appAt(d, 0)["replicas"] = 3 }},
		{"change backup schedule", func(_ *testing.T, _ config.Provider, d map[string]any) {
			obj(d, "backups")["fullEvery"] = "daily"
			obj(d, "backups")["retentionDays"] = 30
		}},
		{"change archive timeout", func(_ *testing.T, _ config.Provider, d map[string]any) {
			obj(d, "backups")["archiveTimeoutSeconds"] = 60
		}},
		{"toggle synchronous", func(_ *testing.T, _ config.Provider, d map[string]any) { obj(d, "database")["synchronous"] = false }},
		{"bump agent", func(_ *testing.T, _ config.Provider, d map[string]any) {
			d["agent"] = map[string]any{"url": "https://github.com/belay-sh/belay/releases/download/v0.2.0/belay-linux-amd64", "sha256": strings.Repeat("ab", 32)}
		}},
		{"resize DB", func(_ *testing.T, p config.Provider, d map[string]any) {
			size := map[config.Provider]string{config.Hetzner: "cx43", config.DigitalOcean: "g-4vcpu-16gb"}[p]
			obj(d, "database")["size"] = size
			obj(d, "database")["volumeGb"] = 40
		}},
	}
	total := 0
	for _, dir := range directions {
		base := runProgram(t, values(testDoc(dir.primary, dir.standby, 2)))
		if base.err != nil {
			t.Fatal(base.err)
		}
		for _, e := range edits {
			t.Run(dir.name+"/"+e.name, func(t *testing.T) {
				doc := testDoc(dir.primary, dir.standby, 2)
				e.edit(t, dir.primary, doc)
				res := runProgram(t, values(doc))
				if res.err != nil {
					t.Fatal(res.err)
				}
				got := replacements(base.m.all(), res.m.all())
				total += len(got)
				for _, r := range got {
					t.Errorf("%s would be replaced: %s", r.Key, r.Why)
				}
			})
		}
	}
	t.Logf("stateful servers and volumes replaced across %d edits x %d directions: %d", len(edits), len(directions), total)
}

// TestReplacementsDetects shows the comparison can fail: a changed ForceNew
// input that is not ignored, and a resource that disappears, are reported.
func TestReplacementsDetects(t *testing.T) {
	typ := "hcloud:index/volume:Volume"
	before := []registration{
		{Type: typ, Name: "db-1-data", Inputs: resource.PropertyMap{"location": resource.NewStringProperty("fsn1")}},
		{Type: typ, Name: "db-2-data", Inputs: resource.PropertyMap{"location": resource.NewStringProperty("fsn1")}},
		{Type: "hcloud:index/server:Server", Name: "db-1", Inputs: resource.PropertyMap{"userData": resource.NewStringProperty("a")}, IgnoreChanges: []string{"userData"}},
	}
	after := []registration{
		{Type: typ, Name: "db-1-data", Inputs: resource.PropertyMap{"location": resource.NewStringProperty("nbg1")}},
		{Type: "hcloud:index/server:Server", Name: "db-1", Inputs: resource.PropertyMap{"userData": resource.NewStringProperty("b")}, IgnoreChanges: []string{"userData"}},
	}
	got := fmt.Sprint(replacements(before, after))
	for _, want := range []string{"db-1-data location changed", "db-2-data deleted"} {
		if !strings.Contains(got, want) {
			t.Errorf("replacements = %s, want it to report %q", got, want)
		}
	}
	if strings.Contains(got, "Server::db-1") {
		t.Errorf("replacements = %s: an ignored userData change is not a replacement", got)
	}
}

func otherProvider(p config.Provider) config.Provider {
	if p == config.Hetzner {
		return config.DigitalOcean
	}
	return config.Hetzner
}
