package config_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/config"
)

// selfSigned returns a PEM certificate for names and its PEM key, valid from nb to na.
func selfSigned(t *testing.T, names []string, nb, na time.Time) (certPEM, keyPEM string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names, NotBefore: nb, NotAfter: na}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}))
}

func TestTLSDefaults(t *testing.T) {
	d := valid()
	app(d, 0)["tls"] = map[string]any{"email": "ops@example.com"}
	cfg, err := parse(t, d)
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Apps[0].TLS
	want := config.TLS{Mode: "acme", Email: "ops@example.com", ACMEDirectory: config.DefaultACMEDirectory, HSTS: config.HSTS{MaxAge: 31536000}}
	if got != want {
		t.Errorf("default tls = %+v, want %+v", got, want)
	}
}

func TestTLSValidation(t *testing.T) {
	now := time.Now()
	goodCert, goodKey := selfSigned(t, []string{"www.example.com"}, now.Add(-time.Hour), now.Add(90*24*time.Hour))
	otherCert, _ := selfSigned(t, []string{"www.example.com"}, now.Add(-time.Hour), now.Add(time.Hour))
	wrongName, wrongNameKey := selfSigned(t, []string{"other.example.com"}, now.Add(-time.Hour), now.Add(time.Hour))
	expired, expiredKey := selfSigned(t, []string{"www.example.com"}, now.Add(-48*time.Hour), now.Add(-time.Hour))
	custom := func(cert, key string) func(d doc) {
		return func(d doc) {
			app(d, 0)["tls"] = map[string]any{"mode": "custom"}
			d["tlsCertificates"] = map[string]any{"web": map[string]any{"certificate": cert, "key": key}}
		}
	}
	cases := []struct {
		name string
		edit func(d doc)
		want string // "" = valid
	}{
		{"acme without email", func(d doc) { app(d, 0)["tls"] = map[string]any{} }, "belay:apps[0].tls.email: missing, expected the ACME account's contact address"},
		{"acme with email and staging", func(d doc) {
			app(d, 0)["tls"] = map[string]any{"email": "ops@example.com", "acmeDirectory": config.ACMEStagingDirectory}
		}, ""},
		{"off", func(d doc) { app(d, 0)["tls"] = map[string]any{"mode": "off"} }, ""},
		{"hsts on", func(d doc) {
			app(d, 0)["tls"] = map[string]any{"email": "ops@example.com", "hsts": map[string]any{"enabled": true}}
		}, ""},
		{"custom", custom(goodCert, goodKey), ""},
		{"bad mode", func(d doc) { app(d, 0)["tls"] = map[string]any{"mode": "letsencrypt"} }, "belay:apps[0].tls.mode: got \"letsencrypt\", expected acme, custom or off"},
		{"http directory", func(d doc) { app(d, 0)["tls"] = map[string]any{"acmeDirectory": "http://ca.example/dir"} }, "belay:apps[0].tls.acmeDirectory: got \"http://ca.example/dir\", expected the https URL"},
		{"bad email", func(d doc) { app(d, 0)["tls"] = map[string]any{"email": "ops example.com"} }, "belay:apps[0].tls.email:"},
		{"bad ca", func(d doc) { app(d, 0)["tls"] = map[string]any{"acmeCaCertificate": "not pem"} }, "belay:apps[0].tls.acmeCaCertificate: no PEM certificate"},
		{"unknown field", func(d doc) { app(d, 0)["tls"] = map[string]any{"provider": "le"} }, "belay:apps[0].tls.provider: unknown field"},
		{"hsts too short", func(d doc) {
			app(d, 0)["tls"] = map[string]any{"hsts": map[string]any{"enabled": true, "maxAge": 10}}
		}, "belay:apps[0].tls.hsts.maxAge: 10, expected 300..63072000"},
		{"hsts without https", func(d doc) {
			app(d, 0)["tls"] = map[string]any{"mode": "off", "hsts": map[string]any{"enabled": true}}
		}, "belay:apps[0].tls.hsts.enabled: true with mode off"},
		{"email with custom", func(d doc) {
			custom(goodCert, goodKey)(d)
			app(d, 0)["tls"] = map[string]any{"mode": "custom", "email": "a@b.c"}
		}, "belay:apps[0].tls.email: set with mode \"custom\""},
		{"wildcard with acme", func(d doc) { app(d, 0)["domains"] = []any{"*.example.com"} }, "belay:apps[0].domains[0]: got \"*.example.com\": a wildcard needs a DNS-01 challenge"},
		{"custom without certificate", func(d doc) { app(d, 0)["tls"] = map[string]any{"mode": "custom"} }, "belay:apps[0].tls.mode: custom, but belay:tlsCertificates.web is missing"},
		{"custom key mismatch", custom(otherCert, goodKey), "belay:tlsCertificates.web.key: does not load with the certificate"},
		{"custom wrong name", custom(wrongName, wrongNameKey), "belay:tlsCertificates.web.certificate: does not cover www.example.com"},
		{"custom expired", custom(expired, expiredKey), "belay:tlsCertificates.web.certificate: valid "},
		{"custom garbage", custom("garbage", goodKey), "belay:tlsCertificates.web.certificate: no PEM certificate"},
		{"certificate for an acme app", func(d doc) {
			d["tlsCertificates"] = map[string]any{"web": map[string]any{"certificate": goodCert, "key": goodKey}}
		}, "belay:tlsCertificates.web: app web has tls.mode \"acme\", expected custom"},
		{"certificate for no app", func(d doc) {
			custom(goodCert, goodKey)(d)
			d["tlsCertificates"].(map[string]any)["blog"] = map[string]any{"certificate": goodCert, "key": goodKey}
		}, "belay:tlsCertificates.blog: no app is named \"blog\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := valid()
			tc.edit(d)
			_, err := parse(t, d)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Parse: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("Parse accepted it, want an error containing %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("Parse: %v\nwant an error containing %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("the error echoes the private key: %v", err)
			}
		})
	}
}

// A custom key stored in plain text is refused when Pulumi says which keys are secret.
func TestTLSCertificatesMustBeSecret(t *testing.T) {
	now := time.Now()
	c, k := selfSigned(t, []string{"www.example.com"}, now.Add(-time.Hour), now.Add(time.Hour))
	d := valid()
	app(d, 0)["tls"] = map[string]any{"mode": "custom"}
	d["tlsCertificates"] = map[string]any{"web": map[string]any{"certificate": c, "key": k}}
	_, err := parse(t, d, config.WithSecretKeys([]string{"belay:hostKeySeed"}))
	if err == nil || !strings.Contains(err.Error(), "belay:tlsCertificates: stored in plain text, expected a secret") {
		t.Fatalf("Parse: %v, want the plain-text refusal", err)
	}
	if _, err := parse(t, d, config.WithSecretKeys([]string{"belay:hostKeySeed", "belay:tlsCertificates"})); err != nil {
		t.Fatalf("Parse with the key secret: %v", err)
	}
}
