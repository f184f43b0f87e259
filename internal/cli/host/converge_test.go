package host

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/belay-sh/belay/hostconverge"
	"github.com/belay-sh/belay/internal/cli"
)

// TestConvergeCommandPrintsJSONAndFails: a host without the converge key
// (as any refused bundle) prints the reason as JSON and exits non-zero.
func TestConvergeCommandPrintsJSONAndFails(t *testing.T) {
	var out bytes.Buffer
	o := &ConvergeOptions{
		IO:   cli.IO{In: strings.NewReader(`{"payload":"e30=","signature":"AAAA"}`), Out: &out, ErrOut: &bytes.Buffer{}},
		Host: hostconverge.Options{Root: t.TempDir(), Hostname: "app-1"},
	}
	err := RunConverge(t.Context(), o)
	if err == nil || !strings.Contains(err.Error(), "converge key") {
		t.Fatalf("err = %v, expected the missing converge key named", err)
	}
	var res hostconverge.Result
	if jerr := json.Unmarshal(out.Bytes(), &res); jerr != nil || !strings.Contains(res.Error, "converge key") || res.Applied {
		t.Errorf("stdout %q: %v", out.String(), jerr)
	}
}
