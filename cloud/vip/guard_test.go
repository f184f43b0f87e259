package vip

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/belay-sh/belay/cloud/double"
)

// TestClaimDoesNotFightAnotherClaimer: while this claim retries, another node
// (keepalived's new MASTER) takes the IP; the claim must stop, not move it back.
func TestClaimDoesNotFightAnotherClaimer(t *testing.T) {
	t.Run("digitalocean", func(t *testing.T) {
		d := newDODouble(t)
		d.AddDroplet(double.DODroplet{ID: 444, Name: "shop-3", Region: "fra1"})
		d.AddReservedIP(vipAddr.String(), "fra1", 111)
		d.SetFaults(double.Faults{PendingActions: 1})
		var once sync.Once
		d.SetBeforeHook(func(method, path string) {
			if method == "POST" {
				once.Do(func() { d.AddReservedIP(vipAddr.String(), "fra1", 444) })
			}
		})
		logs := &logBuf{}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := doClaimer(t, d, testToken, logs).Claim(ctx, vipAddr, 222)
		if !errors.Is(err, ErrMovedByOther) || !strings.Contains(err.Error(), "IP now on server 444") {
			t.Fatalf("err = %v, want ErrMovedByOther\n%s", err, logs)
		}
		if got := d.ReservedIPDroplet(vipAddr.String()); got != 444 {
			t.Errorf("reserved IP on %d, want it left on 444", got)
		}
		if n := d.CountRequests("POST", "/v2/"); n != 1 {
			t.Errorf("%d POSTs, want only the first", n)
		}
	})
	t.Run("hetzner", func(t *testing.T) {
		h := newHetznerDouble(t)
		h.AddFloatingIP(double.HetznerFloatingIP{ID: 4712, IP: vipAddr.String(), Server: 11})
		h.SetFaults(double.Faults{PendingActions: 1})
		var once sync.Once
		h.SetBeforeHook(func(method, path string) {
			if method == "POST" && strings.HasSuffix(path, "/actions/unassign") {
				once.Do(func() { h.SetFloatingIPServer(4712, 13) })
			}
		})
		logs := &logBuf{}
		run := &fakeRunner{addrs: []string{vipAddr.String() + "/32"}}
		_, err := hetznerClaimer(h, testToken, logs, run).Claim(context.Background(), vipAddr, 12)
		if !errors.Is(err, ErrMovedByOther) {
			t.Fatalf("err = %v, want ErrMovedByOther\n%s", err, logs)
		}
		if got := h.FloatingIPServer(4712); got != 13 {
			t.Errorf("floating IP on %d, want it left on 13", got)
		}
	})
	t.Run("own unassign is not someone else", func(t *testing.T) {
		h := newHetznerDouble(t)
		h.AddFloatingIP(double.HetznerFloatingIP{ID: 4712, IP: vipAddr.String(), Server: 11})
		// The assign after our unassign meets a lock once: the retry re-reads
		// "unassigned", which this claim caused, and carries on.
		var n int
		h.SetBeforeHook(func(method, path string) {
			if method == "POST" && strings.HasSuffix(path, "/actions/assign") {
				n++
				if n == 1 {
					h.SetFaults(double.Faults{PendingActions: 1})
				}
			}
		})
		logs := &logBuf{}
		run := &fakeRunner{addrs: []string{vipAddr.String() + "/32"}}
		if _, err := hetznerClaimer(h, testToken, logs, run).Claim(context.Background(), vipAddr, 12); err != nil {
			t.Fatalf("Claim: %v\n%s", err, logs)
		}
		if got := h.FloatingIPServer(4712); got != 12 || n != 2 {
			t.Errorf("floating IP on %d after %d assigns; want 12 after 2", got, n)
		}
	})
}
