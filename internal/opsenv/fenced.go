package opsenv

import (
	"context"
	"net"
	"sort"

	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/remote"
)

// Fenced is a remote.Runner whose every command on a server of a held app
// runs under that app's fence, like a deploy's host steps (lease.Fence.Wrap):
// the host refuses it (exit 76) once another run took or broke the lease, and
// a new holder's fence write waits until it ended. Hosts outside every held
// app (database, monitor, backup repository) have no fence file; their
// commands run as they are, covered by the lease host's refusal of a second
// holder only.
type Fenced struct {
	remote.Runner
	// Fences lists, per host, the fences of the held apps it serves.
	Fences map[string][]*lease.Fence
}

var _ remote.Runner = (*Fenced)(nil)

// wrap nests cmd in every fence of host (sorted by app: the same order on
// every call, so two commands never take the locks crosswise).
func (f *Fenced) wrap(host, cmd string) (string, bool) {
	fs := f.Fences[host]
	for i := len(fs) - 1; i >= 0; i-- {
		cmd = fs[i].Wrap(host, cmd)
	}
	return cmd, len(fs) > 0
}

// Run runs cmd as the deploy user under host's fences.
func (f *Fenced) Run(ctx context.Context, host, cmd string) ([]byte, error) {
	w, _ := f.wrap(host, cmd)
	return f.Runner.Run(ctx, host, w)
}

// RunRoot runs argv as root under host's fences. Over SSH the deploy user's
// shell checks the fence and runs `sudo -n argv` inside the lock (the sudoers
// line is the same exact command as unfenced). When the runner has its own
// root channel (the lab's nsenter), root runs the fence check itself with
// `sh -c`: the fence files are the deploy user's, readable by root.
func (f *Fenced) RunRoot(ctx context.Context, host string, argv ...string) ([]byte, error) {
	if len(f.Fences[host]) == 0 {
		return f.Runner.RunRoot(ctx, host, argv...)
	}
	if h, ok := f.Runner.(*remote.Hosts); ok && h.Root != nil {
		w, _ := f.wrap(host, shq.Join(argv...))
		return h.Root(ctx, host, "sh", "-c", w)
	}
	w, _ := f.wrap(host, remote.SudoCommand(argv))
	return f.Runner.Run(ctx, host, w)
}

// DialTCP opens a tunnel; it changes nothing on the host, so it is not fenced.
func (f *Fenced) DialTCP(ctx context.Context, host, addr string) (net.Conn, error) {
	return f.Runner.DialTCP(ctx, host, addr)
}

func (f *Fenced) add(servers []string, fence *lease.Fence) {
	if f.Fences == nil {
		f.Fences = map[string][]*lease.Fence{}
	}
	for _, h := range servers {
		f.Fences[h] = append(f.Fences[h], fence)
		sort.Slice(f.Fences[h], func(i, j int) bool { return f.Fences[h][i].Layout.App < f.Fences[h][j].Layout.App })
	}
}

// HoldLeases takes o's leases on the target's hosts (see HoldFenced); from
// then on Runner and SwitchEnv give the fenced runner.
func (t *Target) HoldLeases(ctx context.Context, o LeaseOptions) (context.Context, func(), error) {
	ctx, f, release, err := HoldFenced(ctx, t.Hosts, t.Inv, o)
	if err != nil {
		return nil, nil, err
	}
	t.fenced = f
	return ctx, func() { t.fenced = nil; release() }, nil
}

// Runner is how operator commands reach the hosts: fenced while the target
// holds leases, else the plain SSH hosts.
func (t *Target) Runner() remote.Runner {
	if t.fenced != nil {
		return t.fenced
	}
	return t.Hosts
}
