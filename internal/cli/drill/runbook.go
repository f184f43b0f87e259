package drill

import (
	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/drill"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/inventory"
)

// RunbookOptions are one `belay runbook` invocation.
type RunbookOptions struct {
	IO           cli.IO
	Inventory    func(ref string) (*inventory.Inventory, error)
	InventoryRef string
}

// NewCmdRunbook returns `belay runbook`.
func NewCmdRunbook(f *cli.Factory) *cobra.Command {
	opts := &RunbookOptions{IO: f.IO, Inventory: f.Inventory}
	cmd := &cobra.Command{
		Use:   "runbook",
		Short: "Print the runbook (markdown) of a stack: the exact steps of the site switch and the drills",
		Long: `Print docs/runbook.md for a stack. It is generated from the same step data the
drills and the site switch execute, so it lists exactly what they do.`,
		Example: "  belay runbook > docs/runbook.md\n  belay runbook --inventory pulumi:prod",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRunbook(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.InventoryRef, "inventory", "i", "", cli.InventoryUsage)
	return cmd
}

func runRunbook(o *RunbookOptions) error {
	inv, err := o.Inventory(o.InventoryRef)
	if err != nil {
		return err
	}
	return drill.WriteRunbook(o.IO.Out, inv)
}
