package shopcert

import (
	"crypto/md5"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/belay-sh/belay/internal/nginxctl"
	"github.com/belay-sh/belay/router"
)

// The installed certificates: one DOMAIN.pem (chain then key) per shop in
// the certificates directory (router.CertsDir: root 0700, files root 0600)
// and router.CertIndexFile listing them, which nginx's master reads at
// start (router.Paths.Certs). Only root reads them; nginx's workers get the
// certificates from the shared dict router-sync fills through the control socket.

// Installed reads the installed certificates (domain → PEM). A missing
// directory or index is no certificate.
func Installed(dir string) (map[string][]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, router.CertIndexFile))
	if errors.Is(err, os.ErrNotExist) {
		return map[string][]byte{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("shop certificates: %w", err)
	}
	out := map[string][]byte{}
	for _, d := range strings.Fields(string(b)) {
		if router.CheckDomain(d) != nil {
			continue
		}
		p, err := os.ReadFile(filepath.Join(dir, d+".pem"))
		if err != nil {
			return nil, fmt.Errorf("shop certificate of %s: %w", d, err)
		}
		out[d] = p
	}
	return out, nil
}

// Install writes domain's certificate (0600) and then the index: nginx
// started from now on loads it.
func Install(dir, domain string, pemData []byte) error {
	if err := router.CheckDomain(domain); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("shop certificates: %w", err)
	}
	// The mode is set on the temporary file before the key is written, so
	// the key is never readable by others, even for a moment.
	if err := writeSecret(filepath.Join(dir, domain+".pem"), pemData); err != nil {
		return err
	}
	return updateIndex(dir, domain, true)
}

// Remove drops domain's certificate from the index, then its file.
func Remove(dir, domain string) error {
	if err := router.CheckDomain(domain); err != nil {
		return err
	}
	if err := updateIndex(dir, domain, false); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, domain+".pem")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("shop certificate of %s: %w", domain, err)
	}
	return nil
}

func updateIndex(dir, domain string, add bool) error {
	have, err := os.ReadFile(filepath.Join(dir, router.CertIndexFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("shop certificates: %w", err)
	}
	set := map[string]bool{}
	for _, d := range strings.Fields(string(have)) {
		set[d] = true
	}
	if set[domain] == add {
		return nil
	}
	if add {
		set[domain] = true
	} else {
		delete(set, domain)
	}
	names := make([]string, 0, len(set))
	for d := range set {
		names = append(names, d)
	}
	sort.Strings(names)
	body := strings.Join(names, "\n")
	if body != "" {
		body += "\n"
	}
	return nginxctl.WriteFile(filepath.Join(dir, router.CertIndexFile), []byte(body))
}

func writeSecret(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".cert-*")
	if err != nil {
		return fmt.Errorf("shop certificate: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("shop certificate: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("shop certificate %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("shop certificate %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("shop certificate %s: %w", path, err)
	}
	return nil
}

// Digest is what nginx reports for a held certificate (MD5 hex of the PEM,
// ngx.md5): a fingerprint to compare, not a security check.
func Digest(pemData []byte) string {
	s := md5.Sum(pemData)
	return hex.EncodeToString(s[:])
}

// NotAfter is the expiry of the first certificate of a PEM chain.
func NotAfter(pemData []byte) (time.Time, error) {
	for rest := pemData; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return time.Time{}, errors.New("no PEM certificate")
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return time.Time{}, fmt.Errorf("parsing the certificate: %w", err)
		}
		return c.NotAfter, nil
	}
}
