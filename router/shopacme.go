package router

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// ShopACMEFile is the shops' certificate issuer's settings (router/shopcert) in the app's router directory,
// rendered by the router role (RenderConf) when the app's TLS mode is acme;
// without it router-sync issues no shop certificate.
const ShopACMEFile = "shop-acme.conf"

// DefaultShopCertsPerHour bounds the ACME orders one router places per hour (each
// shop's first issuance, renewals and failed attempts alike): with two
// routers, 2×20 an hour stays far under Let's Encrypt's 300 new orders per
// 3 hours per account.
const DefaultShopCertsPerHour = 20

// ShopACME is the app's ACME settings for the shops' certificates.
type ShopACME struct {
	// Server is the ACME directory URL (https), Email the account contact.
	Server, Email string
	// CAFile is a PEM file of CAs trusted for the ACME server's own HTTPS ("" = system roots).
	CAFile string
	// Webroot is where lego writes HTTP-01 tokens and nginx serves them.
	Webroot string
	// PerHour bounds the orders per hour (1-1000; 0 = DefaultShopCertsPerHour).
	PerHour int
}

var acmeEmailRE = regexp.MustCompile(`^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+$`)

// Check validates c (every value reaches lego's command line).
func (c ShopACME) Check() error {
	var errs []error
	if u, err := url.Parse(c.Server); err != nil || u.Scheme != "https" || u.Host == "" || strings.ContainsAny(c.Server, " \n") {
		errs = append(errs, fmt.Errorf("%s: server %q, expected the ACME directory's https URL", ShopACMEFile, c.Server))
	}
	if !acmeEmailRE.MatchString(c.Email) {
		errs = append(errs, fmt.Errorf("%s: email %q, expected the ACME account's address", ShopACMEFile, c.Email))
	}
	for name, p := range map[string]string{"ca": c.CAFile, "webroot": c.Webroot} {
		if (p != "" || name == "webroot") && (!filepath.IsAbs(p) || filepath.Clean(p) != p) {
			errs = append(errs, fmt.Errorf("%s: %s %q, expected a clean absolute path", ShopACMEFile, name, p))
		}
	}
	if c.PerHour < 0 || c.PerHour > 1000 {
		errs = append(errs, fmt.Errorf("%s: per-hour %d, expected 1-1000", ShopACMEFile, c.PerHour))
	}
	return errors.Join(errs...)
}

// RenderShopACME returns shop-acme.conf for c (ParseShopACME reads it back).
func RenderShopACME(c ShopACME) []byte {
	var b bytes.Buffer
	b.WriteString("# Rendered by belay: ACME settings of the shops' own certificates (docs/cells.md).\n")
	fmt.Fprintf(&b, "server %s\nemail %s\nwebroot %s\n", c.Server, c.Email, c.Webroot)
	if c.CAFile != "" {
		fmt.Fprintf(&b, "ca %s\n", c.CAFile)
	}
	if c.PerHour != 0 {
		fmt.Fprintf(&b, "per-hour %d\n", c.PerHour)
	}
	return b.Bytes()
}

// ParseShopACME reads shop-acme.conf: `KEY VALUE` lines (server, email,
// webroot, and optional ca, per-hour), '#' comments.
func ParseShopACME(data []byte) (ShopACME, error) {
	var c ShopACME
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 || seen[f[0]] {
			return c, fmt.Errorf("%s line %d: expected KEY VALUE, each key once", ShopACMEFile, n)
		}
		seen[f[0]] = true
		switch f[0] {
		case "server":
			c.Server = f[1]
		case "email":
			c.Email = f[1]
		case "ca":
			c.CAFile = f[1]
		case "webroot":
			c.Webroot = f[1]
		case "per-hour":
			v, err := strconv.Atoi(f[1])
			if err != nil || v < 1 {
				return c, fmt.Errorf("%s line %d: per-hour %q, expected 1-1000", ShopACMEFile, n, f[1])
			}
			c.PerHour = v
		default:
			return c, fmt.Errorf("%s line %d: unknown key %q (expected server, email, webroot, ca, per-hour)", ShopACMEFile, n, f[0])
		}
	}
	if err := sc.Err(); err != nil {
		return c, err
	}
	return c, c.Check()
}
