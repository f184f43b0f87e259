package components

import "github.com/pulumi/pulumi/sdk/v3/go/pulumi"

// assignmentOptions are the options of a floating/reserved IP assignment:
// keepalived moves the address on failover (through the provider API), so
// the assignment's server field is created once and then ignored. Without this,
// the next `pulumi up` after a failover would move the address back to the
// server that failed. If the assignment is ever replaced (a new floating IP),
// the old one goes first: deleting it after creating the new one would
// unassign the address again.
func assignmentOptions(serverField string, opts ...pulumi.ResourceOption) []pulumi.ResourceOption {
	out := append([]pulumi.ResourceOption{}, opts...)
	return append(out, pulumi.IgnoreChanges([]string{serverField}), pulumi.DeleteBeforeReplace(true))
}
