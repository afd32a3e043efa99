package log

import (
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// MaxProofHashes bounds the hashes of an encoded proof. An inclusion proof
// in a tree of fewer than 2^63 records has at most 63; a consistency proof
// at most twice that.
const MaxProofHashes = 126

// ErrMalformedProof is returned for bytes that are not an encoded proof.
var ErrMalformedProof = errors.New("log: malformed proof")

// EncodeProof encodes a tlog.RecordProof or tlog.TreeProof: a count byte,
// then the hashes.
func EncodeProof(p []tlog.Hash) ([]byte, error) {
	if len(p) > MaxProofHashes {
		return nil, fmt.Errorf("%w: %d hashes, more than %d", ErrMalformedProof, len(p), MaxProofHashes)
	}
	b := make([]byte, 0, 1+len(p)*len(tlog.Hash{}))
	b = append(b, byte(len(p)))
	for _, h := range p {
		b = append(b, h[:]...)
	}
	return b, nil
}

// DecodeProof decodes what EncodeProof produced, refusing a count beyond
// MaxProofHashes, a length that does not match the count, and trailing
// bytes. Convert the result to tlog.RecordProof or tlog.TreeProof.
func DecodeProof(b []byte) ([]tlog.Hash, error) {
	const hs = len(tlog.Hash{})
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMalformedProof)
	}
	n := int(b[0])
	if n > MaxProofHashes {
		return nil, fmt.Errorf("%w: %d hashes, more than %d", ErrMalformedProof, n, MaxProofHashes)
	}
	if len(b) != 1+n*hs {
		return nil, fmt.Errorf("%w: %d bytes for %d hashes", ErrMalformedProof, len(b), n)
	}
	p := make([]tlog.Hash, n)
	for i := range p {
		copy(p[i][:], b[1+i*hs:])
	}
	return p, nil
}
