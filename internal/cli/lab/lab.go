// Package lab is `belay lab`: the whole topology as systemd-nspawn machines on
// this box (up, status, ssh, down) plus fault injection for tests and drills.
package lab

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/inventory"
	thelab "github.com/belay-sh/belay/lab"
)

// Deps are the lab operations, injectable so tests can run the commands without root.
type Deps struct {
	Up     func(context.Context, thelab.UpOptions) (*thelab.UpSummary, error)
	Down   func(context.Context, thelab.Paths, thelab.Runner, io.Writer) (*thelab.DownSummary, error)
	Status func(context.Context, thelab.Paths, thelab.Runner) (*thelab.Status, error)
	Inject func(context.Context, thelab.Paths, thelab.Runner, thelab.Fault) error
	Heal   func(context.Context, thelab.Paths, thelab.Runner, io.Writer) ([]thelab.Fault, error)
	Image  func(context.Context, thelab.Paths, thelab.Mirrors, io.Writer) (*thelab.Image, error)
	// Replace is `lab replace HOST` (new root, same user data, data disk kept).
	Replace func(context.Context, thelab.ReplaceOptions) (*thelab.ReplaceSummary, error)
	// Exec runs a program with the terminal's streams and returns its exit code (ssh).
	Exec func(ctx context.Context, io cli.IO, argv []string) (int, error)
	// Executable is the running belay binary (os.Executable).
	Executable func() (string, error)
}

// DefaultDeps are the real operations.
func DefaultDeps() Deps {
	return Deps{Up: thelab.Up, Down: thelab.Down, Status: thelab.GetStatus, Inject: thelab.Inject, Heal: thelab.Heal, Image: thelab.EnsureImage, Replace: thelab.Replace, Exec: execProgram, Executable: os.Executable}
}

// Options are shared by every lab subcommand.
type Options struct {
	IO    cli.IO
	Paths thelab.Paths
	Deps  Deps
	JSON  bool
}

// NewCmdLab returns the `belay lab` group.
func NewCmdLab(f *cli.Factory) *cobra.Command {
	return newCmdLab(f, DefaultDeps(), thelab.DefaultPaths)
}

func newCmdLab(f *cli.Factory, deps Deps, paths thelab.Paths) *cobra.Command {
	o := &Options{IO: f.IO, Paths: paths, Deps: deps}
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Run the whole topology as real machines on this box (systemd-nspawn)",
		Long: `The lab boots one systemd-nspawn machine per server of a stack, on two bridged
sites (10.213.0.0/25 and 10.213.0.128/25) joined by a router namespace, each
provisioned by cloud-init with exactly the user data a cloud would get. It
writes the same inventory as a cloud stack to ` + cli.DefaultInventory + `,
so deploys and drills run against it unchanged once it is named as their
target (--inventory lab or BELAY_INVENTORY=lab). Needs root.`,
	}
	cmd.AddCommand(newCmdUp(o), newCmdDown(o), newCmdStatus(o), newCmdSSH(o), newCmdFault(o), newCmdHeal(o), newCmdImage(o), newCmdReplace(o))
	return cmd
}

// UpOptions are `belay lab up`'s flags.
type UpOptions struct {
	*Options
	Stack string
	Apps  int
}

func newCmdUp(o *Options) *cobra.Command {
	u := &UpOptions{Options: o}
	cmd := &cobra.Command{
		Use:   "up [--stack FILE] [--apps N]",
		Short: "Build the image (once), boot every machine and wait for cloud-init",
		Long: `Builds the Debian 12 lab image once (cached in /var/cache/belay/lab), creates the
lab network, boots one machine per server and waits until cloud-init is done on
each. Re-running with nothing changed does nothing; a machine whose user data
changed is replaced, like a cloud replaces a server.`,
		Example: `  sudo belay lab up
  sudo belay lab up --apps 2 --json
  sudo belay lab up --stack stacks/Pulumi.prod.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return RunUp(cmd.Context(), u) },
	}
	cmd.Flags().StringVar(&u.Stack, "stack", "", "stack file to build (default: the embedded one-app lab stack)")
	cmd.Flags().IntVar(&u.Apps, "apps", 0, "number of apps (copies of the stack's first app); 0 keeps the stack's")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print a JSON summary")
	return cmd
}

// RunUp is `belay lab up` without cobra.
func RunUp(ctx context.Context, u *UpOptions) error {
	if u.Apps < 0 {
		return fmt.Errorf("--apps: %d, expected a positive number of apps", u.Apps)
	}
	bin, err := u.Deps.Executable()
	if err != nil {
		return fmt.Errorf("lab up: locate the belay binary: %w", err)
	}
	sum, err := u.Deps.Up(ctx, thelab.UpOptions{
		Paths: u.Paths, Stack: thelab.StackInput{File: u.Stack, Apps: u.Apps},
		BelayBinary: bin, Progress: u.IO.ErrOut,
	})
	if sum != nil {
		if u.JSON {
			if perr := cli.PrintJSON(u.IO.Out, sum); perr != nil && err == nil {
				err = perr
			}
		} else {
			printUp(u.IO.Out, sum)
		}
	}
	return err
}

func printUp(w io.Writer, s *thelab.UpSummary) {
	if s.AlreadyUp {
		fmt.Fprintf(w, "lab already up: %d machines, nothing changed (%.1fs)\n", len(s.Machines), s.Seconds)
	} else {
		img := "built"
		if s.ImageCached {
			img = "cached"
		}
		fmt.Fprintf(w, "lab up: %d machines in %.1fs (image %s %s)\n", len(s.Machines), s.Seconds, s.Image, img)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MACHINE\tSITE\tADDRESS\tACTION\tCLOUD-INIT\tSECONDS")
	for _, m := range s.Machines {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.1f\n", m.Name, m.Site, m.Address, m.Action, m.CloudInit, m.Seconds)
	}
	tw.Flush()
	for _, r := range s.Removed {
		fmt.Fprintf(w, "removed %s (no longer in the stack)\n", r)
	}
	fmt.Fprintf(w, "inventory: %s\nssh: belay lab ssh <machine>\n", s.Inventory)
}

func newCmdDown(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Remove every machine, overlay, bridge and namespace of the lab",
		Long: `Stops and removes every lab machine with its disk, the bridges and the router
namespace, clears recorded faults, and checks nothing is left behind. The image
cache, the host-key seed and the admin key stay for the next "lab up".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sum, err := o.Deps.Down(cmd.Context(), o.Paths, nil, o.IO.ErrOut)
			if sum != nil {
				if o.JSON {
					if perr := cli.PrintJSON(o.IO.Out, sum); perr != nil && err == nil {
						err = perr
					}
				} else {
					fmt.Fprintf(o.IO.Out, "lab down: removed %d machines%s\n", len(sum.Machines), map[bool]string{true: " and the network", false: ""}[sum.Network])
				}
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print a JSON summary")
	return cmd
}

func newCmdStatus(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each machine's state, address and cloud-init status, and active faults",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := o.Deps.Status(cmd.Context(), o.Paths, nil)
			if err != nil {
				return err
			}
			if o.JSON {
				return cli.PrintJSON(o.IO.Out, st)
			}
			printStatus(o.IO.Out, st)
			return nil
		},
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print JSON")
	return cmd
}

func printStatus(w io.Writer, st *thelab.Status) {
	fmt.Fprintf(w, "network: %s\n", st.Network)
	if len(st.Machines) == 0 {
		fmt.Fprintln(w, "no machines (run `belay lab up`)")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MACHINE\tSITE\tADDRESS\tSTATE\tSYSTEM\tCLOUD-INIT")
		for _, m := range st.Machines {
			sys := m.System
			if sys == "" {
				sys = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.Site, m.Address, m.State, sys, m.CloudInit)
		}
		tw.Flush()
	}
	for _, f := range st.Faults {
		fmt.Fprintf(w, "fault: %s (since %s)\n", f, f.At.Format("15:04:05"))
	}
}

// SSHOptions are `belay lab ssh`'s inputs.
type SSHOptions struct {
	*Options
	Host    string
	Command []string
}

func newCmdSSH(o *Options) *cobra.Command {
	s := &SSHOptions{Options: o}
	return &cobra.Command{
		Use:   "ssh HOST [COMMAND...]",
		Short: "SSH into a lab machine as the deploy user (pinned host key, strict checking)",
		Example: `  sudo belay lab ssh shop-1
  sudo belay lab ssh db-1 -- systemctl is-system-running`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s.Host, s.Command = args[0], args[1:]
			return RunSSH(cmd.Context(), s)
		},
	}
}

// RunSSH execs OpenSSH with the lab's key and known_hosts.
func RunSSH(ctx context.Context, s *SSHOptions) error {
	inv, err := inventory.Load(s.Paths.InventoryPath())
	if err != nil {
		return fmt.Errorf("%w (is the lab up? `belay lab up`)", err)
	}
	h := inv.Host(s.Host)
	if h == nil {
		var names []string
		for _, x := range inv.Hosts {
			names = append(names, x.Name)
		}
		return fmt.Errorf("lab ssh: no host %q, expected one of %s", s.Host, strings.Join(names, ", "))
	}
	tty := len(s.Command) == 0
	code, err := s.Deps.Exec(ctx, s.IO, thelab.SSHArgs(s.Paths, *h, s.Command, tty))
	if err != nil {
		return err
	}
	if code != 0 {
		return cli.ExitError{Code: code}
	}
	return nil
}

func execProgram(ctx context.Context, io cli.IO, argv []string) (int, error) {
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	c.Stdin, c.Stdout, c.Stderr = io.In, io.Out, io.ErrOut
	err := c.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", argv[0], err)
	}
	return 0, nil
}

func newCmdFault(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fault KIND ...",
		Short: "Inject a failure (recorded; undone by `belay lab heal` and `belay lab down`)",
		Long: `Faults:
  kill MACHINE                  power cut: SIGKILL the machine (heal boots it again)
  stop-service MACHINE UNIT     systemctl stop UNIT inside the machine
  cut-link MACHINE              take the machine's link down (host-side veth)
  netem MACHINE ARGS...         tc netem on the machine's link, e.g. delay 200ms loss 5%
  fill-disk MACHINE             fill the machine's own root disk to ~0 bytes free (not its data disk)
  partition                     cut the router between the primary and standby sites`,
	}
	add := func(kind thelab.FaultKind, use, short string, args cobra.PositionalArgs, build func([]string) thelab.Fault) {
		cmd.AddCommand(&cobra.Command{
			Use: use, Short: short, Args: args,
			RunE: func(c *cobra.Command, a []string) error {
				f := build(a)
				f.Kind = kind
				if err := o.Deps.Inject(c.Context(), o.Paths, nil, f); err != nil {
					return err
				}
				fmt.Fprintf(o.IO.Out, "injected: %s\n", f)
				return nil
			},
		})
	}
	add(thelab.FaultKill, "kill MACHINE", "Power cut: SIGKILL the machine", cobra.ExactArgs(1), func(a []string) thelab.Fault { return thelab.Fault{Machine: a[0]} })
	add(thelab.FaultStopService, "stop-service MACHINE UNIT", "systemctl stop UNIT inside the machine", cobra.ExactArgs(2), func(a []string) thelab.Fault { return thelab.Fault{Machine: a[0], Service: a[1]} })
	add(thelab.FaultCutLink, "cut-link MACHINE", "Take the machine's link down", cobra.ExactArgs(1), func(a []string) thelab.Fault { return thelab.Fault{Machine: a[0]} })
	add(thelab.FaultNetem, "netem MACHINE ARGS...", "Add latency/loss with tc netem, e.g. `netem shop-1 delay 200ms loss 5%`", cobra.MinimumNArgs(2), func(a []string) thelab.Fault { return thelab.Fault{Machine: a[0], Netem: a[1:]} })
	add(thelab.FaultFillDisk, "fill-disk MACHINE", "Fill the machine's root disk to ~0 bytes free (not its data disk)", cobra.ExactArgs(1), func(a []string) thelab.Fault { return thelab.Fault{Machine: a[0]} })
	add(thelab.FaultPartition, "partition", "Cut the router between the two sites", cobra.NoArgs, func([]string) thelab.Fault { return thelab.Fault{} })
	return cmd
}

func newCmdHeal(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "heal",
		Short: "Undo every injected fault (killed machines are booted again)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			healed, err := o.Deps.Heal(cmd.Context(), o.Paths, nil, o.IO.ErrOut)
			fmt.Fprintf(o.IO.Out, "healed %d fault(s)\n", len(healed))
			return err
		},
	}
}

func newCmdImage(o *Options) *cobra.Command {
	var cache string
	cmd := &cobra.Command{
		Use:   "image [--cache DIR]",
		Short: "Build the lab image now (or report the cached one)",
		Long: `Builds the Debian 12 machine image "lab up" boots from, keyed by a hash of the
package list, the build script and the APT mirrors, unless it is already cached.
--cache builds into another cache directory (benchmarks measure a cold build
there without touching the image a running lab uses).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := thelab.Preflight(true); err != nil {
				return err
			}
			p := o.Paths
			if cache != "" {
				p.Cache = cache
			}
			img, err := o.Deps.Image(cmd.Context(), p, thelab.DetectMirrors("/etc/apt"), o.IO.ErrOut)
			if err != nil {
				return err
			}
			if o.JSON {
				return cli.PrintJSON(o.IO.Out, img)
			}
			state := "built"
			if img.Cached {
				state = "cached"
			}
			fmt.Fprintf(o.IO.Out, "image %s %s in %.1fs: %s\n", img.Key, state, img.Duration.Seconds(), img.RootFS)
			return nil
		},
	}
	cmd.Flags().StringVar(&cache, "cache", "", "cache directory (default "+thelab.DefaultPaths.Cache+")")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print JSON")
	return cmd
}
