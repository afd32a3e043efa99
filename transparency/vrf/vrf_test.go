package vrf

import (
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"

	"filippo.io/edwards25519"
)

// testKey returns a private key from a fixed seed derived from name.
func testKey(t testing.TB, name string) *PrivateKey {
	t.Helper()
	seed := sha512.Sum512([]byte("parley vrf test key " + name))
	priv, err := NewPrivateKey(seed[:SeedSize])
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func wantInvalidProof(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrInvalidProof) {
		t.Errorf("%s: err = %v, want ErrInvalidProof", what, err)
	}
}

func TestProveVerifyRoundTrip(t *testing.T) {
	priv := testKey(t, "roundtrip")
	pub, err := ParsePublicKey(priv.Public().Bytes())
	if err != nil {
		t.Fatal(err)
	}
	long := bytes.Repeat([]byte("x"), 10000)
	for _, alpha := range [][]byte{nil, {}, []byte("alice"), []byte("alice@example.org"), {0}, long} {
		proof := priv.Prove(alpha)
		if len(proof) != ProofSize {
			t.Fatalf("proof is %d bytes", len(proof))
		}
		if again := priv.Prove(alpha); !bytes.Equal(again, proof) {
			t.Errorf("Prove(%q) is not deterministic", alpha)
		}
		beta, err := pub.Verify(alpha, proof)
		if err != nil {
			t.Fatalf("Verify(%.20q): %v", alpha, err)
		}
		if len(beta) != OutputSize {
			t.Fatalf("beta is %d bytes", len(beta))
		}
		beta2, err := ProofToHash(proof)
		if err != nil || !bytes.Equal(beta, beta2) {
			t.Errorf("ProofToHash = %x, %v; Verify gave %x", beta2, err, beta)
		}
	}
	// nil and empty alpha are the same input.
	if !bytes.Equal(priv.Prove(nil), priv.Prove([]byte{})) {
		t.Error("Prove(nil) != Prove([]byte{})")
	}
}

func TestDistinctNamesDistinctOutputs(t *testing.T) {
	priv := testKey(t, "distinct")
	seen := map[string]string{}
	for i := range 200 {
		name := fmt.Sprintf("user%d", i)
		beta, err := ProofToHash(priv.Prove([]byte(name)))
		if err != nil {
			t.Fatal(err)
		}
		if other, ok := seen[string(beta)]; ok {
			t.Fatalf("%s and %s have the same beta", name, other)
		}
		seen[string(beta)] = name
	}
}

func TestGenerateKey(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, SeedSize)
	priv, err := GenerateKey(bytes.NewReader(seed))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := NewPrivateKey(seed)
	if !priv.Public().Equal(want.Public()) || !bytes.Equal(priv.Seed(), seed) {
		t.Error("GenerateKey(reader) differs from NewPrivateKey(bytes read)")
	}
	a, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if a.Public().Equal(b.Public()) {
		t.Error("two generated keys are equal")
	}
	if _, err := GenerateKey(bytes.NewReader(seed[:SeedSize-1])); err == nil {
		t.Error("GenerateKey with a short reader: no error")
	}
}

func TestWrongLengths(t *testing.T) {
	for _, n := range []int{0, 1, SeedSize - 1, SeedSize + 1, 64} {
		if _, err := NewPrivateKey(make([]byte, n)); err == nil || !strings.Contains(err.Error(), "want 32") {
			t.Errorf("NewPrivateKey(%d bytes): err = %v", n, err)
		}
	}
	for _, n := range []int{0, 1, PublicKeySize - 1, PublicKeySize + 1, 64} {
		_, err := ParsePublicKey(make([]byte, n))
		if !errors.Is(err, ErrInvalidPublicKey) || !strings.Contains(err.Error(), "want 32") {
			t.Errorf("ParsePublicKey(%d bytes): err = %v", n, err)
		}
	}
	priv := testKey(t, "lengths")
	proof := priv.Prove([]byte("alice"))
	for _, bad := range [][]byte{nil, proof[:1], proof[:ProofSize-1], append(bytes.Clone(proof), 0), append(proof, proof...)} {
		_, err := priv.Public().Verify([]byte("alice"), bad)
		wantInvalidProof(t, fmt.Sprintf("Verify(%d-byte proof)", len(bad)), err)
		if err == nil || !strings.Contains(err.Error(), "want 80") {
			t.Errorf("Verify(%d-byte proof): err = %v, want a length error", len(bad), err)
		}
		_, err = ProofToHash(bad)
		wantInvalidProof(t, fmt.Sprintf("ProofToHash(%d-byte proof)", len(bad)), err)
	}
}

func TestUninitializedPublicKey(t *testing.T) {
	proof := testKey(t, "zero").Prove(nil)
	var nilKey *PublicKey
	for _, pub := range []*PublicKey{{}, nilKey} {
		if _, err := pub.Verify(nil, proof); !errors.Is(err, ErrInvalidPublicKey) {
			t.Errorf("Verify on %#v: err = %v, want ErrInvalidPublicKey", pub, err)
		}
	}
}

func TestPublicKeyEncoding(t *testing.T) {
	priv := testKey(t, "encoding")
	enc := priv.Public().Bytes()
	pub, err := ParsePublicKey(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pub.Bytes(), enc) {
		t.Error("Bytes(ParsePublicKey(b)) != b")
	}
	enc[0] ^= 1 // Bytes returns a copy
	if bytes.Equal(pub.Bytes(), enc) {
		t.Error("Bytes returned the key's own storage")
	}
	seed := priv.Seed()
	seed[0] ^= 1
	if bytes.Equal(priv.Seed(), seed) {
		t.Error("Seed returned the key's own storage")
	}
}

// TestTamperedProofs flips every bit, and every whole byte, of real proofs
// (the three RFC examples and one of ours): each must be refused.
func TestTamperedProofs(t *testing.T) {
	type tc struct {
		name  string
		pub   *PublicKey
		alpha []byte
		proof []byte
	}
	var cases []tc
	for _, tv := range rfc9381Vectors {
		pub, err := ParsePublicKey(unhex(t, tv.pk))
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, tc{tv.name, pub, unhex(t, tv.alpha), unhex(t, tv.pi)})
	}
	priv := testKey(t, "tamper")
	cases = append(cases, tc{"alice", priv.Public(), []byte("alice"), priv.Prove([]byte("alice"))})

	for _, c := range cases {
		if _, err := c.pub.Verify(c.alpha, c.proof); err != nil {
			t.Fatalf("%s: untampered proof refused: %v", c.name, err)
		}
		for i := range ProofSize {
			for _, mask := range []byte{1, 2, 4, 8, 16, 32, 64, 128, 0xff} {
				bad := bytes.Clone(c.proof)
				bad[i] ^= mask
				_, err := c.pub.Verify(c.alpha, bad)
				wantInvalidProof(t, fmt.Sprintf("%s: byte %d ^ %#x", c.name, i, mask), err)
			}
		}
	}
}

func TestWrongAlphaAndWrongKey(t *testing.T) {
	priv := testKey(t, "alpha")
	other := testKey(t, "other")
	alpha := []byte("alice")
	proof := priv.Prove(alpha)
	for _, wrong := range []string{"", "alicf", "Alice", "alice\x00", "alic", "alice ", "bob"} {
		_, err := priv.Public().Verify([]byte(wrong), proof)
		wantInvalidProof(t, fmt.Sprintf("alpha %q", wrong), err)
	}
	_, err := other.Public().Verify(alpha, proof)
	wantInvalidProof(t, "another key", err)
	// Nor does the other key's proof for the same name verify under ours.
	_, err = priv.Public().Verify(alpha, other.Prove(alpha))
	wantInvalidProof(t, "the other key's proof", err)
}

// smallOrderEncodings are the canonical encodings of the 8 points of order
// dividing 8 (the identity, one of order 2, two of order 4, four of order
// 8). TestSmallOrderEncodingsAreTheTorsion checks this list against the
// torsion subgroup computed from scratch.
var smallOrderEncodings = []string{
	"0100000000000000000000000000000000000000000000000000000000000000", // identity (0, 1)
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // (0, -1), order 2
	"0000000000000000000000000000000000000000000000000000000000000000", // order 4
	"0000000000000000000000000000000000000000000000000000000000000080", // order 4
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85", // order 8
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", // order 8
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa", // order 8
}

// torsionGenerator returns a point of order exactly 8: q*P for a point P
// of the full group whose q*P has order 8.
func torsionGenerator(t *testing.T) *edwards25519.Point {
	t.Helper()
	qMinus1 := edwards25519.NewScalar().Negate(scalarOne()) // q - 1, canonical
	for i := 0; ; i++ {
		hs := sha512.Sum512([]byte(fmt.Sprintf("torsion %d", i)))
		p, err := new(edwards25519.Point).SetBytes(hs[:32])
		if err != nil {
			continue
		}
		// ScalarMult multiplies by the canonical integer q - 1, so this is
		// exactly q*P, of order dividing 8.
		tp := new(edwards25519.Point).ScalarMult(qMinus1, p)
		tp.Add(tp, p)
		t4 := new(edwards25519.Point).Add(tp, tp)
		t4.Add(t4, t4)
		if t4.Equal(identity) == 0 {
			return tp
		}
	}
}

func scalarOne() *edwards25519.Scalar {
	var b [32]byte
	b[0] = 1
	s, _ := edwards25519.NewScalar().SetCanonicalBytes(b[:])
	return s
}

func TestSmallOrderEncodingsAreTheTorsion(t *testing.T) {
	gen := torsionGenerator(t)
	computed := map[string]bool{}
	p := edwards25519.NewIdentityPoint()
	for range 8 {
		computed[hex.EncodeToString(p.Bytes())] = true
		p.Add(p, gen)
	}
	if len(computed) != 8 {
		t.Fatalf("torsion subgroup has %d elements", len(computed))
	}
	for _, enc := range smallOrderEncodings {
		if !computed[enc] {
			t.Errorf("%s is not a point of the torsion subgroup", enc)
		}
		delete(computed, enc)
	}
	for enc := range computed {
		t.Errorf("torsion point %s is missing from smallOrderEncodings", enc)
	}
}

// TestSmallOrderPublicKeysRefused: ECVRF_validate_key (Section 5.4.5).
func TestSmallOrderPublicKeysRefused(t *testing.T) {
	for _, enc := range smallOrderEncodings {
		b := unhex(t, enc)
		if _, err := stringToPoint(b); err != nil {
			t.Fatalf("%s: not a canonical point encoding: %v", enc, err)
		}
		_, err := ParsePublicKey(b)
		if !errors.Is(err, ErrInvalidPublicKey) || !strings.Contains(err.Error(), "small order") {
			t.Errorf("ParsePublicKey(%s): err = %v, want a small-order error", enc, err)
		}
	}
}

// TestSmallOrderKeyWouldCollide shows what validate_key prevents: under the
// identity as public key (skipping ParsePublicKey), whoever made the key can
// prove Gamma = identity, hence the same beta, for every alpha.
func TestSmallOrderKeyWouldCollide(t *testing.T) {
	pub := &PublicKey{y: edwards25519.NewIdentityPoint()}
	copy(pub.encoded[:], unhex(t, smallOrderEncodings[0]))
	forge := func(alpha []byte) []byte {
		h, _, _ := encodeToCurveTryAndIncrement(pub.encoded[:], alpha)
		var sb [64]byte
		sb[0] = 42
		s, _ := edwards25519.NewScalar().SetUniformBytes(sb[:])
		u := new(edwards25519.Point).ScalarBaseMult(s) // s*B - c*identity
		v := new(edwards25519.Point).ScalarMult(s, h)  // s*H - c*identity
		gamma := identity.Bytes()
		c := challengeGeneration(pub.encoded[:], h.Bytes(), gamma, u.Bytes(), v.Bytes())
		return append(append(append([]byte{}, gamma...), c[:]...), s.Bytes()...)
	}
	b1, err1 := pub.Verify([]byte("alice"), forge([]byte("alice")))
	b2, err2 := pub.Verify([]byte("bob"), forge([]byte("bob")))
	if err1 != nil || err2 != nil || !bytes.Equal(b1, b2) {
		t.Fatalf("the attack this test describes did not work: %v %v", err1, err2)
	}
	if _, err := ParsePublicKey(pub.encoded[:]); err == nil {
		t.Fatal("ParsePublicKey accepted the identity")
	}
}

// nonCanonical returns y + p (low 255 bits, little-endian) with the given
// sign bit, for y < 19 (so that y + p < 2^255).
func nonCanonical(y int, sign bool) []byte {
	v := new(big.Int).Lsh(big.NewInt(1), 255)
	v.Sub(v, big.NewInt(19))
	v.Add(v, big.NewInt(int64(y)))
	be := v.FillBytes(make([]byte, 32))
	le := make([]byte, 32)
	for i := range le {
		le[i] = be[31-i]
	}
	if sign {
		le[31] |= 0x80
	}
	return le
}

// TestNonCanonicalEncodingsRefused: the encodings RFC 8032 Section 5.1.3
// refuses but filippo.io/edwards25519 decodes (y >= p, and x = 0 with the
// sign bit set) are refused as public keys and as Gamma, including those of
// points that are valid public keys when encoded canonically.
func TestNonCanonicalEncodingsRefused(t *testing.T) {
	type enc struct {
		b    []byte
		what string
	}
	var encs []enc
	largeOrder := 0
	for y := range 19 {
		for _, sign := range []bool{false, true} {
			b := nonCanonical(y, sign)
			p, err := new(edwards25519.Point).SetBytes(b)
			if err != nil {
				continue // not a point at all
			}
			encs = append(encs, enc{b, "non-canonical encoding (y >= p)"})
			if validateKey(p) {
				largeOrder++
				// The same point, encoded canonically, is a valid key.
				if _, err := ParsePublicKey(p.Bytes()); err != nil {
					t.Errorf("canonical %x refused: %v", p.Bytes(), err)
				}
			}
		}
	}
	if largeOrder == 0 {
		t.Fatal("no non-canonical encoding of a point of large order was found; the test is too weak")
	}
	// x = 0 with the sign bit set: y = 1 and y = p - 1.
	for _, s := range []string{
		"0100000000000000000000000000000000000000000000000000000000000080",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	} {
		b := unhex(t, s)
		if _, err := new(edwards25519.Point).SetBytes(b); err != nil {
			t.Fatalf("edwards25519 refuses %s itself; the test is pointless", s)
		}
		encs = append(encs, enc{b, "non-canonical encoding (x = 0 with the sign bit set)"})
	}
	t.Logf("%d non-canonical encodings that edwards25519.SetBytes accepts, %d of them of points of large order", len(encs), largeOrder)

	priv := testKey(t, "gamma")
	proof := priv.Prove([]byte("alice"))
	for _, e := range encs {
		if _, err := ParsePublicKey(e.b); !errors.Is(err, ErrInvalidPublicKey) || !strings.Contains(err.Error(), e.what) {
			t.Errorf("ParsePublicKey(%x): err = %v, want %q", e.b, err, e.what)
		}
		bad := bytes.Clone(proof)
		copy(bad[:ptLen], e.b)
		_, err := ProofToHash(bad)
		wantInvalidProof(t, fmt.Sprintf("ProofToHash with Gamma %x", e.b), err)
		if err == nil || !strings.Contains(err.Error(), e.what) {
			t.Errorf("ProofToHash with Gamma %x: err = %v, want %q", e.b, err, e.what)
		}
		_, err = priv.Public().Verify([]byte("alice"), bad)
		wantInvalidProof(t, fmt.Sprintf("Verify with Gamma %x", e.b), err)
	}
}

// TestGammaNotOnCurve: a Gamma that is no point at all.
func TestGammaNotOnCurve(t *testing.T) {
	priv := testKey(t, "offcurve")
	proof := priv.Prove([]byte("alice"))
	found := false
	for i := 0; i < 100 && !found; i++ {
		hs := sha512.Sum512([]byte(fmt.Sprintf("off curve %d", i)))
		b := hs[:32]
		b[31] &= 0x7f
		if _, err := new(edwards25519.Point).SetBytes(b); err == nil {
			continue
		}
		found = true
		bad := bytes.Clone(proof)
		copy(bad[:ptLen], b)
		_, err := priv.Public().Verify([]byte("alice"), bad)
		wantInvalidProof(t, "Verify", err)
		if err == nil || !strings.Contains(err.Error(), "not the encoding of a point") {
			t.Errorf("Verify with Gamma %x: err = %v", b, err)
		}
		if _, err := ParsePublicKey(b); !errors.Is(err, ErrInvalidPublicKey) {
			t.Errorf("ParsePublicKey(%x): err = %v", b, err)
		}
	}
	if !found {
		t.Fatal("no off-curve string found")
	}
}

// TestUnreducedS: s + q gives the same s*B, so it would verify if Section
// 5.4.4 step 8 (s >= q is "INVALID") were skipped. It must be refused, or
// proofs would be malleable.
func TestUnreducedS(t *testing.T) {
	priv := testKey(t, "s")
	alpha := []byte("alice")
	proof := priv.Prove(alpha)
	q, _ := new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
	le2int := func(b []byte) *big.Int {
		be := bytes.Clone(b)
		for i, j := 0, len(be)-1; i < j; i, j = i+1, j-1 {
			be[i], be[j] = be[j], be[i]
		}
		return new(big.Int).SetBytes(be)
	}
	int2le := func(v *big.Int) []byte {
		be := v.FillBytes(make([]byte, 32))
		for i, j := 0, 31; i < j; i, j = i+1, j-1 {
			be[i], be[j] = be[j], be[i]
		}
		return be
	}
	s := le2int(proof[ptLen+cLen:])
	max := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))
	for name, v := range map[string]*big.Int{
		"s+q":       new(big.Int).Add(s, q),
		"s+2q":      new(big.Int).Add(s, new(big.Int).Lsh(q, 1)),
		"q":         q,
		"2^256 - 1": max,
	} {
		bad := bytes.Clone(proof)
		copy(bad[ptLen+cLen:], int2le(v))
		_, err := priv.Public().Verify(alpha, bad)
		wantInvalidProof(t, "Verify with "+name, err)
		if err == nil || !strings.Contains(err.Error(), "not fully reduced") {
			t.Errorf("Verify with %s: err = %v, want a not-reduced error", name, err)
		}
		if _, err := ProofToHash(bad); err == nil || !strings.Contains(err.Error(), "not fully reduced") {
			t.Errorf("ProofToHash with %s: err = %v, want a not-reduced error", name, err)
		}
	}
}

// TestStringToPointMatchesReencoding checks stringToPoint's explicit RFC
// 8032 checks against a second definition: SetBytes succeeds and the point
// encodes back to the same bytes.
func TestStringToPointMatchesReencoding(t *testing.T) {
	var inputs [][]byte
	for y := range 19 {
		inputs = append(inputs, nonCanonical(y, false), nonCanonical(y, true))
	}
	for _, s := range smallOrderEncodings {
		b := unhex(t, s)
		inputs = append(inputs, b)
		c := bytes.Clone(b)
		c[31] ^= 0x80
		inputs = append(inputs, c)
	}
	for range 2000 {
		b := make([]byte, 32)
		rand.Read(b)
		inputs = append(inputs, b)
	}
	for _, b := range inputs {
		checkStringToPoint(t, b)
	}
}

func checkStringToPoint(t *testing.T, b []byte) {
	t.Helper()
	p, err := stringToPoint(b)
	ref, refErr := new(edwards25519.Point).SetBytes(b)
	want := refErr == nil && bytes.Equal(ref.Bytes(), b)
	if (err == nil) != want {
		t.Fatalf("stringToPoint(%x): err = %v, but SetBytes+re-encode says valid = %v", b, err, want)
	}
	if err == nil && p.Equal(ref) != 1 {
		t.Fatalf("stringToPoint(%x) decoded another point", b)
	}
}
