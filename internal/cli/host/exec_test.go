package host

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/belay-sh/belay/internal/cli"
)

func TestExecArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		app  string
		argv []string
	}{
		{[]string{"shop", "--", "id", "-un"}, "shop", []string{"id", "-un"}},
		{[]string{"shop", "ls", "-la", "--help"}, "shop", []string{"ls", "-la", "--help"}},
		{[]string{"shop", "--", "--", "x"}, "shop", []string{"--", "x"}},
	} {
		var got *ExecOptions
		f := &cli.Factory{IO: cli.IO{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}}
		cmd := NewCmdExec(f, func(o *ExecOptions) error { got = o; return nil })
		cmd.SetArgs(tc.args)
		if err := cmd.Execute(); err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if got.App != tc.app || !reflect.DeepEqual(got.Argv, tc.argv) {
			t.Errorf("%q: app %q argv %q, want %q %q", tc.args, got.App, got.Argv, tc.app, tc.argv)
		}
	}
}
