package main

import (
	"strings"
	"testing"
)

func TestBadInput(t *testing.T) {
	inv := "../labinv/testdata/" + "inventory.json"
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--inventory", inv}, "--shop: required"},
		{[]string{"--inventory", inv, "--shop", "a.test", "--workers", "0"}, "--workers 0"},
		{[]string{"--inventory", inv, "--shop", "a.test", "--duration", "0s"}, "MaxDuration 0s"},
		{[]string{"--inventory", inv, "--shop", "a.test", "--slow", "1", "--slow-path", "x"}, `path "x"`},
		{[]string{"--inventory", inv, "--shop", "a.test", "--app", "nope"}, `app "nope": not in the inventory`},
		{[]string{"--inventory", "/nonexistent.json", "--shop", "a.test"}, "nonexistent.json"},
	}
	for _, tc := range tests {
		err := run(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("load %s: %v, want an error containing %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}
