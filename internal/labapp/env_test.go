package labapp

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestEnvEndpoint(t *testing.T) {
	a := New(Config{Release: "v1", Slot: "canary"}, func(string) {})
	a.lookupEnv = func(k string) (string, bool) {
		v, ok := map[string]string{"LAB_COLOR": "blue", "DATABASE_URL": "postgres://secret"}[k]
		return v, ok
	}
	for _, tc := range []struct {
		key  string
		code int
		body string
	}{
		{"LAB_COLOR", 200, "LAB_COLOR=blue\n"},
		{"LAB_NONE", 404, "LAB_NONE is not set"},
		{"DATABASE_URL", 400, "expected a LAB_* name"},
	} {
		rec := httptest.NewRecorder()
		a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/env?key="+tc.key, nil))
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.body) || rec.Header().Get(HeaderRelease) != "v1" {
			t.Errorf("%s: %d %q", tc.key, rec.Code, rec.Body.String())
		}
		if strings.Contains(rec.Body.String(), "secret") {
			t.Errorf("%s: leaked DATABASE_URL", tc.key)
		}
	}
}

func TestReleaseCommand(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		code int
		want string
	}{
		{map[string]string{"BELAY_RELEASE": "v2", "BELAY_SLOT": "release", "DATABASE_URL": "postgres://x"}, 0, "release=v2 slot=release DATABASE_URL set"},
		{map[string]string{"LAB_RELEASE_EXIT": "3"}, 3, "DATABASE_URL unset"},
		{map[string]string{"LAB_RELEASE_EXIT": "x"}, 2, `LAB_RELEASE_EXIT="x"`},
	} {
		var out bytes.Buffer
		if code := ReleaseCommand(func(k string) string { return tc.env[k] }, &out); code != tc.code || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%v: exit %d, %q", tc.env, code, out.String())
		}
		if strings.Contains(out.String(), "postgres://") {
			t.Errorf("printed DATABASE_URL's value")
		}
	}
}

func TestEnvFailsHealth(t *testing.T) {
	a := New(Config{Release: "v1", Slot: "canary"}, func(string) {})
	for env, code := range map[string]int{"fail": 500, "": 200, "ok": 200} {
		a.lookupEnv = func(k string) (string, bool) { return env, k == "LAB_HEALTH" && env != "" }
		rec := httptest.NewRecorder()
		a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, HealthPath, nil))
		if rec.Code != code {
			t.Errorf("LAB_HEALTH=%q: %d, want %d", env, rec.Code, code)
		}
	}
}
