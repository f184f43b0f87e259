package celldb

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/belay-sh/belay/hostcmd"
)

// pgHosts plays the stack over two real clusters: "db-2" is the stack's
// primary (shared), "shop-c2-db-1" the pair's primary; each `sudo -n belay
// host cell-db ...` runs the real helper (RunHost: psql, pg_dump,
// pg_restore) against its cluster. App servers and the monitor answer as
// healthy hosts do. cutAfter > 0 cuts the dump stream after that many bytes.
type pgHosts struct {
	clusters map[string]cluster
	cutAfter int
	calls    []string
}

func (h *pgHosts) helper(ctx context.Context, host string, argv []string, in io.Reader, out io.Writer) (bool, error) {
	c, ok := h.clusters[host]
	if !ok || len(argv) != 5 || argv[0] != hostcmd.BelayBinary || argv[2] != "cell-db" {
		return false, nil
	}
	o := c.opts(argv[3], in, out)
	o.Database = argv[4]
	return true, RunHost(ctx, o)
}

func (h *pgHosts) Run(context.Context, string, string) ([]byte, error) { return nil, nil }

func (h *pgHosts) RunRoot(ctx context.Context, host string, argv ...string) ([]byte, error) {
	h.calls = append(h.calls, host+" "+strings.Join(argv, " "))
	var out bytes.Buffer
	if ok, err := h.helper(ctx, host, argv, nil, &out); ok {
		return out.Bytes(), err
	}
	line := strings.Join(argv, " ")
	switch {
	case strings.Contains(line, hostcmd.InRecoverySQL):
		if _, ok := h.clusters[host]; ok {
			return []byte("f\n"), nil
		}
		return []byte("t\n"), nil
	case strings.Contains(line, "formationid = 'shop_c2'"):
		return []byte("1/1\n"), nil
	}
	return nil, nil
}

// sudoArgv undoes remote.SudoCommand for these plain words.
func sudoArgv(cmd string) []string { return strings.Fields(strings.TrimPrefix(cmd, "sudo -n ")) }

func (h *pgHosts) Stream(ctx context.Context, host, cmd string, stdout, _ io.Writer) error {
	h.calls = append(h.calls, host+" "+cmd)
	w := stdout
	if h.cutAfter > 0 {
		w = &cutWriter{w: stdout, left: h.cutAfter}
	}
	_, err := h.helper(ctx, host, sudoArgv(cmd), nil, w)
	return err
}

func (h *pgHosts) RunInput(ctx context.Context, host, cmd string, stdin io.Reader) ([]byte, error) {
	h.calls = append(h.calls, host+" "+cmd)
	var out bytes.Buffer
	_, err := h.helper(ctx, host, sudoArgv(cmd), stdin, &out)
	return out.Bytes(), err
}

type cutWriter struct {
	w    io.Writer
	left int
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if len(p) > c.left {
		c.w.Write(p[:c.left])
		c.left = 0
		return 0, errors.New("connection cut")
	}
	c.left -= len(p)
	return c.w.Write(p)
}

func copyEnv(h *pgHosts) *Env {
	return &Env{Hosts: h, Pipe: h, Converge: func(context.Context, string) error { return nil },
		HTTPGet: func(context.Context, string, string) (int, error) { return 200, nil }}
}

// TestExecuteWithPostgres runs Observe, Build and Execute end to end over
// the real helpers: the copy, the verified counts, the marker; a second run
// finds the marker and only switches; a cut stream rolls back to an empty
// pair and an untouched source.
func TestExecuteWithPostgres(t *testing.T) {
	shared, pair := startClusters(t)
	h := &pgHosts{clusters: map[string]cluster{"db-2": shared, "shop-c2-db-1": pair}, cutAfter: 2000}
	tg := target(t)
	f := Observe(context.Background(), h, tg)
	if f.SharedPrimary != "db-2" || f.PairPrimary != "shop-c2-db-1" || f.SourceTables != 3 || f.TargetTables != 0 || f.Marker != nil || f.Formation != "1/1" {
		t.Fatalf("facts = %+v", f)
	}
	if rf := Guard(context.Background(), guardOver{h}, testInventory(), []string{"shop-c2-1"}); len(rf) != 1 || !strings.Contains(rf[0].Reason, "3 tables") {
		t.Errorf("guard before the copy: %+v", rf)
	}
	p, err := Build("prod", tg, f)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Execute(context.Background(), copyEnv(h), p)
	if err == nil || !strings.Contains(err.Error(), "rolled back") || !res.RolledBack {
		t.Fatalf("cut stream: %v %+v", err, res)
	}
	if got := pair.must(hostcmd.CellDBTables, ""); got != "0" {
		t.Errorf("pair tables after the rollback = %s", got)
	}
	if got := shared.must(hostcmd.CellDBCounts, ""); got != "0\tjobs.queue\n500\tpublic.orders\n30\tpublic.shops" {
		t.Errorf("source after the rollback:\n%s", got)
	}
	// Again, uncut: the copy, verified and marked.
	h.cutAfter = 0
	p, err = Build("prod", tg, Observe(context.Background(), h, tg))
	if err != nil {
		t.Fatal(err)
	}
	res, err = Execute(context.Background(), copyEnv(h), p)
	if err != nil {
		t.Fatal(err)
	}
	if res.Tables != 3 || res.Rows != 530 || res.Bytes == 0 || res.RolledBack {
		t.Errorf("result = %+v", res)
	}
	f = Observe(context.Background(), h, tg)
	if f.Marker == nil || f.Marker.Source != "db-2" || f.Marker.Rows != 530 {
		t.Fatalf("marker after the copy = %+v", f.Marker)
	}
	// Once more: copied already, only the switch.
	p, err = Build("prod", tg, f)
	if err != nil || p.Copied == nil {
		t.Fatalf("after the copy: %v %+v", err, p)
	}
	h.calls = nil
	if res, err = Execute(context.Background(), copyEnv(h), p); err != nil || !res.AlreadyCopied {
		t.Fatalf("re-run: %v %+v", err, res)
	}
	for _, c := range h.calls {
		if strings.Contains(c, "cell-db") || strings.Contains(c, "stop") {
			t.Errorf("re-run ran %s", c)
		}
	}
	// And the guard lets converge through now.
	if rf := Guard(context.Background(), guardOver{h}, testInventory(), []string{"shop-c2-1"}); len(rf) != 0 {
		t.Errorf("guard after the copy: %+v", rf)
	}
}

// guardOver maps the guard's reads (every stack node, every pair node) onto pgHosts.
type guardOver struct{ h *pgHosts }

func (g guardOver) Run(ctx context.Context, host, cmd string) ([]byte, error) {
	return g.h.Run(ctx, host, cmd)
}

func (g guardOver) RunRoot(ctx context.Context, host string, argv ...string) ([]byte, error) {
	switch host {
	case "db-1":
		host = "db-2"
	case "shop-c2-db-2":
		host = "shop-c2-db-1"
	}
	return g.h.RunRoot(ctx, host, argv...)
}
