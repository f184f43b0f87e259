package roles

// HTTPS at a router of an app with cells. The app's domains point at the
// router tier (topology.EntryGroup), so the routers terminate TLS for them
// with the app servers' machinery (tls.go: lego per router over HTTP-01, the
// challenge fallback to the other routers, the placeholder, the renewal
// timer, custom certificates), and proxy to the cells in plain HTTP over
// the site network (the cells run no ACME: hostspec gives them no TLS).
//
// The redirect rule. A router serves many shop domains; the certificate
// covers only the app's configured domains (exact names, and `*.zone`
// covering exactly one more label). So only requests whose Host the
// certificate covers are redirected from port 80 to 443 (once a CA-issued
// or custom certificate is installed, as on an app server); every other
// shop keeps being served on port 80, where a redirect would send its
// visitors to a certificate error. Port 443 serves every shop (a shop
// outside the certificate gets the name mismatch it would get anyway).

import (
	"errors"
	"fmt"
	"strings"

	"github.com/belay-sh/belay/router"
)

// routerTLSSite is a router's HTTPS: the app's domains, its router peers.
func routerTLSSite(s *Spec) tlsSite {
	r := s.Router
	t := tlsSite{App: r.App, Domains: r.Domains, TLS: r.TLS, Standby: r.Standby, Field: "Spec.Router"}
	if r.VRRP != nil {
		t.Peers = r.VRRP.Peers
	}
	return t
}

// validateRouterTLS checks the router's domains (they reach nginx's
// server_name) and TLS, and refuses a router with TLS sharing its host with
// an app server: the TLS files, ACME units and peers file are named per app
// and per host, and both would claim the default servers on 80 and 443.
func validateRouterTLS(s *Spec) error {
	r := s.Router
	var errs []error
	seen := map[string]bool{}
	for i, d := range r.Domains {
		if !domainRE.MatchString(d) || seen[d] {
			errs = append(errs, fmt.Errorf("roles: Spec.Router.Domains[%d]: %q, expected a unique lowercase domain name (or *.domain)", i, d))
		}
		seen[d] = true
	}
	if r.TLS != nil && s.App != nil {
		errs = append(errs, fmt.Errorf("roles: Spec.Router.TLS: set on a host that is also a server of app %s, expected the router of an app with cells on its own host", s.App.Name))
	}
	if err := validateTLS(routerTLSSite(s)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RouterNginxConf is the router's conf.d file: map.conf at http level, then
// the engine's server blocks (router.Server: every block routes alike).
// Without TLS, one default server on port 80: shops come under their own
// domains, which no server_name lists. With TLS (domains set), three:
//   - port 80, default: every shop outside the certificate, plain HTTP;
//   - port 80, the certificate's names: the ACME challenge (mode acme),
//     then the redirect include (empty until a CA-issued certificate);
//   - port 443, default: every shop, with the app's certificate and HSTS.
func RouterNginxConf(c router.Cells, t *TLS, domains []string) string {
	head := "# Rendered by belay: router of app " + c.App + " (shop -> cell, docs/cells.md).\n" +
		"include " + RouterMapFile(c.App) + ";\n"
	if t == nil {
		return head + router.ServerConf(c, "80 default_server")
	}
	var b strings.Builder
	b.WriteString(head)
	b.WriteString("# Shops the certificate does not cover: plain HTTP (a redirect would lead to a certificate error),\n" +
		"# except a shop with its own certificate (belay shop tls), redirected by the Lua per request.\n")
	other := "    listen 80 default_server;\n    server_name _;\n"
	if t.Mode == TLSModeACME {
		// The shops' own certificates are validated here (their names are in no server_name).
		other += acmeChallengeLocations(c.App)
	}
	b.WriteString(router.Server(c, other, router.ShopRedirect(c.App)))
	b.WriteString("# The names the certificate covers: HTTPS once a CA-issued (or custom) certificate is installed.\n")
	covered := "    listen 80;\n    server_name " + strings.Join(routerServerNames(domains), " ") + ";\n"
	if t.Mode == TLSModeACME {
		covered += acmeChallengeLocations(c.App)
	}
	b.WriteString(router.Server(c, covered,
		"        # Empty until a CA-issued certificate is installed, then the redirect to HTTPS.\n        include "+TLSRedirectFile(c.App)+";\n"))
	b.WriteString("# HTTPS for every shop; the certificate covers the app's domains, a shop with its own gets that one.\n")
	// The challenge fallback's upstream is addTLS's own conf.d file, as on an app server.
	b.WriteString(router.Server(c, "    listen 443 ssl http2 default_server;\n    server_name _;\n"+tlsServerLines(c.App, t)+router.ShopCertLines(c.App), ""))
	return b.String()
}

// routerServerNames are nginx server names matching exactly what a
// certificate for domains covers: a name as is, and `*.zone` as a regex of
// one more label (nginx's own `*.zone` would also match a.b.zone, which the
// certificate does not cover). Domains are validated (domainRE): only
// letters, digits, '-' and '.' reach the regex.
func routerServerNames(domains []string) []string {
	out := make([]string, 0, len(domains))
	for _, d := range domains {
		if zone, ok := strings.CutPrefix(d, "*."); ok {
			out = append(out, `~^[^.]+\.`+strings.ReplaceAll(zone, ".", `\.`)+`$`)
			continue
		}
		out = append(out, d)
	}
	return out
}

// addShopCerts prepares the shops' own certificates (router/shopcert, run
// by router-sync): their directory (root 0700, files 0600: only nginx's
// master and router-sync read them; workers get them through the control
// socket) and, with TLS mode acme, the issuer's ACME settings, the app's.
// Without them router-sync reports every tls shop failed, naming the file.
func addShopCerts(s *Spec, c *CloudConfig) {
	r := s.Router
	if r.TLS == nil {
		return
	}
	c.Runcmd = append(c.Runcmd, []string{"install", "-d", "-m", "0700", "-o", "root", "-g", "root", router.CertsDir(r.App)})
	if r.TLS.Mode != TLSModeACME {
		return
	}
	conf := router.ShopACME{Server: r.TLS.ACMEDirectory, Email: r.TLS.Email, Webroot: ACMEWebroot}
	if r.TLS.ACMECACertificate != "" {
		conf.CAFile = ACMECAFile(r.App)
	}
	c.WriteFiles = append(c.WriteFiles, File{Path: RouterDir(r.App) + "/" + router.ShopACMEFile,
		Content: string(router.RenderShopACME(conf)), Owner: "root:root", Permissions: "0600"})
}
