package vip

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/cloud/double"
	"github.com/belay-sh/belay/cloud/retry"
	"github.com/belay-sh/belay/internal/cli"
)

const token = "hc-double-token-7d0c5b1e9a"

var fast = retry.Policy{Base: time.Millisecond, Max: 4 * time.Millisecond}

// metadataDouble answers both providers' instance-ID paths with id, on loopback.
func metadataDouble(t *testing.T, id int64) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/metadata/v1/id", "/hetzner/v1/metadata/instance-id":
			fmt.Fprintf(w, "%d", id)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func tokenFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(content+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

type recRunner struct {
	mu   sync.Mutex
	cmds []string
	has  bool
}

func (r *recRunner) Run(_ context.Context, argv []string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cmds = append(r.cmds, strings.Join(argv, " "))
	if argv[1] == "-o" && r.has {
		return []byte("2: eth0    inet 203.0.113.10/32 scope global eth0\\       valid_lft forever preferred_lft forever\n"), nil
	}
	if argv[1] == "addr" && argv[2] == "add" {
		r.has = true
	}
	return nil, nil
}

// execute runs `claim` or `peers` through cobra with fast retries and returns stdout, stderr.
func execute(t *testing.T, run *recRunner, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	f := &cli.Factory{IO: cli.IO{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, Getenv: func(string) string { return "" }}
	var cmd *cobra.Command
	switch args[0] {
	case "claim":
		cmd = NewCmdClaim(f, func(ctx context.Context, o *ClaimOptions) error {
			o.Retry, o.PollInterval = fast, 2*time.Millisecond
			if run != nil {
				o.Run = run.Run
			}
			return ClaimRun(ctx, o)
		})
	case "peers":
		cmd = NewCmdPeers(f, func(ctx context.Context, o *PeersOptions) error {
			o.Retry = fast
			return PeersRun(ctx, o)
		})
	}
	cmd.SetArgs(args[1:])
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	if strings.Contains(out.String()+errOut.String(), token) || (err != nil && strings.Contains(err.Error(), token)) {
		t.Errorf("token leaked:\nstdout: %s\nstderr: %s\nerr: %v", out.String(), errOut.String(), err)
	}
	return out.String(), errOut.String(), err
}

func TestGroupRegistersSubcommands(t *testing.T) {
	cmd := NewCmdVIP(&cli.Factory{IO: cli.IO{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}})
	var names []string
	for _, c := range cmd.Commands() {
		names = append(names, c.Name())
	}
	if strings.Join(names, ",") != "claim,peers" {
		t.Errorf("subcommands %v", names)
	}
}

func TestClaimDigitalOcean(t *testing.T) {
	d := double.NewDigitalOceanDouble(token)
	t.Cleanup(d.Close)
	d.AddDroplet(double.DODroplet{ID: 111, Name: "shop-1", Region: "fra1", Tags: []string{"belay-shop"}, PrivateIP: "10.114.0.3"})
	d.AddDroplet(double.DODroplet{ID: 222, Name: "shop-2", Region: "fra1", Tags: []string{"belay-shop"}, PrivateIP: "10.114.0.2"})
	d.AddReservedIP("203.0.113.10", "fra1", 111)
	d.SetFaults(double.Faults{ActionPolls: 2, PendingActions: 1, ServerErrors: 1})
	tf := tokenFile(t, token, 0o640)
	args := []string{"claim", "--provider", "digitalocean", "--ip", "203.0.113.10", "--token-file", tf, "--api-url", d.URL(), "--metadata-url", metadataDouble(t, 222)}

	_, stderr, err := execute(t, nil, args...)
	if err != nil {
		t.Fatalf("claim: %v\n%s", err, stderr)
	}
	if d.ReservedIPDroplet("203.0.113.10") != 222 {
		t.Fatalf("reserved IP not moved:\n%s", stderr)
	}
	for _, want := range []string{
		"belay vip: this server is digitalocean id 222 (metadata service)",
		"HTTP 500, retry 1",
		"HTTP 422 pending action",
		"completed after 3 poll(s)",
		"done in",
		"moved from server 111 (1 action(s), 3 poll(s))",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}

	// Repeating the claim changes nothing and sends no action.
	posts := d.CountRequests("POST", "/v2/")
	_, stderr, err = execute(t, nil, args...)
	if err != nil || !strings.Contains(stderr, "already on this server, nothing changed") || d.CountRequests("POST", "/v2/") != posts {
		t.Fatalf("second claim: err=%v posts %d→%d\n%s", err, posts, d.CountRequests("POST", "/v2/"), stderr)
	}
}

func TestClaimHetzner(t *testing.T) {
	h := double.NewHetznerDouble(token)
	t.Cleanup(h.Close)
	h.AddServer(double.HetznerServer{ID: 11, Name: "shop-1", PrivateIP: "10.0.1.11", NetworkID: 7})
	h.AddServer(double.HetznerServer{ID: 12, Name: "shop-2", PrivateIP: "10.0.1.12", NetworkID: 7})
	h.AddFloatingIP(double.HetznerFloatingIP{ID: 4711, IP: "203.0.113.10", Server: 11})
	h.SetFaults(double.Faults{RateLimited: 1, ActionPolls: 1})
	run := &recRunner{}
	_, stderr, err := execute(t, run, "claim", "--provider", "hetzner", "--ip", "203.0.113.10", "--server-id", "12",
		"--token-file", tokenFile(t, token, 0o600), "--api-url", h.URL(), "--interface", "eth1")
	if err != nil {
		t.Fatalf("claim: %v\n%s", err, stderr)
	}
	if h.FloatingIPServer(4711) != 12 {
		t.Fatalf("floating IP not moved:\n%s", stderr)
	}
	want := []string{"ip -o -4 addr show dev eth1", "ip addr add 203.0.113.10/32 dev eth1"}
	if strings.Join(run.cmds, "|") != strings.Join(want, "|") {
		t.Errorf("interface commands %q, want %q", run.cmds, want)
	}
	for _, w := range []string{"rate_limit_exceeded", "unassigning first", "moved from server 11 (2 action(s), 4 poll(s))"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
	}
}

func TestClaimFailureIsLoggedWithoutToken(t *testing.T) {
	h := double.NewHetznerDouble("another-token")
	t.Cleanup(h.Close)
	_, stderr, err := execute(t, &recRunner{}, "claim", "--provider", "hetzner", "--ip", "203.0.113.10", "--server-id", "12",
		"--token-file", tokenFile(t, token, 0o600), "--api-url", h.URL())
	if err == nil || !strings.Contains(stderr, "FAILED") || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("err=%v\n%s", err, stderr)
	}
}

func TestClaimTimeout(t *testing.T) {
	d := double.NewDigitalOceanDouble(token)
	t.Cleanup(d.Close)
	d.AddDroplet(double.DODroplet{ID: 222, Region: "fra1"})
	d.AddReservedIP("203.0.113.10", "fra1", 0)
	d.SetFaults(double.Faults{ActionPolls: 1 << 20})
	_, stderr, err := execute(t, nil, "claim", "--provider", "digitalocean", "--ip", "203.0.113.10", "--server-id", "222",
		"--token-file", tokenFile(t, token, 0o600), "--api-url", d.URL(), "--timeout", "150ms")
	if err == nil || !strings.Contains(err.Error(), "deadline exceeded") || !strings.Contains(stderr, "FAILED after") {
		t.Fatalf("err=%v\n%s", err, stderr)
	}
}

// TestRedactionCoversAllOutput uses a token that is also a word of the log
// lines: every occurrence must be scrubbed, proving all stderr goes through
// the redacting writer.
func TestRedactionCoversAllOutput(t *testing.T) {
	const word = "assigning"
	d := double.NewDigitalOceanDouble(word)
	t.Cleanup(d.Close)
	d.AddDroplet(double.DODroplet{ID: 222, Region: "fra1"})
	d.AddReservedIP("203.0.113.10", "fra1", 0)
	_, stderr, err := execute(t, nil, "claim", "--provider", "digitalocean", "--ip", "203.0.113.10", "--server-id", "222",
		"--token-file", tokenFile(t, word, 0o600), "--api-url", d.URL())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stderr, word) || !strings.Contains(stderr, "[redacted] to droplet 222") {
		t.Errorf("stderr not redacted:\n%s", stderr)
	}
}

func TestFlagErrorsChangeNothing(t *testing.T) {
	d := double.NewDigitalOceanDouble(token)
	t.Cleanup(d.Close)
	d.AddDroplet(double.DODroplet{ID: 222, Region: "fra1", Tags: []string{"g"}})
	d.AddReservedIP("203.0.113.10", "fra1", 0)
	good := tokenFile(t, token, 0o600)
	world := tokenFile(t, token, 0o644)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad provider", []string{"claim", "--provider", "aws", "--ip", "203.0.113.10", "--token-file", good, "--server-id", "222"}, `--provider: "aws" is not a provider`},
		{"private ip", []string{"claim", "--provider", "digitalocean", "--ip", "10.0.0.5", "--token-file", good, "--server-id", "222"}, "--ip: 10.0.0.5 is not a public address"},
		{"ipv6", []string{"claim", "--provider", "digitalocean", "--ip", "2001:db8::1", "--token-file", good, "--server-id", "222"}, "only IPv4"},
		{"no ip", []string{"claim", "--provider", "digitalocean", "--token-file", good, "--server-id", "222"}, `--ip: "" is not an IP address`},
		{"no token file", []string{"claim", "--provider", "digitalocean", "--ip", "203.0.113.10", "--server-id", "222"}, "--token-file: required"},
		{"world-readable token", []string{"claim", "--provider", "digitalocean", "--ip", "203.0.113.10", "--token-file", world, "--server-id", "222"}, "world-readable"},
		{"self and server-id", []string{"claim", "--provider", "digitalocean", "--ip", "203.0.113.10", "--token-file", good, "--server-id", "222", "--self"}, "none of the others can be"},
		{"token over plain http", []string{"claim", "--provider", "digitalocean", "--ip", "203.0.113.10", "--token-file", good, "--server-id", "222", "--api-url", "http://api.example.com/"}, "only travel over http to a loopback"},
		{"zero timeout", []string{"claim", "--provider", "digitalocean", "--ip", "203.0.113.10", "--token-file", good, "--server-id", "222", "--timeout", "0s"}, "--timeout: 0s"},
		{"peers without selector", []string{"peers", "--provider", "digitalocean", "--token-file", good, "--server-id", "222", "--write", "-"}, "--selector: required"},
		{"peers without write", []string{"peers", "--provider", "digitalocean", "--selector", "g", "--token-file", good, "--server-id", "222"}, "--write: required"},
		{"peers network on DO", []string{"peers", "--provider", "digitalocean", "--selector", "g", "--token-file", good, "--server-id", "222", "--write", "-", "--network", "3"}, "--network: only meaningful"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(tt.args, "--metadata-url", "http://127.0.0.1:1")
			if !strings.Contains(strings.Join(args, " "), "--api-url") {
				args = append(args, "--api-url", d.URL())
			}
			_, _, err := execute(t, nil, args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if n := len(d.Requests()); n != 0 {
				t.Fatalf("%d API requests despite bad input: %v", n, d.Requests())
			}
		})
	}
}

func TestPeersDigitalOcean(t *testing.T) {
	d := double.NewDigitalOceanDouble(token)
	t.Cleanup(d.Close)
	d.AddDroplet(double.DODroplet{ID: 111, Name: "shop-1", Region: "fra1", Tags: []string{"belay-prod-shop"}, PrivateIP: "10.114.0.30"})
	d.AddDroplet(double.DODroplet{ID: 222, Name: "shop-2", Region: "fra1", Tags: []string{"belay-prod-shop"}, PrivateIP: "10.114.0.2"})
	d.AddDroplet(double.DODroplet{ID: 333, Name: "shop-3", Region: "fra1", Tags: []string{"belay-prod-shop"}, PrivateIP: "10.114.0.9"})
	d.AddDroplet(double.DODroplet{ID: 444, Name: "blog-1", Region: "fra1", Tags: []string{"belay-prod-blog"}, PrivateIP: "10.114.0.4"})
	d.SetFaults(double.Faults{ServerErrors: 1})
	out := filepath.Join(t.TempDir(), "peers.conf")
	_, stderr, err := execute(t, nil, "peers", "--provider", "digitalocean", "--selector", "belay-prod-shop", "--token-file", tokenFile(t, token, 0o600),
		"--write", out, "--api-url", d.URL(), "--metadata-url", metadataDouble(t, 222))
	if err != nil {
		t.Fatalf("peers: %v\n%s", err, stderr)
	}
	got, _ := os.ReadFile(out)
	want := "# Written by belay vip peers from digitalocean droplets tagged \"belay-prod-shop\". Do not edit: rewritten at boot.\n10.114.0.9\n10.114.0.30\n"
	if string(got) != want {
		t.Errorf("peers file:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(stderr, "peers: 2 of 3 group member(s) written to "+out+": 10.114.0.9 10.114.0.30") {
		t.Errorf("stderr:\n%s", stderr)
	}
}

func TestPeersHetznerStdout(t *testing.T) {
	h := double.NewHetznerDouble(token)
	t.Cleanup(h.Close)
	h.AddServer(double.HetznerServer{ID: 11, Name: "shop-1", Labels: map[string]string{"belay-app": "shop"}, PrivateIP: "10.0.1.11", NetworkID: 7})
	h.AddServer(double.HetznerServer{ID: 12, Name: "shop-2", Labels: map[string]string{"belay-app": "shop"}, PrivateIP: "10.0.1.12", NetworkID: 7})
	stdout, stderr, err := execute(t, nil, "peers", "--provider", "hetzner", "--selector", "belay-app=shop", "--token-file", tokenFile(t, token, 0o600),
		"--write", "-", "--api-url", h.URL(), "--server-id", "12", "--network", "7")
	if err != nil {
		t.Fatalf("peers: %v\n%s", err, stderr)
	}
	if !strings.HasSuffix(stdout, "\n10.0.1.11\n") {
		t.Errorf("stdout:\n%s", stdout)
	}
}

func TestPeersFailuresLeaveFileAlone(t *testing.T) {
	d := double.NewDigitalOceanDouble(token)
	t.Cleanup(d.Close)
	d.AddDroplet(double.DODroplet{ID: 222, Name: "shop-2", Region: "fra1", Tags: []string{"belay-prod-shop"}, PrivateIP: "10.114.0.2"})
	tests := []struct {
		name, selector string
		self           string
		want           string
	}{
		{"alone in the group", "belay-prod-shop", "222", "found no peer"},
		{"not in the group", "belay-prod-shop", "999", "this server (id 999) is not among the 1 server(s)"},
		{"empty group", "belay-typo", "222", "is not among the 0 server(s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "peers.conf")
			if err := os.WriteFile(out, []byte("10.114.0.7\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, stderr, err := execute(t, nil, "peers", "--provider", "digitalocean", "--selector", tt.selector, "--token-file", tokenFile(t, token, 0o600),
				"--write", out, "--api-url", d.URL(), "--server-id", tt.self)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(stderr, "peers FAILED") {
				t.Fatalf("err=%v, want %q\n%s", err, tt.want, stderr)
			}
			if b, _ := os.ReadFile(out); string(b) != "10.114.0.7\n" {
				t.Errorf("peers file changed on failure: %q", b)
			}
		})
	}
}
