package cells

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/router/admin"
)

func TestReadDomains(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
		err      []string // substrings of the error
	}{
		{name: "comments and blanks", in: "# shops of March\n\na.test\n  B.Test.  # uppercase, trailing dot\n\tc.test\n",
			want: []string{"a.test", "b.test", "c.test"}},
		{name: "repeats assign once", in: "a.test\nb.test\nA.test\n", want: []string{"a.test", "b.test"}},
		{name: "bad line named", in: "a.test\n# ok\nbad_shop.test\nc.test\n*.test\n",
			err: []string{"2 bad domains", "list:3: \"bad_shop.test\"", "list:5: \"*.test\"", "nothing assigned"}},
		{name: "injection", in: "a.test'; DROP TABLE x; --\n", err: []string{"list:1:"}},
		{name: "two on a line", in: "a.test b.test\n", err: []string{"list:1:"}},
		{name: "empty", in: "\n# nothing\n", err: []string{"list: no domain"}},
		{name: "too many", in: strings.Repeat("a.test\n", admin.MaxBatch+1), err: []string{"more than 10000 shops (line 10001)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadDomains(strings.NewReader(tc.in), "list")
			if tc.err != nil {
				if err == nil {
					t.Fatalf("accepted: %v", got)
				}
				for _, s := range tc.err {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q: does not say %q", err, s)
					}
				}
				return
			}
			if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v %v, want %v", got, err, tc.want)
			}
		})
	}
}

func TestReadDomainsFullBatch(t *testing.T) {
	var b strings.Builder
	for i := 0; i < admin.MaxBatch; i++ {
		fmt.Fprintf(&b, "shop-%d.example.com\n", i)
	}
	got, err := ReadDomains(strings.NewReader(b.String()), "list")
	if err != nil || len(got) != admin.MaxBatch {
		t.Fatalf("%d domains, %v", len(got), err)
	}
}

// TestAssignRefusesBeforeConnecting: bad input is refused before the
// inventory is even loaded (nothing reaches a router).
func TestAssignRefusesBeforeConnecting(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.txt")
	bad := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(good, []byte("a.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("a.test\nb.test\nnot a domain\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		o    assignOptions
		want string
	}{
		"no shop":      {assignOptions{Cell: "c1"}, "no shop"},
		"both":         {assignOptions{Cell: "c1", FromFile: good, Domains: []string{"b.test"}}, "not both"},
		"bad cell":     {assignOptions{Cell: "C1", Domains: []string{"a.test"}}, "--cell"},
		"bad arg":      {assignOptions{Cell: "c1", Domains: []string{"a.test", "x_y.test"}}, "argument 2: \"x_y.test\""},
		"bad line":     {assignOptions{Cell: "c1", FromFile: bad}, bad + ":3: \"not a domain\""},
		"missing file": {assignOptions{Cell: "c1", FromFile: filepath.Join(dir, "nope")}, "--from-file"},
		"stdin":        {assignOptions{Cell: "c1", FromFile: "-", Stdin: strings.NewReader("ok.test\nBAD!\n")}, "stdin:2:"},
	} {
		t.Run(name, func(t *testing.T) {
			o := tc.o
			o.Options = &Options{App: "shop", IO: cli.IO{}, Load: func(string) (*inventory.Inventory, error) {
				t.Fatal("the inventory was loaded for a bad request")
				return nil, nil
			}}
			err := runAssign(context.Background(), &o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v: want %q", err, tc.want)
			}
		})
	}
}
