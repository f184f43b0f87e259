package safe

import (
	"strings"
	"testing"

	"github.com/belay-sh/belay/internal/shq/shqtest"
)

func TestAccepted(t *testing.T) {
	for _, s := range []string{"shop", "shop-1", "db-standby", "a", strings.Repeat("a", MaxNameLen)} {
		if err := Name(s); err != nil {
			t.Errorf("Name(%q): %v", s, err)
		}
	}
	for _, s := range []string{"/", "/up", "/healthz", "/api/v1/health.json", "/~user/_h-1", "/a%20b", "/%E2%9C%93"} {
		if err := HealthPath(s); err != nil {
			t.Errorf("HealthPath(%q): %v", s, err)
		}
	}
	for _, s := range []string{"belay", "main_1", "Prod-2"} {
		if err := Stanza(s); err != nil {
			t.Errorf("Stanza(%q): %v", s, err)
		}
	}
}

// TestHostileRefused: every hostile value, alone and after a valid prefix, is
// refused by every rule, and the error quotes the value.
func TestHostileRefused(t *testing.T) {
	rules := []struct {
		name   string
		check  func(string) error
		prefix string
	}{
		{"Name", Name, "shop"},
		{"HealthPath", HealthPath, "/up"},
		{"Stanza", Stanza, "belay"},
	}
	n := 0
	for _, r := range rules {
		for _, v := range shqtest.Values {
			for _, s := range []string{v.S, r.prefix + v.S} {
				if s != v.S && inertAfterPrefix[v.Name] {
					continue
				}
				n++
				err := r.check(s)
				if err == nil {
					t.Errorf("%s(%q) (%s) accepted", r.name, s, v.Name)
				} else if s != "" && !strings.Contains(err.Error(), "expected") {
					t.Errorf("%s(%q): %v, want the expectation stated", r.name, s, err)
				}
			}
		}
	}
	t.Logf("%d hostile values refused", n)
}

// inertAfterPrefix are hostile only at a word's start (or empty): after a
// valid prefix they are ordinary name or path characters.
var inertAfterPrefix = map[string]bool{"empty": true, "leading dash": true, "tilde": true, "dot dot": true}

func TestOtherRefused(t *testing.T) {
	for _, s := range []string{"Shop", "1shop", "shop-", "-shop", "sh_op", "sh.op", strings.Repeat("a", MaxNameLen+1)} {
		if Name(s) == nil {
			t.Errorf("Name(%q) accepted", s)
		}
	}
	for _, s := range []string{"up", "", "/up?x", "/%zz", "/%4", "/a:b", "/a@b", "/a+b", "/a,b", "/a=b", "/" + strings.Repeat("a", MaxHealthPathLen)} {
		if HealthPath(s) == nil {
			t.Errorf("HealthPath(%q) accepted", s)
		}
	}
	if err := HealthPath("/up;id"); err == nil || !strings.Contains(err.Error(), `"/up;id", expected a plain URL path like /healthz`) {
		t.Errorf("HealthPath(/up;id) = %v", err)
	}
}
