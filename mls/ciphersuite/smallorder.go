package ciphersuite

import (
	"math/big"

	"github.com/cloudflare/circl/ecc/goldilocks"
)

// Small-order signature keys.
//
// RFC 8032 verification accepts public keys of small order, and for such a
// key a signature needs no private key at all: with A and R both of small
// order and S = 0, the check [S]B = R + [k]A holds for a fixed fraction of
// messages (all of them when A and R are the identity). A member who
// publishes such a key can therefore disown what "they" signed, and anyone
// can sign as them, which defeats the attribution MLS gives every message.
// No honest key generator produces these points, so every Parley verifier
// refuses them, as libsodium does.

// ed25519SmallOrder holds the y-coordinates, as 32-byte little-endian
// strings with the sign bit cleared, of every encoding crypto/ed25519
// decodes to a point of order 1, 2, 4 or 8. Go's decoder accepts y ≥ p and
// either sign bit, so the non-canonical forms are listed too.
var ed25519SmallOrder = ed25519SmallOrderEncodings()

func ed25519SmallOrderEncodings() [][32]byte {
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	mod := func(x *big.Int) *big.Int { return x.Mod(x, p) }
	inv := func(x *big.Int) *big.Int { return new(big.Int).ModInverse(x, p) }
	// d = -121665/121666 (RFC 8032 §5.1).
	d := mod(new(big.Int).Mul(big.NewInt(-121665), inv(big.NewInt(121666))))

	// The curve -x² + y² = 1 + dx²y² has eight points of order dividing 8:
	// the identity (0, 1), (0, -1) of order 2, (±√-1, 0) of order 4, and
	// four points of order 8 whose double has y = 0. Doubling gives
	// y₂ = (x² + y²)/(2 - y² + x²), so y₂ = 0 means x² = -y², and the curve
	// equation becomes d·y⁴ + 2y² - 1 = 0: y² = (-1 ± √(1+d))/d.
	ys := []*big.Int{big.NewInt(0), big.NewInt(1), new(big.Int).Sub(p, big.NewInt(1))}
	root := new(big.Int).ModSqrt(mod(new(big.Int).Add(big.NewInt(1), d)), p)
	for _, sign := range []int64{1, -1} {
		y2 := mod(new(big.Int).Mul(new(big.Int).Add(big.NewInt(-1), new(big.Int).Mul(big.NewInt(sign), root)), inv(d)))
		if y := new(big.Int).ModSqrt(y2, p); y != nil {
			ys = append(ys, y, mod(new(big.Int).Neg(y)))
		}
	}
	// Encodings of y + p still fit in 255 bits when y < 19: y = 0 and y = 1.
	ys = append(ys, new(big.Int).Add(p, big.NewInt(0)), new(big.Int).Add(p, big.NewInt(1)))

	out := make([][32]byte, len(ys))
	for i, y := range ys {
		be := y.FillBytes(make([]byte, 32))
		for j := range be {
			out[i][j] = be[31-j]
		}
	}
	return out
}

// ed25519HasSmallOrder reports whether pub, a 32-byte Ed25519 public key,
// decodes to a point of small order.
func ed25519HasSmallOrder(pub []byte) bool {
	var y [32]byte
	copy(y[:], pub)
	y[31] &= 0x7f
	for _, bad := range ed25519SmallOrder {
		if y == bad {
			return true
		}
	}
	return false
}

// ed448HasSmallOrder reports whether pub, a 57-byte Ed448 public key,
// decodes to a point of small order (the cofactor is 4, so [4]P is the
// identity). Keys that do not decode are left to ed448.Verify to refuse.
func ed448HasSmallOrder(pub []byte) bool {
	P, err := goldilocks.FromBytes(pub)
	if err != nil {
		return false
	}
	P.Double()
	P.Double()
	return P.IsIdentity()
}

// IsSmallOrderEd25519 reports whether pub, a 32-byte Ed25519 public key,
// decodes to a point of small order, for which anyone can make signatures
// that verify. Identity keys outside MLS (the delivery server's device
// keys) are refused with it too.
func IsSmallOrderEd25519(pub []byte) bool { return len(pub) == 32 && ed25519HasSmallOrder(pub) }
