package mlsgo

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// processCPU returns the CPU time used so far by every thread of the
// process: unlike wall time it does not grow with the machine's load.
func processCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// reportCPU adds the process CPU time per iteration since cpu0 (including
// setup outside the timed loop, which is small here) as cpu-ms/op.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(processCPU()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
}

// The benchmarks run the same operations on both implementations in one
// run, so their ratio is meaningful on any machine:
//
//	cd interop/mlsgo && go test -run '^$' -bench . -benchmem

// BenchmarkCreateAddJoin creates a group, adds one member and has it join
// from the Welcome (both clients' signature keys are generated per
// iteration, the same for both implementations).
func BenchmarkCreateAddJoin(b *testing.B) {
	for _, impl := range implementations {
		b.Run(impl.name, func(b *testing.B) {
			cpu0 := processCPU()
			for i := 0; b.Loop(); i++ {
				creator := impl.new(b, "creator", 1)
				joiner := impl.new(b, fmt.Sprint("joiner", i), 1)
				creator.Create()
				_, welcome := creator.Add(joiner.KeyPackage())
				joiner.Join(welcome)
			}
			reportCPU(b, cpu0)
		})
	}
}

// BenchmarkProtectUnprotect1KiB encrypts a 1 KiB application message and
// decrypts it at the other member of a two-member group.
func BenchmarkProtectUnprotect1KiB(b *testing.B) {
	msg := bytes.Repeat([]byte{'x'}, 1024)
	for _, impl := range implementations {
		b.Run(impl.name, func(b *testing.B) {
			alice := impl.new(b, "alice", 1)
			bob := impl.new(b, "bob", 1)
			alice.Create()
			_, welcome := alice.Add(bob.KeyPackage())
			bob.Join(welcome)
			b.SetBytes(int64(len(msg)))
			cpu0 := processCPU()
			for b.Loop() {
				if got := bob.Receive(alice.Send(msg)); len(got) != len(msg) {
					b.Fatal("wrong plaintext")
				}
			}
			reportCPU(b, cpu0)
		})
	}
}
