package config_test

import (
	"testing"

	"github.com/belay-sh/belay/internal/shq/shqtest"
)

// TestHostileValuesRefused puts every hostile value into every config key that
// reaches a host's shell, unit names, paths or nginx (alone and after a valid
// prefix) and wants an error line naming that key.
func TestHostileValuesRefused(t *testing.T) {
	fields := []struct {
		path   string
		prefix string
		set    func(doc, string)
	}{
		{"belay:apps[0].name", "web", func(d doc, v string) { app(d, 0)["name"] = v }},
		{"belay:apps[0].healthPath", "/up", func(d doc, v string) { app(d, 0)["healthPath"] = v }},
		{"belay:apps[0].domains[0]", "www.example.com", func(d doc, v string) { app(d, 0)["domains"] = []any{v} }},
		{"belay:admin.deployUser", "deploy", func(d doc, v string) { obj(d, "admin")["deployUser"] = v }},
		{"belay:database.name", "app", func(d doc, v string) { obj(d, "database")["name"] = v }},
	}
	// Hostile only at a word's start: after a valid prefix they are plain characters.
	inertAfterPrefix := map[string]bool{"empty": true, "leading dash": true, "tilde": true, "dot dot": true}
	n := 0
	for _, f := range fields {
		for _, v := range shqtest.Values {
			for _, s := range []string{v.S, f.prefix + v.S} {
				if s != v.S && inertAfterPrefix[v.Name] {
					continue
				}
				d := valid()
				f.set(d, s)
				_, err := parse(t, d)
				if err == nil || findLine(err, f.path) == "" {
					t.Errorf("%s = %q (%s): Parse() = %v, want an error naming %s", f.path, s, v.Name, err, f.path)
					continue
				}
				n++
			}
		}
	}
	t.Logf("%d hostile config values refused", n)
}
