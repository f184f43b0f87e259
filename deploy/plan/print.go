package plan

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Print writes the plan for humans: one block per step with its hosts and the
// exact commands, as `belay deploy --dry-run` shows it.
func Print(w io.Writer, p *Plan) {
	if p.Release != "" {
		fmt.Fprintf(w, "Plan: %s %s %s on %s\n", p.Kind, p.App, p.Release, strings.Join(p.Hosts, ", "))
	} else {
		fmt.Fprintf(w, "Plan: %s %s on %s\n", p.Kind, p.App, strings.Join(p.Hosts, ", "))
	}
	fmt.Fprintf(w, "Strategy: %s\n", p.Strategy)
	if p.PausedAfter != "" {
		fmt.Fprintf(w, "Stops after the %s stage with the canary serving it; deploy the same release again to continue, or roll back.\n", p.PausedAfter)
	}
	for _, s := range p.Steps {
		fmt.Fprintf(w, "\n%s  %s  [%s]  timeout %s", s.ID, s.Title, strings.Join(s.Hosts, " "), time.Duration(s.Timeout))
		if s.Traffic != "" {
			fmt.Fprintf(w, "  canary traffic after: %s", s.Traffic)
		}
		fmt.Fprintln(w)
		if s.Pipeline != "" {
			fmt.Fprintf(w, "    pipeline %s: each host goes on to its next %s step without waiting for the others\n", s.Pipeline, s.Pipeline)
		}
		if s.Stdin != "" {
			fmt.Fprintf(w, "    stdin: %s\n", s.Stdin)
		}
		if s.Skip != "" {
			fmt.Fprintf(w, "    skip if: %s\n", s.Skip)
		}
		if a := s.Analyze; a != nil {
			fmt.Fprintf(w, "    local: every %s read each host's new access-log lines and canary unit state, compare canary with stable; roll back at once on a failed verdict or a crashed canary, pass after %s (up to %s for enough canary requests); probe args: log offset, canary restarts at the stage's start\n",
				time.Duration(a.Tick), time.Duration(a.Pause), time.Duration(a.MaxWait))
			indent(w, "    probe: ", a.ProbeCommand) // $1 log offset, $2 canary restarts at the stage's start
		}
		if s.Command != "" {
			indent(w, "    $ ", s.Command)
		}
	}
}

func indent(w io.Writer, first, text string) {
	for i, line := range strings.Split(text, "\n") {
		if i == 0 {
			fmt.Fprintf(w, "%s%s\n", first, line)
		} else {
			fmt.Fprintf(w, "%s%s\n", strings.Repeat(" ", len(first)), line)
		}
	}
}

// JSON renders the plan as indented JSON (`belay deploy --dry-run --json`).
func JSON(p *Plan) ([]byte, error) {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
