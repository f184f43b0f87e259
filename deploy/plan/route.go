package plan

// Traffic steps: the stage a plan hands to `belay host route` on each app host.

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/belay-sh/belay/deploy/traffic"
	"github.com/belay-sh/belay/internal/shq"
)

// route hands the stage to every host's root helper (`belay host route`),
// which validates it, renders nginx's files, checks, reloads and confirms
// nginx took them. With drain the step also waits (DrainTimeout at most) until
// nginx's old workers finished their requests in flight: the side that lost
// its traffic may be stopped or restarted only after that.
func (b *builder) route(p *Plan, name string, stage traffic.Stage, share string, drain bool) error {
	var canary []string
	if stage.Kind != traffic.Stable {
		canary = b.hosts
	}
	spec, err := traffic.SpecFor(b.in.Inventory, b.in.App, canary, b.st.Keys, stage)
	if err != nil {
		return err
	}
	if _, err := traffic.Render(spec); err != nil {
		return fmt.Errorf("routing for stage %s: %w", name, err)
	}
	req := RouteRequest{Spec: spec}
	timeout := time.Minute
	title := "route " + name
	if drain {
		req.DrainMillis = b.st.DrainTimeout.Milliseconds()
		timeout += b.st.DrainTimeout
		title += " (drain " + b.st.DrainTimeout.String() + ")"
	}
	cmd, err := routeCommand(b.in.App, req)
	if err != nil {
		return err
	}
	b.step(p, Step{ID: "route-" + strings.TrimSuffix(name, "%"), Stage: Route, Title: title, Traffic: share,
		Command: cmd, Timeout: Duration(timeout)})
	return nil
}

// DefaultDrainTimeout is how long a route change waits for requests in flight
// to the side that lost its traffic (kamal-proxy's default drain timeout too).
const DefaultDrainTimeout = 30 * time.Second

// RouteRequest is the JSON `belay host route` reads on stdin (hostroute.Request).
type RouteRequest struct {
	Spec        traffic.Spec `json:"spec"`
	DrainMillis int64        `json:"drainMillis,omitempty"`
}

// RouteHelper is the root helper the app's sudoers allows (roles).
const RouteHelper = "/usr/local/bin/belay host route"

const routeEOF = "BELAY_ROUTE_EOF"

// routeCommand sends the request as a quoted here-document: one JSON line,
// which can never be the terminator line, and nothing in it is expanded.
func routeCommand(app string, req RouteRequest) (string, error) {
	js, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	return "sudo -n " + RouteHelper + " " + shq.Quote(app) + " >/dev/null <<'" + routeEOF + "'\n" + string(js) + "\n" + routeEOF, nil
}

// AccessLog is the app's nginx access log (host layout contract).
func AccessLog(app string) string { return "/var/log/nginx/belay/" + app + ".access.log" }
