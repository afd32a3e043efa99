package index

import (
	"crypto/md5"
	"crypto/sha256"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/parleychat/parley/hashing/pdq"
)

func randomHash(r *rand.Rand) pdq.Hash {
	var h pdq.Hash
	for i := 0; i < pdq.Size; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			h[i+j] = byte(v >> (8 * j))
		}
	}
	return h
}

// flip returns h with d distinct random bits flipped, so at distance d.
func flip(r *rand.Rand, h pdq.Hash, d int) pdq.Hash {
	for _, k := range r.Perm(256)[:d] {
		h[k/8] ^= 1 << (k % 8)
	}
	return h
}

// clustered returns n hashes: families of near-duplicates (each member at
// distance 0..40 from its family's centre, as re-encodes and edits of one
// image are) mixed with uniform noise.
func clustered(r *rand.Rand, n int) []pdq.Hash {
	out := make([]pdq.Hash, 0, n)
	for len(out) < n {
		if r.IntN(4) == 0 {
			out = append(out, randomHash(r))
			continue
		}
		centre := randomHash(r)
		for k := 1 + r.IntN(12); k > 0 && len(out) < n; k-- {
			out = append(out, flip(r, centre, r.IntN(41)))
		}
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func TestWordsRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		a, b := randomHash(r), randomHash(r)
		wa, wb := toWords(a), toWords(b)
		if wa.hash() != a {
			t.Fatal("round trip")
		}
		if distance(&wa, &wb) != pdq.Distance(a, b) {
			t.Fatal("distance")
		}
		for s, sl := range layout(DefaultSlots) {
			k := sl.key(&wa)
			for i := uint(0); i < sl.width; i++ {
				if (k>>i&1 == 1) != a.Bit(int(sl.start+i)) {
					t.Fatalf("slot %d bit %d", s, i)
				}
			}
		}
	}
}

func TestLookupMatchesLinearScan(t *testing.T) {
	for _, slots := range []int{0, DefaultSlots, 12, 16} {
		r := rand.New(rand.NewPCG(uint64(slots), 7))
		p := newPDQ(slots)
		p.autoMin = 500 // exercise background rebuilds and the delta
		data := clustered(r, 5000)
		for i, h := range data {
			if i%2 == 0 {
				p.Insert(h)
			} else if i%100 == 1 {
				p.InsertBatch(data[i : i+1])
			} else {
				p.Insert(h)
			}
		}
		p.Wait()
		// Delete a tenth, with some duplicates of deletions.
		for i := 0; i < len(data); i += 10 {
			if !p.Delete(ID(i)) {
				t.Fatalf("delete %d failed", i)
			}
			if p.Delete(ID(i)) {
				t.Fatalf("second delete %d succeeded", i)
			}
		}
		if p.Delete(ID(len(data))) {
			t.Fatal("deleted a missing ID")
		}
		// Add some more after the deletes, into the delta.
		for range 300 {
			p.Insert(flip(r, data[r.IntN(len(data))], r.IntN(20)))
		}
		check := func(stage string) {
			for q := range 300 {
				var query pdq.Hash
				switch q % 3 {
				case 0:
					query = randomHash(r)
				default:
					query = flip(r, data[r.IntN(len(data))], r.IntN(41))
				}
				for _, d := range []int{0, 5, 15, 16, 31, 32, 40, 47, 60, 70} {
					got, want := p.Lookup(query, d), p.LinearScan(query, d)
					if !slices.Equal(got, want) {
						t.Fatalf("%d slots, %s, distance %d: lookup %d matches, scan %d", slots, stage, d, len(got), len(want))
					}
				}
			}
		}
		check("with delta")
		p.Compact()
		if p.base.n != p.Len()+len(data)/10 {
			t.Fatalf("compact: base covers %d", p.base.n)
		}
		check("compacted")
	}
}

func TestLookupFindsNearDuplicates(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	p := NewPDQ()
	centre := randomHash(r)
	for range 1000 {
		p.Insert(randomHash(r))
	}
	want := map[ID]int{}
	for d := 0; d <= 31; d++ {
		want[p.Insert(flip(r, centre, d))] = d
	}
	p.Compact()
	got := p.Lookup(centre, MatchThreshold)
	if len(got) != len(want) {
		t.Fatalf("got %d matches, want %d", len(got), len(want))
	}
	for i, m := range got {
		if want[m.ID] != m.Distance || m.Distance != pdq.Distance(m.Hash, centre) {
			t.Errorf("match %v: want distance %d", m, want[m.ID])
		}
		if i > 0 && got[i-1].Distance > m.Distance {
			t.Error("not sorted")
		}
	}
	if h, ok := p.Get(got[0].ID); !ok || h != centre {
		t.Errorf("Get: %v %v", h, ok)
	}
	p.Delete(got[0].ID)
	if _, ok := p.Get(got[0].ID); ok {
		t.Error("Get after Delete")
	}
	if len(p.Lookup(centre, MatchThreshold)) != len(want)-1 {
		t.Error("deleted hash still matches")
	}
	if p.Lookup(centre, -1) != nil {
		t.Error("negative distance matched")
	}
}

func TestConcurrentUse(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	p := newPDQ(DefaultSlots)
	p.autoMin = 200
	data := clustered(r, 3000)
	p.InsertBatch(data[:1000])
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rr := rand.New(rand.NewPCG(uint64(w), 9))
			for range 200 {
				q := flip(rr, data[rr.IntN(1000)], rr.IntN(20))
				for _, m := range p.Lookup(q, MatchThreshold) {
					if m.Distance != pdq.Distance(m.Hash, q) {
						t.Errorf("bad distance in %v", m)
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i, h := range data[1000:] {
			id := p.Insert(h)
			if i%7 == 0 {
				p.Delete(id)
			}
		}
	}()
	wg.Wait()
	p.Compact()
	p.Wait()
	for range 50 {
		q := flip(r, data[r.IntN(len(data))], r.IntN(30))
		if got, want := p.Lookup(q, MatchThreshold), p.LinearScan(q, MatchThreshold); !slices.Equal(got, want) {
			t.Fatalf("after concurrent updates: %d vs %d", len(got), len(want))
		}
	}
}

func TestExact(t *testing.T) {
	e := NewExact()
	a, b := md5.Sum([]byte("a")), md5.Sum([]byte("b"))
	sa := sha256.Sum256([]byte("a"))
	id1 := e.InsertMD5(a)
	id2 := e.InsertMD5(a)
	id3 := e.InsertSHA256(sa)
	if got := e.LookupMD5(a); !slices.Equal(got, []ID{id1, id2}) {
		t.Errorf("md5 lookup %v", got)
	}
	if got := e.LookupMD5(b); len(got) != 0 {
		t.Errorf("md5 miss %v", got)
	}
	if got := e.LookupSHA256(sa); !slices.Equal(got, []ID{id3}) {
		t.Errorf("sha256 lookup %v", got)
	}
	// An MD5 never matches the first bytes of a SHA-256, or vice versa.
	var prefix [16]byte
	copy(prefix[:], sa[:])
	if len(e.LookupMD5(prefix)) != 0 {
		t.Error("cross-type match")
	}
	if e.Len() != 3 || !e.Delete(id1) || e.Delete(id1) || e.Len() != 2 {
		t.Error("delete")
	}
	if got := e.LookupMD5(a); !slices.Equal(got, []ID{id2}) {
		t.Errorf("after delete %v", got)
	}
	e.Delete(id3)
	if len(e.LookupSHA256(sa)) != 0 || e.Delete(99) {
		t.Error("delete sha")
	}
}

func TestBuildPDQ(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	data := clustered(r, 3000)
	p := BuildPDQ(data)
	if p.Len() != len(data) {
		t.Fatal("len")
	}
	id := p.Insert(data[0])
	p.Delete(5)
	for range 100 {
		q := flip(r, data[r.IntN(len(data))], r.IntN(35))
		if got, want := p.Lookup(q, MatchThreshold), p.LinearScan(q, MatchThreshold); !slices.Equal(got, want) {
			t.Fatalf("%d vs %d", len(got), len(want))
		}
	}
	if got := p.Lookup(data[0], 0); len(got) != 2 || got[1].ID != id {
		t.Errorf("duplicate hash: %v", got)
	}
}

func TestRadiiAreSound(t *testing.T) {
	for _, slots := range [][]slot{layout(12), layout(16), layoutWidths(largeWidths[:])} {
		m := len(slots)
		for d := 0; d <= 80; d++ {
			var rad [64]int
			if !radii(&rad, slots, d) {
				if d/m <= maxRadius {
					t.Errorf("m=%d d=%d: scan chosen", m, d)
				}
				continue
			}
			sum := 0
			for i := range slots {
				if rad[i] < -1 || rad[i] > maxRadius {
					t.Fatalf("m=%d d=%d: radius %d", m, d, rad[i])
				}
				sum += rad[i] + 1
			}
			if sum != d+1 {
				t.Errorf("m=%d d=%d: sum(rad+1) = %d, want exactly d+1", m, d, sum)
			}
		}
	}
}

// TestLookupDirectoryBits checks lookups against a linear scan when every
// slot key is split differently between the directory and the postings:
// all bits in the directory (no filtering in the postings), all but one or
// all of them in the postings (one or two directory buckets, so every
// candidate is filtered by its low bits), and the sizes in between. The
// data has exact duplicates, so that buckets hold runs of equal keys.
func TestLookupDirectoryBits(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 11))
	data := clustered(r, 2000)
	for i := range 200 {
		data = append(data, data[i]) // exact duplicates
	}
	for _, slots := range []int{DefaultSlots, 16} {
		for _, top := range []uint{0, 1, 2, 5, 9, 15, 16, 20} {
			p := newPDQ(slots)
			p.dirBits = func(int) uint { return top }
			p.InsertBatch(data)
			p.Compact()
			for s, sl := range p.base.slots {
				l := &p.base.lists[s]
				want := min(sl.width-min(top, sl.width), uint(32-bits.Len(uint(p.base.n-1)))) // an ID must fit beside them
				if l.low != want {
					t.Fatalf("%d slots, top %d: slot %d keeps %d low bits, want %d", slots, top, s, l.low, want)
				}
				if len(l.dir) != 1<<(sl.width-l.low)+1 {
					t.Fatalf("%d slots, top %d: directory of %d entries", slots, top, len(l.dir))
				}
			}
			p.Delete(3)
			p.Delete(ID(len(data) - 1))
			for q := range 60 {
				query := data[r.IntN(len(data))]
				if q%2 == 0 {
					query = flip(r, query, r.IntN(36))
				}
				for _, d := range []int{0, 1, 2, 10, 21, 22, 31, 32, 35, 43} {
					got, want := p.Lookup(query, d), p.LinearScan(query, d)
					if !slices.Equal(got, want) {
						t.Fatalf("%d slots, top %d, distance %d: lookup %d matches, scan %d", slots, top, d, len(got), len(want))
					}
				}
			}
		}
	}
}

func TestLowBits(t *testing.T) {
	for _, tc := range []struct {
		n          int
		width, top uint
		want       uint
	}{
		{10_000_000, 24, 21, 3},
		{10_000_000, 20, 21, 0},
		{10_000_000, 24, 0, 8}, // a 24-bit ID leaves 8 bits
		{1 << 24, 24, 0, 8},    // IDs up to 2^24-1
		{1<<24 + 1, 24, 0, 7},
		{1 << 32, 24, 0, 0},
		{1, 16, 0, 16},
		{0, 16, 0, 16},
	} {
		if got := lowBits(tc.n, tc.width, tc.top); got != tc.want {
			t.Errorf("lowBits(%d, %d, %d) = %d, want %d", tc.n, tc.width, tc.top, got, tc.want)
		}
	}
	if got := dirBits(10_000_000); got != 21 {
		t.Errorf("dirBits(10M) = %d, want 21", got)
	}
}

func TestNeighbours(t *testing.T) {
	var buf [maxKeys]uint32
	for _, width := range []uint{0, 1, 3, 7, 12, maxKeyBits} {
		for r := 0; r <= maxRadius; r++ {
			k := uint32(0x5a5a5a) & (1<<width - 1)
			keys, ends := neighbours(&buf, k, width, r)
			seen := map[uint32]bool{}
			start := 0
			for d := 0; d <= r; d++ {
				for _, x := range keys[start:ends[d]] {
					if bits.OnesCount32(x^k) != d || x>>width != 0 || seen[x] {
						t.Fatalf("width %d radius %d: key %x at level %d", width, r, x, d)
					}
					seen[x] = true
				}
				start = ends[d]
			}
			want := 0
			for d := 0; d <= r && d <= int(width); d++ {
				want += binomial(int(width), d)
			}
			if len(keys) != want || ends[r] != len(keys) {
				t.Errorf("width %d radius %d: %d keys (ends %v), want %d", width, r, len(keys), ends, want)
			}
		}
	}
}

func binomial(n, k int) int {
	c := 1
	for i := range k {
		c = c * (n - i) / (i + 1)
	}
	return c
}

func TestLayouts(t *testing.T) {
	for _, slots := range [][]slot{layout(11), layout(12), layout(16), layoutWidths(largeWidths[:])} {
		next := uint(0)
		for _, sl := range slots {
			if sl.start != next || sl.width == 0 || sl.width > 32 {
				t.Fatalf("%d slots: bad slot %+v", len(slots), sl)
			}
			next += sl.width
		}
		if next != 256 {
			t.Errorf("%d slots cover %d bits", len(slots), next)
		}
	}
}
