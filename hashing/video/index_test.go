package video

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/hashing/pdq"
)

// flip returns h with n distinct random bits flipped.
func flip(r *rand.Rand, h pdq.Hash, n int) pdq.Hash {
	for _, b := range r.Perm(256)[:n] {
		h[b/8] ^= 1 << (b % 8)
	}
	return h
}

func randomHash(r *rand.Rand) pdq.Hash {
	var h pdq.Hash
	for i := range h {
		h[i] = byte(r.Uint32())
	}
	return h
}

// syntheticVideo returns frames one second apart: a random first frame,
// and each next one a few bits away from the last (scenes change slowly),
// with a random quality, some below the filter.
func syntheticVideo(r *rand.Rand, frames int) []Feature {
	fs := make([]Feature, frames)
	h := randomHash(r)
	for i := range fs {
		if i > 0 {
			h = flip(r, h, 4+r.IntN(12))
		}
		fs[i] = Feature{Frame: i, Quality: 30 + r.IntN(71), Hash: h, Timestamp: float64(i)}
	}
	return fs
}

// copyOf returns a re-encoded copy: every frame within a few bits of the
// original's, and some frames cut.
func copyOf(r *rand.Rand, v []Feature, bits int, keep float64) []Feature {
	var out []Feature
	for _, f := range v {
		if r.Float64() < keep {
			f.Hash = flip(r, f.Hash, r.IntN(bits+1))
			out = append(out, f)
		}
	}
	return out
}

// The index finds exactly the videos the brute-force comparison matches,
// with the same percentages, for every threshold setting, before and after
// videos are removed.
func TestVPDQIndexAgreesWithMatch(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var listed [][]Feature
	for range 300 {
		listed = append(listed, syntheticVideo(r, 5+r.IntN(40)))
	}
	// Videos that share scenes: a copy of half of another.
	for i := range 20 {
		listed = append(listed, copyOf(r, listed[i], 20, 0.5))
	}
	queries := [][]Feature{syntheticVideo(r, 30)}
	for i := range 40 {
		queries = append(queries, copyOf(r, listed[i*7], []int{4, 20, 31, 40}[i%4], []float64{1, 0.9, 0.5}[i%3]))
	}
	for _, o := range []MatchOptions{DefaultMatch, {Distance: 31, Quality: 50, QueryPct: 50, ComparedPct: 50},
		{Distance: 20, Quality: 0, QueryPct: 100, ComparedPct: 0}, {Distance: 31, Quality: 50, QueryPct: 0, ComparedPct: 0}} {
		t.Run(fmt.Sprintf("%+v", o), func(t *testing.T) {
			x := NewVPDQIndex(o)
			for _, v := range listed {
				x.Add(v)
			}
			removed := map[int32]bool{}
			check := func() {
				matches := 0
				for qi, q := range queries {
					hits, _ := x.Match(q)
					got := map[int32]MatchResult{}
					for _, h := range hits {
						got[h.Video] = h.MatchResult
					}
					for v, c := range listed {
						if removed[int32(v)] {
							if _, ok := got[int32(v)]; ok {
								t.Fatalf("query %d: removed video %d matched", qi, v)
							}
							continue
						}
						want := Match(q, c, o)
						if g, ok := got[int32(v)]; ok != want.Match || ok && g != want {
							t.Fatalf("query %d video %d: index %v %+v, brute force %+v", qi, v, ok, g, want)
						}
						if want.Match {
							matches++
						}
					}
				}
				if matches < 5 {
					t.Fatalf("only %d matches: the test data tests little", matches)
				}
			}
			check()
			for v := range int32(len(listed)) {
				if v%3 == 0 {
					x.Remove(v)
					removed[v] = true
				}
			}
			check()
		})
	}
}

// The benchmark list: 100 000 videos of synthetic frame hashes (10 to 60
// distinct frames each, one a second after pruning), and a 10-minute
// upload at one frame a second that is a re-encoded copy of one of them.
var (
	benchOnce  sync.Once
	benchList  [][]Feature
	benchQuery []Feature
)

const benchVideos = 100_000

func benchData() ([][]Feature, []Feature) {
	benchOnce.Do(func() {
		r := rand.New(rand.NewPCG(7, 8))
		benchList = make([][]Feature, benchVideos)
		for i := range benchList {
			benchList[i] = syntheticVideo(r, 10+r.IntN(51))
		}
		long := syntheticVideo(r, 600)
		benchList[benchVideos/2] = long
		benchQuery = copyOf(r, long, 12, 1)
	})
	return benchList, benchQuery
}

func heapMiB() float64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

// BenchmarkVPDQIndexMatch100k: one 10-minute upload (600 frames) against
// 100 000 listed videos through VPDQIndex. Reports the index's heap, the
// frames indexed and the candidate videos scored.
func BenchmarkVPDQIndexMatch100k(b *testing.B) {
	list, q := benchData()
	before := heapMiB()
	start := time.Now()
	x := NewVPDQIndex(DefaultMatch)
	for _, v := range list {
		x.Add(v)
	}
	x.Compact()
	build := time.Since(start)
	mem := heapMiB() - before
	_, frames := x.Len()
	var cands int
	s0, _ := cpuTimes()
	b.ResetTimer()
	for b.Loop() {
		hits, c := x.Match(q)
		if len(hits) != 1 || hits[0].Video != benchVideos/2 {
			b.Fatalf("hits %+v", hits)
		}
		cands = c
	}
	b.StopTimer()
	s1, _ := cpuTimes()
	b.ReportMetric(float64((s1-s0).Milliseconds())/float64(b.N), "CPU-ms/match")
	b.ReportMetric(mem, "index-MiB")
	b.ReportMetric(float64(frames), "frames")
	b.ReportMetric(float64(cands), "candidates")
	b.ReportMetric(build.Seconds(), "build-s")
	runtime.KeepAlive(x)
}

// BenchmarkVPDQBruteForce100k: the same upload compared with every listed
// video by Match, the published brute-force algorithm.
func BenchmarkVPDQBruteForce100k(b *testing.B) {
	list, q := benchData()
	if os.Getenv("PARLEY_BENCH_BRUTE") == "" && b.N > 1 {
		b.Skip("one run is enough (each takes seconds); set PARLEY_BENCH_BRUTE=1 for more")
	}
	s0, _ := cpuTimes()
	for b.Loop() {
		n := 0
		for _, v := range list {
			if Match(q, v, DefaultMatch).Match {
				n++
			}
		}
		if n != 1 {
			b.Fatalf("%d matches", n)
		}
	}
	s1, _ := cpuTimes()
	b.ReportMetric(float64((s1-s0).Milliseconds())/float64(b.N), "CPU-ms/match")
	b.ReportMetric(benchVideos, "candidates")
}
