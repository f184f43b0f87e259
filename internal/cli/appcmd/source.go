// Package appcmd holds the commands that look into a running app: `belay logs`
// (journald of the app's units and its nginx access log, from every app host,
// merged by time) and `belay exec` (one command as the app user, in the
// current release, with the app's environment). Remote commands are built
// here as data by pure functions and quoted by shq; sshx runs them.
package appcmd

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/roles"
)

// Line is one log line from one host.
type Line struct {
	Time time.Time `json:"time"`
	Host string    `json:"host"`
	// Cell is the host's cell, for an app with cells.
	Cell string `json:"cell,omitempty"`
	// Source is "stable" or "canary" (the app's units in journald) or "nginx"
	// (the app's access log).
	Source  string `json:"source"`
	Message string `json:"message"`
}

// Query is what to read from each host.
type Query struct {
	App    string
	Follow bool
	// Since, when set, starts at that time; else the last Lines of each source.
	Since time.Time
	Lines int
}

// Source is one log on a host: the command that prints it and its parser.
type Source struct {
	Name    string
	Command string
	// Parse turns one output line into a Line (Host unset); ok=false skips it.
	Parse func(raw string) (Line, bool)
}

// Sources lists the logs of an app on one of its hosts. The deploy user reads
// both without root: journald as a member of systemd-journal (read-only), the
// access log through roles.AppLogDir (0750 root:<deploy user>). The app's
// environment file (its secrets) is never read.
func Sources(q Query) []Source {
	return []Source{
		{Name: "journal", Command: journalCommand(q), Parse: parseJournal},
		{Name: "nginx", Command: accessCommand(q), Parse: parseAccess},
	}
}

func journalCommand(q Query) string {
	argv := []string{"journalctl", "--no-pager", "--quiet", "-o", "json",
		"--output-fields=MESSAGE,_SYSTEMD_UNIT,SYSLOG_IDENTIFIER",
		"-u", roles.AppUnit(q.App), "-u", roles.CanaryUnit(q.App)}
	if !q.Since.IsZero() {
		argv = append(argv, "--since", "@"+strconv.FormatInt(q.Since.Unix(), 10))
	} else {
		argv = append(argv, "-n", strconv.Itoa(q.Lines))
	}
	if q.Follow {
		argv = append(argv, "--follow")
	}
	return shq.Join(argv...)
}

// accessCommand prints the access log: the last Lines, or (with Since) the
// rotated and current files whole, filtered locally by time; then follows it
// across rotations (tail -F).
func accessCommand(q Query) string {
	log := roles.AppAccessLog(q.App)
	if q.Since.IsZero() {
		argv := []string{"tail", "-n", strconv.Itoa(q.Lines)}
		if q.Follow {
			argv = append(argv, "-F")
		}
		return shq.Join(append(argv, log)...)
	}
	// Yesterday's file too: --since may reach back past the last rotation.
	cmd := "{ cat " + shq.Quote(log+".1") + " 2>/dev/null; cat " + shq.Quote(log) + "; }"
	if q.Follow {
		cmd = "{ cat " + shq.Quote(log+".1") + " 2>/dev/null; " + shq.Join("tail", "-n", "+1", "-F", log) + "; }"
	}
	return cmd
}

// journalEntry is the part of journalctl's JSON output logs shows. MESSAGE is
// a string, or an array of bytes when it is not valid UTF-8.
type journalEntry struct {
	Realtime string          `json:"__REALTIME_TIMESTAMP"`
	Message  json.RawMessage `json:"MESSAGE"`
	Unit     string          `json:"_SYSTEMD_UNIT"`
	Ident    string          `json:"SYSLOG_IDENTIFIER"`
}

func parseJournal(raw string) (Line, bool) {
	var e journalEntry
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		return Line{}, false
	}
	us, err := strconv.ParseInt(e.Realtime, 10, 64)
	if err != nil {
		return Line{}, false
	}
	l := Line{Time: time.UnixMicro(us).UTC(), Source: "stable"}
	if strings.HasPrefix(e.Unit, "belay-canary@") || strings.HasPrefix(e.Ident, "belay-canary-") {
		l.Source = "canary"
	}
	var s string
	if json.Unmarshal(e.Message, &s) == nil {
		l.Message = s
	} else {
		var b []byte
		var ints []int
		if json.Unmarshal(e.Message, &ints) == nil {
			for _, i := range ints {
				b = append(b, byte(i))
			}
		}
		l.Message = strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return l, true
}

// parseAccess reads the `belay` log format: $time_iso8601 first, tab-separated.
func parseAccess(raw string) (Line, bool) {
	if raw == "" {
		return Line{}, false
	}
	ts, _, _ := strings.Cut(raw, "\t")
	t, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		return Line{}, false
	}
	return Line{Time: t.UTC(), Source: "nginx", Message: raw}, true
}

// Format is one line of `belay logs` text output.
func Format(l Line) string {
	if l.Cell != "" {
		return fmt.Sprintf("%s %s %s %s | %s", l.Time.Format("2006-01-02T15:04:05.000Z07:00"), l.Host, l.Cell, l.Source, l.Message)
	}
	return fmt.Sprintf("%s %s %s | %s", l.Time.Format("2006-01-02T15:04:05.000Z07:00"), l.Host, l.Source, l.Message)
}
