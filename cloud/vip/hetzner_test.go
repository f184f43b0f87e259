package vip

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/cloud/double"
)

func TestHetznerClaim(t *testing.T) {
	const fip = 4712
	prefix := "/v1/floating_ips/4712/actions/"
	tests := []struct {
		name         string
		holder       int64
		addrs        []string // already on eth0
		faults       double.Faults
		wantChanged  bool
		wantPolls    int
		wantUnassign int
		wantAssign   int
		wantAdded    bool
		wantLog      string
	}{
		{name: "unassigned: assign only", holder: 0, wantChanged: true, wantPolls: 1, wantAssign: 1, wantAdded: true, wantLog: "added 203.0.113.10/32 to eth0"},
		{name: "on the peer: unassign then assign", holder: 11, wantChanged: true, wantPolls: 2, wantUnassign: 1, wantAssign: 1, wantAdded: true, wantLog: "is on server 11; unassigning first"},
		{name: "already mine, address present: no-op", holder: 12, addrs: []string{"10.0.1.12/32", "203.0.113.10/32"}, wantLog: "nothing to do"},
		{name: "already mine, address missing: address only", holder: 12, wantAdded: true, wantLog: "added 203.0.113.10/32"},
		{name: "actions take 3 polls each", holder: 11, faults: double.Faults{ActionPolls: 2}, wantChanged: true, wantPolls: 6, wantUnassign: 1, wantAssign: 1, wantAdded: true},
		{name: "locked waited out", holder: 11, faults: double.Faults{PendingActions: 2}, wantChanged: true, wantPolls: 2, wantUnassign: 3, wantAssign: 1, wantAdded: true, wantLog: "locked (another action is running), retry 2"},
		{name: "5xx retried", holder: 11, faults: double.Faults{ServerErrors: 3}, wantChanged: true, wantPolls: 2, wantUnassign: 1, wantAssign: 1, wantAdded: true, wantLog: "server_error"},
		{name: "429 retried", holder: 11, faults: double.Faults{RateLimited: 2}, wantChanged: true, wantPolls: 2, wantUnassign: 1, wantAssign: 1, wantAdded: true, wantLog: "rate_limit_exceeded"},
		{name: "dropped connections retried", holder: 0, faults: double.Faults{Drops: 2}, wantChanged: true, wantPolls: 1, wantAssign: 1, wantAdded: true, wantLog: "network error"},
		{name: "failed unassign retried", holder: 11, faults: double.Faults{FailActions: 1}, wantChanged: true, wantPolls: 3, wantUnassign: 2, wantAssign: 1, wantAdded: true, wantLog: "failed: unassign_floating_ip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHetznerDouble(t)
			h.AddFloatingIP(double.HetznerFloatingIP{ID: fip, Name: "blog-vip", IP: vipAddr.String(), Server: tt.holder})
			h.SetFaults(tt.faults)
			run := &fakeRunner{addrs: append([]string{"10.0.1.12/32"}, tt.addrs...)}
			logs := &logBuf{}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err := hetznerClaimer(h, testToken, logs, run).Claim(ctx, vipAddr, 12)
			t.Logf("logs:\n%s", logs)
			if err != nil {
				t.Fatalf("Claim: %v", err)
			}
			if got := h.FloatingIPServer(fip); got != 12 {
				t.Errorf("floating IP on server %d, want 12", got)
			}
			if res.Changed != tt.wantChanged || res.Polls != tt.wantPolls || res.AddressAdded != tt.wantAdded {
				t.Errorf("result %+v, want changed=%v polls=%d added=%v", res, tt.wantChanged, tt.wantPolls, tt.wantAdded)
			}
			if got := h.CountRequests("POST", prefix+"unassign"); got != tt.wantUnassign {
				t.Errorf("%d unassign POSTs, want %d", got, tt.wantUnassign)
			}
			if got := h.CountRequests("POST", prefix+"assign"); got != tt.wantAssign {
				t.Errorf("%d assign POSTs, want %d", got, tt.wantAssign)
			}
			if tt.wantUnassign > 0 {
				// Unassign-first: the last unassign precedes the first assign.
				lastUn, firstAs := -1, -1
				for i, r := range h.Requests() {
					if strings.HasPrefix(r, "POST "+prefix+"unassign") {
						lastUn = i
					}
					if strings.HasPrefix(r, "POST "+prefix+"assign") && firstAs < 0 {
						firstAs = i
					}
				}
				if lastUn > firstAs {
					t.Errorf("assign before unassign: %v", h.Requests())
				}
			}
			adds := 0
			for _, c := range run.cmds {
				if c == "ip addr add 203.0.113.10/32 dev eth0" {
					adds++
				}
			}
			if want := map[bool]int{true: 1, false: 0}[tt.wantAdded]; adds != want {
				t.Errorf("ran `ip addr add` %d times, want %d: %v", adds, want, run.cmds)
			}
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("logs lack %q", tt.wantLog)
			}
			checkNoToken(t, logs.String(), err)
		})
	}
}

func TestHetznerClaimFailures(t *testing.T) {
	tests := []struct {
		name     string
		token    string
		ip       string
		target   int64
		faults   double.Faults
		failCmd  string
		timeout  time.Duration
		wantErr  string
		wantPost bool
	}{
		{name: "bad token is final", token: "wrong", ip: vipAddr.String(), target: 12, wantErr: "unable to authenticate"},
		{name: "unknown IP", token: testToken, ip: "203.0.113.77", target: 12, wantErr: "not found in this project"},
		{name: "unknown server is final", token: testToken, ip: vipAddr.String(), target: 99, wantErr: "server 99 not found", wantPost: true},
		{name: "interface add fails before any move", token: testToken, ip: vipAddr.String(), target: 12, failCmd: "ip addr add", wantErr: "Operation not permitted"},
		{name: "action never finishes", token: testToken, ip: vipAddr.String(), target: 12, faults: double.Faults{ActionPolls: 1 << 20}, timeout: 150 * time.Millisecond, wantErr: "deadline", wantPost: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHetznerDouble(t)
			h.SetFaults(tt.faults)
			run := &fakeRunner{fail: tt.failCmd}
			logs := &logBuf{}
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			_, err := hetznerClaimer(h, tt.token, logs, run).Claim(ctx, mustAddr(t, tt.ip), tt.target)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
			}
			if posts := h.CountRequests("POST", "/v1/"); (posts > 0) != tt.wantPost {
				t.Errorf("%d POSTs, want any=%v: %v", posts, tt.wantPost, h.Requests())
			}
			checkNoToken(t, logs.String(), err)
		})
	}
}
