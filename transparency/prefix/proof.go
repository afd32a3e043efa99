package prefix

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// ResultType says where the search for an index ended, with the values of
// the draft's PrefixSearchResultType (§12.2).
type ResultType uint8

const (
	// Inclusion: the search ended at the leaf of the index searched for.
	Inclusion ResultType = 1
	// NonInclusionLeaf: the search ended at the leaf of another index,
	// which the proof carries (Proof.Leaf).
	NonInclusionLeaf ResultType = 2
	// NonInclusionParent: the search ended at a missing node, the stand-in
	// for the child a parent lacks (or the root of the empty tree).
	NonInclusionParent ResultType = 3
)

func (r ResultType) String() string {
	switch r {
	case Inclusion:
		return "inclusion"
	case NonInclusionLeaf:
		return "non-inclusion (other leaf)"
	case NonInclusionParent:
		return "non-inclusion (missing child)"
	}
	return fmt.Sprintf("ResultType(%d)", uint8(r))
}

// Proof is the answer to a search for one index (§12.2's PrefixProof with
// one PrefixSearchResult): where the search ended, and the copath that
// hashes the terminal node up to the root.
//
// The depth of the terminal node is len(Siblings). For NonInclusionParent
// it is the depth of the missing (stand-in) node, not of its parent, as the
// draft's editor's copy after -05 makes explicit.
type Proof struct {
	Result ResultType
	// Leaf is the leaf where the search ended, for NonInclusionLeaf only.
	Leaf Entry
	// Siblings[i] is the value of the sibling of the search path's node at
	// depth i+1, root side first: the other child of the path's node at
	// depth i. A missing sibling is the zero Hash.
	Siblings []Hash
}

// Depth is the depth of the node where the search ended.
func (p *Proof) Depth() int { return len(p.Siblings) }

var (
	// ErrMalformedProof is returned for a proof that no honest tree
	// produces: undecodable bytes, an unknown result type, a depth beyond
	// MaxDepth, a non-inclusion leaf off the search path or equal to the
	// index searched for, or a terminal node without a sibling (a leaf
	// alone under its parent would sit at the parent's place).
	ErrMalformedProof = errors.New("prefix: malformed proof")
	// ErrWrongResult is returned when a proof is well formed but answers
	// the other question: VerifyInclusion given a non-inclusion proof, or
	// VerifyNonInclusion given an inclusion proof.
	ErrWrongResult = errors.New("prefix: proof has the wrong result type")
	// ErrRootMismatch is returned when a proof, with the index and value it
	// is checked for, does not hash to the expected root: it was forged,
	// tampered with, or is for another tree or another value.
	ErrRootMismatch = errors.New("prefix: proof does not lead to the root")
)

// VerifyInclusion checks that p proves index maps to value in the tree with
// the given root. Clients run it on every search answer.
func VerifyInclusion(root Hash, index Index, value Value, p *Proof) error {
	if p == nil {
		return fmt.Errorf("%w: nil proof", ErrMalformedProof)
	}
	if p.Result != Inclusion {
		if p.Result == NonInclusionLeaf || p.Result == NonInclusionParent {
			return fmt.Errorf("%w: want inclusion of %s, proof shows %v", ErrWrongResult, index, p.Result)
		}
		return fmt.Errorf("%w: result type %d", ErrMalformedProof, uint8(p.Result))
	}
	if err := p.check(&index); err != nil {
		return err
	}
	return p.checkRoot(root, &index, leafHash(&index, &value))
}

// VerifyNonInclusion checks that p proves index is absent from the tree
// with the given root.
func VerifyNonInclusion(root Hash, index Index, p *Proof) error {
	if p == nil {
		return fmt.Errorf("%w: nil proof", ErrMalformedProof)
	}
	if err := p.check(&index); err != nil {
		return err
	}
	switch p.Result {
	case Inclusion:
		return fmt.Errorf("%w: want non-inclusion of %s, proof shows inclusion", ErrWrongResult, index)
	case NonInclusionLeaf:
		return p.checkRoot(root, &index, leafHash(&p.Leaf.Index, &p.Leaf.Value))
	default: // NonInclusionParent, as check has established
		return p.checkRoot(root, &index, Hash{})
	}
}

// check refuses the proofs no honest tree produces (ErrMalformedProof),
// whatever the root.
func (p *Proof) check(index *Index) error {
	d := len(p.Siblings)
	if d > MaxDepth {
		return fmt.Errorf("%w: depth %d beyond %d", ErrMalformedProof, d, MaxDepth)
	}
	switch p.Result {
	case Inclusion, NonInclusionParent:
	case NonInclusionLeaf:
		if p.Leaf.Index == *index {
			return fmt.Errorf("%w: non-inclusion leaf is the index searched for", ErrMalformedProof)
		}
		if commonPrefix(&p.Leaf.Index, index) < d {
			return fmt.Errorf("%w: non-inclusion leaf %s is not on the search path of %s at depth %d",
				ErrMalformedProof, p.Leaf.Index, index, d)
		}
	default:
		return fmt.Errorf("%w: result type %d", ErrMalformedProof, uint8(p.Result))
	}
	// In a canonical tree the terminal node's sibling exists: a leaf with
	// no sibling would sit one level up, and a missing node's parent has
	// its other child (a parent has at least one).
	if d > 0 && p.Siblings[d-1] == (Hash{}) {
		return fmt.Errorf("%w: terminal node at depth %d has no sibling", ErrMalformedProof, d)
	}
	return nil
}

// checkRoot hashes the terminal node's value h up the search path of index
// and compares the result with root.
func (p *Proof) checkRoot(root Hash, index *Index, h Hash) error {
	for d := len(p.Siblings) - 1; d >= 0; d-- {
		if index.bit(d) == 0 {
			h = parentHash(&h, &p.Siblings[d])
		} else {
			h = parentHash(&p.Siblings[d], &h)
		}
	}
	if h != root {
		return ErrRootMismatch
	}
	return nil
}

// commonPrefix returns the number of leading bits a and b share.
func commonPrefix(a, b *Index) int {
	for i := range a {
		if x := a[i] ^ b[i]; x != 0 {
			return i*8 + bits.LeadingZeros8(x)
		}
	}
	return MaxDepth
}

// Proof encoding (Parley's, not the draft's TLS PrefixProof; see
// docs/transparency.md):
//
//	uint8  result            1, 2 or 3 (ResultType)
//	uint16 depth             0..256, big endian
//	[NonInclusionLeaf only]  index[32] value[32]
//	bitmap[ceil(depth/8)]    bit i (most significant first) set when
//	                         Siblings[i] is present (non-zero)
//	Hash   present[popcount] the present siblings, root side first
//
// Every proof has exactly one encoding: unused bitmap bits are zero, a
// present sibling is never all zeros, nothing follows the last hash.

// MaxProofSize bounds an encoded proof: the header, a leaf, a full bitmap
// and 256 siblings. Decoding refuses longer input before reading it.
const MaxProofSize = 3 + IndexSize + HashSize + MaxDepth/8 + MaxDepth*HashSize

// MarshalBinary encodes p. It fails only for a proof that could never be
// decoded (unknown result type, depth beyond MaxDepth).
func (p *Proof) MarshalBinary() ([]byte, error) {
	return p.AppendBinary(nil)
}

// AppendBinary appends the encoding of p to b.
func (p *Proof) AppendBinary(b []byte) ([]byte, error) {
	d := len(p.Siblings)
	if d > MaxDepth {
		return nil, fmt.Errorf("%w: depth %d beyond %d", ErrMalformedProof, d, MaxDepth)
	}
	if p.Result < Inclusion || p.Result > NonInclusionParent {
		return nil, fmt.Errorf("%w: result type %d", ErrMalformedProof, uint8(p.Result))
	}
	b = append(b, byte(p.Result))
	b = binary.BigEndian.AppendUint16(b, uint16(d))
	if p.Result == NonInclusionLeaf {
		b = append(b, p.Leaf.Index[:]...)
		b = append(b, p.Leaf.Value[:]...)
	}
	bm := len(b)
	b = append(b, make([]byte, (d+7)/8)...)
	for i, s := range p.Siblings {
		if s != (Hash{}) {
			b[bm+i/8] |= 0x80 >> (i % 8)
			b = append(b, s[:]...)
		}
	}
	return b, nil
}

// UnmarshalBinary decodes data into p. See ParseProof.
func (p *Proof) UnmarshalBinary(data []byte) error {
	q, err := ParseProof(data)
	if err != nil {
		return err
	}
	*p = *q
	return nil
}

// ParseProof decodes a proof, refusing with ErrMalformedProof any input
// that is not the one encoding of a proof: too long, truncated, trailing
// bytes, an unknown result type, a depth beyond 256, set padding bits, or a
// present sibling of all zeros. It allocates at most len(Siblings) hashes,
// and never more than the input's length justifies.
func ParseProof(data []byte) (*Proof, error) {
	if len(data) > MaxProofSize {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d a proof can have", ErrMalformedProof, len(data), MaxProofSize)
	}
	if len(data) < 3 {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the 3-byte header", ErrMalformedProof, len(data))
	}
	p := &Proof{Result: ResultType(data[0])}
	if p.Result < Inclusion || p.Result > NonInclusionParent {
		return nil, fmt.Errorf("%w: result type %d", ErrMalformedProof, data[0])
	}
	d := int(binary.BigEndian.Uint16(data[1:3]))
	if d > MaxDepth {
		return nil, fmt.Errorf("%w: depth %d beyond %d", ErrMalformedProof, d, MaxDepth)
	}
	rest := data[3:]
	if p.Result == NonInclusionLeaf {
		if len(rest) < IndexSize+HashSize {
			return nil, fmt.Errorf("%w: truncated leaf", ErrMalformedProof)
		}
		copy(p.Leaf.Index[:], rest)
		copy(p.Leaf.Value[:], rest[IndexSize:])
		rest = rest[IndexSize+HashSize:]
	}
	nb := (d + 7) / 8
	if len(rest) < nb {
		return nil, fmt.Errorf("%w: truncated bitmap", ErrMalformedProof)
	}
	bitmap, rest := rest[:nb], rest[nb:]
	present := 0
	for _, x := range bitmap {
		present += bits.OnesCount8(x)
	}
	if d%8 != 0 && bitmap[nb-1]&(0xff>>(d%8)) != 0 {
		return nil, fmt.Errorf("%w: bitmap bits set beyond depth %d", ErrMalformedProof, d)
	}
	if len(rest) != present*HashSize {
		return nil, fmt.Errorf("%w: %d bytes of siblings for %d present", ErrMalformedProof, len(rest), present)
	}
	p.Siblings = make([]Hash, d)
	for i := range p.Siblings {
		if bitmap[i/8]&(0x80>>(i%8)) == 0 {
			continue
		}
		copy(p.Siblings[i][:], rest)
		rest = rest[HashSize:]
		if p.Siblings[i] == (Hash{}) {
			return nil, fmt.Errorf("%w: present sibling %d is all zeros", ErrMalformedProof, i)
		}
	}
	return p, nil
}
