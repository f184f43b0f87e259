package host

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/celldb"
	"github.com/belay-sh/belay/internal/cli"
)

// NewCmdCellDB returns `belay host cell-db VERB DATABASE`: the root side of
// `belay db copy` on a data node (celldb.RunHost). Flags are not parsed:
// every word is data, checked by the helper (a verb of a fixed list, a cell
// database's name), and sudoers lists each allowed argv exactly.
func NewCmdCellDB(f *cli.Factory, runF func(context.Context, *celldb.HostOptions) error) *cobra.Command {
	return &cobra.Command{
		Use:   "cell-db tables|counts|dump|restore|mark|marker|reset DATABASE",
		Short: "A cell database's copy helper on a data node (run by belay db copy through sudo)",
		Long: `The root side of belay db copy --cell APP/CELL on a PostgreSQL data node,
for one cell database (docs/cells.md):

  tables   the number of user tables, or "absent"
  counts   "<rows><TAB><schema.table>" per user table (exact count(*))
  dump     pg_dump -Fc of the database on stdout
  restore  pg_restore of stdin as the database's role, in one transaction;
           refused when the database holds a user table or a copy marker
  mark     compares the source's counts (JSON on stdin) with its own and
           records the copy marker (the database's comment) when equal
  marker   the copy marker as JSON, or "none"
  reset    drops and recreates the database empty, owned by its role;
           refused once it holds the copy marker`,
		Example:            "  sudo -n belay host cell-db tables shop_c2",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return fmt.Errorf("expected VERB DATABASE, got %d words", len(args))
			}
			o := &celldb.HostOptions{Verb: args[0], Database: args[1], In: f.IO.In, Out: f.IO.Out, Exec: execStreams(f.IO.ErrOut)}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return celldb.RunHost(cmd.Context(), o)
		},
	}
}

// execStreams runs argv with the given stdin and stdout; its stderr goes to
// errOut and, trimmed, into the error.
func execStreams(errOut io.Writer) func(ctx context.Context, argv []string, stdin io.Reader, stdout io.Writer) error {
	return func(ctx context.Context, argv []string, stdin io.Reader, stdout io.Writer) error {
		c := exec.CommandContext(ctx, argv[0], argv[1:]...)
		var errb bytes.Buffer
		c.Stdin, c.Stdout, c.Stderr = stdin, stdout, io.MultiWriter(&errb, errOut)
		// The clients run from / as postgres: the caller's directory may be unreadable to it.
		c.Dir = "/"
		if err := c.Run(); err != nil {
			msg := strings.TrimSpace(errb.String())
			if len(msg) > 2000 {
				msg = msg[len(msg)-2000:]
			}
			prog := argv[0]
			if prog == "runuser" && len(argv) > 4 {
				prog = argv[4]
			}
			return fmt.Errorf("%s: %w: %s", prog, err, msg)
		}
		return nil
	}
}
