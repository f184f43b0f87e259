package replace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/hostrelease/journal"
	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/internal/streamcount"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote"
)

// A new app server has no release. The copy-release step brings it the one
// a healthy server of the same app runs (for a standby app server: a
// primary-site server), byte for byte, activated as a deploy leaves a host
// (release directory, sums file, `current`) but not started: the plan's
// start step does that. The bytes flow source → belay → new server over the
// two pinned SSH connections as the deploy user; hostrelease builds the
// commands (SendCommand, ReceiveCopyCommand: the deploy's own archive rules,
// then a manifest digest compared with the source's).

// CopyTimeout bounds one release copy (hundreds of MB through belay).
const CopyTimeout = 30 * time.Minute

// Piper streams bytes between hosts: Stream copies a command's stdout as it
// comes, RunInput feeds a command's stdin (remote.Hosts has both).
type Piper interface {
	Stream(ctx context.Context, host, cmd string, stdout, stderr io.Writer) error
	RunInput(ctx context.Context, host, cmd string, stdin io.Reader) ([]byte, error)
}

// Active is what an app server runs, as Observe saw it.
type Active struct {
	// Release is what `current` points to; Canary what `canary` points to.
	Release string `json:"release,omitempty"`
	Canary  string `json:"canary,omitempty"`
	// Journal is the status of the host's deploy journal (running, paused, done, ...).
	Journal string `json:"journal,omitempty"`
	Err     string `json:"error,omitempty"`
}

func (a Active) String() string {
	switch {
	case a.Err != "":
		return "unreadable (" + a.Err + ")"
	case a.Release == "":
		return "no current release"
	}
	s := "current " + a.Release
	if a.Canary != "" {
		s += ", canary " + a.Canary
	}
	if a.Journal != "" {
		s += ", journal " + a.Journal
	}
	return s
}

// ActiveCmd prints where an app's `current` and `canary` links point and its
// deploy journal (journal.ActiveLines: the lines `belay status` reads). Read-only.
func ActiveCmd(app string) string {
	return strings.Join(journal.ActiveLines(hostrelease.Layout{App: app}), "\n")
}

// ParseActive reads ActiveCmd's output (journal.ParseActive) as the plan
// needs it: the journal's status, and an error for a journal that does not
// parse or a current link that is no release id (the id reaches the copy
// commands).
func ParseActive(out string) Active {
	h, err := journal.ParseActive(out)
	a := Active{Release: h.Current, Canary: h.Canary}
	if err != nil {
		a.Err = err.Error() // "journal: ..."
	}
	if h.Journal != nil {
		a.Journal = string(h.Journal.Status)
	}
	if a.Release != "" {
		if err := hostrelease.ValidateID(a.Release); err != nil {
			a.Err = "current link: " + err.Error()
		}
	}
	return a
}

// copySource picks the server a release is copied from: the first of
// candidates (kind says which: healthy servers of the app, a standby's
// primary-site servers) with an active release. Refused
// when a rollout is paused or died on one of them (the group is between two
// releases), when they run different releases, or when none has one.
func copySource(app, kind string, candidates []string, f Facts) (string, string, error) {
	var seen []string
	var src, rel string
	for _, x := range candidates {
		a, ok := f.Active[x]
		if !ok {
			a = Active{Err: "not observed"}
		}
		seen = append(seen, x+": "+a.String())
		if a.Err != "" || a.Release == "" {
			continue
		}
		if a.Canary != "" || a.Journal == string(journal.Running) || a.Journal == string(journal.Paused) {
			return "", "", refuse("a rollout of %s is paused or was left unfinished on %s (%s): finish it (belay deploy) or roll it back (belay rollback) first, so the new server gets the release the group settles on",
				app, x, a)
		}
		switch {
		case src == "":
			src, rel = x, a.Release
		case a.Release != rel:
			return "", "", refuse("the servers of %s run different releases (%s): converge them first (belay deploy or belay rollback --to), so the new server gets the release the group settles on",
				app, strings.Join(seen, "; "))
		}
	}
	if src == "" {
		return "", "", refuse("no %s of %s has an active release to copy (%s)", kind, app, strings.Join(seen, "; "))
	}
	return src, rel, nil
}

func copyStep(app, host, from, rel string) Step {
	return Step{ID: "copy-release/" + host, Kind: KindCopyRelease, Host: host, From: from, App: app, Release: rel, Timeout: CopyTimeout,
		Title: fmt.Sprintf("copy release %s of %s from %s (what its current points to) to %s: tar over both SSH connections, the deploy's archive checks, manifest digest compared, current -> %s, not started",
			rel, app, from, host, rel)}
}

// copyLine is the copy step as a person would run it.
func copyLine(s Step) string {
	l := hostrelease.Layout{App: s.App}
	return fmt.Sprintf("ssh %s tar -C %s -c . | ssh %s <check, unpack, compare manifest, link %s>", s.From, shq.Quote(l.Release(s.Release)), s.Host, l.Current())
}

// copyRelease runs a copy-release step: the source's manifest, the new
// host's (a no-op when it has the release already), then the stream.
func (env *Env) copyRelease(ctx context.Context, s Step) (string, bool, error) {
	if env.Pipe == nil {
		return "", false, errors.New("no way to stream between hosts for this target (Env.Pipe)")
	}
	timeout := s.Timeout
	if timeout == 0 {
		timeout = CopyTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	l := hostrelease.Layout{App: s.App, Base: env.Base}
	out, err := env.Hosts.Run(ctx, s.From, l.ManifestCommand(""))
	if err != nil {
		return "", false, fmt.Errorf("reading the active release on %s: %w", s.From, err)
	}
	src, err := hostrelease.ParseManifest(string(out))
	if err != nil {
		return "", false, fmt.Errorf("%s: %w", s.From, err)
	}
	if src.Current != s.Release || !src.Present {
		return "", false, fmt.Errorf("%s's current is %q now (%s), the plan copies %s: plan again (rerun the same belay replace with --from %s)",
			s.From, src.Current, orNone(src.CurrentPath), s.Release, s.ID)
	}
	c := hostrelease.Copy{ID: src.Current, Sum: src.Sum, Digest: src.Digest, Entries: src.Entries, Bytes: src.Bytes}
	if err := c.Validate(); err != nil {
		return "", false, fmt.Errorf("%s: %w", s.From, err)
	}
	if out, err := env.Hosts.Run(ctx, s.Host, l.ManifestCommand(c.ID)); err == nil {
		if dst, err := hostrelease.ParseManifest(string(out)); err == nil && dst.Present && dst.Digest == c.Digest && dst.Sum == c.Sum && dst.Current == c.ID {
			return fmt.Sprintf("%s has release %s already (manifest %s), current -> %s: nothing copied", s.Host, c.ID, c.Digest, c.ID), true, nil
		}
	}
	fmt.Fprintf(env.Out, "  copying %s from %s to %s: %d entries, %s in files\n", c.ID, s.From, s.Host, c.Entries, human(c.Bytes))
	t0 := env.Now()
	n, err := env.pipe(ctx, s.From, l.SendCommand(c.ID), s.Host, l.ReceiveCopyCommand(c))
	if err != nil {
		return "", false, err
	}
	return fmt.Sprintf("release %s copied from %s (%s streamed in %s), manifest %s equal on both, current -> %s",
		c.ID, s.From, human(n), env.Now().Sub(t0).Round(time.Millisecond), c.Digest, c.ID), false, nil
}

// pipe streams send's stdout on from into receive's stdin on to, through
// this process (never buffered whole), and returns the bytes streamed. The
// receiver's verdict decides: it compares the manifest with the source's,
// so a sender that failed can only make it fail.
func (env *Env) pipe(ctx context.Context, from, send, to, receive string) (int64, error) {
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	pr, pw := io.Pipe()
	cw := &streamcount.Writer{W: pw}
	serr := &tail{max: 4 << 10}
	sent := make(chan error, 1)
	go func() {
		err := env.Pipe.Stream(sctx, from, send, cw, serr)
		if err == nil {
			err = io.EOF
		}
		pw.CloseWithError(err)
		sent <- err
	}()
	done, quiet := make(chan struct{}), make(chan struct{})
	go func() { env.progress(done, cw); close(quiet) }()
	out, rerr := env.Pipe.RunInput(ctx, to, receive, pr)
	close(done)
	<-quiet // no progress line after the step's own output
	pr.CloseWithError(errors.New("the receiver ended"))
	stop()
	sendErr := <-sent
	if rerr != nil {
		msg := fmt.Sprintf("receiving on %s: %v", to, rerr)
		if sendErr != nil && !errors.Is(sendErr, io.EOF) && !errors.Is(sendErr, context.Canceled) {
			msg += fmt.Sprintf("; sending from %s: %v %s", from, sendErr, strings.TrimSpace(serr.String()))
		}
		return cw.N(), errors.New(msg)
	}
	if o := strings.TrimSpace(string(out)); o != "" {
		fmt.Fprintf(env.Out, "  %s\n", lastLine(o))
	}
	return cw.N(), nil
}

// progress prints the bytes streamed every ProgressEvery until done.
func (env *Env) progress(done <-chan struct{}, c *streamcount.Writer) {
	every := env.ProgressEvery
	if every <= 0 {
		every = 10 * time.Second
	}
	c.Report(done, every, func(n int64) { fmt.Fprintf(env.Out, "  %s streamed\n", human(n)) })
}

// tail keeps the last max bytes written (the sender's stderr: tar names
// files, never their content).
type tail struct {
	max int
	b   bytes.Buffer
}

func (t *tail) Write(p []byte) (int, error) {
	t.b.Write(p)
	if over := t.b.Len() - t.max; over > 0 {
		t.b.Next(over)
	}
	return len(p), nil
}

func (t *tail) String() string { return t.b.String() }

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func orNone(s string) string {
	if s == "" {
		return "no link"
	}
	return "-> " + s
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// standbySources are the primary-site servers whose release a standby app
// server carries: its app's servers, or its cell's.
func standbySources(a *inventory.App, host string) []string {
	if a.Standby == host {
		return slices.Clone(a.Hosts)
	}
	for _, c := range a.Cells {
		if c.Standby == host {
			return slices.Clone(c.Hosts)
		}
	}
	return slices.Clone(a.Hosts)
}

// The SSH hosts stream; the CLI hands them to Env.Pipe.
var _ Piper = (*remote.Hosts)(nil)
