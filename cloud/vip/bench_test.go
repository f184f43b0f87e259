package vip

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/belay-sh/belay/cloud/api"
	"github.com/belay-sh/belay/cloud/double"
)

// BenchmarkClaim measures claim latency against the doubles: each iteration
// moves the IP to the other group member. polls is how many GETs the double
// answers "in progress" before an action finishes; interval is the poll
// interval (DefaultPollInterval in production). Figures are in docs/vip.md.
func BenchmarkClaim(b *testing.B) {
	for _, interval := range []time.Duration{10 * time.Millisecond, DefaultPollInterval} {
		for _, polls := range []int{0, 3} {
			b.Run(fmt.Sprintf("digitalocean/interval=%s/polls=%d", interval, polls), func(b *testing.B) {
				d := double.NewDigitalOceanDouble(testToken)
				defer d.Close()
				d.AddDroplet(double.DODroplet{ID: 111, Region: "fra1"})
				d.AddDroplet(double.DODroplet{ID: 222, Region: "fra1"})
				d.AddReservedIP(vipAddr.String(), "fra1", 111)
				d.SetFaults(double.Faults{ActionPolls: polls})
				gc, err := api.NewDigitalOcean(testToken, d.URL())
				if err != nil {
					b.Fatal(err)
				}
				c := DigitalOcean{API: gc, Opts: Options{PollInterval: interval}}
				benchClaims(b, c, 111, 222, func() int { return len(d.Requests()) })
			})
			b.Run(fmt.Sprintf("hetzner/interval=%s/polls=%d", interval, polls), func(b *testing.B) {
				h := double.NewHetznerDouble(testToken)
				defer h.Close()
				h.AddServer(double.HetznerServer{ID: 11})
				h.AddServer(double.HetznerServer{ID: 12})
				h.AddFloatingIP(double.HetznerFloatingIP{ID: 1, IP: vipAddr.String(), Server: 11})
				h.SetFaults(double.Faults{ActionPolls: polls})
				run := &fakeRunner{addrs: []string{vipAddr.String() + "/32"}}
				c := Hetzner{API: api.NewHetzner(testToken, h.URL()), Opts: Options{PollInterval: interval, Run: run.Run}}
				benchClaims(b, c, 11, 12, func() int { return len(h.Requests()) })
			})
		}
	}
}

// BenchmarkClaimPending measures a claim that first meets K "another action
// is pending" answers, with the production backoff (250 ms doubling, full jitter).
func BenchmarkClaimPending(b *testing.B) {
	for _, k := range []int{1, 3} {
		b.Run(fmt.Sprintf("digitalocean/pending=%d", k), func(b *testing.B) {
			d := double.NewDigitalOceanDouble(testToken)
			defer d.Close()
			d.AddDroplet(double.DODroplet{ID: 111, Region: "fra1"})
			d.AddDroplet(double.DODroplet{ID: 222, Region: "fra1"})
			d.AddReservedIP(vipAddr.String(), "fra1", 111)
			gc, err := api.NewDigitalOcean(testToken, d.URL())
			if err != nil {
				b.Fatal(err)
			}
			c := DigitalOcean{API: gc}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d.SetFaults(double.Faults{PendingActions: k})
				target := int64(222)
				if i%2 == 1 {
					target = 111
				}
				if _, err := c.Claim(context.Background(), vipAddr, target); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchClaims(b *testing.B, c Claimer, a, z int64, requests func() int) {
	b.Helper()
	polls := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		target := z
		if i%2 == 1 {
			target = a
		}
		res, err := c.Claim(context.Background(), vipAddr, target)
		if err != nil || !res.Changed {
			b.Fatalf("claim %d: %+v %v", i, res, err)
		}
		polls += res.Polls
	}
	b.ReportMetric(float64(polls)/float64(b.N), "polls/op")
	b.ReportMetric(float64(requests())/float64(b.N), "requests/op")
}
