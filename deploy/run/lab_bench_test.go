//go:build lab

// Lab benchmarks of the executor's two costs that a rollout's duration is made
// of: the fixed cost of one plan step (an SSH exec wrapped in journal writes,
// on every app server in parallel) and artifact streaming (sha256 checked on
// arrival). They run against `belay lab up` (or BELAY_BENCH_INVENTORY, with the
// deploy key beside it) and work in a scratch layout under /tmp/belay-bench on
// the servers (BELAY_BENCH_BASE), so the app's real releases, journal and lease
// are never touched:
//
//	go test -tags lab -run '^$' -bench Lab -benchtime 20x ./deploy/run/
//
// scripts/bench-deploy.sh times whole rollouts; these say where the time goes.
package run_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/belay-sh/belay/deploy/plan"
	"github.com/belay-sh/belay/deploy/run"
	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/hostrelease/journal"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/inventory"
)

// scratchBase is where the benchmarks' layout lives on the servers (the deploy
// user can write /tmp; /srv/<app> belongs to real deploys).
func scratchBase() string {
	if b := os.Getenv("BELAY_BENCH_BASE"); b != "" {
		return b
	}
	return "/tmp/belay-bench"
}

type labTarget struct {
	hosts  []string
	runner *run.Runner
	pool   *sshx.Pool
}

func labRunner(b *testing.B) *labTarget {
	b.Helper()
	path := os.Getenv("BELAY_BENCH_INVENTORY")
	if path == "" {
		path = cli.DefaultInventory
	}
	inv, err := inventory.Load(path)
	if err != nil {
		b.Fatalf("lab benchmarks need `belay lab up` or BELAY_BENCH_INVENTORY: %v", err)
	}
	if len(inv.Apps) == 0 || len(inv.Apps[0].Hosts) == 0 {
		b.Fatalf("%s: no app servers", path)
	}
	app := inv.Apps[0]
	auth, closer, err := sshx.AuthFromEnv("", []string{filepath.Join(filepath.Dir(path), "id_ed25519")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { closer.Close() })
	cfg := sshx.Config{Auth: auth, DialTimeout: 15 * time.Second}
	pool := sshx.NewPool(func(ctx context.Context, name string) (*sshx.Client, error) {
		h := inv.Host(name)
		if h == nil {
			return nil, fmt.Errorf("host %s: not in the inventory", name)
		}
		k, err := h.HostPublicKey()
		if err != nil {
			return nil, err
		}
		return sshx.Dial(ctx, cfg, sshx.Target{Name: h.Name, Addr: net.JoinHostPort(h.SSHAddress, strconv.Itoa(h.SSHPort)),
			User: h.DeployUser, HostKeys: []ssh.PublicKey{k}})
	})
	base := scratchBase()
	lt := &labTarget{hosts: app.Hosts, pool: pool,
		runner: &run.Runner{Pool: pool, Layout: hostrelease.Layout{App: app.Name, Base: base}}}
	// Connect once up front, as a deploy does: the benchmarks time the work, not the handshakes.
	errs := sshx.Parallel(context.Background(), app.Hosts, 0, func(ctx context.Context, h string) error {
		c, err := pool.Get(ctx, h)
		if err != nil {
			return err
		}
		_, err = c.Run(ctx, "rm -rf "+shq.Quote(base)+" && mkdir -p "+shq.Quote(base), nil)
		return err
	})
	for h, err := range errs {
		if err != nil {
			b.Fatalf("%s: %v", h, err)
		}
	}
	b.Cleanup(func() {
		sshx.Parallel(context.Background(), app.Hosts, 0, func(ctx context.Context, h string) error {
			if c, err := pool.Get(ctx, h); err == nil {
				c.Run(ctx, "rm -rf "+shq.Quote(base), nil)
			}
			return nil
		})
		pool.Close()
	})
	return lt
}

func (lt *labTarget) records() map[string]journal.Record {
	recs := map[string]journal.Record{}
	for _, h := range lt.hosts {
		recs[h] = journal.Record{DeployID: "bench", App: lt.runner.Layout.App, Kind: "deploy", Target: "bench", Status: journal.Running}
	}
	return recs
}

// BenchmarkLabExec is one bare SSH exec (`true`) on every app server in
// parallel over the held connections: the transport's share of a step.
func BenchmarkLabExec(b *testing.B) {
	lt := labRunner(b)
	b.ReportMetric(float64(len(lt.hosts)), "hosts")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		errs := sshx.Parallel(context.Background(), lt.hosts, 0, func(ctx context.Context, h string) error {
			c, err := lt.pool.Get(ctx, h)
			if err != nil {
				return err
			}
			_, err = c.Run(ctx, "true", nil)
			return err
		})
		for h, err := range errs {
			if err != nil {
				b.Fatalf("%s: %v", h, err)
			}
		}
	}
}

// BenchmarkLabStep is the floor under every plan step: one no-op command,
// journal-wrapped, on every app server in parallel.
func BenchmarkLabStep(b *testing.B) {
	lt := labRunner(b)
	p := &plan.Plan{App: lt.runner.Layout.App, Hosts: lt.hosts,
		Steps: []plan.Step{{ID: "01-noop", Title: "no-op", Hosts: lt.hosts, Command: "true", Timeout: plan.Duration(time.Minute)}}}
	recs := lt.records()
	b.ReportMetric(float64(len(lt.hosts)), "hosts")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := lt.runner.Exec(context.Background(), p, recs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLabUpload streams a 50 MiB random artifact to every app server and
// checks its sha256 there (the upload step of a rollout, without the unpack).
func BenchmarkLabUpload(b *testing.B) {
	lt := labRunner(b)
	const size = 50 << 20
	f, err := os.CreateTemp(b.TempDir(), "artifact")
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		b.Fatal(err)
	}
	f.Close()
	sum := hex.EncodeToString(h.Sum(nil))
	lt.runner.Artifact = func() (io.ReadCloser, error) { return os.Open(f.Name()) }
	recs := lt.records()
	b.SetBytes(int64(size * len(lt.hosts)))
	b.ReportMetric(float64(len(lt.hosts)), "hosts")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := "bench-" + strconv.Itoa(i)
		l := lt.runner.Layout
		p := &plan.Plan{App: l.App, Hosts: lt.hosts, Steps: []plan.Step{{ID: "01-upload", Title: "upload " + id, Hosts: lt.hosts,
			Command: l.ReceiveCommand(id, sum) + "\nrm -f " + l.Incoming(id), Stdin: "artifact", Timeout: plan.Duration(5 * time.Minute)}}}
		if err := lt.runner.Exec(context.Background(), p, recs); err != nil {
			b.Fatal(err)
		}
	}
}
