package prefix

import (
	"crypto/sha256"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
)

// The benchmarks share one tree of benchEntries random entries, built once
// (about a second) the first time one of them needs it. Figures and the
// command are in docs/benchmarks.md ("Key transparency").
const (
	benchEntries = 1_000_000
	benchBatch   = 10_000
)

var bench struct {
	once    sync.Once
	tree    *Tree
	entries []Entry
	bytes   float64 // heap bytes per entry held by the tree
}

func randomEntries(r *rand.Rand, n int) []Entry {
	out := make([]Entry, n)
	for i := range out {
		for j := 0; j < IndexSize; j += 8 {
			v := r.Uint64()
			for k := range 8 {
				out[i].Index[j+k] = byte(v >> (8 * k))
			}
		}
		out[i].Value[0] = byte(i)
		out[i].Value[1] = byte(i >> 8)
	}
	return out
}

func benchTree(b *testing.B) (*Tree, []Entry) {
	b.Helper()
	bench.once.Do(func() {
		entries := randomEntries(rand.New(rand.NewPCG(7, 8)), benchEntries)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		tr, err := Build(entries)
		if err != nil {
			panic(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		bench.tree, bench.entries = tr, entries
		bench.bytes = float64(after.HeapAlloc-before.HeapAlloc) / benchEntries
	})
	return bench.tree, bench.entries
}

// BenchmarkInsert10kInto1M applies a batch of 10 000 new random entries to
// the 1M-entry tree; the base tree is persistent, so every iteration starts
// from the same 1M entries.
func BenchmarkInsert10kInto1M(b *testing.B) {
	tr, _ := benchTree(b)
	batch := randomEntries(rand.New(rand.NewPCG(9, 10)), benchBatch)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.Insert(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(bench.bytes, "tree-B/entry")
}

// BenchmarkUpdate10kIn1M replaces the values of 10 000 existing entries.
func BenchmarkUpdate10kIn1M(b *testing.B) {
	tr, entries := benchTree(b)
	batch := make([]Entry, benchBatch)
	for i := range batch {
		batch[i] = entries[i*(benchEntries/benchBatch)]
		batch[i].Value[31] ^= 0xff
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.Insert(batch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLookupProof1M produces an inclusion proof at 1M entries and
// reports its encoded size.
func BenchmarkLookupProof1M(b *testing.B) {
	tr, entries := benchTree(b)
	var size, depth int
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		_, _, p := tr.Lookup(entries[i%len(entries)].Index)
		enc, _ := p.MarshalBinary()
		size += len(enc)
		depth += p.Depth()
		i++
	}
	b.ReportMetric(float64(size)/float64(i), "proof-bytes")
	b.ReportMetric(float64(depth)/float64(i), "depth")
}

// BenchmarkNonInclusionProof1M is the same for absent indexes.
func BenchmarkNonInclusionProof1M(b *testing.B) {
	tr, _ := benchTree(b)
	absent := randomEntries(rand.New(rand.NewPCG(11, 12)), 1024)
	var size int
	i := 0
	for b.Loop() {
		_, _, p := tr.Lookup(absent[i%len(absent)].Index)
		enc, _ := p.MarshalBinary()
		size += len(enc)
		i++
	}
	b.ReportMetric(float64(size)/float64(i), "proof-bytes")
}

// BenchmarkVerifyInclusion1M is what a client does with each answer:
// decode the proof and verify it.
func BenchmarkVerifyInclusion1M(b *testing.B) {
	tr, entries := benchTree(b)
	root := tr.Root()
	const n = 1024
	encs := make([][]byte, n)
	for i := range encs {
		_, _, p := tr.Lookup(entries[i].Index)
		encs[i], _ = p.MarshalBinary()
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		e := entries[i%n]
		p, err := ParseProof(encs[i%n])
		if err != nil {
			b.Fatal(err)
		}
		if err := VerifyInclusion(root, e.Index, e.Value, p); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkBaselineSHA256_64 is the unit the figures are given in: one
// SHA-256 of 64 bytes, the work of hashing one node.
func BenchmarkBaselineSHA256_64(b *testing.B) {
	var buf [64]byte
	for b.Loop() {
		h := sha256.Sum256(buf[:])
		buf[0] = h[0]
	}
}

// BenchmarkBaselineMapInsert10k inserts the same 10 000 entries into a
// plain Go map already holding 1M (mutable, unauthenticated): the cost of
// the bookkeeping alone.
func BenchmarkBaselineMapInsert10k(b *testing.B) {
	_, entries := benchTree(b)
	m := make(map[Index]Value, benchEntries+benchBatch)
	for _, e := range entries {
		m[e.Index] = e.Value
	}
	batch := randomEntries(rand.New(rand.NewPCG(9, 10)), benchBatch)
	for b.Loop() {
		for _, e := range batch {
			m[e.Index] = e.Value
		}
		b.StopTimer()
		for _, e := range batch {
			delete(m, e.Index)
		}
		b.StartTimer()
	}
}

// BenchmarkBuild1M builds the 1M-entry tree from scratch, as a server that
// keeps only (index, value) pairs would at start.
func BenchmarkBuild1M(b *testing.B) {
	_, entries := benchTree(b)
	for b.Loop() {
		if _, err := Build(entries); err != nil {
			b.Fatal(err)
		}
	}
}
