package hostspec

import (
	"reflect"
	"strings"
	"testing"

	"github.com/belay-sh/belay/roles"
)

// TestLabStatefulHostsGetTheSecondDisk: in the lab exactly the hosts a cloud
// gives a volume get one, on LabDataDevice with the cloud's mounts, and their
// rendered user data mounts it at boot; the others render no volume step.
func TestLabStatefulHostsGetTheSecondDisk(t *testing.T) {
	cfg := exampleConfig(t)
	specs, topo := build(t, cfg, true, nil)
	want := map[string]roles.DataVolume{
		"db-1":       {Device: LabDataDevice, MountPoint: PgHome},
		"db-2":       {Device: LabDataDevice, MountPoint: PgHome},
		"db-standby": {Device: LabDataDevice, MountPoint: PgHome},
		"backup":     {Device: LabDataDevice, MountPoint: BackupMount, Binds: []string{roles.PgBackRestRepo, ResticRepos}},
	}
	if len(DataMounts(cfg, topo)) != len(want) {
		t.Errorf("DataMounts: %d hosts, want %d", len(DataMounts(cfg, topo)), len(want))
	}
	for _, h := range topo.Hosts {
		s := specs[h.Name]
		ud, err := roles.Render(s)
		if err != nil {
			t.Fatalf("%s: Render: %v", h.Name, err)
		}
		w, stateful := want[h.Name]
		switch {
		case stateful && (s.DataVolume == nil || !reflect.DeepEqual(*s.DataVolume, w)):
			t.Errorf("%s: DataVolume = %+v, want %+v", h.Name, s.DataVolume, w)
		case !stateful && s.DataVolume != nil:
			t.Errorf("%s: DataVolume = %+v, want none (stateless host)", h.Name, s.DataVolume)
		}
		if got := strings.Contains(string(ud), LabDataDevice); got != stateful {
			t.Errorf("%s: user data names %s: %v, want %v", h.Name, LabDataDevice, got, stateful)
		}
	}
	// A cloud Env leaves DataVolumes to the caller (components chooses the provider's device).
	if env, err := DefaultEnv(cfg, topo, false); err != nil || env.DataVolumes != nil {
		t.Errorf("cloud DefaultEnv: DataVolumes = %v, %v; want none", env.DataVolumes, err)
	}
}
