package prefix

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// idx returns an index whose leading bits are the given string of '0' and
// '1', the rest zero.
func idx(bitstr string) Index {
	var x Index
	for i, c := range bitstr {
		if c == '1' {
			x[i/8] |= 0x80 >> (i % 8)
		}
	}
	return x
}

func val(b byte) Value {
	var v Value
	for i := range v {
		v[i] = b
	}
	return v
}

func mustInsert(t testing.TB, tr *Tree, batch ...Entry) *Tree {
	t.Helper()
	n, err := tr.Insert(batch)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkLookup verifies that the answer and proof for x in tr agree with
// want (nil: absent) and that the proof passes exactly the right verifier.
func checkLookup(t *testing.T, tr *Tree, x Index, want *Value) {
	t.Helper()
	root := tr.Root()
	v, ok, p := tr.Lookup(x)
	if want == nil {
		if ok {
			t.Fatalf("Lookup(%s) = %x, want absent", x, v)
		}
		if err := VerifyNonInclusion(root, x, p); err != nil {
			t.Fatalf("VerifyNonInclusion(%s): %v", x, err)
		}
		if err := VerifyInclusion(root, x, Value{}, p); !errors.Is(err, ErrWrongResult) {
			t.Fatalf("VerifyInclusion of an absent index: %v, want ErrWrongResult", err)
		}
	} else {
		if !ok || v != *want {
			t.Fatalf("Lookup(%s) = %x, %v, want %x", x, v, ok, *want)
		}
		if err := VerifyInclusion(root, x, v, p); err != nil {
			t.Fatalf("VerifyInclusion(%s): %v", x, err)
		}
		if err := VerifyNonInclusion(root, x, p); !errors.Is(err, ErrWrongResult) {
			t.Fatalf("VerifyNonInclusion of a present index: %v, want ErrWrongResult", err)
		}
		other := *want
		other[0] ^= 1
		if err := VerifyInclusion(root, x, other, p); !errors.Is(err, ErrRootMismatch) {
			t.Fatalf("VerifyInclusion with another value: %v, want ErrRootMismatch", err)
		}
	}
	enc, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ParseProof(enc)
	if err != nil {
		t.Fatalf("ParseProof of an encoded proof: %v", err)
	}
	if q.Result != p.Result || q.Leaf != p.Leaf || !slices.Equal(q.Siblings, p.Siblings) {
		t.Fatalf("proof changed in an encode/decode round trip")
	}
}

func TestEmpty(t *testing.T) {
	tr := Empty()
	if tr.Root() != (Hash{}) || tr.Len() != 0 {
		t.Fatalf("empty tree: root %x, len %d", tr.Root(), tr.Len())
	}
	_, _, p := tr.Lookup(idx("1"))
	if p.Result != NonInclusionParent || p.Depth() != 0 {
		t.Fatalf("empty tree lookup: %v at depth %d", p.Result, p.Depth())
	}
	checkLookup(t, tr, idx("1"), nil)
	// The empty tree's non-inclusion proof is refused for any other root.
	one := mustInsert(t, tr, Entry{idx("1"), val(1)})
	if err := VerifyNonInclusion(one.Root(), idx("1"), p); !errors.Is(err, ErrRootMismatch) {
		t.Fatalf("empty-tree proof against a non-empty root: %v", err)
	}
}

func TestSingleEntryIsTheRoot(t *testing.T) {
	x := idx("0110")
	tr := mustInsert(t, Empty(), Entry{x, val(7)})
	v := val(7)
	h := sha256.Sum256(append(append([]byte{0x02}, x[:]...), v[:]...))
	if tr.Root() != h {
		t.Fatalf("root of a one-entry tree is not its leaf hash")
	}
	checkLookup(t, tr, x, &v)
	checkLookup(t, tr, idx("1"), nil)
	_, _, p := tr.Lookup(idx("1"))
	if p.Result != NonInclusionLeaf || p.Depth() != 0 {
		t.Fatalf("got %v at depth %d, want the root leaf at depth 0", p.Result, p.Depth())
	}
}

// TestDraftFigure builds the five-entry tree drawn in §3.3 of the draft and
// checks the root against the hashing rules of §11.9 written out by hand,
// and the depth at which each search ends.
func TestDraftFigure(t *testing.T) {
	keys := []string{"00010", "00101", "10001", "10111", "11011"}
	var batch []Entry
	for i, k := range keys {
		batch = append(batch, Entry{idx(k), val(byte('A' + i))})
	}
	tr := mustInsert(t, Empty(), batch...)

	h := func(b ...[]byte) []byte {
		s := sha256.New()
		for _, x := range b {
			s.Write(x)
		}
		return s.Sum(nil)
	}
	leaf := func(i int) []byte {
		x, v := batch[i].Index, batch[i].Value
		return h([]byte{2}, x[:], v[:])
	}
	zero := make([]byte, 32)
	parent := func(l, r []byte) []byte { return h([]byte{3}, l, r) }
	// "0" -> "00" splits into 000(A) and 001(B); "0" has no right child.
	n00 := parent(leaf(0), leaf(1))
	n0 := parent(n00, zero)
	// "1" -> "10" splits into 100(C) and 101(D); "11" is E's leaf.
	n10 := parent(leaf(2), leaf(3))
	n1 := parent(n10, leaf(4))
	root := parent(n0, n1)
	if got := tr.Root(); !bytes.Equal(got[:], root) {
		t.Fatalf("root %x, want %x", got, root)
	}

	depths := map[string]int{"00010": 3, "00101": 3, "10001": 3, "10111": 3, "11011": 2}
	for k, d := range depths {
		_, _, p := tr.Lookup(idx(k))
		if p.Result != Inclusion || p.Depth() != d {
			t.Errorf("%s: %v at depth %d, want inclusion at %d", k, p.Result, p.Depth(), d)
		}
	}
	// 01... ends at the missing right child of "0": a stand-in at depth 2.
	_, _, p := tr.Lookup(idx("01101"))
	if p.Result != NonInclusionParent || p.Depth() != 2 {
		t.Errorf("01101: %v at depth %d, want missing child at depth 2", p.Result, p.Depth())
	}
	// 111... ends at E's leaf.
	_, _, p = tr.Lookup(idx("111"))
	if p.Result != NonInclusionLeaf || p.Depth() != 2 || p.Leaf.Index != idx("11011") {
		t.Errorf("111: %v at depth %d", p.Result, p.Depth())
	}

	// Adding 01101 -> F (the draft's second figure) fills that child.
	f := val('F')
	tr2 := mustInsert(t, tr, Entry{idx("01101"), f})
	n0 = parent(n00, h([]byte{2}, func() []byte { x := idx("01101"); return x[:] }(), f[:]))
	root2 := parent(n0, n1)
	if got := tr2.Root(); !bytes.Equal(got[:], root2) {
		t.Fatalf("root after adding F: %x, want %x", got, root2)
	}
	// The old tree is untouched.
	if got := tr.Root(); !bytes.Equal(got[:], root) {
		t.Fatalf("inserting into a tree changed its root")
	}
}

func TestDeepestLeaves(t *testing.T) {
	var a, b Index
	for i := range a {
		a[i], b[i] = 0x5a, 0x5a
	}
	b[31] ^= 1 // differ in the very last bit: leaves at depth 256
	tr := mustInsert(t, Empty(), Entry{a, val(1)}, Entry{b, val(2)})
	_, _, p := tr.Lookup(a)
	if p.Depth() != MaxDepth {
		t.Fatalf("depth %d, want %d", p.Depth(), MaxDepth)
	}
	va, vb := val(1), val(2)
	checkLookup(t, tr, a, &va)
	checkLookup(t, tr, b, &vb)
	c := a
	c[31] ^= 2 // shares 254 bits with both: the stand-in at depth 255
	checkLookup(t, tr, c, nil)
	enc, _ := p.MarshalBinary()
	if len(enc) != 3+MaxDepth/8+HashSize {
		t.Fatalf("depth-256 proof with one present sibling is %d bytes", len(enc))
	}
	// Deleting one moves the other back to the root.
	tr2, err := tr.Delete([]Index{b})
	if err != nil {
		t.Fatal(err)
	}
	if want := mustInsert(t, Empty(), Entry{a, val(1)}).Root(); tr2.Root() != want {
		t.Fatalf("after deleting its sibling, the leaf did not move up to the root")
	}
}

func TestBatchErrorsLeaveTreeUnchanged(t *testing.T) {
	tr := mustInsert(t, Empty(), Entry{idx("0"), val(1)}, Entry{idx("1"), val(2)})
	root := tr.Root()
	if _, err := tr.Insert([]Entry{{idx("01"), val(3)}, {idx("01"), val(4)}}); !errors.Is(err, ErrDuplicateIndex) {
		t.Fatalf("duplicate index: %v", err)
	}
	if _, err := tr.Delete([]Index{idx("0"), idx("0")}); !errors.Is(err, ErrDuplicateIndex) {
		t.Fatalf("duplicate delete: %v", err)
	}
	if _, err := tr.Delete([]Index{idx("0"), idx("11")}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete of an absent index: %v", err)
	}
	if _, err := Empty().Delete([]Index{idx("0")}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete from the empty tree: %v", err)
	}
	if tr.Root() != root || tr.Len() != 2 {
		t.Fatalf("a failed batch changed the tree")
	}
	same, err := tr.Insert(nil)
	if err != nil || same.Root() != root {
		t.Fatalf("empty batch: %v", err)
	}
}

func TestInsertDoesNotModifyBatch(t *testing.T) {
	batch := []Entry{{idx("1"), val(1)}, {idx("0"), val(2)}}
	orig := slices.Clone(batch)
	mustInsert(t, Empty(), batch...)
	if !slices.Equal(batch, orig) {
		t.Fatal("Insert reordered the caller's batch")
	}
}

// randomIndex returns an index that often shares a long prefix with one
// already in pool, so that trees get deep chains and every proof shape.
func randomIndex(r *rand.Rand, pool []Index) Index {
	var x Index
	if len(pool) > 0 && r.IntN(3) > 0 {
		x = pool[r.IntN(len(pool))]
		bit := MaxDepth - 1 - r.IntN(MaxDepth)
		if r.IntN(2) == 0 {
			bit = r.IntN(12) // near the root too
		}
		x[bit/8] ^= 0x80 >> (bit % 8)
		return x
	}
	for i := range x {
		x[i] = byte(r.Uint32())
	}
	return x
}

// TestAgainstMap applies random batches of inserts, updates and deletes to
// a tree and to a map, checking after each that they agree, that every
// lookup's proof verifies, that the root depends only on the contents
// (history independence), and that older trees are unchanged.
func TestAgainstMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tr := Empty()
	ref := map[Index]Value{}
	var pool []Index
	type snapshot struct {
		tree *Tree
		root Hash
		ref  map[Index]Value
	}
	var history []snapshot
	rounds := 300
	if testing.Short() {
		rounds = 60
	}
	for round := range rounds {
		var ins []Entry
		var del []Index
		seen := map[Index]bool{}
		for range 1 + r.IntN(20) {
			switch {
			case len(ref) > 0 && r.IntN(4) == 0: // delete
				keys := slices.Collect(maps.Keys(ref))
				slices.SortFunc(keys, func(a, b Index) int { return bytes.Compare(a[:], b[:]) })
				k := keys[r.IntN(len(keys))]
				if !seen[k] {
					seen[k] = true
					del = append(del, k)
				}
			case len(ref) > 0 && r.IntN(4) == 0: // update
				for k := range ref {
					if !seen[k] {
						seen[k] = true
						ins = append(ins, Entry{k, val(byte(r.Uint32()))})
					}
					break
				}
			default: // insert
				k := randomIndex(r, pool)
				if !seen[k] {
					seen[k] = true
					pool = append(pool, k)
					ins = append(ins, Entry{k, val(byte(r.Uint32()))})
				}
			}
		}
		var err error
		if tr, err = tr.Insert(ins); err != nil {
			t.Fatal(err)
		}
		for _, e := range ins {
			ref[e.Index] = e.Value
		}
		if tr, err = tr.Delete(del); err != nil {
			t.Fatal(err)
		}
		for _, k := range del {
			delete(ref, k)
		}

		if tr.Len() != len(ref) {
			t.Fatalf("round %d: Len %d, map has %d", round, tr.Len(), len(ref))
		}
		n := 0
		for k, v := range tr.All() {
			if w, ok := ref[k]; !ok || w != v {
				t.Fatalf("round %d: All yields %s -> %x, map has %x, %v", round, k, v, w, ok)
			}
			n++
		}
		if n != len(ref) {
			t.Fatalf("round %d: All yields %d entries, want %d", round, n, len(ref))
		}
		var all []Entry
		for k, v := range ref {
			all = append(all, Entry{k, v})
		}
		fresh, err := Build(all)
		if err != nil {
			t.Fatal(err)
		}
		if fresh.Root() != tr.Root() {
			t.Fatalf("round %d: root differs from a tree built from the same entries at once", round)
		}
		for range 10 {
			k := randomIndex(r, pool)
			if v, ok := ref[k]; ok {
				checkLookup(t, tr, k, &v)
			} else {
				checkLookup(t, tr, k, nil)
			}
		}
		history = append(history, snapshot{tr, tr.Root(), maps.Clone(ref)})
	}
	// Persistence: every old tree still has its root and answers with
	// proofs against it.
	for i, s := range history {
		if s.tree.Root() != s.root || s.tree.Len() != len(s.ref) {
			t.Fatalf("epoch %d: tree changed after later batches", i)
		}
		for k, v := range s.ref {
			checkLookup(t, s.tree, k, &v)
			break
		}
		for range 3 {
			k := randomIndex(r, pool)
			if v, ok := s.ref[k]; ok {
				checkLookup(t, s.tree, k, &v)
			} else {
				checkLookup(t, s.tree, k, nil)
			}
		}
	}
}

func TestZeroTreeIsEmpty(t *testing.T) {
	var zero Tree
	if zero.Root() != Empty().Root() || zero.Len() != 0 {
		t.Fatal("zero Tree is not the empty tree")
	}
	v := val(1)
	one := mustInsert(t, &zero, Entry{idx("1"), v})
	checkLookup(t, one, idx("1"), &v)
	checkLookup(t, &zero, idx("1"), nil)
}
