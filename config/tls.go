package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
)

// TLS modes of an app (belay:apps[i].tls.mode).
const (
	// TLSACME issues and renews certificates from an ACME CA (HTTP-01), on each server of the pair.
	TLSACME = "acme"
	// TLSCustom serves the certificate and key given in belay:tlsCertificates.<app>.
	TLSCustom = "custom"
	// TLSOff serves plain HTTP on port 80 only.
	TLSOff = "off"
)

// Defaults of belay:apps[i].tls.
const (
	DefaultTLSMode = TLSACME
	// DefaultACMEDirectory is Let's Encrypt's production directory.
	DefaultACMEDirectory = "https://acme-v02.api.letsencrypt.org/directory"
	// ACMEStagingDirectory is Let's Encrypt's staging directory (untrusted certificates, generous rate limits).
	ACMEStagingDirectory = "https://acme-staging-v02.api.letsencrypt.org/directory"
	// DefaultHSTSMaxAge is one year, what the HSTS preload list asks for.
	DefaultHSTSMaxAge = 31536000
)

// KeyTLSCertificates holds the custom certificates and keys (a secret), by app name.
const KeyTLSCertificates = "belay:tlsCertificates"

// TLS is how an app's nginx serves HTTPS.
type TLS struct {
	// Mode is acme (default), custom or off.
	Mode string `json:"mode"`
	// Email is the ACME account's contact (required with mode acme).
	Email string `json:"email,omitempty"`
	// ACMEDirectory is the ACME server's directory URL (default Let's Encrypt production).
	ACMEDirectory string `json:"acmeDirectory,omitempty"`
	// ACMECACertificate is a PEM CA the ACME client trusts for the ACME server's
	// own HTTPS (a private CA such as step-ca, or pebble in tests); "" uses the system roots.
	ACMECACertificate string `json:"acmeCaCertificate,omitempty"`
	HSTS              HSTS   `json:"hsts"`
}

// HSTS is the Strict-Transport-Security header, opt-in: once browsers saw it,
// they refuse plain HTTP to the domains for MaxAge seconds.
type HSTS struct {
	Enabled           bool `json:"enabled"`
	MaxAge            int  `json:"maxAge"`
	IncludeSubdomains bool `json:"includeSubdomains,omitempty"`
}

// TLSCertificate is one app's custom certificate chain and private key (PEM).
type TLSCertificate struct {
	Certificate string `json:"-"`
	Key         string `json:"-"`
}

func defaultTLS() TLS {
	return TLS{Mode: DefaultTLSMode, ACMEDirectory: DefaultACMEDirectory, HSTS: HSTS{MaxAge: DefaultHSTSMaxAge}}
}

// decodeTLS reads belay:apps[i].tls over the defaults.
func decodeTLS(e *errs, path string, v any, dst *TLS) {
	o := asObject(e, path, v)
	if o == nil {
		return
	}
	o.str("mode", &dst.Mode)
	o.str("email", &dst.Email)
	o.str("acmeDirectory", &dst.ACMEDirectory)
	o.str("acmeCaCertificate", &dst.ACMECACertificate)
	if raw, ok := o.get("hsts"); ok {
		h := asObject(e, o.field("hsts"), raw)
		if h != nil {
			h.boolean("enabled", &dst.HSTS.Enabled)
			h.integer("maxAge", &dst.HSTS.MaxAge)
			h.boolean("includeSubdomains", &dst.HSTS.IncludeSubdomains)
			h.done("enabled", "maxAge", "includeSubdomains")
		}
	}
	o.done("mode", "email", "acmeDirectory", "acmeCaCertificate", "hsts")
}

// decodeTLSCertificates reads belay:tlsCertificates: {<app>: {certificate, key}}.
func decodeTLSCertificates(e *errs, key string, v any, cfg *Config) {
	e.redact = true
	defer func() { e.redact = false }()
	o := asObject(e, key, v)
	if o == nil {
		return
	}
	cfg.TLSCertificates = map[string]TLSCertificate{}
	names := make([]string, 0, len(o.m))
	for n := range o.m {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		raw, ok := o.get(n)
		if !ok {
			continue
		}
		c := asObject(e, o.field(n), raw)
		if c == nil {
			continue
		}
		var tc TLSCertificate
		c.str("certificate", &tc.Certificate)
		c.str("key", &tc.Key)
		c.done("certificate", "key")
		cfg.TLSCertificates[n] = tc
	}
}

// tls checks belay:apps[i].tls and the app's custom certificate.
func (v *validator) tls(p string, a App) {
	t := a.TLS
	p += ".tls"
	switch t.Mode {
	case TLSACME:
		u, err := url.Parse(t.ACMEDirectory)
		if err != nil || u.Scheme != "https" || u.Host == "" || strings.ContainsAny(t.ACMEDirectory, " \t\r\n\"'\\") {
			v.add(p+".acmeDirectory", "got %q, expected the https URL of an ACME directory (default %s; Let's Encrypt staging is %s)", t.ACMEDirectory, DefaultACMEDirectory, ACMEStagingDirectory)
		}
		switch {
		case t.Email == "":
			// Debian's lego refuses to register an ACME account without one.
			v.add(p+".email", "missing, expected the ACME account's contact address (tls.mode acme), e.g. \"ops@%s\"", zoneOr(v.c.DNS.Zone))
		case !strings.Contains(t.Email, "@") || strings.ContainsAny(t.Email, " \t\r\n\"'\\;<>"):
			v.add(p+".email", "got %q, expected an email address", t.Email)
		}
		if t.ACMECACertificate != "" {
			if _, err := parseCerts(t.ACMECACertificate); err != nil {
				v.add(p+".acmeCaCertificate", "%v, expected PEM CA certificates", err)
			}
		}
		for j, d := range a.Domains {
			if strings.HasPrefix(d, "*.") {
				v.add(fmt.Sprintf("%s.domains[%d]", strings.TrimSuffix(p, ".tls"), j),
					"got %q: a wildcard needs a DNS-01 challenge, which belay's ACME (HTTP-01) cannot answer; expected tls.mode custom (or off) for this app", d)
			}
		}
	case TLSCustom:
		v.customCert(p, a)
	case TLSOff:
	default:
		v.add(p+".mode", "got %q, expected %s, %s or %s", t.Mode, TLSACME, TLSCustom, TLSOff)
	}
	if t.Mode != TLSACME {
		for f, val := range map[string]string{"email": t.Email, "acmeCaCertificate": t.ACMECACertificate} {
			if val != "" {
				v.add(p+"."+f, "set with mode %q, expected it only with mode acme", t.Mode)
			}
		}
		if t.ACMEDirectory != "" && t.ACMEDirectory != DefaultACMEDirectory {
			v.add(p+".acmeDirectory", "set with mode %q, expected it only with mode acme", t.Mode)
		}
	}
	if t.HSTS.Enabled {
		if t.Mode == TLSOff {
			v.add(p+".hsts.enabled", "true with mode off, expected HTTPS (mode acme or custom) for HSTS")
		}
		if t.HSTS.MaxAge < 300 || t.HSTS.MaxAge > 2*DefaultHSTSMaxAge {
			v.add(p+".hsts.maxAge", "%d, expected 300..%d seconds (default %d, one year)", t.HSTS.MaxAge, 2*DefaultHSTSMaxAge, DefaultHSTSMaxAge)
		}
	}
}

// customCert checks belay:tlsCertificates.<app> for an app with mode custom:
// a chain whose leaf matches the key, is valid now and covers every domain.
func (v *validator) customCert(p string, a App) {
	k := KeyTLSCertificates + "." + a.Name
	c, ok := v.c.TLSCertificates[a.Name]
	if v.o.secretKeys[KeyTLSCertificates] && (c.Certificate == "" || c.Key == "") {
		// Encrypted in a stack file read outside Pulumi (the CLI): the values
		// are absent here, and `pulumi up`, which decrypts them, checks them.
		return
	}
	if !ok {
		v.add(p+".mode", "custom, but %s is missing, expected it (pulumi config set --secret --path '%s.certificate' \"$(cat fullchain.pem)\", and .key)", k, k)
		return
	}
	certs, err := parseCerts(c.Certificate)
	if err != nil {
		v.add(k+".certificate", "%v, expected the PEM chain, leaf first", err)
		return
	}
	if _, err := tls.X509KeyPair([]byte(c.Certificate), []byte(c.Key)); err != nil {
		v.add(k+".key", "does not load with the certificate (%v), expected the leaf's PEM private key", err)
		return
	}
	leaf := certs[0]
	if now := time.Now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		v.add(k+".certificate", "valid %s..%s, expected a certificate valid now", leaf.NotBefore.Format(time.DateOnly), leaf.NotAfter.Format(time.DateOnly))
	}
	for _, d := range a.Domains {
		if err := leaf.VerifyHostname(strings.Replace(d, "*.", "belay-wildcard-check.", 1)); err != nil {
			v.add(k+".certificate", "does not cover %s (%v), expected every domain of app %s", d, err, a.Name)
		}
	}
}

// parseCerts decodes every CERTIFICATE block of a PEM text.
func parseCerts(text string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := []byte(text)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("a %s block", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no PEM certificate")
	}
	return out, nil
}

// tlsCertificatesApps checks belay:tlsCertificates names only apps with mode custom.
func (v *validator) tlsCertificatesApps() {
	modes := map[string]string{}
	for _, a := range v.c.Apps {
		modes[a.Name] = a.TLS.Mode
	}
	for n := range v.c.TLSCertificates {
		switch m, ok := modes[n]; {
		case !ok:
			v.add(KeyTLSCertificates+"."+n, "no app is named %q, expected the name of an app with tls.mode custom", n)
		case m != TLSCustom:
			v.add(KeyTLSCertificates+"."+n, "app %s has tls.mode %q, expected custom (or remove this certificate)", n, m)
		}
	}
}
