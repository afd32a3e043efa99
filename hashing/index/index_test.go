package index

import (
	"crypto/md5"
	"crypto/sha256"
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
	for _, slots := range []int{0, DefaultSlots, 16} {
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
	for _, m := range []int{12, 16} {
		slots := layout(m)
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
