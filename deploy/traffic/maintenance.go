package traffic

import (
	"bytes"
	"errors"
	"fmt"
	"html"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Maintenance is an app's maintenance mode (`belay maintenance on`): nginx
// answers the app's traffic itself with 503, a static page and Retry-After,
// except keepalived's health check (so the pair keeps its VIP) and the staff
// allowed by client address or cookie, who reach the app as usual. It is part
// of the stage the route helper keeps on the host: a deploy's stages carry it
// over until `belay maintenance off`.
type Maintenance struct {
	// Message is the page's text (plain text, at most MaxMaintenanceMessage bytes).
	Message string `json:"message,omitempty"`
	// RetryAfter is the Retry-After header in seconds (1 s to 7 days).
	RetryAfter int `json:"retryAfter"`
	// AllowClients are IP addresses or CIDRs that still reach the app.
	AllowClients []string `json:"allowClients,omitempty"`
	// AllowCookies are cookie name=value pairs that still reach the app.
	AllowCookies []Match `json:"allowCookies,omitempty"`
	// Since is when it was switched on (RFC 3339, shown by status).
	Since string `json:"since,omitempty"`
	// By is who switched it on (shown by status).
	By string `json:"by,omitempty"`
}

// Limits of a maintenance setting.
const (
	MaxMaintenanceMessage = 2000
	MaxRetryAfter         = 7 * 24 * 3600
	// DefaultMaintenanceMessage is the page's text when none is given.
	DefaultMaintenanceMessage = "This service is down for maintenance. Please try again shortly."
)

// HealthHost is the Host under which nginx's loopback health server (on
// 127.0.0.2) serves an app for keepalived (roles.AppHealthHost; the contract
// test checks they agree). Maintenance never answers it.
func HealthHost(app string) string { return "belay-app-health-" + app }

// maintenanceLine starts routing.conf's comment that `belay status` reads.
const maintenanceLine = "# maintenance on"

var (
	rfc3339Re = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`)
	byRe      = regexp.MustCompile(`^[A-Za-z0-9._@+-]{1,128}$`)
)

// validate lists every problem of m, each naming its field.
func (m *Maintenance) validate() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("maintenance."+format, a...)) }
	if len(m.Message) > MaxMaintenanceMessage {
		bad("message: %d bytes, at most %d", len(m.Message), MaxMaintenanceMessage)
	}
	if !utf8.ValidString(m.Message) {
		bad("message: not UTF-8")
	}
	for i, r := range m.Message {
		if unicode.IsControl(r) {
			bad("message: control character %q at byte %d (plain text on one line)", r, i)
			break
		}
	}
	if m.RetryAfter < 1 || m.RetryAfter > MaxRetryAfter {
		bad("retryAfter: %d, expected 1-%d seconds", m.RetryAfter, MaxRetryAfter)
	}
	if len(m.AllowClients) > MaxClients {
		bad("allowClients: %d, at most %d", len(m.AllowClients), MaxClients)
	}
	for i, c := range m.AllowClients {
		if _, err := NormalizeClient(c); err != nil {
			bad("allowClients[%d]: %v", i, err)
		}
	}
	if len(m.AllowCookies) > MaxMatches {
		bad("allowCookies: %d, at most %d", len(m.AllowCookies), MaxMatches)
	}
	for i, c := range m.AllowCookies {
		if !varNameRe.MatchString(c.Name) {
			bad("allowCookies[%d]: name %q, expected letters, digits, underscores", i, c.Name)
		}
		if err := validValue(c.Value); err != nil {
			bad("allowCookies[%d] (%s): value: %v", i, c.Name, err)
		}
	}
	if m.Since != "" && !rfc3339Re.MatchString(m.Since) {
		bad("since: %q, expected an RFC 3339 time", m.Since)
	}
	if m.By != "" && !byRe.MatchString(m.By) {
		bad("by: %q, expected letters, digits and ._@+-", m.By)
	}
	return errs
}

// nginxText makes s safe inside an nginx double-quoted string that is an
// HTML body: HTML-escaped (no markup, no quotes), and '$' (nginx variables)
// and '\' (nginx escapes) as character references.
func nginxText(s string) string {
	s = html.EscapeString(s)
	return strings.NewReplacer("$", "&#36;", `\`, "&#92;", "{", "&#123;", "}", "&#125;").Replace(s)
}

// writeMaintenance adds the maintenance maps to the http-level file and the
// 503 to the server-level one. Only requests of the app's public server are
// answered: the health server (127.0.0.2, HealthHost) includes the same
// routing file and is matched on address and Host, so no client can claim it.
func writeMaintenance(h, r *bytes.Buffer, app, v string, m *Maintenance) {
	parts := []string{"$" + v + "_maint_site"}
	fmt.Fprintf(h, "map \"$server_addr|$host\" $%s_maint_site {\n    default 1;\n    \"~^127\\.0\\.0\\.2\\|%s$\" 0;\n}\n",
		v, regexp.QuoteMeta(HealthHost(app)))
	if len(m.AllowClients) > 0 {
		var cs []string
		for _, c := range m.AllowClients {
			p, _ := NormalizeClient(c)
			cs = append(cs, p.String())
		}
		fmt.Fprintf(h, "geo $%s_maint_ip {\n    default 1;\n", v)
		for _, c := range sortedUnique(cs) {
			fmt.Fprintf(h, "    %s 0;\n", c)
		}
		h.WriteString("}\n")
		parts = append(parts, "$"+v+"_maint_ip")
	}
	for i, c := range m.AllowCookies {
		fmt.Fprintf(h, "map $cookie_%s $%s_maint_c%d {\n    default 1;\n    \"%s\" 0;\n}\n", c.Name, v, i, c.Value)
		parts = append(parts, fmt.Sprintf("$%s_maint_c%d", v, i))
	}
	fmt.Fprintf(h, "map \"%s\" $%s_maintenance {\n    default 0;\n    \"%s\" 1;\n}\n", strings.Join(parts, ""), v, strings.Repeat("1", len(parts)))

	msg := m.Message
	if msg == "" {
		msg = DefaultMaintenanceMessage
	}
	fmt.Fprintf(r, "%s (retry after %ds%s%s)\n", maintenanceLine, m.RetryAfter, optional(", since ", m.Since), optional(", by ", m.By))
	fmt.Fprintf(r, "if ($%s_maintenance) {\n    return 503;\n}\n", v)
	fmt.Fprintf(r, "error_page 503 @belay_%s_maintenance;\n", v)
	fmt.Fprintf(r, "location @belay_%s_maintenance {\n    default_type text/html;\n    add_header Retry-After %d always;\n    add_header Cache-Control \"no-store\" always;\n", v, m.RetryAfter)
	fmt.Fprintf(r, "    return 503 \"<!doctype html>\\n<html><head><meta charset=\\\"utf-8\\\"><title>Maintenance</title></head>\\n<body><h1>Maintenance</h1>\\n<p>%s</p></body></html>\\n\";\n}\n", nginxText(msg))
}

func optional(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

// ParseMaintenanceLine reads routing.conf's maintenance comment line (what
// `belay status` shows): "" when maintenance is off.
func ParseMaintenanceLine(line string) string {
	if rest, ok := strings.CutPrefix(line, maintenanceLine); ok {
		return "on" + rest
	}
	return ""
}

// Validate checks m alone (the CLI, before it connects anywhere).
func (m *Maintenance) Validate() error { return errors.Join(m.validate()...) }
