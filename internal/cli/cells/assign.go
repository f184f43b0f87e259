package cells

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/router"
	"github.com/belay-sh/belay/router/admin"
)

type assignOptions struct {
	*Options
	Cell     string
	FromFile string
	Domains  []string
	// Stdin is read for --from-file - (o.IO.In).
	Stdin io.Reader
}

func newCmdAssign(f *cli.Factory) *cobra.Command {
	o := &assignOptions{Options: newOptions(f), Stdin: f.IO.In}
	cmd := &cobra.Command{
		Use:   "assign DOMAIN... --app APP --cell CELL | --from-file FILE",
		Short: "Map new shops to a cell (every router routes them within about a second)",
		Long: `Maps each DOMAIN (lowercased; hostname syntax, no wildcard) to CELL and waits
until every live router loaded the change. A shop already mapped to another
cell is refused: its data lives there, use belay shop move.

Several domains, or --from-file FILE (one domain per line; blank lines and
# comments allowed; - reads stdin), are one bulk assignment: at most 10000
shops, every one checked before anything changes (a bad line is named by its
line number and nothing is assigned), then one request, one transaction, one
mapping version for the routers, and one audit row per newly mapped shop.
Shops already on CELL are kept as they are; one shop on another cell refuses
the whole batch.`,
		Example: "  belay shop assign acme.example.com --app shop --cell c2\n" +
			"  belay shop assign a.example.com b.example.com --app shop --cell c2\n" +
			"  belay shop assign --from-file shops.txt --app shop --cell c2 --json",
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Domains = args
			return runAssign(cmd.Context(), o)
		},
	}
	o.flags(cmd, true)
	cmd.Flags().StringVar(&o.Cell, "cell", "", "the cell (required)")
	cmd.Flags().StringVar(&o.FromFile, "from-file", "", "read the domains from `FILE`, one per line (- for stdin)")
	_ = cmd.MarkFlagRequired("cell")
	return cmd
}

func runAssign(ctx context.Context, o *assignOptions) error {
	if err := router.CheckCell(o.Cell); err != nil {
		return fmt.Errorf("--cell: %w", err)
	}
	var domains []string
	switch {
	case o.FromFile != "" && len(o.Domains) > 0:
		return errors.New("give DOMAIN arguments or --from-file, not both")
	case o.FromFile != "":
		var err error
		if domains, err = readDomainsFile(o.FromFile, o.Stdin); err != nil {
			return err
		}
	case len(o.Domains) == 0:
		return errors.New("no shop: give DOMAIN... or --from-file FILE")
	case len(o.Domains) == 1:
		return assignOne(ctx, o)
	default:
		var err error
		if domains, err = normalizeArgs(o.Domains); err != nil {
			return err
		}
	}
	if err := o.open(ctx); err != nil {
		return err
	}
	defer o.close()
	c := o.client()
	got, v, err := c.AssignMany(ctx, domains, o.Cell, actor())
	if err != nil {
		return err
	}
	routers, err := c.WaitApplied(ctx, o.App, v, 10*time.Second)
	if err != nil {
		return fmt.Errorf("%d shops are assigned to %s in the database, but: %w", len(domains), o.Cell, err)
	}
	fresh := 0
	for _, a := range got {
		if a.New {
			fresh++
		}
	}
	if o.JSON {
		return cli.PrintJSON(o.IO.Out, map[string]any{"cell": o.Cell, "version": v, "routers": len(routers),
			"new": fresh, "kept": len(got) - fresh, "shops": got})
	}
	fmt.Fprintf(o.IO.Out, "%d shops → %s: %d newly mapped, %d already there (mapping version %d, loaded by %d routers)\n",
		len(got), o.Cell, fresh, len(got)-fresh, v, len(routers))
	return nil
}

// assignOne is the single-shop form (its own request op and JSON answer,
// kept for scripts written against it).
func assignOne(ctx context.Context, o *assignOptions) error {
	d, err := router.NormalizeDomain(o.Domains[0])
	if err != nil {
		return err
	}
	if err := o.open(ctx); err != nil {
		return err
	}
	defer o.close()
	c := o.client()
	v, err := c.Assign(ctx, o.App, d, o.Cell, actor())
	if err != nil {
		return err
	}
	routers, err := c.WaitApplied(ctx, o.App, v, 10*time.Second)
	if err != nil {
		return fmt.Errorf("%s is assigned to %s in the database, but: %w", d, o.Cell, err)
	}
	if o.JSON {
		return cli.PrintJSON(o.IO.Out, map[string]any{"domain": d, "cell": o.Cell, "version": v, "routers": len(routers)})
	}
	fmt.Fprintf(o.IO.Out, "%s → %s (mapping version %d, loaded by %d routers)\n", d, o.Cell, v, len(routers))
	return nil
}

// normalizeArgs normalizes DOMAIN arguments, naming a bad one by position.
func normalizeArgs(args []string) ([]string, error) {
	return normalizeList(args, func(i int) string { return fmt.Sprintf("argument %d", i+1) })
}

func readDomainsFile(name string, stdin io.Reader) ([]string, error) {
	r, label := stdin, "stdin"
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("--from-file: %w", err)
		}
		defer f.Close()
		r, label = f, name
	}
	return ReadDomains(r, label)
}

// ReadDomains reads a shop list: one domain per line, blank lines and #
// comments (whole line or after the domain) ignored, each normalized like a
// DOMAIN argument. Every line is checked; the error names each bad line
// (the first ten) as NAME:LINE, so a list is fixed in one pass.
func ReadDomains(r io.Reader, name string) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	var lines []string
	var nums []int
	n := 0
	for sc.Scan() {
		n++
		l := sc.Text()
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		lines = append(lines, l)
		nums = append(nums, n)
		if len(lines) > admin.MaxBatch {
			return nil, fmt.Errorf("%s: more than %d shops (line %d); one bulk assignment takes at most %d, split the list", name, admin.MaxBatch, n, admin.MaxBatch)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: after line %d: %w", name, n, err)
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("%s: no domain (only blank lines and comments)", name)
	}
	return normalizeList(lines, func(i int) string { return fmt.Sprintf("%s:%d", name, nums[i]) })
}

// normalizeList normalizes every entry, dropping repeats of a shop (a list
// pasted twice assigns once), and reports every bad entry by where(i).
func normalizeList(entries []string, where func(i int) string) ([]string, error) {
	if len(entries) > admin.MaxBatch {
		return nil, fmt.Errorf("%d shops: one bulk assignment takes at most %d, split the list", len(entries), admin.MaxBatch)
	}
	var out, bad []string
	nbad := 0
	seen := map[string]bool{}
	for i, e := range entries {
		d, err := router.NormalizeDomain(e)
		if err != nil {
			nbad++
			if len(bad) < 10 {
				bad = append(bad, fmt.Sprintf("%s: %q: %v", where(i), e, err))
			}
			continue
		}
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	if nbad > 0 {
		more := ""
		if nbad > len(bad) {
			more = fmt.Sprintf("\n(and %d more)", nbad-len(bad))
		}
		return nil, fmt.Errorf("%d bad domains, nothing assigned:\n%s%s", nbad, strings.Join(bad, "\n"), more)
	}
	return out, nil
}
