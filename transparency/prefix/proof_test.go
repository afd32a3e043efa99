package prefix

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
)

// sampleTree returns a tree of n random entries plus a few that share long
// prefixes, so that proofs have missing siblings too.
func sampleTree(t testing.TB, n int) (*Tree, []Entry) {
	t.Helper()
	r := rand.New(rand.NewPCG(3, 4))
	var pool []Index
	seen := map[Index]bool{}
	var batch []Entry
	for len(batch) < n {
		x := randomIndex(r, pool)
		if seen[x] {
			continue
		}
		seen[x] = true
		pool = append(pool, x)
		batch = append(batch, Entry{x, val(byte(len(batch)))})
	}
	tr, err := Build(batch)
	if err != nil {
		t.Fatal(err)
	}
	return tr, batch
}

// proofsOfEveryKind returns an index with an inclusion proof, and indexes
// whose non-inclusion proofs end at another leaf and at a missing child.
func proofsOfEveryKind(t *testing.T, tr *Tree, entries []Entry) map[ResultType]Index {
	t.Helper()
	found := map[ResultType]Index{Inclusion: entries[0].Index}
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; len(found) < 3 && i < 100000; i++ {
		x := randomIndex(r, []Index{entries[r.IntN(len(entries))].Index})
		if _, _, p := tr.Lookup(x); p.Result != Inclusion {
			if _, ok := found[p.Result]; !ok && p.Depth() > 0 {
				found[p.Result] = x
			}
		}
	}
	if len(found) != 3 {
		t.Fatalf("found only %v", found)
	}
	return found
}

func verify(root Hash, x Index, v Value, kind ResultType, p *Proof) error {
	if kind == Inclusion {
		return VerifyInclusion(root, x, v, p)
	}
	return VerifyNonInclusion(root, x, p)
}

// TestTamperedProofs flips every bit of every encoded proof kind; each
// result must be refused by the decoder or by the verifier.
func TestTamperedProofs(t *testing.T) {
	tr, entries := sampleTree(t, 300)
	root := tr.Root()
	for kind, x := range proofsOfEveryKind(t, tr, entries) {
		v, _, p := tr.Lookup(x)
		if err := verify(root, x, v, kind, p); err != nil {
			t.Fatalf("%v: honest proof refused: %v", kind, err)
		}
		enc, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		for bit := range len(enc) * 8 {
			bad := append([]byte(nil), enc...)
			bad[bit/8] ^= 0x80 >> (bit % 8)
			q, err := ParseProof(bad)
			if err != nil {
				if !errors.Is(err, ErrMalformedProof) {
					t.Fatalf("%v bit %d: decoder error %v is not ErrMalformedProof", kind, bit, err)
				}
				continue
			}
			if err := verify(root, x, v, kind, q); err == nil {
				t.Fatalf("%v: proof with bit %d flipped verifies", kind, bit)
			}
		}
		// Every truncation is refused by the decoder.
		for n := range len(enc) {
			if _, err := ParseProof(enc[:n]); !errors.Is(err, ErrMalformedProof) {
				t.Fatalf("%v truncated to %d bytes: %v", kind, n, err)
			}
		}
		if _, err := ParseProof(append(enc, 0)); !errors.Is(err, ErrMalformedProof) {
			t.Fatalf("%v with a trailing byte: %v", kind, err)
		}
	}
}

// TestForgedProofs tries the structural forgeries a lying directory could
// attempt against a verifier, on the decoded form.
func TestForgedProofs(t *testing.T) {
	tr, entries := sampleTree(t, 300)
	root := tr.Root()
	kinds := proofsOfEveryKind(t, tr, entries)
	present := kinds[Inclusion]
	v, _, incl := tr.Lookup(present)

	clone := func(p *Proof) *Proof {
		q := *p
		q.Siblings = append([]Hash(nil), p.Siblings...)
		return &q
	}
	mustFail := func(name string, err error, want error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if want != nil && !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}

	// Hiding a present index: claim the search stopped at a missing child
	// or at another leaf along its path.
	q := clone(incl)
	q.Result = NonInclusionParent
	mustFail("present index as missing child", VerifyNonInclusion(root, present, q), ErrRootMismatch)
	for _, e := range entries {
		if e.Index == present {
			continue
		}
		q := clone(incl)
		q.Result = NonInclusionLeaf
		q.Leaf = e
		if err := VerifyNonInclusion(root, present, q); err == nil {
			t.Fatalf("present index hidden behind the leaf of %s", e.Index)
		}
	}
	// Shorter or longer paths.
	for d := range incl.Siblings {
		q := clone(incl)
		q.Siblings = q.Siblings[d+1:]
		mustFail("inclusion with a shortened path", VerifyInclusion(root, present, v, q), nil)
		q = clone(incl)
		q.Result = NonInclusionParent
		q.Siblings = q.Siblings[:d]
		mustFail("non-inclusion cut short", VerifyNonInclusion(root, present, q), nil)
	}
	q = clone(incl)
	q.Siblings = append(q.Siblings, root)
	mustFail("inclusion with an extra sibling", VerifyInclusion(root, present, v, q), ErrRootMismatch)
	// A zeroed sibling (pretending a subtree is empty).
	for d, s := range incl.Siblings {
		if s == (Hash{}) {
			continue // already missing: a chain node
		}
		q := clone(incl)
		q.Siblings[d] = Hash{}
		mustFail("inclusion with a zeroed sibling", VerifyInclusion(root, present, v, q), nil)
	}
	// Another tree's root, and the right proof for another index.
	other, err := tr.Insert([]Entry{{present, val(0xee)}})
	if err != nil {
		t.Fatal(err)
	}
	mustFail("stale proof against a newer root", VerifyInclusion(other.Root(), present, v, incl), ErrRootMismatch)
	mustFail("proof for another index", VerifyInclusion(root, entries[1].Index, entries[1].Value, incl), nil)

	// Non-inclusion proofs: the leaf must be on the path and not the index.
	leafX := kinds[NonInclusionLeaf]
	_, _, nl := tr.Lookup(leafX)
	q = clone(nl)
	q.Leaf.Index = leafX
	mustFail("non-inclusion leaf equal to the index", VerifyNonInclusion(root, leafX, q), ErrMalformedProof)
	q = clone(nl)
	q.Leaf.Index[0] ^= 0x80
	mustFail("non-inclusion leaf off the search path", VerifyNonInclusion(root, leafX, q), ErrMalformedProof)
	q = clone(nl)
	q.Leaf.Value[5] ^= 1
	mustFail("non-inclusion leaf with another value", VerifyNonInclusion(root, leafX, q), ErrRootMismatch)
	mustFail("nil proof", VerifyNonInclusion(root, leafX, nil), ErrMalformedProof)
	mustFail("nil proof", VerifyInclusion(root, leafX, v, nil), ErrMalformedProof)
	q = clone(nl)
	q.Result = 9
	mustFail("unknown result type", VerifyNonInclusion(root, leafX, q), ErrMalformedProof)
	mustFail("unknown result type", VerifyInclusion(root, leafX, v, q), ErrMalformedProof)
	q = clone(nl)
	q.Siblings = make([]Hash, MaxDepth+1)
	mustFail("depth beyond 256", VerifyNonInclusion(root, leafX, q), ErrMalformedProof)
}

func TestParseProofRefuses(t *testing.T) {
	good := func(kind ResultType, depth int) []byte {
		p := &Proof{Result: kind, Siblings: make([]Hash, depth)}
		for i := range p.Siblings {
			p.Siblings[i][0] = 1
		}
		b, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tooDeep := []byte{1, 0, 0}
	binary.BigEndian.PutUint16(tooDeep[1:], MaxDepth+1)
	padding := good(Inclusion, 3)
	padding[3] |= 0x01 // bit 7 of the bitmap, beyond depth 3
	zeroSibling := good(Inclusion, 1)
	zeroSibling[4] = 0 // the one present sibling becomes all zeros
	for name, b := range map[string][]byte{
		"empty":              {},
		"short header":       {1, 0},
		"type 0":             {0, 0, 0},
		"type 4":             {4, 0, 0},
		"depth 257":          tooDeep,
		"padding bits":       padding,
		"zero sibling":       zeroSibling,
		"missing leaf":       {2, 0, 0},
		"missing bitmap":     {1, 0, 9},
		"missing sibling":    good(Inclusion, 2)[:3+1+32],
		"trailing byte":      append(good(NonInclusionParent, 2), 0),
		"longer than a max":  make([]byte, MaxProofSize+1),
		"huge declared size": {1, 0xff, 0xff},
	} {
		if _, err := ParseProof(b); !errors.Is(err, ErrMalformedProof) {
			t.Errorf("%s: %v, want ErrMalformedProof", name, err)
		}
	}
	// The largest proof decodes.
	b := good(NonInclusionLeaf, MaxDepth)
	if len(b) != MaxProofSize {
		t.Fatalf("largest proof is %d bytes, MaxProofSize %d", len(b), MaxProofSize)
	}
	if _, err := ParseProof(b); err != nil {
		t.Fatal(err)
	}
	var p Proof
	if err := p.UnmarshalBinary(b); err != nil || p.Depth() != MaxDepth {
		t.Fatalf("UnmarshalBinary: %v, depth %d", err, p.Depth())
	}
	if _, err := (&Proof{Result: 7}).MarshalBinary(); !errors.Is(err, ErrMalformedProof) {
		t.Fatalf("marshal of an unknown type: %v", err)
	}
	if _, err := (&Proof{Result: 1, Siblings: make([]Hash, MaxDepth+1)}).MarshalBinary(); !errors.Is(err, ErrMalformedProof) {
		t.Fatalf("marshal of depth 257: %v", err)
	}
}
