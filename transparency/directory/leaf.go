package directory

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/parleychat/parley/transparency/commit"
	"github.com/parleychat/parley/transparency/prefix"
	"github.com/parleychat/parley/transparency/vrf"
)

// leafDomain separates leaf chain hashes from every other SHA-256 input in
// the directory (the prefix tree's 0x02/0x03 and the log's 0x00/0x01 are
// single bytes; this is a longer string, so no input of one is an input of
// another).
const leafDomain = "parley kt leaf v1\x00"

// LeafValue is the prefix tree value of a label after an update in epoch
// whose commitment is c, given the label's previous value prev (the zero
// Value for a label's first version).
func LeafValue(prev prefix.Value, epoch uint64, c commit.Commitment) prefix.Value {
	h := sha256.New()
	h.Write([]byte(leafDomain))
	h.Write(prev[:])
	var e [8]byte
	binary.BigEndian.PutUint64(e[:], epoch)
	h.Write(e[:])
	h.Write(c[:])
	var v prefix.Value
	h.Sum(v[:0])
	return v
}

// IndexOf is the prefix tree index of a VRF output: its first 32 bytes, as
// KT_128_SHA256_Ed25519 truncates it (draft-ietf-keytrans-protocol-05
// §17.1).
func IndexOf(beta []byte) (prefix.Index, error) {
	var i prefix.Index
	if len(beta) < len(i) {
		return i, fmt.Errorf("directory: VRF output of %d bytes", len(beta))
	}
	copy(i[:], beta)
	return i, nil
}

// indexFor computes a label's index and the VRF proof that it is the
// label's.
func indexFor(key *vrf.PrivateKey, label string) (prefix.Index, []byte, error) {
	proof := key.Prove([]byte(label))
	beta, err := vrf.ProofToHash(proof)
	if err != nil {
		return prefix.Index{}, nil, err
	}
	i, err := IndexOf(beta)
	return i, proof, err
}

// MaxVersion is the highest version a label can have: the commitment's
// version field is a uint32 (draft-ietf-keytrans-protocol-05 §11.6).
const MaxVersion = 1<<32 - 1

// Errors callers branch on.
var (
	// ErrLabel: a label is empty or longer than the commitment allows.
	ErrLabel = errors.New("directory: label must be 1 to 255 bytes")
	// ErrVersion: versions of a label must go up, and stay under 2^32.
	ErrVersion = errors.New("directory: version must be above the label's current one and below 2^32")
)

func checkLabel(label string) error {
	if label == "" || len(label) > commit.MaxLabelLen {
		return fmt.Errorf("%w: %d bytes", ErrLabel, len(label))
	}
	return nil
}
