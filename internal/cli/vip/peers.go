package vip

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/cloud/api"
	cloudvip "github.com/belay-sh/belay/cloud/vip"
	"github.com/belay-sh/belay/internal/cli"
)

// PeersOptions are `belay vip peers`' inputs.
type PeersOptions struct {
	IO cli.IO
	common
	Selector string
	Network  int64
	Write    string
}

// NewCmdPeers returns `belay vip peers`; runF replaces the run function in tests.
func NewCmdPeers(f *cli.Factory, runF func(context.Context, *PeersOptions) error) *cobra.Command {
	opts := &PeersOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "peers --provider P --selector S --token-file F --write FILE",
		Short: "Write the VRRP group's other members' private addresses for keepalived",
		Long: `Lists the servers of this app's VRRP group through the provider API (DigitalOcean:
droplets tagged --selector; Hetzner: servers matching the label selector) and
writes the other members' private addresses, one per line and sorted, to --write
atomically. keepalived.conf includes that file inside its unicast_peer block.
Fails, writing nothing, when this server is not in the group or no peer is found.`,
		Example: `  belay vip peers --provider digitalocean --selector belay-prod-shop --token-file /etc/belay/vip-discovery.token --write /etc/keepalived/peers.conf`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return PeersRun(cmd.Context(), opts)
		},
	}
	opts.common.flags(cmd)
	cmd.Flags().StringVar(&opts.Selector, "selector", "", "DigitalOcean tag or Hetzner label selector naming the group (required)")
	cmd.Flags().Int64Var(&opts.Network, "network", 0, "Hetzner network ID whose address counts (default: each server's first private network)")
	cmd.Flags().StringVar(&opts.Write, "write", "", `file to write ("-" = standard output) (required)`)
	return cmd
}

// PeersRun discovers the group and writes the peers file.
func PeersRun(ctx context.Context, o *PeersOptions) error {
	if err := o.check(); err != nil {
		return err
	}
	if strings.TrimSpace(o.Selector) == "" {
		return fmt.Errorf("--selector: required (the DigitalOcean tag or Hetzner label selector naming the VRRP group)")
	}
	if o.Write == "" {
		return fmt.Errorf(`--write: required (the file keepalived includes, or "-")`)
	}
	if o.Network != 0 && o.Provider != api.Hetzner {
		return fmt.Errorf("--network: only meaningful with --provider hetzner")
	}
	token, err := api.ReadToken(o.TokenFile)
	if err != nil {
		return err
	}
	log := logger(o.IO.ErrOut, token)
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if err := peers(ctx, o, token, log); err != nil {
		log.Logf("peers FAILED: %v", redact(err, token))
		return redact(err, token)
	}
	return nil
}

func peers(ctx context.Context, o *PeersOptions, token string, log *api.Logger) error {
	self, err := o.self(ctx, log)
	if err != nil {
		return err
	}
	var members []cloudvip.Member
	var source string
	switch o.Provider {
	case api.DigitalOcean:
		gc, err := api.NewDigitalOcean(token, o.APIURL)
		if err != nil {
			return err
		}
		source = fmt.Sprintf("digitalocean droplets tagged %q", o.Selector)
		members, err = cloudvip.DigitalOceanMembers(ctx, gc, o.Selector, o.retry())
		if err != nil {
			return err
		}
	case api.Hetzner:
		source = fmt.Sprintf("hetzner servers matching %q", o.Selector)
		members, err = cloudvip.HetznerMembers(ctx, api.NewHetzner(token, o.APIURL), o.Selector, o.Network, o.retry())
		if err != nil {
			return err
		}
	}
	addrs, err := cloudvip.Peers(members, self, o.Selector, log.Logf)
	if err != nil {
		return err
	}
	data := cloudvip.RenderPeers(addrs, source)
	if o.Write == "-" {
		_, err = o.IO.Out.Write(data)
		return err
	}
	if err := cloudvip.WriteFileAtomic(o.Write, data, 0o644); err != nil {
		return err
	}
	list := make([]string, len(addrs))
	for i, a := range addrs {
		list[i] = a.String()
	}
	log.Logf("peers: %d of %d group member(s) written to %s: %s", len(addrs), len(members), o.Write, strings.Join(list, " "))
	return nil
}
