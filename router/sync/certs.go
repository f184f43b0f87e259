package sync

import (
	"context"
	"encoding/json"

	"github.com/belay-sh/belay/router/shopcert"
	"github.com/belay-sh/belay/router/store"
)

// reportCerts writes this router's certificate states when they changed
// since the last report (a session's first sync always reports).
func (d *Daemon) reportCerts(ctx context.Context, st *store.Store) error {
	var certs []store.Cert
	if d.issuer != nil {
		for _, c := range d.issuer.States() {
			certs = append(certs, store.Cert{Domain: c.Domain, State: c.State, NotAfter: c.NotAfter, Error: c.Error, NextTry: c.NextTry})
		}
	} else {
		for _, s := range d.tlsShops {
			certs = append(certs, store.Cert{Domain: s, State: shopcert.Failed, Error: noACME})
		}
	}
	b, _ := json.Marshal(certs)
	if string(b) == d.reportedCerts {
		return nil
	}
	if err := st.ReportCerts(ctx, d.o.App, d.o.Name, certs); err != nil {
		return err
	}
	d.reportedCerts = string(b)
	return nil
}
