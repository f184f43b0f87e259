package hostroute

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/belay-sh/belay/deploy/traffic"
	"github.com/belay-sh/belay/internal/shq"
)

// MaintenanceChange switches an app's maintenance mode (`belay maintenance
// on|off`), sent in Request.Maintenance with an empty Spec: the route helper
// re-renders the stage in force with it.
type MaintenanceChange struct {
	On bool `json:"on"`
	// Settings are required with On, refused without.
	Settings *traffic.Maintenance `json:"settings,omitempty"`
}

// maintenanceRequest turns a maintenance change into the stage in force with
// the new setting. Nothing else of the request may be set.
func maintenanceRequest(app string, req Request, prev *traffic.Spec) (Request, error) {
	ch := req.Maintenance
	switch {
	case !reflect.DeepEqual(req.Spec, traffic.Spec{}) || req.DrainMillis != 0:
		return req, fmt.Errorf("route %s: refused: maintenance: sent with a spec or drainMillis, expected the maintenance field alone", app)
	case ch.On && ch.Settings == nil:
		return req, fmt.Errorf("route %s: refused: maintenance.settings: empty, expected the page's settings with on", app)
	case !ch.On && ch.Settings != nil:
		return req, fmt.Errorf("route %s: refused: maintenance.settings: given with off, expected none", app)
	case prev == nil:
		return req, fmt.Errorf("route %s: no stage on this host yet (%s missing): deploy the app once before maintenance mode", app, StageFile)
	}
	out := Request{Spec: *prev, Maintenance: ch}
	out.Spec.Down = nil
	out.Spec.Maintenance = ch.Settings
	return out, nil
}

// MaintenanceCommand is the deploy user's command that hands a maintenance
// change to the route helper (the same sudoers line as a deploy's stages):
// the JSON as a quoted here-document, one line that can never be the
// terminator, nothing in it expanded.
func MaintenanceCommand(helper, app string, ch MaintenanceChange) (string, error) {
	js, err := json.Marshal(Request{Maintenance: &ch})
	if err != nil {
		return "", err
	}
	const eof = "BELAY_ROUTE_EOF"
	return "sudo -n " + helper + " " + shq.Quote(app) + " <<'" + eof + "'\n" + string(js) + "\n" + eof, nil
}
