package roles

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/internal/shq"
)

// TLS modes of Spec.App.TLS (the config's belay:apps[i].tls.mode).
const (
	TLSModeACME   = "acme"
	TLSModeCustom = "custom"
)

// ACMEWebroot is where the ACME client writes HTTP-01 tokens
// (<webroot>/.well-known/acme-challenge/<token>) and nginx serves them from.
// Tokens are public by design; the directory is world-readable for nginx's workers.
const ACMEWebroot = "/var/lib/belay/acme-webroot"

// TLS is how an app server serves HTTPS. A nil *TLS serves plain HTTP only.
type TLS struct {
	// Mode is TLSModeACME or TLSModeCustom.
	Mode string
	// ACME (Mode acme): the CA's directory URL, the account's contact (lego
	// requires one) and a PEM CA trusted for the ACME server's own HTTPS ("" = system roots).
	ACMEDirectory     string
	Email             string
	ACMECACertificate string
	// HSTSMaxAge > 0 sends Strict-Transport-Security on HTTPS responses.
	HSTSMaxAge            int
	HSTSIncludeSubdomains bool
	// Certificate (chain, leaf first) and Key, PEM (Mode custom; secret).
	Certificate string
	Key         string
}

// TLSDir holds an app's live certificate (cert.pem: chain then key, 0600), the
// redirect include and the ACME peers include. Root-only: nginx's master reads
// them as root; neither belay-app nor the deploy user can.
func TLSDir(app string) string { return "/etc/belay/tls/" + app }

// TLSCertFile is the one file nginx reads the certificate chain and key from,
// so a new certificate replaces the old in one rename (never a key beside the wrong chain).
func TLSCertFile(app string) string { return TLSDir(app) + "/cert.pem" }

// TLSRedirectFile is included in the port-80 location: empty until a
// CA-issued certificate is installed, then the redirect to HTTPS.
func TLSRedirectFile(app string) string { return TLSDir(app) + "/redirect.conf" }

// ACMEPeersFile is the server list of the upstream a challenge request falls
// back to when the token is not on this server (the group's other members).
func ACMEPeersFile(app string) string { return TLSDir(app) + "/acme-peers.conf" }

// ACMEStateDir is the ACME client's account key and issued certificates (root-only).
func ACMEStateDir(app string) string { return "/var/lib/belay/acme/" + app }

// ACMEScript obtains, renews and installs an app's certificate.
func ACMEScript(app string) string { return hostcmd.ACMEScript(app) }

// ACMEUnit and ACMETimer name the systemd units running ACMEScript. The
// unit's name is hostcmd's: the site switch starts it through sudo.
func ACMEUnit(app string) string  { return hostcmd.ACMEUnit(app) }
func ACMETimer(app string) string { return "belay-acme-" + app + ".timer" }

// ACMECAFile is the CA the ACME client trusts for the ACME server (LEGO_CA_CERTIFICATES).
func ACMECAFile(app string) string { return TLSDir(app) + "/acme-ca.pem" }

// acmeForwardHeader marks a challenge request one member forwarded to the
// others, so they answer from their own webroot and never forward it again.
const acmeForwardHeader = "X-Belay-Acme-Forwarded"

var emailRE = regexp.MustCompile(`^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+$`)

// tlsSite is what serving an app's domains over HTTPS on one host needs: an
// app server (appTLSSite) and a router of an app with cells (routerTLSSite)
// both build one, and every function of this file works on it, so the two
// roles run the same certificate machinery. The names (TLS dir, units) are
// per app: the router of app X and the servers of app X are never one host
// (validateTLSHost).
type tlsSite struct {
	App     string
	Domains []string
	TLS     *TLS
	// Standby: the standby site's server (the ACME unit does not retry).
	Standby bool
	// Peers are the group's other members, the challenge fallback (nil
	// with peer discovery: belay-vrrp-peers writes them at boot).
	Peers []string
	// Field names the Spec section in errors: "Spec.App" or "Spec.Router".
	Field string
}

// appTLSSite is an app server's HTTPS.
func appTLSSite(s *Spec) tlsSite {
	a := s.App
	t := tlsSite{App: a.Name, Domains: a.Domains, TLS: a.TLS, Standby: a.Standby, Field: "Spec.App"}
	if a.VRRP != nil {
		t.Peers = a.VRRP.Peers
	}
	return t
}

// acmeApp is the app whose ACME peers file this host's peer discovery
// refreshes: its app or its router with TLS mode acme, else "".
func acmeApp(s *Spec) string {
	switch {
	case s.App != nil && s.App.TLS != nil && s.App.TLS.Mode == TLSModeACME:
		return s.App.Name
	case s.Router != nil && s.Router.TLS != nil && s.Router.TLS.Mode == TLSModeACME:
		return s.Router.App
	}
	return ""
}

func validateTLS(s tlsSite) error {
	t := s.TLS
	if t == nil {
		return nil
	}
	var errs []error
	f := s.Field
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("roles: "+format, args...)) }
	if len(s.Domains) == 0 {
		bad("%s.TLS: set, but %s.Domains is empty (a certificate names domains)", f, f)
	}
	if t.HSTSMaxAge < 0 {
		bad("%s.TLS.HSTSMaxAge: %d, expected 0 (off) or seconds", f, t.HSTSMaxAge)
	}
	switch t.Mode {
	case TLSModeACME:
		if u, err := url.Parse(t.ACMEDirectory); err != nil || u.Scheme != "https" || u.Host == "" {
			bad("%s.TLS.ACMEDirectory: %q, expected an https URL", f, t.ACMEDirectory)
		}
		if !emailRE.MatchString(t.Email) {
			bad("%s.TLS.Email: %q, expected the ACME account's email address", f, t.Email)
		}
		if t.ACMECACertificate != "" && !strings.Contains(t.ACMECACertificate, "-----BEGIN CERTIFICATE-----") {
			bad("%s.TLS.ACMECACertificate: expected PEM certificates or \"\"", f)
		}
		for i, d := range s.Domains {
			if strings.HasPrefix(d, "*.") {
				bad("%s.Domains[%d]: %q, a wildcard cannot be issued over HTTP-01", f, i, d)
			}
		}
		if t.Certificate != "" || t.Key != "" {
			bad("%s.TLS.Certificate/Key: set with mode acme, expected them only with mode custom", f)
		}
	case TLSModeCustom:
		if !strings.Contains(t.Certificate, "-----BEGIN CERTIFICATE-----") {
			bad("%s.TLS.Certificate: expected a PEM certificate chain", f)
		}
		if !strings.Contains(t.Key, "PRIVATE KEY-----") {
			bad("%s.TLS.Key: expected a PEM private key", f)
		}
	default:
		bad("%s.TLS.Mode: %q, expected %s or %s (nil TLS for plain HTTP)", f, t.Mode, TLSModeACME, TLSModeCustom)
	}
	return errors.Join(errs...)
}

// addTLS renders an app server's TLS files and the first-boot commands that
// must run before nginx starts (the certificate nginx loads must exist).
func addTLS(a tlsSite, c *CloudConfig) {
	t := a.TLS
	if t == nil {
		return
	}
	name := a.App
	c.WriteFiles = append(c.WriteFiles,
		File{Path: ACMEPeersFile(name), Content: acmePeers(a.Peers), Owner: "root:root", Permissions: "0600"},
	)
	c.Runcmd = append(c.Runcmd, []string{"install", "-d", "-m", "0700", "-o", "root", "-g", "root", TLSDir(name)})
	if t.Mode == TLSModeCustom {
		c.WriteFiles = append(c.WriteFiles,
			File{Path: TLSCertFile(name), Content: pemJoin(t.Certificate, t.Key), Owner: "root:root", Permissions: "0600"},
			File{Path: TLSRedirectFile(name), Content: redirectOn, Owner: "root:root", Permissions: "0600"},
		)
		return
	}
	if t.ACMECACertificate != "" {
		c.WriteFiles = append(c.WriteFiles, File{Path: ACMECAFile(name), Content: pemJoin(t.ACMECACertificate), Owner: "root:root", Permissions: "0600"})
	}
	c.WriteFiles = append(c.WriteFiles,
		// Its own file: the app's base config defines no upstream (those are the deployer's, in http.conf).
		File{Path: "/etc/nginx/conf.d/belay-" + name + "-acme.conf", Content: acmeUpstream(name), Owner: "root:root", Permissions: "0644"},
		File{Path: ACMEScript(name), Content: acmeScript(a), Owner: "root:root", Permissions: "0755"},
		File{Path: "/etc/systemd/system/" + ACMEUnit(name), Content: acmeService(name, a.Standby), Owner: "root:root", Permissions: "0644"},
		File{Path: "/etc/systemd/system/" + ACMETimer(name), Content: acmeTimer(name), Owner: "root:root", Permissions: "0644"},
	)
	c.Runcmd = append(c.Runcmd,
		[]string{"install", "-d", "-m", "0755", "-o", "root", "-g", "root", ACMEWebroot},
		[]string{"install", "-d", "-m", "0700", "-o", "root", "-g", "root", ACMEStateDir(name)},
		// nginx must start on first boot, before any certificate is issued.
		[]string{ACMEScript(name), "--placeholder"},
	)
}

// startACME runs after nginx is up: the twice-daily timer and, on the primary
// site, the first issuance in the background (DNS may not point here yet; the
// unit retries). A standby server's validations fail until a site switch
// points DNS at it, so it only tries on the timer (or when started by hand).
func startACME(a tlsSite, c *CloudConfig) {
	if t := a.TLS; t == nil || t.Mode != TLSModeACME {
		return
	}
	c.Runcmd = append(c.Runcmd, []string{"systemctl", "enable", "--now", ACMETimer(a.App)})
	if !a.Standby {
		c.Runcmd = append(c.Runcmd, []string{"systemctl", "start", "--no-block", ACMEUnit(a.App)})
	}
}

func pemJoin(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(strings.TrimSpace(p))
		b.WriteString("\n")
	}
	return b.String()
}

const redirectOn = "# Rendered by belay: a CA-issued certificate is installed; plain HTTP redirects to HTTPS.\n" +
	"access_log off;\nreturn 301 https://$host$request_uri;\n"

const redirectOff = "# Rendered by belay: no CA-issued certificate yet (a placeholder is served on 443); plain HTTP serves the app.\n"

// acmePeers lists the group's other members' nginx: the CA reaches whichever
// member holds the VIP, which may not be the one that asked. A down server
// keeps the upstream valid when there is no peer (yet).
func acmePeers(peers []string) string {
	var b strings.Builder
	b.WriteString("# Rendered by belay: the group's other members, asked for an ACME challenge token this server lacks.\n")
	b.WriteString("server 127.0.0.1:9 down;\n")
	for _, p := range sortedAddrs(peers) {
		fmt.Fprintf(&b, "server %s:80 max_fails=0;\n", p)
	}
	return b.String()
}

// acmeUpstream is where a challenge request goes when the token is not local.
func acmeUpstream(app string) string {
	return fmt.Sprintf("# Rendered by belay: the group's other members, for ACME challenge tokens this server lacks.\nupstream belay_%s_acme_peers {\n    include %s;\n}\n", app, ACMEPeersFile(app))
}

// acmePeersRefresh is appended to the peer-discovery script (DigitalOcean):
// the discovered peers become the challenge fallback too.
func acmePeersRefresh(app string) string {
	f := ACMEPeersFile(app)
	return `# The same peers answer ACME challenges this server lacks (` + f + `).
ptmp=$(mktemp ` + f + `.XXXXXX)
{
    echo '# Rendered by belay-vrrp-peers: the group members found at boot.'
    echo 'server 127.0.0.1:9 down;'
    sed -n 's/^\([0-9][0-9.]*\)$/server \1:80 max_fails=0;/p' ` + PeersFile + `
} >"$ptmp"
chmod 0600 "$ptmp"
if cmp -s "$ptmp" ` + f + `; then
    rm -f "$ptmp"
else
    mv "$ptmp" ` + f + `
    if systemctl -q is-active nginx.service; then
        nginx -t -q && systemctl reload nginx.service
    fi
fi
`
}

// nginxTLSPolicy is the TLS policy (Mozilla "intermediate", 2023) of every
// HTTPS server: TLS 1.2 and 1.3, forward-secret AEAD ciphers only. It goes in
// the server block, not at http level: Debian's nginx.conf already sets
// ssl_protocols and ssl_prefer_server_ciphers there, and a second
// ssl_prefer_server_ciphers at the same level is a fatal duplicate.
const nginxTLSPolicy = `    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;
    ssl_prefer_server_ciphers off;
    ssl_session_cache shared:belay_tls:10m;
    ssl_session_timeout 1d;
    # Tickets would need key rotation across reloads; the session cache suffices.
    ssl_session_tickets off;
`

// tlsServerLines are the 443 server's TLS directives.
func tlsServerLines(app string, t *TLS) string {
	var b strings.Builder
	fmt.Fprintf(&b, "    ssl_certificate %s;\n    ssl_certificate_key %s;\n", TLSCertFile(app), TLSCertFile(app))
	b.WriteString(nginxTLSPolicy)
	if t.HSTSMaxAge > 0 {
		v := "max-age=" + strconv.Itoa(t.HSTSMaxAge)
		if t.HSTSIncludeSubdomains {
			v += "; includeSubDomains"
		}
		fmt.Fprintf(&b, "    add_header Strict-Transport-Security %q always;\n", v)
	}
	return b.String()
}

// acmeChallengeLocations serve HTTP-01 tokens from the webroot, else from the
// group's other members (the one that asked may not hold the VIP).
func acmeChallengeLocations(app string) string {
	return fmt.Sprintf(`    # ACME HTTP-01: never redirected. A token this server lacks belongs to
    # another member's request: ask them (once; a forwarded request stops here).
    location ^~ /.well-known/acme-challenge/ {
        access_log off;
        root %[1]s;
        default_type text/plain;
        try_files $uri @belay_acme_peers;
    }
    location @belay_acme_peers {
        access_log off;
        if ($http_%[2]s) {
            return 404;
        }
        proxy_pass http://belay_%[3]s_acme_peers;
        proxy_set_header Host $host;
        proxy_set_header %[4]s 1;
        # Members are on the private network: a dead one is skipped fast.
        proxy_connect_timeout 300ms;
        proxy_read_timeout 5s;
        proxy_next_upstream error timeout http_404;
        proxy_next_upstream_tries 0;
    }
`, ACMEWebroot, strings.ToLower(strings.ReplaceAll(acmeForwardHeader, "-", "_")), app, acmeForwardHeader)
}

// acmeScript obtains (first run) or renews (< 30 days left) the app's
// certificate with lego over HTTP-01, installs it for nginx in one rename and
// reloads nginx only when it changed. --placeholder installs a self-signed
// certificate when none exists, so nginx starts before the first issuance;
// --force renews whatever the expiry.
func acmeScript(a tlsSite) string {
	name := a.App
	t := a.TLS
	args := []string{"lego", "--accept-tos", "--path", ACMEStateDir(name), "--server", t.ACMEDirectory, "--email", t.Email}
	args = append(args, "--key-type", "ec256", "--http", "--http.webroot", ACMEWebroot)
	for _, d := range a.Domains {
		args = append(args, "--domains", d)
	}
	ca := ""
	if t.ACMECACertificate != "" {
		ca = "export LEGO_CA_CERTIFICATES=" + shq.Quote(ACMECAFile(name)) + "\n"
	}
	// lego names its files after the first domain.
	first := a.Domains[0]
	return `#!/bin/sh
# Rendered by belay: the certificate of app ` + name + ` (` + strings.Join(a.Domains, " ") + `) from ` + t.ACMEDirectory + `.
# Usage: ` + ACMEScript(name) + ` [--placeholder|--force]
set -eu
live=` + shq.Quote(TLSDir(name)) + `
state=` + shq.Quote(ACMEStateDir(name)) + `
mode=${1-}
case $mode in
""|--force|--placeholder) ;;
*) echo "belay-acme: $mode: expected --placeholder, --force or nothing" >&2; exit 2 ;;
esac
# One run at a time: the timer's unit and the site switch (which runs this
# script directly) may start it together, and lego's files are not shared safely.
exec 9>"/run/lock/belay-acme-` + name + `.lock"
flock 9
# Not umask 077 throughout: lego writes the challenge tokens nginx's workers read.
mkdir -p -m 0700 "$live" "$state"
if [ "$mode" = --placeholder ]; then
    [ -s "$live/cert.pem" ] && exit 0
    tmp=$(mktemp -d "$live/.placeholder.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj /CN=belay-placeholder -addext ` + shq.Quote("subjectAltName=DNS:"+first) + ` \
        -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
    cat "$tmp/cert.pem" "$tmp/key.pem" >"$tmp/both.pem"
    chmod 0600 "$tmp/both.pem"
    (umask 077 && printf '%s\n' ` + shq.Quote(strings.TrimSuffix(redirectOff, "\n")) + ` >"$live/redirect.conf")
    mv "$tmp/both.pem" "$live/cert.pem"
    echo "belay-acme: installed a self-signed placeholder for app ` + name + `"
    exit 0
fi
` + ca + `set -- ` + shq.Join(args...) + `
crt="$state/certificates/` + first + `.crt"
key="$state/certificates/` + first + `.key"
if [ ! -s "$crt" ]; then
    "$@" run
elif [ "$mode" = --force ]; then
    # --days beyond any certificate's lifetime: renew now.
    "$@" renew --days 36500 --no-random-sleep
else
    "$@" renew --days 30 --no-random-sleep
fi
new=$(mktemp "$live/.cert.XXXXXX")
trap 'rm -f "$new"' EXIT
cat "$crt" "$key" >"$new"
if cmp -s "$new" "$live/cert.pem"; then
    exit 0
fi
mv "$new" "$live/cert.pem"
(umask 077 && printf '%s\n' ` + shq.Quote(strings.TrimSuffix(redirectOn, "\n")) + ` >"$live/redirect.conf")
if systemctl -q is-active nginx.service; then
    nginx -t -q
    systemctl reload nginx.service
fi
echo "belay-acme: installed a new certificate for app ` + name + `: $(openssl x509 -noout -enddate -serial -in "$crt" | tr '\n' ' ')"
`
}

func acmeService(app string, standby bool) string {
	retry := `# A first issuance fails until DNS points at the group: retry every 15 minutes
# (under Let's Encrypt's 5 failed validations per hour and domain).
StartLimitIntervalSec=0
`
	restart := "Restart=on-failure\nRestartSec=15min\n"
	if standby {
		// DNS points at the primary site until a switch: no retries against the CA.
		retry = "# Standby site: tried by the timer, and started by belay failover site once DNS points here.\n"
		restart = ""
	}
	return `# Rendered by belay: obtain or renew app ` + app + `'s certificate (ACME HTTP-01).
[Unit]
Description=belay: ACME certificate of app ` + app + `
Wants=network-online.target
After=network-online.target nginx.service
` + retry + `
[Service]
Type=oneshot
ExecStart=` + ACMEScript(app) + `
` + restart
}

func acmeTimer(app string) string {
	return `# Rendered by belay: twice daily; the certificate is renewed when under 30 days are left.
[Unit]
Description=belay: renew app ` + app + `'s certificate

[Timer]
OnCalendar=*-*-* 00,12:00:00
RandomizedDelaySec=1h
Persistent=true

[Install]
WantedBy=timers.target
`
}
