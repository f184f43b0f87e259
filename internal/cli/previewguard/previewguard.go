// Package previewguard is `belay preview-guard`: it reads `pulumi preview
// --json` and fails when a stateful resource would be replaced or deleted.
package previewguard

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/previewguard"
)

// Options are the command's inputs.
type Options struct {
	IO    cli.IO
	File  string
	Allow []string
	JSON  bool
	// Open opens --file (os.Open; injectable for tests).
	Open func(string) (io.ReadCloser, error)
}

// ErrBlocked is returned when the preview would destroy a stateful resource.
var ErrBlocked = errors.New("preview-guard: the preview replaces or deletes stateful resources (see above)")

// NewCmdPreviewGuard returns `belay preview-guard`; run overrides the run function in tests.
func NewCmdPreviewGuard(f *cli.Factory, run func(*Options) error) *cobra.Command {
	o := &Options{IO: f.IO, Open: func(p string) (io.ReadCloser, error) { return os.Open(p) }}
	cmd := &cobra.Command{
		Use:   "preview-guard",
		Short: "Fail when `pulumi preview --json` would replace or delete stateful resources",
		Long: `Reads the JSON of ` + "`pulumi preview --json`" + ` and fails when a step would replace or
delete a data volume, a stateful server (db-1, db-2, db-monitor, db-standby,
backup), a floating/static IP or a floating IP's assignment. Each deliberate
replacement is allowed by naming the resource (its URN or its Pulumi name) with
--allow; an --allow that matches nothing fails too, so a typo never passes.
It also fails when a data node (db-1, db-2) would be resized in place: the
provider powers it off, and a belay:database.size edit powers both off at once;
belay db resize rolls a resize one node at a time.
It warns (without failing) when a running cell becomes dedicated: its new
pair is empty, and belay db copy --cell APP/CELL must move its data before
belay converge.`,
		Example: `  pulumi preview --json --stack prod > preview.json
  belay preview-guard --file preview.json
  belay preview-guard --file preview.json --allow db-2    # a drilled one-node replacement`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if run != nil {
				return run(o)
			}
			return Run(o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.File, "file", "-", `the preview document ("-" reads stdin)`)
	fl.StringArrayVar(&o.Allow, "allow", nil, "URN or resource name whose replacement/deletion is deliberate (repeatable)")
	fl.BoolVar(&o.JSON, "json", false, "print the verdict as JSON")
	return cmd
}

// Run checks the preview and prints the verdict.
func Run(o *Options) error {
	in := o.IO.In
	if o.File != "-" {
		f, err := o.Open(o.File)
		if err != nil {
			return fmt.Errorf("--file: %w", err)
		}
		defer f.Close()
		in = f
	}
	p, err := previewguard.Parse(in)
	if err != nil {
		return fmt.Errorf("--file %s: %w", o.File, err)
	}
	v := previewguard.Check(p, o.Allow)
	if o.JSON {
		enc := json.NewEncoder(o.IO.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return err
		}
	} else {
		printText(o.IO.Out, v)
	}
	if len(v.UnusedAllows) > 0 {
		return fmt.Errorf("--allow %s: matches no replaced or deleted stateful resource in the preview, expected a URN or name the preview lists", strings.Join(v.UnusedAllows, ", "))
	}
	if !v.OK {
		return ErrBlocked
	}
	return nil
}

func printText(w io.Writer, v previewguard.Verdict) {
	for _, wn := range v.Warnings {
		fmt.Fprintf(w, "WARNING: %s: %s\n", wn.Name, wn.Message)
	}
	if len(v.Findings) == 0 {
		fmt.Fprintf(w, "preview-guard: ok, %d steps, no stateful resource replaced or deleted\n", v.Steps)
		return
	}
	for _, f := range v.Findings {
		mark := "BLOCKED"
		if f.Allowed {
			mark = "allowed"
		}
		why := ""
		if len(f.Reasons) > 0 {
			why = " because " + strings.Join(f.Reasons, ", ") + " changed"
		}
		fmt.Fprintf(w, "%s: %s %s %s (%s)%s\n  %s\n  %s\n", mark, f.Op, f.Kind, f.Name, f.Type, why, f.URN, f.Hint)
	}
	if v.OK {
		fmt.Fprintf(w, "preview-guard: ok, %d steps, every destructive step on a stateful resource is allowed\n", v.Steps)
	}
}
