package admin

// DBHealth is a cell's database as `belay cells` reports it: the state of
// the pg_auto_failover formation that holds it, read on the monitor.
type DBHealth struct {
	// Kind is "shared" (the cell's database on the stack's pair, formation
	// "default") or "dedicated" (the cell's own pair, its own formation).
	Kind      string `json:"kind"`
	Formation string `json:"formation"`
	// Health is "up" (one primary, one settled secondary), "degraded: …"
	// (writes work, no failover target) or "down: …" / "unknown: …".
	Health string `json:"health"`
	// Nodes are the formation's nodes with their "reported state" (or
	// "reported (going goal)"), as the monitor sees them.
	Nodes map[string]string `json:"nodes,omitempty"`
}
