package shq_test

import (
	"strings"
	"testing"

	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/internal/shq/shqtest"
)

func TestQuoteBare(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"shop", "shop"},
		{"/srv/shop/releases/v1.2", "/srv/shop/releases/v1.2"},
		{"belay-app@shop.service", "belay-app@shop.service"},
		{"--stanza=belay", "--stanza=belay"},
		{"http://127.0.0.1:3000/up", "http://127.0.0.1:3000/up"},
		{"", "''"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"~", "'~'"},
		{"*", "'*'"},
	} {
		if got := shq.Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestQuoteHostile runs every hostile value through a real sh: it must come
// back byte for byte as one word and run nothing.
func TestQuoteHostile(t *testing.T) {
	for _, v := range shqtest.Values {
		t.Run(v.Name, func(t *testing.T) {
			out := shqtest.Run(t, "printf '%s' "+shq.Quote(v.S))
			if out != v.S {
				t.Errorf("sh read %q as %q", v.S, out)
			}
		})
	}
}

// TestJoinHostile: argv made of every hostile value at once splits back into
// exactly that argv.
func TestJoinHostile(t *testing.T) {
	var argv []string
	for _, v := range shqtest.Values {
		argv = append(argv, v.S)
	}
	out := shqtest.Run(t, "printf '%s\\000' "+shq.Join(argv...))
	got := strings.Split(strings.TrimSuffix(out, "\x00"), "\x00")
	if len(got) != len(argv) {
		t.Fatalf("%d words back, want %d: %q", len(got), len(argv), got)
	}
	for i := range argv {
		if got[i] != argv[i] {
			t.Errorf("word %d: %q, want %q", i, got[i], argv[i])
		}
	}
}

// TestQuoteNested: a quoted value inside a script that is itself quoted for
// `sh -c` (the lease's flock, sudo over SSH) still arrives intact.
func TestQuoteNested(t *testing.T) {
	for _, v := range shqtest.Values {
		inner := "printf '%s' " + shq.Quote(v.S)
		out := shqtest.Run(t, "sh -c "+shq.Quote(inner))
		if out != v.S {
			t.Errorf("%s: nested sh read %q as %q", v.Name, v.S, out)
		}
	}
}
