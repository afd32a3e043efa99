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
// Indexes of 2^20 hashes or more use 12 slots of 21-22 bits, so the
// production threshold d = 31 probes 8 slots at radius 2 (232 to 254 keys
// each) and 4 at radius 1 (see radii); smaller ones use 16 slots of 16 bits
// at radius 1 (17 keys each). Slot postings are flat arrays (a
// counting-sort directory of uint32 offsets and a uint32 array of IDs per
// slot), so 10 million hashes take about 94 bytes each, 0.94 GB in all.
//
// A lookup is bound by memory latency: at 10 million hashes it reads about
// 2,000 directory entries and 7,300 candidate hashes at random. The
// candidate IDs are gathered first and checked in a separate loop so that
// the CPU overlaps those cache misses.
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
const DefaultSlots = 12

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

	baseSlots int // slots of base segments; 0 chooses by size
}

// segment is an immutable inverted index over IDs [0, n): for each slot, a
// directory of 2^width+1 offsets into ids, which lists the IDs holding
// each slot value, in increasing order.
type segment struct {
	slots   []slot
	n       int
	deleted int // how many of IDs [0, n) were deleted when it was built
	offsets [][]uint32
	ids     [][]ID
}

// NewPDQ returns an empty index.
func NewPDQ() *PDQ { return newPDQ(0) }

// newPDQ returns an index whose base segments use m slots, or, for m = 0,
// a number chosen from the size: the best slot width is about log2 of the
// number of hashes (Norouzi et al.), but small indexes should not pay for
// 2^21-entry directories.
func newPDQ(m int) *PDQ {
	const deltaSlots = 16
	p := &PDQ{deltaSlots: layout(deltaSlots), baseSlots: m, autoMin: 1 << 16, built: make(chan struct{})}
	p.base = &segment{slots: layout(deltaSlots), offsets: make([][]uint32, deltaSlots), ids: make([][]ID, deltaSlots)}
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
	p.base = buildSegment(p.slotsFor(len(hs)), p.hashes, p.deleted)
	return p
}

func (p *PDQ) slotsFor(n int) []slot {
	m := p.baseSlots
	if m == 0 {
		m = 16
		if n >= 1<<20 {
			m = DefaultSlots
		}
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
		seg := buildSegment(p.slotsFor(len(hs)), hs, del)
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
func buildSegment(slots []slot, hs []words, deleted []uint64) *segment {
	seg := &segment{slots: slots, n: len(hs), offsets: make([][]uint32, len(slots)), ids: make([][]ID, len(slots))}
	live := 0
	for id := range hs {
		if deleted[id/64]>>(id%64)&1 == 0 {
			live++
		}
	}
	for s, sl := range slots {
		off := make([]uint32, 1<<sl.width+1)
		adviseHugePages(off)
		for id := range hs {
			if deleted[id/64]>>(id%64)&1 == 0 {
				off[sl.key(&hs[id])+1]++
			}
		}
		for i := 1; i < len(off); i++ {
			off[i] += off[i-1]
		}
		ids := make([]ID, live)
		adviseHugePages(ids)
		next := slices.Clone(off[:len(off)-1])
		for id := range hs {
			if deleted[id/64]>>(id%64)&1 == 0 {
				k := sl.key(&hs[id])
				ids[next[k]] = ID(id)
				next[k]++
			}
		}
		seg.offsets[s], seg.ids[s] = off, ids
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

// maxKeys is the most keys neighbours produces: radius 3 in 22 bits.
const maxKeys = 1 + 22 + 22*21/2 + 22*21*20/6

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
		qk[s] = sl.key(q)
	}
	var keys [maxKeys]uint32
	var ranges [maxKeys][2]uint32
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	for s, sl := range b.slots {
		off, ids := b.offsets[s], b.ids[s]
		// Three passes, each a loop of independent loads, so that the CPU
		// overlaps the cache misses: bucket bounds, then the IDs in the
		// buckets, then the candidate hashes. (Walking bucket by bucket
		// chains the three misses and runs several times slower.)
		if rad[s] < 0 {
			continue
		}
		ks := neighbours(&keys, qk[s], sl.width, rad[s])
		total := 0
		for i, k := range ks {
			lo, hi := off[k], off[k+1]
			ranges[i] = [2]uint32{lo, hi}
			total += int(hi - lo)
		}
		cand := sc.ids[:0]
		if cap(cand) < total {
			cand = make([]ID, 0, total)
		}
		for i := range ks {
			cand = append(cand, ids[ranges[i][0]:ranges[i][1]]...)
		}
		sc.ids = cand
		for _, id := range cand {
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

type scratch struct{ ids []ID }

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
	var keys [maxKeys]uint32
	for s, sl := range slots {
		if rad[s] < 0 {
			continue
		}
		for _, k := range neighbours(&keys, qk[s], sl.width, rad[s]) {
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
