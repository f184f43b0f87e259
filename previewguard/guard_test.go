package previewguard

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func load(t *testing.T, name string) *Preview {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	p, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name       string
		file       string
		allow      []string
		wantOK     bool
		wantBlock  []string // names of findings not allowed
		wantUnused []string
	}{
		{"add an app: creates and updates only; app server replacement is not stateful", "safe-add-app.json", nil, true, nil, nil},
		{"replacing the database is blocked", "replace-db.json", nil, false, []string{"db-1", "db-2", "backup-data", "shop-vip", "backup-ip"}, nil},
		{"allow by name and URN", "replace-db.json", []string{"db-1", "urn:pulumi:prod::belay::belay:index:Belay$belay:index:Database$hcloud:index/server:Server::db-2"}, false, []string{"backup-data", "shop-vip", "backup-ip"}, nil},
		{"everything allowed", "replace-db.json", []string{"db-1", "db-2", "backup-data", "shop-vip", "backup-ip"}, true, nil, nil},
		{"resizing data nodes by a plain up is blocked (both powered off at once); the monitor and a labels update are not", "resize-db.json", nil, false, []string{"db-1", "db-2", "db-3"}, nil},
		{"belay db resize allows the one node it targets", "resize-db.json", []string{"db-2"}, false, []string{"db-1", "db-3"}, nil},
		{"a typo allows nothing and is reported", "replace-db.json", []string{"db-l"}, false, []string{"db-1", "db-2", "backup-data", "shop-vip", "backup-ip"}, []string{"db-l"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := Check(load(t, tc.file), tc.allow)
			if v.OK != tc.wantOK {
				t.Errorf("OK = %v, want %v (%+v)", v.OK, tc.wantOK, v.Findings)
			}
			var blocked []string
			for _, f := range v.Findings {
				if !f.Allowed {
					blocked = append(blocked, f.Name)
				}
			}
			if !reflect.DeepEqual(blocked, tc.wantBlock) {
				t.Errorf("blocked %v, want %v", blocked, tc.wantBlock)
			}
			if !reflect.DeepEqual(v.UnusedAllows, tc.wantUnused) {
				t.Errorf("unused allows %v, want %v", v.UnusedAllows, tc.wantUnused)
			}
		})
	}
}

func TestFindingDetails(t *testing.T) {
	v := Check(load(t, "replace-db.json"), nil)
	by := map[string]Finding{}
	for _, f := range v.Findings {
		by[f.Name] = f
	}
	if got := by["db-1"]; got.Kind != KindServer || !reflect.DeepEqual(got.Reasons, []string{"userData"}) || got.Type != "hcloud:index/server:Server" {
		t.Errorf("db-1 = %+v, want a stateful server replaced because of userData", got)
	}
	// No replaceReasons: the detailed diff's *-replace entries name the cause.
	if got := by["db-2"].Reasons; !reflect.DeepEqual(got, []string{"image"}) {
		t.Errorf("db-2 reasons %v, want [image]", got)
	}
	if got := by["backup-data"]; got.Kind != KindVolume || got.Op != "delete" {
		t.Errorf("backup-data = %+v, want a deleted data volume", got)
	}
	if got := by["shop-vip"].Hint; !strings.Contains(got, "pulumi state delete") {
		t.Errorf("shop-vip hint %q, want the state delete that keeps the address assigned", got)
	}
	if _, ok := by["shop-3"]; ok {
		t.Error("deleting an app server (replicas lowered) is not a stateful finding")
	}
}

func TestParseRefusesOtherDocuments(t *testing.T) {
	for name, doc := range map[string]string{
		"not json":   "Previewing update (prod)",
		"no steps":   `{"config": {}}`,
		"wrong type": `{"steps": {}}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse(strings.NewReader(doc)); err == nil || !strings.Contains(err.Error(), "pulumi preview --json") {
				t.Errorf("Parse: %v, want an error naming what was expected", err)
			}
		})
	}
}
