package pdq

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
)

// Size is the length of a PDQ hash in bytes (256 bits).
const Size = 32

// Hash is a 256-bit PDQ hash, stored big-endian in the order of the
// reference text format: Hash[0] holds bits 255..248 and Hash[31] holds bits
// 7..0. Bit k is the coefficient at row k/16, column k%16 of the 16x16 DCT
// block, so the reference's 16-bit word i (row i) is Hash[30-2i:32-2i].
type Hash [Size]byte

// ErrMalformedHash is returned by ParseHash for text that is not exactly 64
// hexadecimal digits.
var ErrMalformedHash = errors.New("pdq: malformed hash: want 64 hex digits")

// ParseHash parses the reference text form: 64 hex digits, most significant
// 16-bit word first. Upper- and lower-case digits are accepted.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*Size {
		return h, fmt.Errorf("%w (got %d characters)", ErrMalformedHash, len(s))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return Hash{}, fmt.Errorf("%w: %v", ErrMalformedHash, err)
	}
	return h, nil
}

// String returns the 64 lower-case hex digits of the reference text form.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText implements encoding.TextMarshaler with the reference text form.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *Hash) UnmarshalText(b []byte) error {
	v, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// Bit reports bit k (0..255) of the hash.
func (h *Hash) Bit(k int) bool {
	k &= 255
	return h[Size-1-k/8]>>(k%8)&1 == 1
}

func (h *Hash) setBit(k int) {
	h[Size-1-k/8] |= 1 << (k % 8)
}

// Word returns the reference's 16-bit word i (0..15): bits 16i+15..16i.
func (h *Hash) Word(i int) uint16 {
	i &= 15
	return uint16(h[Size-2-2*i])<<8 | uint16(h[Size-1-2*i])
}

// IsZero reports whether every bit is clear, as for images too small to hash.
func (h Hash) IsZero() bool { return h == Hash{} }

// Distance returns the Hamming distance between a and b, 0..256.
func Distance(a, b Hash) int {
	n := 0
	for i := 0; i < Size; i += 8 {
		n += bits.OnesCount64(be64(a[i:]) ^ be64(b[i:]))
	}
	return n
}

func be64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}
