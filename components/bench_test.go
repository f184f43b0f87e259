package components

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time (user+system) this process has used so far.
func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchmarkProgram evaluates the whole program (config parse, plan, preflight
// render, every resource under mocks, inventory) for n apps in both
// directions. Besides wall time per run it reports the CPU time per run
// (cpu-ms/op), which a machine shared with other work distorts less.
//
// The user-data size check is off here: the backup host's user data grows
// ~1.1 KB per app and exceeds Hetzner's 32 KiB beyond 5 apps (DigitalOcean's
// 64 KiB beyond ~34), which the program refuses at preview; the benchmark
// measures the program's cost, not what a provider accepts.
func benchmarkProgram(b *testing.B, n int) {
	skipUserDataLimits = true
	b.Cleanup(func() { skipUserDataLimits = false })
	for _, d := range directions {
		b.Run(d.name, func(b *testing.B) {
			vals := values(testDoc(d.primary, d.standby, n))
			plan := plannedAddresses(vals)
			b.ReportAllocs()
			b.ResetTimer()
			start := cpuTime(b)
			for i := 0; i < b.N; i++ {
				res := runProgramWith(b, vals, plan)
				if res.err != nil {
					b.Fatal(res.err)
				}
			}
			b.ReportMetric(float64((cpuTime(b)-start).Milliseconds())/float64(b.N), "cpu-ms/op")
		})
	}
}

func BenchmarkProgram10Apps(b *testing.B) { benchmarkProgram(b, 10) }
func BenchmarkProgram25Apps(b *testing.B) { benchmarkProgram(b, 25) }
func BenchmarkProgram50Apps(b *testing.B) { benchmarkProgram(b, 50) }
