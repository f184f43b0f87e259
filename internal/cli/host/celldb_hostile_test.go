package host

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/belay-sh/belay/celldb"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/shq/shqtest"
)

// TestCellDBRefusesHostileWords: every word of `belay host cell-db` is
// data (flags are not parsed); a hostile verb or database, extra words or
// options are refused before any command runs.
func TestCellDBRefusesHostileWords(t *testing.T) {
	var cases [][]string
	for _, v := range shqtest.Values {
		cases = append(cases, []string{"dump", v.S}, []string{v.S, "shop_c2"}, []string{"dump", "shop_c2" + v.S}, []string{"dump", "shop_c2", v.S})
	}
	cases = append(cases,
		[]string{"dump", "postgres"}, []string{"reset", "template1"}, []string{"restore", "pg_auto_failover"},
		[]string{"dump", "--", "shop_c2"}, []string{"dump", "-d", "shop_c2"}, []string{"--help"}, []string{"dump", "--help"},
		[]string{"dump", "/var/lib/postgresql"}, []string{"dump"}, []string{}, []string{"DUMP", "shop_c2"}, []string{"dump", "SHOP_C2"},
	)
	for _, args := range cases {
		if len(args) == 2 && args[0] == "dump" && args[1] == "shop_c2" {
			continue // a value that is empty after the prefix leaves the valid form
		}
		ran := false
		var out bytes.Buffer
		f := cli.New()
		f.IO = cli.IO{In: strings.NewReader(""), Out: &out, ErrOut: &out}
		cmd := NewCmdCellDB(f, func(ctx context.Context, o *celldb.HostOptions) error {
			o.Exec = func(context.Context, []string, io.Reader, io.Writer) error { ran = true; return nil }
			return celldb.RunHost(ctx, o)
		})
		cmd.SetArgs(args)
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		if err := cmd.Execute(); err == nil || ran {
			t.Errorf("cell-db %q: err %v, ran %v; want refused before running", args, err, ran)
		}
	}
	// The valid form runs, so the refusals above mean something.
	var argv [][]string
	f := cli.New()
	f.IO = cli.IO{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard}
	cmd := NewCmdCellDB(f, func(ctx context.Context, o *celldb.HostOptions) error {
		o.Exec = func(_ context.Context, a []string, _ io.Reader, w io.Writer) error {
			argv = append(argv, a)
			io.WriteString(w, "1\n")
			return nil
		}
		return celldb.RunHost(ctx, o)
	})
	cmd.SetArgs([]string{"dump", "shop_c2"})
	if err := cmd.Execute(); err != nil || len(argv) == 0 || !strings.Contains(strings.Join(argv[len(argv)-1], " "), "pg_dump -Fc --no-owner --no-privileges -d shop_c2") {
		t.Errorf("valid cell-db dump: %v, argv %q", err, argv)
	}
}
