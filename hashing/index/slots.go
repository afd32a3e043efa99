package index

import (
	"math/bits"

	"github.com/parleychat/parley/hashing/pdq"
)

// words is a PDQ hash as four 64-bit words, least significant first:
// bit k of the hash is bit k%64 of words[k/64].
type words [4]uint64

func toWords(h pdq.Hash) words {
	be := func(b []byte) uint64 {
		return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
			uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
	}
	return words{be(h[24:32]), be(h[16:24]), be(h[8:16]), be(h[0:8])}
}

func (w words) hash() pdq.Hash {
	var h pdq.Hash
	for i := 0; i < 4; i++ {
		v := w[3-i]
		for j := 0; j < 8; j++ {
			h[8*i+j] = byte(v >> (56 - 8*j))
		}
	}
	return h
}

func distance(a, b *words) int {
	return bits.OnesCount64(a[0]^b[0]) + bits.OnesCount64(a[1]^b[1]) +
		bits.OnesCount64(a[2]^b[2]) + bits.OnesCount64(a[3]^b[3])
}

// A slot is a run of consecutive bits of the hash used as a key.
type slot struct {
	start, width uint
}

// layout splits the 256 bits into m slots of nearly equal width.
func layout(m int) []slot {
	s := make([]slot, m)
	start := uint(0)
	for i := range s {
		w := uint(256 / m)
		if i < 256%m {
			w++
		}
		s[i] = slot{start, w}
		start += w
	}
	return s
}

// largeWidths are the slot widths of large base indexes, chosen for
// MatchThreshold at 10 million hashes: radii probes the last, narrowest
// slot at radius 1 and the ten others at radius 2, and this split of the
// 256 bits minimises the expected candidates (about 2,600 uniformly
// random hashes pass a slot's radius per lookup, against 2,900 for equal
// widths) for the same number of directory probes.
var largeWidths = [DefaultSlots]uint{24, 24, 24, 24, 24, 24, 23, 23, 23, 23, 20}

// layoutWidths lays out slots of the given widths, which sum to 256, in
// order.
func layoutWidths(widths []uint) []slot {
	s := make([]slot, len(widths))
	start := uint(0)
	for i, w := range widths {
		s[i] = slot{start, w}
		start += w
	}
	return s
}

// key extracts the slot's bits from w.
func (s slot) key(w *words) uint32 {
	i, off := s.start/64, s.start%64
	v := w[i] >> off
	if off+s.width > 64 {
		v |= w[i+1] << (64 - off)
	}
	return uint32(v & (1<<s.width - 1))
}

// maxKeyBits is the widest key neighbours enumerates, and maxKeys the
// most keys it returns: radius 3 in 24 bits.
const (
	maxKeyBits = 24
	maxKeys    = 1 + maxKeyBits + maxKeyBits*(maxKeyBits-1)/2 + maxKeyBits*(maxKeyBits-1)*(maxKeyBits-2)/6
)

// neighbours fills buf with every key within Hamming distance r (at most
// 3) of k in a width-bit space (width at most maxKeyBits), in order of
// distance, and returns them; the keys at distance d are
// keys[ends[d-1]:ends[d]] (ends[-1] taken as 0).
func neighbours(buf *[maxKeys]uint32, k uint32, width uint, r int) (keys []uint32, ends [maxRadius + 1]int) {
	n := 0
	buf[n] = k
	n++
	ends[0] = n
	if r >= 1 {
		for a := uint(0); a < width; a++ {
			buf[n] = k ^ 1<<a
			n++
		}
		ends[1] = n
	}
	if r >= 2 {
		for a := uint(0); a < width; a++ {
			for b := a + 1; b < width; b++ {
				buf[n] = k ^ 1<<a ^ 1<<b
				n++
			}
		}
		ends[2] = n
	}
	if r >= 3 {
		for a := uint(0); a < width; a++ {
			for b := a + 1; b < width; b++ {
				for c := b + 1; c < width; c++ {
					buf[n] = k ^ 1<<a ^ 1<<b ^ 1<<c
					n++
				}
			}
		}
		ends[3] = n
	}
	return buf[:n], ends
}
