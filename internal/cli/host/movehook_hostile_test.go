package host

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/shq/shqtest"
)

// TestMoveHookRefusesHostileShops: the sudoers line on cell servers is
// `belay host move-hook APP export|import *`, so the deploy user chooses
// every word after the verb. Each hostile value (alone, after a valid shop,
// or as extra words and flags) is refused before any command runs.
func TestMoveHookRefusesHostileShops(t *testing.T) {
	// After a valid shop these values make a valid domain ("a.test-rf") or none at all.
	inertAfterPrefix := map[string]bool{"empty": true, "leading dash": true}
	var cases [][]string
	for _, v := range shqtest.Values {
		for _, verb := range []string{"export", "import"} {
			cases = append(cases, []string{"shop", verb, v.S}, []string{"shop", verb, "a.test", v.S})
			if !inertAfterPrefix[v.Name] {
				cases = append(cases, []string{"shop", verb, "a.test" + v.S})
			}
		}
	}
	cases = append(cases,
		[]string{"shop", "export", "-x.test"},
		[]string{"shop", "export", "--", "-x.test"},
		[]string{"shop", "export", "../../etc/passwd"},
		[]string{"shop", "export", "a.test", "--unit=x"},
		[]string{"shop", "export", "--app", "evil", "a.test"},
		[]string{"shop", "export"},
		[]string{"shop", "export", ""},
		[]string{"shop", "export", "A.TEST"},
		[]string{"shop", "export", "*.test"},
	)
	for _, args := range cases {
		ran := false
		var out bytes.Buffer
		f := cli.New()
		f.IO = cli.IO{In: strings.NewReader(""), Out: &out, ErrOut: &out}
		cmd := NewCmdMoveHook(f, func(context.Context, []string) error { ran = true; return nil })
		cmd.SetArgs(args)
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		if err := cmd.Execute(); err == nil || ran {
			t.Errorf("move-hook %q: err %v, ran %v; want refused before running", args, err, ran)
		}
	}
	// And the valid form runs, so the refusals above mean something.
	var got []string
	f := cli.New()
	cmd := NewCmdMoveHook(f, func(_ context.Context, argv []string) error { got = argv; return nil })
	cmd.SetArgs([]string{"shop", "import", "acme.example.com"})
	if err := cmd.Execute(); err != nil || len(got) == 0 || got[len(got)-1] != "acme.example.com" {
		t.Errorf("valid move-hook: %v, argv %q", err, got)
	}
	t.Logf("%d hostile move-hook invocations refused", len(cases))
}
