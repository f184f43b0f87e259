package celldb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/httpprobe"
	"github.com/belay-sh/belay/internal/streamcount"
	"github.com/belay-sh/belay/remote"
)

// Runner reaches the hosts: shell lines as the deploy user, argv as root
// (remote.Hosts; tests swap it).
type Runner interface {
	Run(ctx context.Context, host, cmd string) ([]byte, error)
	RunRoot(ctx context.Context, host string, argv ...string) ([]byte, error)
}

// Piper streams between hosts: a command's stdout as it comes, a command's
// stdin (remote.Hosts has both).
type Piper interface {
	Stream(ctx context.Context, host, cmd string, stdout, stderr io.Writer) error
	RunInput(ctx context.Context, host, cmd string, stdin io.Reader) ([]byte, error)
}

// Env is what Execute runs a plan with.
type Env struct {
	Hosts Runner
	Pipe  Piper
	// Converge converges one host (belay converge limited to it).
	Converge func(ctx context.Context, host string) error
	// HTTPGet checks the cell through its VIP (nil: a plain HTTP client).
	HTTPGet func(ctx context.Context, url, host string) (int, error)
	Out     io.Writer
	Now     func() time.Time
	// Poll is the wait between health probes (default 2 s).
	Poll time.Duration
	// ProgressEvery is the interval of the copy's progress lines (default 10 s).
	ProgressEvery time.Duration
}

// StepResult is one step as it ran.
type StepResult struct {
	ID     string `json:"id"`
	Millis int64  `json:"millis"`
	Note   string `json:"note,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Result is a copy's summary (--json).
type Result struct {
	App      string `json:"app"`
	Cell     string `json:"cell"`
	Database string `json:"database"`
	Source   string `json:"source"`
	Target   string `json:"target"`
	// AlreadyCopied: the marker was there; only the switch steps ran.
	AlreadyCopied bool  `json:"alreadyCopied,omitempty"`
	Bytes         int64 `json:"bytes"`
	Tables        int   `json:"tables"`
	Rows          int64 `json:"rows"`
	// WindowMillis runs from the freeze to the cell answering again.
	WindowMillis int64        `json:"windowMillis"`
	Steps        []StepResult `json:"steps"`
	// RolledBack: a failure before the switch put the cell back on its old
	// database (Rollback says what ran).
	RolledBack bool         `json:"rolledBack,omitempty"`
	Rollback   []StepResult `json:"rollback,omitempty"`
	Error      string       `json:"error,omitempty"`
}

// Execute runs p. A failure in a window step empties the pair's database
// again (once the copy started) and starts the cell on its old database; a
// failure in a switch step leaves the cell as it is and names the resume.
func Execute(ctx context.Context, env *Env, p *Plan) (*Result, error) {
	if env.Now == nil {
		env.Now = time.Now
	}
	if env.Out == nil {
		env.Out = io.Discard
	}
	if env.HTTPGet == nil {
		env.HTTPGet = httpprobe.Status
	}
	res := &Result{App: p.App, Cell: p.Cell, Database: p.Database, Source: p.Source, Target: p.Target, AlreadyCopied: p.Copied != nil}
	if p.Copied != nil {
		res.Tables, res.Rows = p.Copied.Tables, p.Copied.Rows
	}
	var frozenAt time.Time
	copyStarted := false
	for i, s := range p.Steps {
		fmt.Fprintf(env.Out, "[%d/%d] %s: %s\n", i+1, len(p.Steps), s.ID, s.Title)
		t0 := env.Now()
		if s.Phase == PhaseWindow && frozenAt.IsZero() {
			frozenAt = t0
		}
		if s.Kind == KindCopy {
			copyStarted = true
		}
		note, err := env.run(ctx, s, res)
		sr := StepResult{ID: s.ID, Millis: env.Now().Sub(t0).Milliseconds(), Note: note}
		if note != "" {
			fmt.Fprintf(env.Out, "  %s\n", note)
		}
		if err == nil {
			res.Steps = append(res.Steps, sr)
			continue
		}
		sr.Error = err.Error()
		res.Steps = append(res.Steps, sr)
		err = fmt.Errorf("step %s (%s): %w", s.ID, hostOf(s), err)
		switch s.Phase {
		case PhaseCheck:
			err = fmt.Errorf("%w; nothing changed", err)
		case PhaseWindow:
			// The caller's context may be what failed: the rollback gets its own.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
			rerr := env.rollback(rctx, p, copyStarted, res)
			cancel()
			if rerr != nil {
				err = fmt.Errorf("%w; ROLLBACK FAILED: %v (start the cell by hand: sudo -n %s on %s)", err, rerr, strings.Join(hostcmd.StartApp(p.App), " "), strings.Join(p.Hosts, ", "))
			} else {
				err = fmt.Errorf("%w; rolled back: the cell runs on its old database %s on the stack's cluster, the pair's copy is empty again: fix the cause and run belay db copy --cell %s/%s again", err, p.Database, p.App, p.Cell)
			}
		case PhaseSwitch:
			err = fmt.Errorf("%w; the copy is complete and marked on %s: the cell is stopped until the switch finishes: run belay db copy --cell %s/%s --yes again (it resumes at the switch)", err, p.Target, p.App, p.Cell)
		}
		res.Error = err.Error()
		return res, err
	}
	if !frozenAt.IsZero() {
		res.WindowMillis = env.Now().Sub(frozenAt).Milliseconds()
	}
	return res, nil
}

func hostOf(s Step) string {
	switch {
	case s.Host != "":
		return s.Host
	case s.From != "":
		return s.From + " -> " + s.To
	}
	return s.Address
}

// rollback empties the pair's database (once the copy started) and starts
// the cell's servers again on their unchanged configuration.
func (env *Env) rollback(ctx context.Context, p *Plan, copyStarted bool, res *Result) error {
	res.RolledBack = true
	var errs []error
	do := func(id, host string, argv []string) {
		t0 := env.Now()
		fmt.Fprintf(env.Out, "rollback %s on %s\n", id, host)
		_, err := env.Hosts.RunRoot(ctx, host, argv...)
		sr := StepResult{ID: id, Millis: env.Now().Sub(t0).Milliseconds()}
		if err != nil {
			sr.Error = err.Error()
			errs = append(errs, fmt.Errorf("%s on %s: %w", id, host, err))
		}
		res.Rollback = append(res.Rollback, sr)
	}
	if copyStarted {
		do("reset", p.Target, hostcmd.CellDB(hostcmd.CellDBReset, p.Database))
	}
	for _, h := range p.Hosts {
		do("start/"+h, h, hostcmd.StartApp(p.App))
	}
	return errors.Join(errs...)
}

func (env *Env) run(ctx context.Context, s Step, res *Result) (string, error) {
	switch s.Kind {
	case KindRoot:
		out, err := env.Hosts.RunRoot(ctx, s.Host, s.Argv...)
		if err != nil {
			return "", err
		}
		got := strings.TrimSpace(string(out))
		if s.Expect != "" && got != s.Expect {
			return "", fmt.Errorf("printed %q, expected %q", got, s.Expect)
		}
		if s.Refuse != "" && got == s.Refuse {
			return "", fmt.Errorf("printed %q", got)
		}
		return "", nil
	case KindCopy:
		return env.copy(ctx, s, res)
	case KindVerify:
		return env.verify(ctx, s, res)
	case KindConverge:
		if env.Converge == nil {
			return "", errors.New("no converger for this target")
		}
		return "", env.Converge(ctx, s.Host)
	case KindHTTP:
		return env.health(ctx, s)
	}
	return "", fmt.Errorf("unknown step kind %q", s.Kind)
}

// copy streams the dump into the restore over the two SSH sessions (no new
// network path between the clusters); the restore's verdict decides.
func (env *Env) copy(ctx context.Context, s Step, res *Result) (string, error) {
	if env.Pipe == nil {
		return "", errors.New("no way to stream between hosts for this target")
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	pr, pw := io.Pipe()
	cw := &streamcount.Writer{W: pw}
	var serr bytes.Buffer
	sent := make(chan error, 1)
	go func() {
		err := env.Pipe.Stream(sctx, s.From, remote.SudoCommand(s.Argv), cw, &limited{b: &serr, max: 4 << 10})
		if err == nil {
			pw.Close()
		} else {
			pw.CloseWithError(err)
		}
		sent <- err
	}()
	t0 := env.Now()
	done, quiet := make(chan struct{}), make(chan struct{})
	go func() { env.progress(done, cw); close(quiet) }()
	out, rerr := env.Pipe.RunInput(ctx, s.To, remote.SudoCommand(s.Receive), pr)
	close(done)
	<-quiet // no progress line after the step's own output
	pr.CloseWithError(errors.New("the restore ended"))
	stop()
	sendErr := <-sent
	res.Bytes = cw.N()
	if sendErr != nil && !errors.Is(sendErr, context.Canceled) {
		return "", fmt.Errorf("dump on %s: %v %s", s.From, sendErr, strings.TrimSpace(serr.String()))
	}
	if rerr != nil {
		return "", fmt.Errorf("restore on %s: %w", s.To, rerr)
	}
	return fmt.Sprintf("%d bytes streamed in %s; %s", res.Bytes, env.Now().Sub(t0).Round(time.Millisecond), strings.TrimSpace(string(out))), nil
}

// verify compares the exact row counts of every table on both sides, then
// has the pair record the marker (the pair's helper counts again and
// compares with the source's before it writes).
func (env *Env) verify(ctx context.Context, s Step, res *Result) (string, error) {
	counts := map[string]map[string]int64{}
	for _, h := range []string{s.From, s.To} {
		out, err := env.Hosts.RunRoot(ctx, h, s.Argv...)
		if err != nil {
			return "", fmt.Errorf("counting rows on %s: %w", h, err)
		}
		c, err := ParseCounts(string(out))
		if err != nil {
			return "", fmt.Errorf("%s: %w", h, err)
		}
		counts[h] = c
	}
	if d := DiffCounts(counts[s.From], counts[s.To]); d != "" {
		return "", fmt.Errorf("row counts differ: %s", d)
	}
	req, err := json.Marshal(MarkRequest{Source: s.From, Counts: counts[s.From]})
	if err != nil {
		return "", err
	}
	if env.Pipe == nil {
		return "", errors.New("no way to send the counts for this target")
	}
	if _, err := env.Pipe.RunInput(ctx, s.To, remote.SudoCommand(s.Mark), bytes.NewReader(req)); err != nil {
		return "", fmt.Errorf("recording the marker on %s: %w", s.To, err)
	}
	res.Tables = len(counts[s.From])
	for _, n := range counts[s.From] {
		res.Rows += n
	}
	return fmt.Sprintf("%d tables, %d rows, equal on %s and %s; marker recorded", res.Tables, res.Rows, s.From, s.To), nil
}

func (env *Env) health(ctx context.Context, s Step) (string, error) {
	poll := env.Poll
	if poll <= 0 {
		poll = 2 * time.Second
	}
	deadline := env.Now().Add(s.Timeout)
	for {
		code, err := env.HTTPGet(ctx, "http://"+s.Address+"/", s.Domain)
		if err == nil && code < 500 {
			return "HTTP " + strconv.Itoa(code), nil
		}
		if err == nil {
			err = fmt.Errorf("HTTP %d", code)
		}
		if env.Now().After(deadline) {
			return "", fmt.Errorf("no answer below 500 within %s: %w", s.Timeout, err)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(poll):
		}
	}
}

// progress prints the bytes streamed every ProgressEvery (default 10 s) until done.
func (env *Env) progress(done <-chan struct{}, c *streamcount.Writer) {
	every := env.ProgressEvery
	if every <= 0 {
		every = 10 * time.Second
	}
	c.Report(done, every, func(n int64) { fmt.Fprintf(env.Out, "  %d bytes streamed\n", n) })
}

// limited keeps the first max bytes (the dump's stderr).
type limited struct {
	b   *bytes.Buffer
	max int
}

func (l *limited) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// Observe reads what the plan depends on: the formation's state on the
// monitor, the writable node on each side, both sides' tables, the marker.
func Observe(ctx context.Context, r Runner, t *Target) Facts {
	f := Facts{SourceTables: -1, TargetTables: -1, Errs: map[string]string{}}
	if sql, err := hostcmd.FormationStateSQL(t.Cell.Formation); err == nil {
		if out, err := r.RunRoot(ctx, t.Monitor, hostcmd.MonitorPsql(sql)...); err == nil {
			f.Formation = strings.TrimSpace(string(out))
		} else {
			f.Formation = "unreadable: " + err.Error()
		}
	}
	f.PairPrimary = primary(ctx, r, t.Cell.DBNodes)
	f.SharedPrimary = primary(ctx, r, t.SharedNodes)
	db := t.Cell.Database
	if f.PairPrimary != "" {
		out, err := r.RunRoot(ctx, f.PairPrimary, hostcmd.CellDB(hostcmd.CellDBMarker, db)...)
		if err != nil {
			f.Errs["marker"] = fmt.Sprintf("reading the copy marker on %s: %v (are its sudoers current? belay converge the pair first)", f.PairPrimary, err)
		} else if s := strings.TrimSpace(string(out)); s != "none" {
			var m Marker
			if err := json.Unmarshal([]byte(s), &m); err != nil {
				f.Errs["marker"] = fmt.Sprintf("copy marker on %s: %v", f.PairPrimary, err)
			} else {
				f.Marker = &m
			}
		}
		if n, err := tablesOn(ctx, r, f.PairPrimary, db); err != nil {
			f.Errs["target"] = err.Error()
		} else {
			f.TargetTables = n
		}
	}
	if f.SharedPrimary != "" {
		if n, err := tablesOn(ctx, r, f.SharedPrimary, db); err != nil {
			f.Errs["source"] = err.Error()
		} else {
			f.SourceTables = n
		}
	}
	return f
}

// tablesOn runs the helper's tables verb (-1: absent).
func tablesOn(ctx context.Context, r Runner, host, db string) (int, error) {
	out, err := r.RunRoot(ctx, host, hostcmd.CellDB(hostcmd.CellDBTables, db)...)
	if err != nil {
		return 0, fmt.Errorf("counting %s's tables on %s: %v (are its sudoers current? belay converge the data nodes first)", db, host, err)
	}
	s := strings.TrimSpace(string(out))
	if s == "absent" {
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("counting %s's tables on %s: %q, expected a number or absent", db, host, s)
	}
	return n, nil
}

// primary is the node of nodes that is not in recovery ("" none answers so).
func primary(ctx context.Context, r Runner, nodes []string) string {
	for _, n := range nodes {
		out, err := r.RunRoot(ctx, n, hostcmd.Psql(hostcmd.InRecoverySQL)...)
		if err == nil && strings.TrimSpace(string(out)) == "f" {
			return n
		}
	}
	return ""
}
