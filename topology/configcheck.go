package topology

import "github.com/belay-sh/belay/config"

// config cannot import topology (topology imports config), so the address plan
// and the reserved names join config validation by registration: any program
// that plans a stack links this package, and so validates its plan in config.Parse.
func init() {
	config.RegisterPlanner(ReservedNames, func(c *config.Config) error {
		_, err := Plan(c)
		return err
	})
}
