package roles

import (
	"strings"
	"testing"

	"github.com/belay-sh/belay/internal/shq/shqtest"
)

// TestHostileAppValuesRefused: Render refuses every hostile health path and
// app name (they reach keepalived's check script, unit names, paths and the
// restic script), naming the field, before anything is rendered.
func TestHostileAppValuesRefused(t *testing.T) {
	inertAfterPrefix := map[string]bool{"empty": true, "leading dash": true, "tilde": true, "dot dot": true}
	fields := []struct {
		field  string
		prefix string
		set    func(*Spec, string)
	}{
		{"Spec.App.HealthPath", "/healthz", func(s *Spec, v string) { s.App.HealthPath = v }},
		{"Spec.App.Name", "web", func(s *Spec, v string) { s.App.Name = v }},
	}
	n := 0
	for _, f := range fields {
		for _, v := range shqtest.Values {
			for _, val := range []string{v.S, f.prefix + v.S} {
				if val != v.S && inertAfterPrefix[v.Name] {
					continue
				}
				s := abAppSpec(t)
				f.set(s, val)
				out, err := Render(s)
				if err == nil || !strings.Contains(err.Error(), f.field) {
					t.Errorf("%s = %q (%s): Render() = %v, want an error naming %s", f.field, val, v.Name, err, f.field)
				}
				if out != nil {
					t.Errorf("%s = %q: Render returned output with its error", f.field, val)
				}
				n++
			}
		}
	}
	t.Logf("%d hostile role values refused", n)
}
