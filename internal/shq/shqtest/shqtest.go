// Package shqtest is the table of hostile values every field that reaches a
// shell is tried with, and a harness that runs a built command with a real
// `sh -c` in a scratch directory where an injection leaves a mark.
package shqtest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Mark is the file a successful injection creates in the working directory.
const Mark = "PWNED"

// Value is one hostile input.
type Value struct {
	Name string
	S    string
}

// Values are the hostile inputs: each one, if it escaped its word, would create
// Mark in the working directory (or expand, split or redirect visibly).
var Values = []Value{
	{"semicolon", "x;touch " + Mark},
	{"command substitution", "$(touch " + Mark + ")"},
	{"backticks", "`touch " + Mark + "`"},
	{"single quote breakout", "x'; touch " + Mark + "; echo '"},
	{"double quote breakout", `x"; touch ` + Mark + `; echo "`},
	{"escaped single quote", `x'\''; touch ` + Mark + `; '`},
	{"newline", "x\ntouch " + Mark},
	{"carriage return", "x\rtouch " + Mark},
	{"tab", "x\ttouch " + Mark},
	{"glob star", "*"},
	{"glob question", "?" + Mark[1:]},
	{"glob class", "[P]WNED"},
	{"brace expansion", "{a,b}"},
	{"tilde", "~root"},
	{"parameter", "$HOME"},
	{"leading dash", "-rf"},
	{"leading double dash", "--output=" + Mark},
	{"space", "a b"},
	{"ampersand", "x&touch " + Mark},
	{"and list", "x&&touch " + Mark},
	{"pipe", "x|touch " + Mark},
	{"redirect out", ">" + Mark},
	{"redirect append", "x>>" + Mark},
	{"redirect in", "<" + Mark},
	{"comment", "#x"},
	{"backslash", `x\`},
	{"lone single quote", "'"},
	{"lone double quote", `"`},
	{"query", "/up?a=1&b=2"},
	{"empty", ""},
	{"non-ascii", "caf\u00e9"},
	{"dot dot", "../../etc"},
}

// Run runs script with `sh -c` in a fresh temporary directory and returns its
// stdout. It fails t if the script left Mark behind (an injection ran) or
// exited non-zero (a broken quote is a syntax error).
func Run(t testing.TB, script string) string {
	t.Helper()
	out, errOut, err := RunInput(t, script, nil)
	if err != nil {
		t.Errorf("sh -c %q: %v: %s", script, err, errOut)
	}
	return out
}

// RunInput runs script like Run with stdin, and returns its stdout, stderr and
// exit error instead of judging them: for commands whose refusals (a non-zero
// exit) are part of what is tested. An injection (Mark left behind) still
// fails t.
func RunInput(t testing.TB, script string, stdin []byte) (stdout, stderr string, err error) {
	t.Helper()
	dir := t.TempDir()
	// A file a glob would match, so an unquoted glob shows in the output.
	if err := os.WriteFile(filepath.Join(dir, "GLOBBED"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if _, serr := os.Stat(filepath.Join(dir, Mark)); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("injection: %s exists after sh -c %q", Mark, script)
	}
	return out.String(), errb.String(), err
}
