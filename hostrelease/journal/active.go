package journal

import (
	"strings"

	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/internal/shq"
)

// What an app host runs is where its `current` and `canary` links point and
// its journal. belay status (deploy's probe) and belay replace (which copies
// the running release and refuses during an unfinished rollout) both read it
// with ActiveLines and ParseActive, so the two never disagree on what a host
// runs.

// Active is what ActiveLines printed on one host.
type Active struct {
	// Current and Canary are the release ids the links point to ("" when none).
	Current, Canary string
	// Journal is the host's journal; nil when it has none.
	Journal *Record
}

// ActiveLines are shell lines that print current=, canary= and journal=
// (the journal on one line) for l. Read-only; the caller may add lines of
// its own before or after them.
func ActiveLines(l hostrelease.Layout) []string {
	return []string{
		"rel() { t=$(readlink \"$1\" 2>/dev/null) && basename \"$t\" || true; }",
		"echo \"current=$(rel " + shq.Quote(l.Current()) + ")\"",
		"echo \"canary=$(rel " + shq.Quote(l.Canary()) + ")\"",
		"echo \"journal=$(cat " + shq.Quote(Path(l)) + " 2>/dev/null | tr -d '\\n')\"",
	}
}

// ParseActive reads ActiveLines' key=value lines in out; other lines are
// passed over. A journal that does not parse is an error (the links are read
// all the same): a host whose journal cannot be read must not pass for one
// with no rollout under way.
func ParseActive(out string) (Active, error) {
	var a Active
	var jerr error
	for _, line := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(line, "=")
		v = strings.TrimSpace(v)
		switch k {
		case "current":
			a.Current = v
		case "canary":
			a.Canary = v
		case "journal":
			j, err := Parse([]byte(v))
			if err != nil {
				jerr = err
				continue
			}
			a.Journal = j
		}
	}
	return a, jerr
}
