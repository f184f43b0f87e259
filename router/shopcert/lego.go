package shopcert

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// legoArgs is lego's command line for d: run for a first certificate,
// renew (under 30 days left) when lego has one.
func (i *Issuer) legoArgs(d string, renew bool) []string {
	c := i.o.Conf
	args := []string{i.o.Lego, "--accept-tos", "--path", i.o.StateDir, "--server", c.Server, "--email", c.Email,
		"--key-type", "ec256", "--http", "--http.webroot", c.Webroot, "--domains", d}
	if renew {
		return append(args, "renew", "--days", "30", "--no-random-sleep")
	}
	return append(args, "run")
}

func (i *Issuer) legoPEM(d string) ([]byte, error) {
	crt, err := os.ReadFile(filepath.Join(i.o.StateDir, "certificates", d+".crt"))
	if err != nil {
		return nil, err
	}
	key, err := os.ReadFile(filepath.Join(i.o.StateDir, "certificates", d+".key"))
	if err != nil {
		return nil, err
	}
	return append(append(append([]byte{}, crt...), '\n'), key...), nil
}

// issue orders d's certificate once and records the outcome.
func (i *Issuer) issue(ctx context.Context, d string) {
	now := i.o.Now()
	i.st.Orders = append(i.st.Orders, now)
	_, haveOld := i.legoPEM(d)
	var env []string
	if i.o.Conf.CAFile != "" {
		env = append(env, "LEGO_CA_CERTIFICATES="+i.o.Conf.CAFile)
	}
	rctx, cancel := context.WithTimeout(ctx, i.o.Timeout)
	out, err := i.o.Run(rctx, i.legoArgs(d, haveOld == nil), env)
	cancel()
	var pemData []byte
	var na time.Time
	if err == nil {
		if pemData, err = i.legoPEM(d); err == nil {
			na, err = NotAfter(pemData)
		}
	}
	if err == nil && na.Sub(i.o.Now()) <= RenewBefore {
		err = fmt.Errorf("lego left a certificate valid until %s only", na.Format(time.RFC3339))
	}
	if err == nil {
		err = i.install(d, pemData, na)
	}
	c := i.cert(d)
	i.mu.Lock()
	defer i.mu.Unlock()
	if err != nil {
		c.Failures++
		wait := i.o.Backoff << min(c.Failures-1, 20)
		if wait > i.o.MaxBackoff || wait <= 0 {
			wait = i.o.MaxBackoff
		}
		c.NextTry = now.Add(wait)
		c.Error = reason(err, out)
		if c.State != Issued {
			c.State = Failed
		}
		fmt.Fprintf(i.o.Log, "shop certificates %s: %s: %s; next try %s\n", i.o.App, d, c.Error, c.NextTry.Format(time.RFC3339))
		return
	}
	fmt.Fprintf(i.o.Log, "shop certificates %s: %s: issued, valid until %s\n", i.o.App, d, na.Format(time.RFC3339))
	// Served at once (the pass's syncNginx repairs a failed push).
	if perr := i.o.Nginx.PutCert(ctx, d, pemData); perr != nil {
		fmt.Fprintf(i.o.Log, "shop certificates %s: %s: pushing to nginx: %v\n", i.o.App, d, perr)
	}
}

// install records d issued until na and installs its PEM when it changed.
func (i *Issuer) install(d string, pemData []byte, na time.Time) error {
	installed, err := Installed(i.o.CertsDir)
	if err != nil {
		return err
	}
	if string(installed[d]) != string(pemData) {
		if err := Install(i.o.CertsDir, d, pemData); err != nil {
			return err
		}
	}
	c := i.cert(d)
	i.mu.Lock()
	*c = Cert{Domain: d, State: Issued, NotAfter: na}
	i.mu.Unlock()
	return nil
}

// reason is one line for the state: the error and lego's last words (lego
// prints no key material; the output is cut to 300 characters).
func reason(err error, out []byte) string {
	msg := err.Error()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if last := strings.TrimSpace(lines[len(lines)-1]); last != "" {
		msg += ": " + last
	}
	msg = strings.Map(func(r rune) rune {
		if r < 0x20 {
			return ' '
		}
		return r
	}, msg)
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	return msg
}
