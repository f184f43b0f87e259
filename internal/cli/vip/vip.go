// Package vip is the `belay vip` command group, run on app servers: `claim`
// (keepalived's notify_master) moves the provider's floating IP here, and
// `peers` (at boot) writes the VRRP group's other members for keepalived.
package vip

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/cloud/api"
	"github.com/belay-sh/belay/cloud/metadata"
	"github.com/belay-sh/belay/cloud/retry"
	cloudvip "github.com/belay-sh/belay/cloud/vip"
	"github.com/belay-sh/belay/internal/cli"
)

// NewCmdVIP returns the `belay vip` group.
func NewCmdVIP(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vip",
		Short: "Move the app's floating IP and find VRRP peers (runs on app servers)",
		Long: `Commands keepalived and boot-time units run on app servers.

claim moves the provider's floating (Hetzner) / reserved (DigitalOcean) IP to this
server when keepalived makes it MASTER; peers lists the VRRP group through the
provider API where private addresses cannot be pinned (DigitalOcean).`,
	}
	cmd.AddCommand(NewCmdClaim(f, nil), NewCmdPeers(f, nil))
	return cmd
}

// common holds what both subcommands share.
type common struct {
	Provider    string
	TokenFile   string
	ServerID    int64
	Self        bool
	Timeout     time.Duration
	APIURL      string // hidden: a provider API double
	MetadataURL string // hidden: a metadata service double
	// Retry and PollInterval are injectable so tests against doubles run fast.
	Retry        retry.Policy
	PollInterval time.Duration
}

func (c *common) flags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&c.Provider, "provider", "", `cloud provider: "digitalocean" or "hetzner" (required)`)
	fl.StringVar(&c.TokenFile, "token-file", "", "file holding the provider API token, mode 0600/0640 (required)")
	fl.Int64Var(&c.ServerID, "server-id", 0, "this server's provider ID (default: ask the metadata service, as --self)")
	fl.BoolVar(&c.Self, "self", false, "find this server's ID from the provider's metadata service (the default)")
	fl.DurationVar(&c.Timeout, "timeout", 60*time.Second, "give up after this long, retries and action polling included")
	fl.DurationVar(&c.PollInterval, "poll-interval", cloudvip.DefaultPollInterval, "wait between checks of a pending provider action")
	fl.StringVar(&c.APIURL, "api-url", "", "provider API base URL (tests and API proxies; https, or http on loopback only)")
	fl.StringVar(&c.MetadataURL, "metadata-url", metadata.DefaultBaseURL, "metadata service base URL")
	_ = fl.MarkHidden("api-url")
	_ = fl.MarkHidden("metadata-url")
	cmd.MarkFlagsMutuallyExclusive("server-id", "self")
}

// check validates flags before anything touches the network.
func (c *common) check() error {
	if err := api.CheckProvider(c.Provider); err != nil {
		return err
	}
	if c.ServerID < 0 {
		return fmt.Errorf("--server-id: %d, expected a positive provider server ID", c.ServerID)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("--timeout: %s, expected a positive duration such as 60s", c.Timeout)
	}
	if c.PollInterval <= 0 || c.PollInterval > c.Timeout {
		return fmt.Errorf("--poll-interval: %s, expected a positive duration shorter than --timeout", c.PollInterval)
	}
	if c.APIURL != "" {
		if err := checkURL("--api-url", c.APIURL, true); err != nil {
			return err
		}
	}
	return checkURL("--metadata-url", c.MetadataURL, false)
}

// checkURL refuses to send the token in clear text anywhere but loopback.
func checkURL(flag, raw string, carriesToken bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("%s: %q, expected an http(s) URL", flag, raw)
	}
	if carriesToken && u.Scheme == "http" {
		ip := net.ParseIP(u.Hostname())
		if u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("%s: %q: the API token may only travel over http to a loopback address; use https", flag, raw)
		}
	}
	return nil
}

// self returns --server-id or asks the metadata service.
func (c *common) self(ctx context.Context, log *api.Logger) (int64, error) {
	if c.ServerID > 0 {
		return c.ServerID, nil
	}
	id, err := metadata.SelfID(ctx, c.Provider, c.MetadataURL, c.retry())
	if err != nil {
		return 0, err
	}
	log.Logf("this server is %s id %d (metadata service)", c.Provider, id)
	return id, nil
}

func (c *common) retry() retry.Policy {
	if c.Retry.Base > 0 {
		return c.Retry
	}
	return retry.Default
}

// redacted hides the token in an error that reaches main's unredacted print.
type redacted struct {
	err    error
	secret string
}

func (r redacted) Error() string { return strings.ReplaceAll(r.err.Error(), r.secret, "[redacted]") }
func (r redacted) Unwrap() error { return r.err }

func redact(err error, secret string) error {
	if err == nil || secret == "" {
		return err
	}
	return redacted{err, secret}
}

// logger writes tagged lines to w with the token scrubbed.
func logger(w io.Writer, token string) *api.Logger {
	return &api.Logger{W: api.Redact(w, token), Tag: "belay vip"}
}
