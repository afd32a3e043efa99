package index

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/hashing/pdq"
)

// The benchmarks index PARLEY_INDEX_BENCH_N hashes (default 100 000 so that
// `go test -bench .` stays quick). For the 10 million figure run:
//
//	PARLEY_INDEX_BENCH_N=10000000 go test -run XXX -bench 'Lookup|LinearScan' -benchtime 3s -cpu 1 ./hashing/index
var benchState struct {
	once    sync.Once
	p       *PDQ
	queries []pdq.Hash
	bytes   float64
}

func benchIndex(b *testing.B) (*PDQ, []pdq.Hash) {
	benchState.once.Do(func() {
		n := 100_000
		if s := os.Getenv("PARLEY_INDEX_BENCH_N"); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v <= 0 {
				panic(fmt.Sprintf("bad PARLEY_INDEX_BENCH_N %q", s))
			}
			n = v
		}
		r := rand.New(rand.NewPCG(42, 42))
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		all := make([]pdq.Hash, 0, n)
		const batch = 1 << 16
		buf := make([]pdq.Hash, 0, batch)
		var queries []pdq.Hash
		// Families of near-duplicates (1..12 members at distance 0..40 of a
		// centre) and uniform noise, a quarter each by count of draws.
		for added := 0; added < n; {
			buf = buf[:0]
			for len(buf) < batch && added+len(buf) < n {
				if r.IntN(4) == 0 {
					buf = append(buf, randomHash(r))
					continue
				}
				centre := randomHash(r)
				for k := 1 + r.IntN(12); k > 0 && len(buf) < batch && added+len(buf) < n; k-- {
					buf = append(buf, quickFlip(r, centre, r.IntN(41)))
				}
				if len(queries) < 1000 && r.IntN(n/2000+1) == 0 {
					queries = append(queries, quickFlip(r, centre, r.IntN(25)))
				}
			}
			all = append(all, buf...)
			added += len(buf)
		}
		p := BuildPDQ(all)
		all = nil
		for len(queries) < 2000 {
			queries = append(queries, randomHash(r)) // misses
		}
		buf = nil
		var after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		benchState.p, benchState.queries = p, queries
		benchState.bytes = float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
	})
	return benchState.p, benchState.queries
}

// quickFlip flips about d random bits (repeats allowed): cheap, for the
// benchmark data only.
func quickFlip(r *rand.Rand, h pdq.Hash, d int) pdq.Hash {
	for range d {
		k := r.IntN(256)
		h[k/8] ^= 1 << (k % 8)
	}
	return h
}

func BenchmarkLookup(b *testing.B) {
	p, queries := benchIndex(b)
	b.ResetTimer()
	matches, i := 0, 0
	cpu := processCPUTime()
	for b.Loop() {
		matches += len(p.Lookup(queries[i%len(queries)], MatchThreshold))
		i++
	}
	reportRates(b, cpu, "lookups")
	b.ReportMetric(benchState.bytes, "heapbytes/hash")
	b.ReportMetric(float64(p.Len()), "hashes")
	b.ReportMetric(float64(matches)/float64(b.N), "matches/op")
}

func BenchmarkLinearScan(b *testing.B) {
	p, queries := benchIndex(b)
	b.ResetTimer()
	i := 0
	cpu := processCPUTime()
	for b.Loop() {
		p.LinearScan(queries[i%len(queries)], MatchThreshold)
		i++
	}
	reportRates(b, cpu, "lookups")
}

// reportRates reports b.N per wall-clock second and per CPU-second of the
// process since cpu (run with -cpu 1 so that the two agree on an idle
// machine).
func reportRates(b *testing.B, cpu time.Duration, unit string) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit+"/s")
	if used := processCPUTime() - cpu; used > 0 && cpu > 0 {
		b.ReportMetric(float64(b.N)/used.Seconds(), unit+"/cpu-s")
	}
}
