package plan

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// AnalyzeTick is how often the runner probes every host during an analysis
// stage (new access-log lines and the canary unit's state) and re-judges. One
// second keeps "canary crashed" to "rollback started" near a second while one
// probe costs a host a few milliseconds; a shorter pause is probed at its end.
const AnalyzeTick = time.Second

// MaxProbeLog bounds the log bytes one probe returns (64 MiB); the next probe
// reads on from there.
const MaxProbeLog = 64 << 20

// probeCommand is the analysis probe of one host, in one SSH round trip. $1 is
// the access-log offset to read from (-1: the window starts now, read
// nothing), $2 the canary unit's restart count at the stage's start (-1: take
// it now). A log rotated since the offset is read from its start. The output
// is ParseProbe's format: header lines, then "log" and the raw new bytes.
func probeCommand(log, unit string) string {
	return strings.Join([]string{
		"off=$1 base=$2",
		"test -r " + log + " || { echo 'cannot read " + log + " as '$(id -un)' (the deploy user needs read access for canary analysis)' >&2; exit 1; }",
		"size=$(stat -c %s " + log + ")",
		"if [ \"$off\" -lt 0 ]; then off=$size; elif [ \"$size\" -lt \"$off\" ]; then off=0; fi",
		"n=$((size-off)); [ $n -le " + strconv.Itoa(MaxProbeLog) + " ] || n=" + strconv.Itoa(MaxProbeLog),
		unitCheckFunc(unit),
		"if [ \"$base\" -lt 0 ]; then " + restartsNow(unit) + "; fi",
		"unit_check",
		"echo \"offset $off\"",
		"echo \"restarts $base\"",
		"if [ -n \"$bad\" ]; then",
		"  echo \"bad $bad\"",
		"  echo \"exited $(systemctl show -p ExecMainExitTimestamp --value --timestamp=us+utc " + unit + " 2>/dev/null)\"",
		"  journalctl -u " + unit + " -n " + strconv.Itoa(JournalLines) + " --no-pager 2>&1 | sed 's/^/journal /'",
		"fi",
		"echo log",
		"if [ $n -gt 0 ]; then tail -c +$((off+1)) " + log + " | head -c $n; fi",
	}, "\n")
}

// Probe is what one analysis probe saw on a host.
type Probe struct {
	// Offset is where Log starts in the access log (after rotation: 0).
	Offset int64
	// Restarts is the canary unit's restart count the stage started with.
	Restarts int
	// Bad says why the canary unit is not serving ("" if it is or systemd cannot tell).
	Bad string
	// Exited is when the unit's main process last exited (systemd's clock on
	// the host, µs); zero when unknown.
	Exited time.Time
	// Journal is the unit's recent log, when Bad.
	Journal string
	// Log is the access log from Offset on (may end mid-line).
	Log []byte
}

// ProbeArgs is the shell prefix that runs an AnalyzeSpec.ProbeCommand with its
// two arguments.
func ProbeArgs(offset int64, restarts int) string {
	return "set -- " + strconv.FormatInt(offset, 10) + " " + strconv.Itoa(restarts) + "\n"
}

// systemd's `--timestamp=us+utc` format.
const systemdTime = "Mon 2006-01-02 15:04:05.000000 MST"

// ParseProbe reads a probe's output.
func ParseProbe(out []byte) (Probe, error) {
	var p Probe
	var journal []string
	seen := map[string]bool{}
	for {
		i := bytes.IndexByte(out, '\n')
		if i < 0 {
			return p, fmt.Errorf("probe output: no \"log\" line after %q", strings.Join(keys(seen), ", "))
		}
		line := string(out[:i])
		out = out[i+1:]
		if line == "log" {
			p.Log = out
			break
		}
		key, val, _ := strings.Cut(line, " ")
		seen[key] = true
		var err error
		switch key {
		case "offset":
			p.Offset, err = strconv.ParseInt(val, 10, 64)
		case "restarts":
			p.Restarts, err = strconv.Atoi(val)
		case "bad":
			p.Bad = val
		case "exited":
			if val != "" {
				// Unknown on an old systemd (no --timestamp=): leave it zero.
				p.Exited, _ = time.Parse(systemdTime, val)
			}
		case "journal":
			journal = append(journal, val)
		default:
			return p, fmt.Errorf("probe output: unexpected line %q", line)
		}
		if err != nil {
			return p, fmt.Errorf("probe output: %s %q: expected a number", key, val)
		}
	}
	if !seen["offset"] || !seen["restarts"] {
		return p, fmt.Errorf("probe output: missing offset or restarts line")
	}
	p.Journal = strings.Join(journal, "\n")
	return p, nil
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
