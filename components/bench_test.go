package components

import "testing"

// benchmarkProgram evaluates the whole program (config parse, plan, preflight
// render, every resource under mocks, inventory) for n apps in both directions.
func benchmarkProgram(b *testing.B, n int) {
	for _, d := range directions {
		b.Run(d.name, func(b *testing.B) {
			vals := values(testDoc(d.primary, d.standby, n))
			plan := plannedAddresses(vals)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				res := runProgramWith(b, vals, plan)
				if res.err != nil {
					b.Fatal(res.err)
				}
			}
		})
	}
}

func BenchmarkProgram10Apps(b *testing.B) { benchmarkProgram(b, 10) }
func BenchmarkProgram25Apps(b *testing.B) { benchmarkProgram(b, 25) }
func BenchmarkProgram50Apps(b *testing.B) { benchmarkProgram(b, 50) }
