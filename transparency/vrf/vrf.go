// Package vrf implements the verifiable random function
// ECVRF-EDWARDS25519-SHA512-TAI of RFC 9381 (Verifiable Random Functions,
// Section 5, suite_string 0x03): Ed25519 keys, SHA-512, encode-to-curve by
// try-and-increment (Section 5.4.1.1) and nonces as in RFC 8032 (Section
// 5.4.2.2).
//
// It is the first brick of Parley's key transparency directory, a prefix tree
// whose leaves are keyed by VRF(username), as in the IETF keytrans protocol
// draft and facebook/akd. The directory server holds the private key. For a
// name (alpha) it computes a proof (pi, [PrivateKey.Prove]) and from it the
// leaf index (beta, [ProofToHash]). A client that asks about a name receives
// the proof, checks it under the directory's public key with
// [PublicKey.Verify], which also gives it beta, and so knows which leaf is
// that name's and that the server could not have chosen another. Anyone who
// walks the tree sees only the betas: pseudorandom strings that say nothing
// about the names, and that cannot be tested against guessed names without
// the private key. (A plain hash of the name would let anyone enumerate the
// directory with a dictionary.)
//
// Differences from a bare reading of the RFC, and things to know:
//
//   - Keys are always validated (RFC 9381 Section 5.3 step 3, Section 5.4.5
//     ECVRF_validate_key, which the RFC leaves optional). [ParsePublicKey]
//     refuses encodings that are not canonical (RFC 8032 Section 5.1.3) and
//     points of small order. Without that check a server could publish a
//     small-order key under which it can prove the same beta for every
//     name (TestSmallOrderKeyWouldCollide does it).
//   - Every point decoded from bytes (public key, Gamma, the try-and-increment
//     candidates) is decoded as RFC 8032 Section 5.1.3 says: y >= p, and
//     x = 0 with the sign bit set, are refused. filippo.io/edwards25519 alone
//     accepts both; see stringToPoint.
//   - [ProofToHash] does not verify anything. As RFC 9381 Section 5.2 says,
//     use it only on a proof this process made with Prove; a client uses the
//     beta that Verify returns.
//   - Proving is constant-time in the secret key, not in alpha:
//     try-and-increment takes 1 iteration or more (2 on average) depending on
//     SHA-512 of the public key and alpha, so whoever can time Prove
//     precisely learns about a bit of that hash per call. RFC 9381's security
//     considerations advise against this suite where alpha is secret and
//     hashed on the fly. Here a name is known to the server and to whoever
//     asks about it; the directory should compute a name's proof when it
//     inserts the name, not while answering someone else's query.
//     Verification uses only public values and is variable-time.
package vrf

import (
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"

	"filippo.io/edwards25519"
)

// Sizes of the encodings, in bytes (RFC 9381 Section 5.5 for this suite:
// ptLen = 32, cLen = 16, qLen = 32, hLen = 64).
const (
	// SeedSize is the size of a private key: the RFC 8032 secret key, the
	// "SK" of the RFC 9381 test vectors.
	SeedSize = 32
	// PublicKeySize is the size of an encoded public key (PK_string).
	PublicKeySize = ptLen
	// ProofSize is the size of a proof (pi_string): Gamma || c || s.
	ProofSize = ptLen + cLen + qLen
	// OutputSize is the size of the VRF output (beta_string).
	OutputSize = sha512.Size
)

const (
	suiteString = 0x03 // ECVRF-EDWARDS25519-SHA512-TAI, RFC 9381 Section 5.5
	ptLen       = 32   // length of a point encoding (fLen)
	cLen        = 16   // length of the challenge
	qLen        = 32   // length of a scalar encoding
)

// ErrInvalidProof is returned by Verify, or wrapped in the error it returns,
// whenever a proof is refused: wrong length, Gamma not a canonical point
// encoding, s not fully reduced, or a proof that does not verify for this key
// and alpha. ProofToHash wraps it too for proofs it cannot decode.
// Check with errors.Is.
var ErrInvalidProof = errors.New("vrf: invalid proof")

// ErrInvalidPublicKey is wrapped in the errors of ParsePublicKey (and of
// Verify on a PublicKey that was not made by ParsePublicKey or Public).
var ErrInvalidPublicKey = errors.New("vrf: invalid public key")

// PrivateKey is a VRF private key. Its methods may be called concurrently.
type PrivateKey struct {
	seed [SeedSize]byte
	// x is the secret scalar (RFC 8032 Section 5.1.5: the clamped first
	// half of SHA-512(SK)), here reduced modulo q. Every point it multiplies
	// (B and the output of encode_to_curve, cofactor-cleared) is in the
	// prime-order subgroup, so the reduction changes no result.
	x *edwards25519.Scalar
	// nonceKey is truncated_hashed_sk_string, the second half of
	// SHA-512(SK) (Section 5.4.2.2 steps 1 and 2).
	nonceKey [32]byte
	pub      PublicKey
}

// PublicKey is a validated VRF public key. The zero value is not usable: get
// one from ParsePublicKey or PrivateKey.Public.
type PublicKey struct {
	encoded [PublicKeySize]byte // PK_string, canonical
	y       *edwards25519.Point // Y, not of small order
}

// GenerateKey returns a new private key made from SeedSize bytes read from r
// (crypto/rand.Reader if r is nil).
func GenerateKey(r io.Reader) (*PrivateKey, error) {
	if r == nil {
		r = rand.Reader
	}
	var seed [SeedSize]byte
	if _, err := io.ReadFull(r, seed[:]); err != nil {
		return nil, fmt.Errorf("vrf: generating key: %w", err)
	}
	return NewPrivateKey(seed[:])
}

// NewPrivateKey returns the private key whose RFC 8032 secret key ("SK" in
// the RFC 9381 test vectors) is seed, which must be SeedSize bytes.
func NewPrivateKey(seed []byte) (*PrivateKey, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("vrf: private key seed is %d bytes, want %d", len(seed), SeedSize)
	}
	priv := &PrivateKey{}
	copy(priv.seed[:], seed)
	xString, nonceKey := expandSecretKey(seed)
	x, err := edwards25519.NewScalar().SetBytesWithClamping(xString[:])
	if err != nil {
		panic("vrf: " + err.Error()) // the length is right
	}
	// Clamped, x = 8m with 2^251 <= m < 2^252 < q, so x is never 0 mod q
	// and Y below has order q: a key made here always passes validate_key.
	priv.x = x
	priv.nonceKey = nonceKey
	// Y = x*B (RFC 8032 Section 5.1.5 step 4), PK_string = point_to_string(Y).
	y := new(edwards25519.Point).ScalarBaseMult(x)
	priv.pub.y = y
	copy(priv.pub.encoded[:], y.Bytes())
	return priv, nil
}

// expandSecretKey is RFC 8032 Section 5.1.5 steps 1 and 2, as RFC 9381
// Section 5.5 says for this suite: the clamped first half of SHA-512(SK),
// whose little-endian value is the secret scalar x, and the second half,
// which Section 5.4.2.2 uses for nonces.
func expandSecretKey(seed []byte) (xString, nonceKey [32]byte) {
	h := sha512.Sum512(seed)
	copy(xString[:], h[:32])
	xString[0] &= 248
	xString[31] &= 127
	xString[31] |= 64
	copy(nonceKey[:], h[32:])
	return xString, nonceKey
}

// Seed returns the private key's SeedSize-byte secret key, from which
// NewPrivateKey makes it again.
func (priv *PrivateKey) Seed() []byte {
	return bytes.Clone(priv.seed[:])
}

// Public returns the public key of priv.
func (priv *PrivateKey) Public() *PublicKey {
	pub := priv.pub // y is never modified, so it can be shared
	return &pub
}

// ParsePublicKey decodes a PublicKeySize-byte public key (PK_string) and
// validates it: it must be the canonical encoding of a point on the curve
// (RFC 8032 Section 5.1.3) and not of small order (RFC 9381 Section 5.4.5,
// ECVRF_validate_key). Errors wrap ErrInvalidPublicKey.
func ParsePublicKey(b []byte) (*PublicKey, error) {
	if len(b) != PublicKeySize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrInvalidPublicKey, len(b), PublicKeySize)
	}
	// Section 5.3 steps 1 and 2: Y = string_to_point(PK_string).
	y, err := stringToPoint(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidPublicKey, err)
	}
	// Section 5.3 step 3, always: ECVRF_validate_key(Y).
	if !validateKey(y) {
		return nil, fmt.Errorf("%w: a point of small order (cofactor*Y is the identity, Section 5.4.5)", ErrInvalidPublicKey)
	}
	pub := &PublicKey{y: y}
	copy(pub.encoded[:], b)
	return pub, nil
}

// Bytes returns the PublicKeySize-byte encoding of the public key (PK_string).
func (pub *PublicKey) Bytes() []byte {
	return bytes.Clone(pub.encoded[:])
}

// Equal reports whether pub and other are the same key.
func (pub *PublicKey) Equal(other *PublicKey) bool {
	return pub.encoded == other.encoded
}

// Prove returns the proof (pi_string, ProofSize bytes) that the VRF output
// for alpha under priv is ProofToHash(proof). It is deterministic: the same
// key and alpha always give the same proof.
func (priv *PrivateKey) Prove(alpha []byte) []byte {
	return priv.prove(alpha).pi
}

// proofTrace is what prove computes on the way, for the test vectors.
type proofTrace struct {
	h       *edwards25519.Point // H
	ctr     int                 // the try-and-increment counter that gave H
	kString [64]byte            // k_string, before reduction mod q
	u, v    *edwards25519.Point // k*B and k*H
	pi      []byte
}

// prove is ECVRF_prove, RFC 9381 Section 5.1.
func (priv *PrivateKey) prove(alpha []byte) proofTrace {
	// 1. Use SK to derive the VRF secret scalar x and the VRF public key
	//    Y = x*B: done in NewPrivateKey.
	// 2. encode_to_curve_salt = PK_string.
	salt := priv.pub.encoded[:]
	// 3. H = ECVRF_encode_to_curve(encode_to_curve_salt, alpha_string).
	h, ctr, ok := encodeToCurveTryAndIncrement(salt, alpha)
	if !ok {
		// 256 candidates failed: probability about 2^-256.
		panic("vrf: encode_to_curve found no point in 256 tries")
	}
	// 4. h_string = point_to_string(H).
	hString := h.Bytes()
	// 5. Gamma = x*H (constant time).
	gamma := new(edwards25519.Point).ScalarMult(priv.x, h)
	// 6. k = ECVRF_nonce_generation(SK, h_string).
	kString := nonceGeneration(&priv.nonceKey, hString)
	k, err := edwards25519.NewScalar().SetUniformBytes(kString[:])
	if err != nil {
		panic("vrf: " + err.Error()) // the length is right
	}
	// 7. c = ECVRF_challenge_generation(Y, H, Gamma, k*B, k*H).
	u := new(edwards25519.Point).ScalarBaseMult(k)
	v := new(edwards25519.Point).ScalarMult(k, h)
	gammaString := gamma.Bytes()
	cString := challengeGeneration(salt, hString, gammaString, u.Bytes(), v.Bytes())
	c := challengeScalar(cString[:])
	// 8. s = (k + c*x) mod q.
	s := edwards25519.NewScalar().MultiplyAdd(c, priv.x, k)
	// 9. pi_string = point_to_string(Gamma) || int_to_string(c, cLen) ||
	//    int_to_string(s, qLen). int_to_string is little-endian for this
	//    suite, so int_to_string(c, cLen) is cString itself.
	pi := make([]byte, 0, ProofSize)
	pi = append(pi, gammaString...)
	pi = append(pi, cString[:]...)
	pi = append(pi, s.Bytes()...)
	return proofTrace{h: h, ctr: ctr, kString: kString, u: u, v: v, pi: pi}
}

// ProofToHash returns the VRF output (beta_string, OutputSize bytes) of a
// proof: ECVRF_proof_to_hash, RFC 9381 Section 5.2. It does NOT verify the
// proof: call it only on proofs made by Prove. Whoever receives a proof
// must use the output of PublicKey.Verify instead. Errors (a proof that
// cannot be decoded) wrap ErrInvalidProof.
func ProofToHash(proof []byte) ([]byte, error) {
	// 1. D = ECVRF_decode_proof(pi_string).
	// 2. If D is "INVALID", output "INVALID" and stop.
	// 3. (Gamma, c, s) = D.
	gamma, _, _, err := decodeProof(proof)
	if err != nil {
		return nil, err
	}
	return gammaToHash(gamma), nil
}

// gammaToHash is RFC 9381 Section 5.2 steps 4 to 6.
func gammaToHash(gamma *edwards25519.Point) []byte {
	// 4. proof_to_hash_domain_separator_front = 0x03.
	// 5. proof_to_hash_domain_separator_back = 0x00.
	// 6. beta_string = Hash(suite_string || 0x03 ||
	//    point_to_string(cofactor * Gamma) || 0x00).
	var buf [2 + ptLen + 1]byte
	buf[0] = suiteString
	buf[1] = 0x03
	copy(buf[2:], new(edwards25519.Point).MultByCofactor(gamma).Bytes())
	buf[2+ptLen] = 0x00
	beta := sha512.Sum512(buf[:])
	return beta[:]
}

// Verify checks that proof is a valid proof for alpha under pub and returns
// the VRF output (beta_string, OutputSize bytes): ECVRF_verify, RFC 9381
// Section 5.3, with validate_key (done once by ParsePublicKey). Every refused
// proof gives an error that wraps ErrInvalidProof.
func (pub *PublicKey) Verify(alpha, proof []byte) (beta []byte, err error) {
	beta, _, _, err = pub.verify(alpha, proof)
	return beta, err
}

// verify is Verify, also returning the U and V it computed (for the test
// vectors).
func (pub *PublicKey) verify(alpha, pi []byte) (beta []byte, u, v *edwards25519.Point, err error) {
	if pub == nil || pub.y == nil {
		return nil, nil, nil, fmt.Errorf("%w: uninitialized PublicKey (use ParsePublicKey)", ErrInvalidPublicKey)
	}
	// 1. Y = string_to_point(PK_string).
	// 2. If Y is "INVALID", output "INVALID" and stop.
	// 3. If validate_key, run ECVRF_validate_key(Y) (Section 5.4.5).
	// Steps 1 to 3 were done by ParsePublicKey (or by NewPrivateKey, whose Y
	// always has order q).

	// 4. D = ECVRF_decode_proof(pi_string) (Section 5.4.4).
	// 5. If D is "INVALID", output "INVALID" and stop.
	// 6. (Gamma, c, s) = D.
	gamma, c, s, err := decodeProof(pi)
	if err != nil {
		return nil, nil, nil, err
	}
	// 7. encode_to_curve_salt = PK_string.
	salt := pub.encoded[:]
	// 8. H = ECVRF_encode_to_curve(encode_to_curve_salt, alpha_string).
	h, _, ok := encodeToCurveTryAndIncrement(salt, alpha)
	if !ok {
		return nil, nil, nil, fmt.Errorf("%w: encode_to_curve found no point in 256 tries", ErrInvalidProof)
	}
	// 9. U = s*B - c*Y.
	negC := edwards25519.NewScalar().Negate(c)
	u = new(edwards25519.Point).VarTimeDoubleScalarBaseMult(negC, pub.y, s)
	// 10. V = s*H - c*Gamma.
	v = new(edwards25519.Point).VarTimeMultiScalarMult(
		[]*edwards25519.Scalar{s, negC}, []*edwards25519.Point{h, gamma})
	// 11. c' = ECVRF_challenge_generation(Y, H, Gamma, U, V). Gamma was
	//     decoded strictly, so point_to_string(Gamma) is gamma_string.
	cPrime := challengeGeneration(salt, h.Bytes(), pi[:ptLen], u.Bytes(), v.Bytes())
	// 12. If c and c' are equal, output ("VALID",
	//     ECVRF_proof_to_hash(pi_string)); else output "INVALID". Everything
	//     compared here is public.
	if !bytes.Equal(cPrime[:], pi[ptLen:ptLen+cLen]) {
		return nil, nil, nil, ErrInvalidProof
	}
	return gammaToHash(gamma), u, v, nil
}
