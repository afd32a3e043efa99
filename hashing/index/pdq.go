// Package index holds Parley's in-memory matching indexes for media hashes:
// PDQ, a perceptual-hash index that finds every stored hash within a
// Hamming distance of a query, and Exact, for MD5 and SHA-256 digests.
//
// The PDQ index uses multi-index hashing (Norouzi, Punjani and Fleet,
// "Fast Search in Hamming Space with Multi-Index Hashing", CVPR 2012): the
// 256 bits are cut into m disjoint slots, and each slot has an inverted
// index from its value to the hashes holding it. If two hashes are within
// distance d, then by the pigeonhole principle at least one slot differs in
// at most floor(d/m) bits, so probing every slot's value and its neighbours
// within that radius finds every match. Candidates are then checked with
// the full distance, so results are exactly those of a linear scan.
//
// A slot's inverted index splits its key: the high bits index a directory
// of offsets (one entry per 4 to 8 hashes, see dirBits), and the
// low bits are stored in each posting beside the ID. Probing enumerates
// the directory keys within the slot's radius and keeps only the postings
// whose low bits are within the radius left over, so a slot can be wider
// than the directory, and most postings of a bucket are rejected with a
// sequential read before any 32-byte hash is loaded at random.
//
// Indexes of 2^18 hashes or more use 11 slots, ten of 23-24 bits probed at
// radius 2 and one of 20 bits at radius 1 for the production threshold
// d = 31 (see radii and largeWidths); smaller ones use 16 slots of 16 bits
// at radius 1. At 10 million hashes the directories have 2^21 entries per
// slot (2^20 for the 20-bit slot), a posting is an ID and up to 3 low
// key bits in a uint32, and the index takes about 85 bytes a hash, 0.85 GB
// in all.
//
// A lookup is bound by memory latency: at 10 million hashes it reads about
// 2,300 directory entries, as many buckets of postings (11,000 postings,
// all but 2,600 of them rejected by their low bits) and 2,600 candidate
// hashes at random. Each of these reads is first issued from a short loop
// of its own, without data-dependent branches, so that the CPU overlaps
// the cache misses; the loops that then use the data hit the cache. That
// makes about 6,000 lookups per CPU-second, some 190 times a linear scan
// (BenchmarkLookup, BenchmarkLinearScan).
package index

import (
	"cmp"
	"math/bits"
	"slices"
	"sync"

	"github.com/parleychat/parley/hashing/pdq"
)

// ID identifies a hash in a PDQ index. IDs are assigned densely from 0 in
// insertion order and are never reused, even after Delete.
type ID uint32

// Match is one result of a lookup.
type Match struct {
	ID       ID
	Hash     pdq.Hash
	Distance int
}

// MatchThreshold is the distance at or below which two PDQ hashes are
// considered the same image in production (pdq/README.md).
const MatchThreshold = 31

// DefaultSlots is the number of slots of large base indexes.
const DefaultSlots = 11

// maxRadius is the largest per-slot probe radius the index uses; lookups
// with a larger maxDistance fall back to a linear scan, which for those
// radii is faster than enumerating the neighbours.
const maxRadius = 3

// PDQ is a multi-index over PDQ hashes. It is safe for concurrent use:
// lookups take a read lock and run concurrently with each other; inserts
// and deletes take the write lock briefly. Inserted hashes go to a small
// mutable delta index; when it grows past 1/16 of the whole, a
// background goroutine rebuilds the flat base index from a snapshot and
// swaps it in, so lookups never wait for a full rebuild.
type PDQ struct {
	deltaSlots []slot // 16 slots of 16 bits, for the delta's maps

	mu      sync.RWMutex
	hashes  []words  // by ID; append-only, entries never change
	deleted []uint64 // bitset by ID
	live    int
	base    *segment               // covers IDs [0, base.n)
	delta   []map[uint32][]ID      // per slot, IDs in [base.n, len(hashes))
	rebuild struct{ running bool } // guarded by mu
	done    sync.WaitGroup         // background rebuilds
	built   chan struct{}          // closed and replaced after each rebuild
	autoMin int                    // delta size that triggers a rebuild

	baseSlots int              // slots of base segments; 0 chooses by size
	dirBits   func(n int) uint // directory bits of base segments (tests); nil is the package's dirBits
}

// segment is an immutable inverted index over IDs [0, n), one posting
// list per slot.
type segment struct {
	slots   []slot
	lists   []postings
	n       int
	deleted int // how many of IDs [0, n) were deleted when it was built
}

// postings is one slot's inverted index. A slot key of width bits is split
// into its high width-low bits, which index dir, and its low bits, which
// are kept in each posting beside the ID: ids[dir[k]:dir[k+1]] are
// id<<low | key&(1<<low-1) for every hash whose key>>low is k, in
// increasing ID order. Keeping the low bits in the posting keeps the
// directory near one entry per few hashes however wide the slot is, and
// lets a lookup reject most candidates of a bucket by their slot distance
// with a sequential read, before it loads the 32-byte hash at random.
type postings struct {
	low uint
	dir []uint32
	ids []uint32
}

// lowBits returns how many low key bits of a width-bit slot to keep in the
// postings, for a directory indexed by about top high bits: fewer if an ID
// would not fit beside them in 32 bits.
func lowBits(n int, width, top uint) uint {
	top = min(top, width)
	for top < width && uint(bits.Len(uint(max(n-1, 0))))+width-top > 32 {
		top++
	}
	return width - top
}

// dirBits returns the directory bits of segments of n hashes: one
// directory entry per 2^(dirSpreadBits-1) to 2^dirSpreadBits hashes, so the
// directories cost under a byte per hash and slot, and a bucket's postings
// usually fit one cache line. (Spreads of 2 and 4 measured within the
// noise of 3 at 10 million hashes, for 8 bytes a hash more or 4 less.)
func dirBits(n int) uint {
	return uint(min(max(bits.Len(uint(n))-dirSpreadBits, minDirBits), maxKeyBits))
}

const (
	dirSpreadBits = 3
	minDirBits    = 8
)

// NewPDQ returns an empty index.
func NewPDQ() *PDQ { return newPDQ(0) }

// newPDQ returns an index whose base segments use m slots, or, for m = 0,
// a number chosen from the size: the best slot width is about log2 of the
// number of hashes (Norouzi et al.), but small indexes should not pay for
// 2^21-entry directories.
func newPDQ(m int) *PDQ {
	const deltaSlots = 16
	p := &PDQ{deltaSlots: layout(deltaSlots), baseSlots: m, autoMin: 1 << 16, built: make(chan struct{})}
	p.base = &segment{slots: layout(deltaSlots), lists: make([]postings, deltaSlots)}
	p.delta = make([]map[uint32][]ID, deltaSlots)
	for i := range p.delta {
		p.delta[i] = make(map[uint32][]ID)
	}
	return p
}

// BuildPDQ returns an index holding hs, with IDs 0..len(hs)-1 in order,
// built directly into the flat base index. It is the fast path for loading
// a bank at start-up.
func BuildPDQ(hs []pdq.Hash) *PDQ {
	p := NewPDQ()
	p.hashes = make([]words, len(hs))
	adviseHugePages(p.hashes)
	for i, h := range hs {
		p.hashes[i] = toWords(h)
	}
	p.deleted = make([]uint64, (len(hs)+63)/64)
	p.live = len(hs)
	p.base = p.buildSegment(p.hashes, p.deleted)
	return p
}

// slotsFor returns the slots of a base segment of n hashes. Below 2^18
// hashes, 16 slots at radius 1 probe about 270 keys a lookup against 2,300
// for the large layout, which costs more than it saves in candidates.
func (p *PDQ) slotsFor(n int) []slot {
	m := p.baseSlots
	if m == 0 {
		m = 16
		if n >= 1<<18 {
			m = DefaultSlots
		}
	}
	if m == DefaultSlots {
		return layoutWidths(largeWidths[:])
	}
	return layout(m)
}

// Len returns the number of hashes in the index, not counting deleted ones.
func (p *PDQ) Len() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.live
}

// Insert adds h and returns its ID.
func (p *PDQ) Insert(h pdq.Hash) ID {
	p.mu.Lock()
	defer p.mu.Unlock()
	id := p.insertLocked(toWords(h))
	p.maybeRebuildLocked()
	return id
}

// InsertBatch adds hashes and returns the ID of the first; the others
// follow consecutively.
func (p *PDQ) InsertBatch(hs []pdq.Hash) ID {
	p.mu.Lock()
	defer p.mu.Unlock()
	first := ID(len(p.hashes))
	for _, h := range hs {
		p.insertLocked(toWords(h))
	}
	p.maybeRebuildLocked()
	return first
}

func (p *PDQ) insertLocked(w words) ID {
	id := ID(len(p.hashes))
	p.hashes = append(p.hashes, w)
	if int(id)/64 >= len(p.deleted) {
		p.deleted = append(p.deleted, 0)
	}
	p.live++
	for s, sl := range p.deltaSlots {
		k := sl.key(&w)
		p.delta[s][k] = append(p.delta[s][k], id)
	}
	return id
}

// Delete removes the hash with the given ID. It reports whether the ID
// was present and not already deleted.
func (p *PDQ) Delete(id ID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if int(id) >= len(p.hashes) || p.isDeleted(id) {
		return false
	}
	p.deleted[id/64] |= 1 << (id % 64)
	p.live--
	return true
}

func (p *PDQ) isDeleted(id ID) bool { return p.deleted[id/64]>>(id%64)&1 == 1 }

// Get returns the hash with the given ID, if present.
func (p *PDQ) Get(id ID) (pdq.Hash, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if int(id) >= len(p.hashes) || p.isDeleted(id) {
		return pdq.Hash{}, false
	}
	return p.hashes[id].hash(), true
}

func (p *PDQ) maybeRebuildLocked() {
	pending := len(p.hashes) - p.base.n
	if p.rebuild.running || pending < max(p.autoMin, p.base.n/16) {
		return
	}
	p.startRebuildLocked()
}

func (p *PDQ) startRebuildLocked() {
	p.rebuild.running = true
	p.done.Add(1)
	n := len(p.hashes)
	hs := p.hashes[:n:n]
	del := slices.Clone(p.deleted)
	ndel := n - p.live
	go func() {
		defer p.done.Done()
		seg := p.buildSegment(hs, del)
		seg.deleted = ndel
		p.mu.Lock()
		p.base = seg
		p.resetDeltaLocked()
		p.rebuild.running = false
		close(p.built)
		p.built = make(chan struct{})
		p.mu.Unlock()
	}()
}

// resetDeltaLocked rebuilds the delta maps for the IDs the base misses.
func (p *PDQ) resetDeltaLocked() {
	for s := range p.delta {
		p.delta[s] = make(map[uint32][]ID)
	}
	for id := p.base.n; id < len(p.hashes); id++ {
		if p.isDeleted(ID(id)) {
			continue
		}
		for s, sl := range p.deltaSlots {
			k := sl.key(&p.hashes[id])
			p.delta[s][k] = append(p.delta[s][k], ID(id))
		}
	}
}

// Compact rebuilds the flat base index over every hash inserted so far
// (dropping deleted ones from the postings) and waits for it. Lookups
// continue during the rebuild. Call it after a bulk load.
func (p *PDQ) Compact() {
	for {
		p.mu.Lock()
		if p.rebuild.running {
			ch := p.built
			p.mu.Unlock()
			<-ch
			continue
		}
		if p.base.n == len(p.hashes) && p.base.deleted == len(p.hashes)-p.live {
			p.mu.Unlock()
			return
		}
		ch := p.built
		p.startRebuildLocked()
		p.mu.Unlock()
		<-ch
		return
	}
}

// Wait waits for background rebuilds to finish (for tests and shutdown).
func (p *PDQ) Wait() { p.done.Wait() }

// buildSegment builds flat postings for hs with a counting sort per slot.
func (p *PDQ) buildSegment(hs []words, deleted []uint64) *segment {
	slots := p.slotsFor(len(hs))
	top := dirBits(len(hs))
	if p.dirBits != nil {
		top = p.dirBits(len(hs))
	}
	seg := &segment{slots: slots, n: len(hs), lists: make([]postings, len(slots))}
	live := 0
	for id := range hs {
		if deleted[id/64]>>(id%64)&1 == 0 {
			live++
		}
	}
	for s, sl := range slots {
		low := lowBits(len(hs), sl.width, top)
		mask := uint32(1)<<low - 1
		dir := make([]uint32, 1<<(sl.width-low)+1)
		adviseHugePages(dir)
		for id := range hs {
			if deleted[id/64]>>(id%64)&1 == 0 {
				dir[sl.key(&hs[id])>>low+1]++
			}
		}
		for i := 1; i < len(dir); i++ {
			dir[i] += dir[i-1]
		}
		ids := make([]uint32, live)
		adviseHugePages(ids)
		next := slices.Clone(dir[:len(dir)-1])
		for id := range hs {
			if deleted[id/64]>>(id%64)&1 == 0 {
				k := sl.key(&hs[id])
				ids[next[k>>low]] = uint32(id)<<low | k&mask
				next[k>>low]++
			}
		}
		seg.lists[s] = postings{low: low, dir: dir, ids: ids}
	}
	return seg
}

// Lookup returns every hash within maxDistance of h (inclusive), sorted
// by distance and then ID. The result is identical to LinearScan's.
func (p *PDQ) Lookup(h pdq.Hash, maxDistance int) []Match {
	if maxDistance < 0 {
		return nil
	}
	q := toWords(h)
	p.mu.RLock()
	defer p.mu.RUnlock()
	var out []Match
	// Every ID is in exactly one of the base and the delta.
	out = p.searchBase(out, &q, maxDistance)
	out = p.searchDelta(out, &q, maxDistance)
	sortMatches(out)
	return out
}

func (p *PDQ) searchBase(out []Match, q *words, maxDistance int) []Match {
	b := p.base
	if b.n == 0 {
		return out
	}
	var rad [64]int
	if !radii(&rad, b.slots, maxDistance) {
		return p.scan(out, q, maxDistance, 0, b.n)
	}
	var qk [64]uint32
	for s, sl := range b.slots {
		if sl.width-b.lists[s].low > maxKeyBits {
			return p.scan(out, q, maxDistance, 0, b.n) // too many keys to enumerate
		}
		qk[s] = sl.key(q)
	}
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	for s, sl := range b.slots {
		if rad[s] < 0 {
			continue
		}
		// Three passes, each a loop of independent loads, so that the CPU
		// overlaps the cache misses: bucket bounds, then the postings in
		// the buckets, then the candidate hashes. (Walking bucket by bucket
		// chains the three misses and runs several times slower.)
		l := &b.lists[s]
		qtop, qlow := qk[s]>>l.low, qk[s]&(1<<l.low-1)
		ks, ends := neighbours(&sc.keys, qtop, sl.width-l.low, rad[s])
		total := 0
		for i, k := range ks {
			lo, hi := l.dir[k], l.dir[k+1]
			sc.ranges[i] = [2]uint32{lo, hi}
			total += int(hi - lo)
		}
		// Touch the first and last posting of every bucket in a loop
		// without branches, so that their cache misses overlap; the scan
		// below branches on each bucket's length, and its mispredictions
		// would otherwise hold back the loads that follow them.
		if last := uint32(len(l.ids)) - 1; len(l.ids) > 0 {
			var sink uint32
			for _, r := range sc.ranges[:len(ks)] {
				sink += l.ids[min(r[0], last)] + l.ids[min(max(r[1], 1)-1, last)]
			}
			sc.sink += sink
		}
		if cap(sc.ids) < total {
			sc.ids = make([]ID, total)
		}
		// A bucket at distance d from the query's holds the hashes whose
		// high key bits are at distance d; of those, only the ones whose
		// low bits are within rad[s]-d of the query's are within the
		// slot's radius, and only those are candidates.
		cand := sc.ids[:total]
		n := 0
		start := 0
		for d, end := range ends[:rad[s]+1] {
			n = filterBuckets(cand, n, l.ids, sc.ranges[start:end], l.low, qlow, rad[s]-d)
			start = end
		}
		// The same again for the candidate hashes: the loop below is too
		// long for the CPU to run enough of its iterations ahead.
		var sink uint64
		for _, id := range cand[:n] {
			sink += p.hashes[id][0]
		}
		sc.sink += uint32(sink)
		for _, id := range cand[:n] {
			c := &p.hashes[id]
			d := distance(q, c)
			if d > maxDistance || p.isDeleted(id) || !firstSlot(b.slots, &qk, &rad, c, s) {
				continue
			}
			out = append(out, Match{ID: id, Hash: c.hash(), Distance: d})
		}
	}
	return out
}

// filterBuckets appends to cand[:n] the IDs of the postings in the given
// ranges of ids whose low key bits (the low lowest bits) are within budget
// of qlow, and returns the new length. cand must have room for every
// posting in the ranges.
func filterBuckets(cand []ID, n int, ids []uint32, ranges [][2]uint32, low uint, qlow uint32, budget int) int {
	low &= 31 // low < 32 always; saying so spares the shifts a check
	mask := uint32(1)<<low - 1
	for _, r := range ranges {
		for _, e := range ids[r[0]:r[1]] {
			cand[n] = ID(e >> low)
			if bits.OnesCount32((e^qlow)&mask) <= budget {
				n++
			}
		}
	}
	return n
}

// scratch holds a lookup's working buffers, reused through scratchPool.
type scratch struct {
	keys   [maxKeys]uint32
	ranges [maxKeys][2]uint32
	ids    []ID
	sink   uint32 // keeps the compiler from dropping the touching loads
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func (p *PDQ) searchDelta(out []Match, q *words, maxDistance int) []Match {
	if p.base.n == len(p.hashes) {
		return out
	}
	slots := p.deltaSlots
	var rad [64]int
	if !radii(&rad, slots, maxDistance) {
		return p.scan(out, q, maxDistance, p.base.n, len(p.hashes))
	}
	var qk [64]uint32
	for s, sl := range slots {
		qk[s] = sl.key(q)
	}
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	for s, sl := range slots {
		if rad[s] < 0 {
			continue
		}
		ks, _ := neighbours(&sc.keys, qk[s], sl.width, rad[s])
		for _, k := range ks {
			for _, id := range p.delta[s][k] {
				c := &p.hashes[id]
				d := distance(q, c)
				if d > maxDistance || p.isDeleted(id) || !firstSlot(slots, &qk, &rad, c, s) {
					continue
				}
				out = append(out, Match{ID: id, Hash: c.hash(), Distance: d})
			}
		}
	}
	return out
}

// firstSlot reports whether s is the first slot in which candidate c is
// within its probe radius of the query (whose slot keys are qk). A match is
// reachable from every such slot; reporting it only from the first reports
// it once.
func firstSlot(slots []slot, qk *[64]uint32, rad *[64]int, c *words, s int) bool {
	for t := 0; t < s; t++ {
		if rad[t] >= 0 && bits.OnesCount32(slots[t].key(c)^qk[t]) <= rad[t] {
			return false
		}
	}
	return true
}

// radii sets the probe radius of each slot for a search within distance d,
// or reports false if a linear scan is the better plan.
//
// Generalised pigeonhole: if every slot i differed in more than rad[i]
// bits, the distance would be at least sum(rad[i]+1). So any radii with
// sum(rad[i]+1) > d find every match, and a radius of -1 means the slot is
// not probed at all. Starting from rad[i] = d/m for all m slots, the sum
// is m*(d/m+1), which can exceed d+1 by up to m-1; that many slots can
// have their radius lowered by one. The narrowest slots are lowered, as
// their buckets are the fullest. For 12 slots and d = 31 this probes 4
// slots at radius 1 instead of 2, about a third fewer memory accesses.
func radii(rad *[64]int, slots []slot, d int) bool {
	m := len(slots)
	q := d / m
	if q > maxRadius {
		return false
	}
	spare := m*(q+1) - (d + 1)
	for i := range slots {
		rad[i] = q
	}
	// layout puts the wider slots first, so lower from the end.
	for i := m - 1; i >= 0 && spare > 0; i-- {
		rad[i]--
		spare--
	}
	return true
}

// LinearScan compares h with every stored hash. It is the reference that
// Lookup must agree with, and the fallback for large distances.
func (p *PDQ) LinearScan(h pdq.Hash, maxDistance int) []Match {
	if maxDistance < 0 {
		return nil
	}
	q := toWords(h)
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := p.scan(nil, &q, maxDistance, 0, len(p.hashes))
	sortMatches(out)
	return out
}

func (p *PDQ) scan(out []Match, q *words, maxDistance, lo, hi int) []Match {
	for id := lo; id < hi; id++ {
		c := &p.hashes[id]
		if d := distance(q, c); d <= maxDistance && !p.isDeleted(ID(id)) {
			out = append(out, Match{ID: ID(id), Hash: c.hash(), Distance: d})
		}
	}
	return out
}

func sortMatches(ms []Match) {
	slices.SortFunc(ms, func(a, b Match) int {
		if c := cmp.Compare(a.Distance, b.Distance); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}
