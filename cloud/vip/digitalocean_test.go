package vip

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/cloud/double"
)

func TestDigitalOceanClaim(t *testing.T) {
	tests := []struct {
		name        string
		holder      int // droplet holding the IP before the claim
		faults      double.Faults
		wantChanged bool
		wantPolls   int
		wantPosts   int
		wantLog     string
	}{
		{name: "unassigned", holder: 0, wantChanged: true, wantPolls: 1, wantPosts: 1, wantLog: "is unassigned; assigning to droplet 222"},
		{name: "on the peer", holder: 111, wantChanged: true, wantPolls: 1, wantPosts: 1, wantLog: "is on droplet 111 (shop-1)"},
		{name: "already mine is a no-op", holder: 222, wantChanged: false, wantPolls: 0, wantPosts: 0, wantLog: "(this server); nothing to do"},
		{name: "action takes 4 polls", holder: 111, faults: double.Faults{ActionPolls: 3}, wantChanged: true, wantPolls: 4, wantPosts: 1},
		{name: "pending 422 waited out", holder: 111, faults: double.Faults{PendingActions: 2}, wantChanged: true, wantPolls: 1, wantPosts: 3, wantLog: "HTTP 422 pending action, retry 2"},
		{name: "5xx retried", holder: 111, faults: double.Faults{ServerErrors: 3}, wantChanged: true, wantPolls: 1, wantPosts: 1, wantLog: "HTTP 500"},
		{name: "429 retried", holder: 111, faults: double.Faults{RateLimited: 2}, wantChanged: true, wantPolls: 1, wantPosts: 1, wantLog: "HTTP 429 rate limited"},
		{name: "dropped connections retried", holder: 111, faults: double.Faults{Drops: 2}, wantChanged: true, wantPolls: 1, wantPosts: 1, wantLog: "network error"},
		{name: "errored action retried", holder: 111, faults: double.Faults{FailActions: 1}, wantChanged: true, wantPolls: 2, wantPosts: 2, wantLog: "errored, retry 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDODouble(t)
			d.AddReservedIP(vipAddr.String(), "fra1", tt.holder)
			d.SetFaults(tt.faults)
			logs := &logBuf{}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err := doClaimer(t, d, testToken, logs).Claim(ctx, vipAddr, 222)
			if err != nil {
				t.Fatalf("Claim: %v\nlogs:\n%s", err, logs)
			}
			if got := d.ReservedIPDroplet(vipAddr.String()); got != 222 {
				t.Errorf("reserved IP on droplet %d, want 222", got)
			}
			if res.Changed != tt.wantChanged || res.Polls != tt.wantPolls || res.Previous != int64(tt.holder) && tt.wantChanged {
				t.Errorf("result %+v, want changed=%v polls=%d previous=%d", res, tt.wantChanged, tt.wantPolls, tt.holder)
			}
			if got := d.CountRequests("POST", "/v2/reserved_ips/"+vipAddr.String()+"/actions"); got != tt.wantPosts {
				t.Errorf("%d assign POSTs, want %d; requests: %v", got, tt.wantPosts, d.Requests())
			}
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("logs lack %q:\n%s", tt.wantLog, logs)
			}
			checkNoToken(t, logs.String(), err)
			t.Logf("logs:\n%s", logs)
		})
	}
}

func TestDigitalOceanClaimRetryAfter(t *testing.T) {
	d := newDODouble(t)
	d.AddReservedIP(vipAddr.String(), "fra1", 111)
	d.SetFaults(double.Faults{RateLimited: 1, RetryAfter: 1})
	logs := &logBuf{}
	if _, err := doClaimer(t, d, testToken, logs).Claim(context.Background(), vipAddr, 222); err != nil {
		t.Fatal(err)
	}
	// The 1 s Retry-After replaces the millisecond backoff.
	if !strings.Contains(logs.String(), "HTTP 429 rate limited, retry 1 in 1s") {
		t.Errorf("Retry-After not honoured:\n%s", logs)
	}
}

func TestDigitalOceanClaimFailures(t *testing.T) {
	tests := []struct {
		name     string
		token    string
		ip       string
		target   int64
		faults   double.Faults
		timeout  time.Duration
		wantErr  string
		wantReqs int // 0 = don't check
		deadline bool
	}{
		{name: "bad token is final", token: "wrong", ip: vipAddr.String(), target: 222, wantErr: "Unable to authenticate you", wantReqs: 1},
		{name: "unknown IP is final", token: testToken, ip: "203.0.113.77", target: 222, wantErr: "404", wantReqs: 1},
		{name: "droplet in another region is final", token: testToken, ip: vipAddr.String(), target: 333, wantErr: "same region", wantReqs: 2},
		{name: "action never finishes", token: testToken, ip: vipAddr.String(), target: 222, faults: double.Faults{ActionPolls: 1 << 20}, timeout: 150 * time.Millisecond, wantErr: "deadline", deadline: true},
		{name: "API keeps failing", token: testToken, ip: vipAddr.String(), target: 222, faults: double.Faults{ServerErrors: 1 << 20}, timeout: 150 * time.Millisecond, wantErr: "500", deadline: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDODouble(t)
			d.AddReservedIP(vipAddr.String(), "fra1", 111)
			d.SetFaults(tt.faults)
			logs := &logBuf{}
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			ip := mustAddr(t, tt.ip)
			_, err := doClaimer(t, d, tt.token, logs).Claim(ctx, ip, tt.target)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
			}
			if tt.deadline && !strings.Contains(err.Error(), "deadline") {
				t.Errorf("err = %v, want a deadline error", err)
			}
			if tt.wantReqs != 0 && len(d.Requests()) != tt.wantReqs {
				t.Errorf("%d requests, want %d (final errors must not be retried): %v", len(d.Requests()), tt.wantReqs, d.Requests())
			}
			if got := d.ReservedIPDroplet(vipAddr.String()); tt.name != "action never finishes" && got != 111 {
				t.Errorf("reserved IP moved to %d on failure", got)
			}
			checkNoToken(t, logs.String(), err)
			if errors.Is(err, context.Canceled) {
				t.Errorf("unexpected cancel: %v", err)
			}
		})
	}
}
