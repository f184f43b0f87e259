package remote

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/belay-sh/belay/deploy/sshx/sshdtest"
	"github.com/belay-sh/belay/inventory"
)

// lockedBuffer records writes with their arrival time.
type lockedBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	first time.Time
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.first.IsZero() {
		l.first = time.Now()
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestStreamWithRealSSHD runs commands through a real sshd on loopback with the
// host key pinned: output arrives while the command still runs, stderr is kept
// apart, and the remote exit status comes back through ExitStatus.
func TestStreamWithRealSSHD(t *testing.T) {
	srv := sshdtest.New(t)
	addr := srv.Listen()
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	inv := &inventory.Inventory{Stack: "test", Hosts: []inventory.Host{{
		Name: "repo", SSHAddress: host, SSHPort: p, DeployUser: srv.User,
		HostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(srv.HostKey))),
	}}}
	h := &Hosts{Inv: inv, Auth: []ssh.AuthMethod{ssh.PublicKeys(srv.ClientSigner)}}
	t.Cleanup(h.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var out, errb lockedBuffer
	err := h.Stream(ctx, "repo", "echo step 1; sleep 2; echo oops >&2; echo step 2", &out, &errb)
	end := time.Now()
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if out.String() != "step 1\nstep 2\n" || errb.String() != "oops\n" {
		t.Errorf("stdout %q stderr %q", out.String(), errb.String())
	}
	// The first line comes before the command's 2 s sleep ends, not with the rest.
	if ahead := end.Sub(out.first); ahead < 1500*time.Millisecond {
		t.Errorf("the first line arrived only %s before the command ended: not streamed", ahead)
	}

	err = h.Stream(ctx, "repo", "echo partial; exit 7", &out, &errb)
	if code, ok := ExitStatus(err); !ok || code != 7 {
		t.Errorf("exit status of `exit 7`: %d %v (%v)", code, ok, err)
	}
	if _, ok := ExitStatus(context.Canceled); ok {
		t.Error("ExitStatus found a status in a non-exit error")
	}
	// The connection survived the failed command.
	if err := h.Stream(ctx, "repo", "true", &out, &errb); err != nil {
		t.Errorf("after a failed command: %v", err)
	}

	// A wrong pinned key: refused before any command.
	bad, _ := sshdtest.NewKey(t)
	inv.Hosts[0].HostKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(bad.PublicKey())))
	h2 := &Hosts{Inv: inv, Auth: []ssh.AuthMethod{ssh.PublicKeys(srv.ClientSigner)}}
	t.Cleanup(h2.Close)
	if err := h2.Stream(ctx, "repo", "echo ran", &out, &errb); err == nil {
		t.Error("a host with another key ran the command")
	}
}
