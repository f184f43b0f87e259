package analysis_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/belay-sh/belay/deploy/analysis"
)

// Two load balancers' log windows, merged and judged.
func ExampleEvaluate() {
	at := time.Date(2026, 11, 22, 3, 10, 0, 0, time.UTC)
	var lb1, lb2 strings.Builder
	for i := 0; i < 1500; i++ {
		status, pool, w := 200, analysis.PoolStable, &lb1
		if i%5 == 0 {
			pool, w = analysis.PoolCanary, &lb2
			if i%50 == 0 {
				status = 502 // the canary fails one request in ten
			}
		}
		e := analysis.Entry{Time: at.Add(time.Duration(i) * 100 * time.Millisecond), RemoteAddr: "203.0.113.9",
			Status: status, RequestTime: 40 * time.Millisecond, UpstreamAddr: "10.213.0.20:3001",
			UpstreamStatus: fmt.Sprint(status), UpstreamResponseTime: "0.040", Pool: pool, Request: "GET / HTTP/1.1"}
		fmt.Fprintln(w, e.Format())
	}
	rep, err := analysis.Analyze(analysis.Window{Since: at}, strings.NewReader(lb1.String()), strings.NewReader(lb2.String()))
	if err != nil {
		panic(err)
	}
	fmt.Println(analysis.Evaluate(rep.Canary, rep.Stable, analysis.Thresholds{}))
	// Output:
	// rollback: canary 5xx 10.0% (30/300) vs stable 0.0% (0/1200): > +1.0 pt
}
