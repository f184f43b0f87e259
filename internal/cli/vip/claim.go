package vip

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/cloud/api"
	cloudvip "github.com/belay-sh/belay/cloud/vip"
	"github.com/belay-sh/belay/internal/cli"
)

// ClaimOptions are `belay vip claim`'s inputs and injected dependencies.
type ClaimOptions struct {
	IO cli.IO
	common
	IP        string
	Interface string
	// Run executes interface commands (nil = this host's `ip`).
	Run cloudvip.Runner
}

// NewCmdClaim returns `belay vip claim`; runF replaces the run function in tests.
func NewCmdClaim(f *cli.Factory, runF func(context.Context, *ClaimOptions) error) *cobra.Command {
	opts := &ClaimOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "claim --provider P --ip ADDR --token-file F [--server-id N | --self]",
		Short: "Move the provider's floating/reserved IP to this server (keepalived notify_master)",
		Long: `Moves the floating IP to this server through the provider API and waits until
the provider reports the move done. Safe to repeat: when the IP already points
here nothing is changed. Transient API errors (5xx, 429, network) and "another
action is pending" answers are retried with exponential backoff and jitter until
--timeout. On Hetzner the IP is first unassigned from its holder, then assigned,
and the address is added to --interface (/32) if missing; on DigitalOcean the
reserved IP is routed to the droplet's anchor IP and needs no interface change.

Every step is logged to standard error (journald); the token never is.`,
		Example: `  # keepalived.conf: notify_master "/usr/local/bin/belay vip claim --provider hetzner --ip 203.0.113.10 --token-file /etc/belay/vip-claim.token"
  belay vip claim --provider digitalocean --ip 203.0.113.10 --token-file /etc/belay/vip-claim.token --server-id 3164494`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return ClaimRun(cmd.Context(), opts)
		},
	}
	opts.common.flags(cmd)
	cmd.Flags().StringVar(&opts.IP, "ip", "", "the floating/reserved IPv4 address (required)")
	cmd.Flags().StringVar(&opts.Interface, "interface", "eth0", "interface that must hold the address (Hetzner)")
	return cmd
}

// ClaimRun moves the IP; all validation happens before the first request.
func ClaimRun(ctx context.Context, o *ClaimOptions) error {
	if err := o.check(); err != nil {
		return err
	}
	ip, err := cloudvip.CheckIP(o.IP)
	if err != nil {
		return err
	}
	if o.Interface == "" {
		return fmt.Errorf("--interface: empty, expected the interface that receives the floating IP (eth0)")
	}
	token, err := api.ReadToken(o.TokenFile)
	if err != nil {
		return err
	}
	log := logger(o.IO.ErrOut, token)
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	res, err := claim(ctx, o, token, ip, log)
	if err != nil {
		log.Logf("claim %s FAILED after %s: %v", ip, time.Since(start).Round(time.Millisecond), redact(err, token))
		return redact(err, token)
	}
	what := "already on this server, nothing changed"
	if res.Changed {
		what = fmt.Sprintf("moved from %s (%d action(s), %d poll(s))", holder(res.Previous), res.Actions, res.Polls)
	}
	log.Logf("claim %s done in %s: %s", ip, time.Since(start).Round(time.Millisecond), what)
	return nil
}

func holder(id int64) string {
	if id == 0 {
		return "nowhere (unassigned)"
	}
	return fmt.Sprintf("server %d", id)
}

func claim(ctx context.Context, o *ClaimOptions, token string, ip netip.Addr, log *api.Logger) (cloudvip.Result, error) {
	self, err := o.self(ctx, log)
	if err != nil {
		return cloudvip.Result{}, err
	}
	opts := cloudvip.Options{PollInterval: o.PollInterval, Retry: o.Retry, Logf: log.Logf, Interface: o.Interface, Run: o.Run}
	var c cloudvip.Claimer
	switch o.Provider {
	case api.DigitalOcean:
		gc, err := api.NewDigitalOcean(token, o.APIURL)
		if err != nil {
			return cloudvip.Result{}, err
		}
		c = cloudvip.DigitalOcean{API: gc, Opts: opts}
	case api.Hetzner:
		c = cloudvip.Hetzner{API: api.NewHetzner(token, o.APIURL), Opts: opts}
	}
	log.Logf("claim %s for %s server %d (timeout %s)", ip, o.Provider, self, o.Timeout)
	return c.Claim(ctx, ip, self)
}
