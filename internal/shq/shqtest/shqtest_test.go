package shqtest

import (
	"fmt"
	"testing"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Errorf(format string, a ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, a...))
}

// TestRunCatchesInjection: the harness must see an unquoted value run.
func TestRunCatchesInjection(t *testing.T) {
	for _, v := range []string{"x;touch " + Mark, "$(touch " + Mark + ")", "x&touch " + Mark, ">" + Mark} {
		r := &recorder{TB: t}
		Run(r, "printf '%s' "+v)
		if len(r.errs) == 0 {
			t.Errorf("unquoted %q: no injection reported", v)
		}
	}
	r := &recorder{TB: t}
	if out := Run(r, "printf '%s' *"); out != "GLOBBED" || len(r.errs) != 0 {
		t.Errorf("unquoted glob: out %q errs %v, want GLOBBED (the harness's glob target)", out, r.errs)
	}
}
