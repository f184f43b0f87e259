package roles

import (
	"fmt"

	"github.com/belay-sh/belay/seedkeys"
)

// ConvergePubFile holds the public half of the stack's converge key (see
// seedkeys.ConvergeKey): `belay host converge` accepts only bundles it signed.
// Root-only, and never rewritten by converge itself.
const ConvergePubFile = "/etc/belay/converge.pub"

// ConvergeCommand is the root helper the deploy user may run through sudo:
// exactly this argv, the signed bundle on stdin.
var ConvergeCommand = []string{BelayBinary, "host", "converge"}

// validateConverge checks Spec.ConvergeKey when set ("" leaves the host
// without converge: nothing is written and no sudoers line granted).
func validateConverge(s *Spec) error {
	if s.ConvergeKey == "" {
		return nil
	}
	if _, err := seedkeys.ParseConvergePublic(s.ConvergeKey); err != nil {
		return fmt.Errorf("roles: Spec.ConvergeKey: %w", err)
	}
	return nil
}

// addConverge writes the converge public key root-only at first boot.
func addConverge(s *Spec, c *CloudConfig) {
	if s.ConvergeKey == "" {
		return
	}
	c.WriteFiles = append(c.WriteFiles, File{Path: ConvergePubFile, Content: s.ConvergeKey + "\n", Owner: "root:root", Permissions: "0600"})
}
