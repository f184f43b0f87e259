package cells

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/router"
)

func newCmdTLS(f *cli.Factory) *cobra.Command {
	o := newOptions(f)
	cmd := &cobra.Command{
		Use:   "tls DOMAIN on|off --app APP",
		Short: "Give a shop its own HTTPS certificate at the routers (ACME), or stop",
		Long: `Sets the shop's tls flag in the mapping (audited as tls-on / tls-off). Every
router then orders the shop's certificate from the app's ACME CA (HTTP-01,
so the shop's DNS must point at the router VIP), serves it for the shop's
name without a reload, redirects the shop's plain HTTP to HTTPS once it
has it, and renews it under 30 days left. A shop whose validation fails is
retried with a growing backoff (15 min, doubling, at most 24 h). off stops
serving and renewing it. Needs the app's tls.mode acme. See the state with
belay shop certs.`,
		Example: "  belay shop tls acme.example.com on --app shop\n  belay shop tls acme.example.com off --app shop",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := router.NormalizeDomain(args[0])
			if err != nil {
				return err
			}
			if args[1] != "on" && args[1] != "off" {
				return fmt.Errorf("%q: expected on or off", args[1])
			}
			ctx := cmd.Context()
			if err := o.open(ctx); err != nil {
				return err
			}
			defer o.close()
			v, err := o.client().SetTLS(ctx, d, args[1] == "on", actor())
			if err != nil {
				return err
			}
			if o.JSON {
				return cli.PrintJSON(o.IO.Out, map[string]any{"domain": d, "tls": args[1], "version": v})
			}
			fmt.Fprintf(o.IO.Out, "%s: tls %s (mapping version %d); the routers act on it now: belay shop certs %s --app %s\n", d, args[1], v, d, o.App)
			return nil
		},
	}
	o.flags(cmd, true)
	return cmd
}

func newCmdCerts(f *cli.Factory) *cobra.Command {
	o := newOptions(f)
	cmd := &cobra.Command{
		Use:   "certs [DOMAIN] --app APP",
		Short: "Each router's certificate of each shop with tls: pending, issued until DATE, failed: reason",
		Long: `Lists, per shop with tls and per router, the state the router last
reported: pending (not issued yet), issued until DATE (with the renewal's
error if the last one failed), or failed with the reason and the next try.
Exit status 1 when a certificate failed.`,
		Example: "  belay shop certs --app shop\n  belay shop certs acme.example.com --app shop --json",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d := ""
			if len(args) == 1 {
				var err error
				if d, err = router.NormalizeDomain(args[0]); err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			if err := o.open(ctx); err != nil {
				return err
			}
			defer o.close()
			certs, err := o.client().Certs(ctx, d)
			if err != nil {
				return err
			}
			bad := false
			for _, c := range certs {
				bad = bad || c.State == "failed"
			}
			if o.JSON {
				if err := cli.PrintJSON(o.IO.Out, certs); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(o.IO.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SHOP\tROUTER\tSTATE")
				for _, c := range certs {
					s := c.State
					switch {
					case c.State == "issued":
						s = "issued until " + c.NotAfter.Format("2006-01-02")
					case c.State == "failed":
						s = "failed: " + c.Error
					}
					if c.State == "issued" && c.Error != "" {
						s += " (renewal failed: " + c.Error + ")"
					}
					if !c.NextTry.IsZero() {
						s += "; next try " + c.NextTry.Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Domain, c.Router, s)
				}
				_ = tw.Flush()
				if len(certs) == 0 {
					fmt.Fprintln(o.IO.Out, "no shop with tls reported by any router")
				}
			}
			if bad {
				return cli.ExitError{Code: 1}
			}
			return nil
		},
	}
	o.flags(cmd, true)
	return cmd
}
