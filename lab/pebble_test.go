package lab

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/belay-sh/belay/config"
)

// TestDefaultStackTrustsThePebbleAPI: the lab stack's acmeCaCertificate is the
// certificate the lab's pebble serves, it matches the key, and it names the
// address the stack's acmeDirectory points at.
func TestDefaultStackTrustsThePebbleAPI(t *testing.T) {
	cfg, err := LoadStack(StackInput{}, strings.Repeat("s", 40), "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB9mey9oU7VkcpFN0XUf5au8ZhSXBHw0I3j7l7ZQ4FKT lab")
	if err != nil {
		t.Fatalf("LoadStack: %v", err)
	}
	tl := cfg.Apps[0].TLS
	if tl.Mode != config.TLSACME || strings.TrimSpace(tl.ACMECACertificate) != strings.TrimSpace(PebbleAPICert) {
		t.Fatalf("lab app tls = %+v, want acme trusting lab/pebble/api.pem", tl)
	}
	if want := "https://" + PebbleAddr().String() + ":14000/dir"; tl.ACMEDirectory != want {
		t.Errorf("acmeDirectory = %q, want %q", tl.ACMEDirectory, want)
	}
	pair, err := tls.X509KeyPair([]byte(PebbleAPICert), []byte(PebbleAPIKey))
	if err != nil {
		t.Fatalf("pebble API pair: %v", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.VerifyHostname(PebbleAddr().String()); err != nil {
		t.Errorf("pebble API certificate: %v", err)
	}
}
