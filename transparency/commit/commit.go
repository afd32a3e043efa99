// Package commit computes and checks the hiding commitments that key
// transparency stores in the leaves of its prefix tree, as specified in
// draft-ietf-keytrans-protocol-05 §11.6 ("Commitment") with the parameters
// of the KT_128_SHA256_* cipher suites (§17.1: SHA-256, Nc = 16 and the
// fixed key Kc).
//
// A commitment is
//
//	HMAC-SHA256(Kc, CommitmentValue)
//
//	struct {
//	  opaque opening[16];
//	  opaque label<0..2^8-1>;
//	  uint32 version;
//	  UpdateValue update;       // opaque value<0..2^32-1>; UpdateSuffix suffix;
//	} CommitmentValue;
//
// The opening is 16 random bytes chosen by the directory. Without the
// opening the commitment reveals nothing about the value: Kc is public, so
// this rests on HMAC-SHA256 behaving as a random oracle over an input that
// holds 128 secret random bits, as the draft assumes. So the tree can be
// published and audited without leaking anyone's device list; and a client
// given the value and the opening checks that the tree's leaf commits to
// that value and no other (HMAC-SHA256 is collision resistant).
//
// Parley runs the draft's Contact Monitoring deployment mode, in which
// UpdateSuffix is empty (§11.5); the suffix of Third-Party Management is not
// supported.
package commit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// OpeningSize is Nc, the size of an opening in bytes (§17.1).
const OpeningSize = 16

// Size is the size of a commitment in bytes (the SHA-256 output size).
const Size = sha256.Size

// MaxLabelLen is the longest label a commitment can bind (label<0..2^8-1>).
const MaxLabelLen = math.MaxUint8

// MaxValueLen is the longest value a commitment can bind
// (value<0..2^32-1>).
const MaxValueLen = math.MaxUint32

// kc is the cipher suites' fixed commitment key Kc (§17.1), the bytes of
// the hex string d821f8790d97709796b4d7903357c3f5.
var kc = []byte{
	0xd8, 0x21, 0xf8, 0x79, 0x0d, 0x97, 0x70, 0x97,
	0x96, 0xb4, 0xd7, 0x90, 0x33, 0x57, 0xc3, 0xf5,
}

// Opening is the random value that opens a commitment. The directory keeps
// it secret until it serves the value to a client entitled to see it; the
// draft (§11.6) asks that openings can later be deleted beyond recovery.
type Opening [OpeningSize]byte

// Commitment is a commitment to one (label, version, value).
type Commitment [Size]byte

var (
	// ErrLabelTooLong is returned for a label of more than MaxLabelLen bytes.
	ErrLabelTooLong = errors.New("commit: label longer than 255 bytes")
	// ErrValueTooLong is returned for a value of more than MaxValueLen bytes.
	ErrValueTooLong = errors.New("commit: value longer than 2^32-1 bytes")
	// ErrMismatch is returned by Verify when the commitment does not open to
	// the given label, version and value with the given opening.
	ErrMismatch = errors.New("commit: commitment does not match the opening, label, version and value")
)

// NewOpening reads a fresh opening from rand (crypto/rand.Reader in
// production).
func NewOpening(rand io.Reader) (Opening, error) {
	var o Opening
	if _, err := io.ReadFull(rand, o[:]); err != nil {
		return Opening{}, fmt.Errorf("commit: reading a random opening: %w", err)
	}
	return o, nil
}

// New draws a fresh opening from rand and commits to (label, version,
// value) with it.
func New(rand io.Reader, label []byte, version uint32, value []byte) (Commitment, Opening, error) {
	o, err := NewOpening(rand)
	if err != nil {
		return Commitment{}, Opening{}, err
	}
	c, err := Compute(o, label, version, value)
	if err != nil {
		return Commitment{}, Opening{}, err
	}
	return c, o, nil
}

// Compute returns the commitment to (label, version, value) under opening o.
func Compute(o Opening, label []byte, version uint32, value []byte) (Commitment, error) {
	if len(label) > MaxLabelLen {
		return Commitment{}, ErrLabelTooLong
	}
	if uint64(len(value)) > MaxValueLen {
		return Commitment{}, ErrValueTooLong
	}
	mac := hmac.New(sha256.New, kc)
	// CommitmentValue in the TLS presentation language (§2.1): fixed-size
	// opening, 1-byte length-prefixed label, uint32 version, then the
	// UpdateValue: a 4-byte length-prefixed value and an empty suffix.
	var hdr [OpeningSize + 1]byte
	copy(hdr[:], o[:])
	hdr[OpeningSize] = byte(len(label))
	mac.Write(hdr[:])
	mac.Write(label)
	var n [8]byte
	binary.BigEndian.PutUint32(n[:4], version)
	binary.BigEndian.PutUint32(n[4:], uint32(len(value)))
	mac.Write(n[:])
	mac.Write(value)
	var c Commitment
	mac.Sum(c[:0])
	return c, nil
}

// Verify checks that c is the commitment to (label, version, value) under
// opening o. It returns ErrMismatch if not; the comparison is constant
// time.
func Verify(c Commitment, o Opening, label []byte, version uint32, value []byte) error {
	want, err := Compute(o, label, version, value)
	if err != nil {
		return err
	}
	if !hmac.Equal(c[:], want[:]) {
		return ErrMismatch
	}
	return nil
}
