package main

import (
	"runtime/debug"
	"testing"
)

func TestBuildVersion(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, tc := range []struct {
		x    string
		info *debug.BuildInfo
		want string
	}{
		{"v1.0.0", &debug.BuildInfo{}, "v1.0.0"},
		{"", &debug.BuildInfo{Main: debug.Module{Version: "v0.4.2"}}, "v0.4.2"},
		{"", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("vcs.revision", "0123456789abcdef", "vcs.modified", "true", "vcs.time", "2026-12-06T02:00:00Z")}, "(devel) 0123456789ab+dirty 2026-12-06T02:00:00Z"},
		{"", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "(devel), no VCS revision"},
	} {
		if got := buildVersion(tc.x, tc.info, true); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	if got := buildVersion("", nil, false); got == "dev" || got == "" {
		t.Errorf("no build info: %q", got)
	}
}
