package vrf

import (
	"crypto/sha512"
	"errors"
	"fmt"

	"filippo.io/edwards25519"
)

// The ECVRF auxiliary functions of RFC 9381 Section 5.4, for
// ECVRF-EDWARDS25519-SHA512-TAI (Section 5.5).

var identity = edwards25519.NewIdentityPoint() // never modified

// encodeToCurveTryAndIncrement is ECVRF_encode_to_curve_try_and_increment,
// RFC 9381 Section 5.4.1.1. It also returns the ctr that succeeded (the test
// vectors give it). ok is false only if all 256 values of ctr failed, which
// happens with probability about 2^-256.
//
// Its running time depends on salt and alpha (how many candidates fail), not
// on any secret key.
func encodeToCurveTryAndIncrement(salt, alpha []byte) (h *edwards25519.Point, ctr int, ok bool) {
	// 1. ctr = 0.
	// 2. encode_to_curve_domain_separator_front = 0x01.
	// 3. encode_to_curve_domain_separator_back = 0x00.
	// The hash input is suite_string || 0x01 || encode_to_curve_salt ||
	// alpha_string || ctr_string || 0x00; only ctr_string changes.
	buf := make([]byte, 0, 2+len(salt)+len(alpha)+2)
	buf = append(buf, suiteString, 0x01)
	buf = append(buf, salt...)
	buf = append(buf, alpha...)
	buf = append(buf, 0x00, 0x00)
	ctrAt := len(buf) - 2
	// 4. H = "INVALID".
	// 5. While H is "INVALID" or H is the identity element of the group:
	//    ctr_string = int_to_string(ctr, 1) is one octet, so ctr stops at 255.
	for ctr = 0; ctr < 256; ctr++ {
		// A. ctr_string = int_to_string(ctr, 1).
		buf[ctrAt] = byte(ctr)
		// B. hash_string = Hash(suite_string ||
		//    encode_to_curve_domain_separator_front || encode_to_curve_salt
		//    || alpha_string || ctr_string ||
		//    encode_to_curve_domain_separator_back).
		hashString := sha512.Sum512(buf)
		// C. H = interpret_hash_value_as_a_point(hash_string), which for
		//    this suite (Section 5.5) is string_to_point(hash_string[0] ...
		//    hash_string[31]).
		p, err := stringToPoint(hashString[:ptLen])
		if err != nil {
			continue // H is "INVALID"
		}
		// D. If H is not "INVALID" and cofactor > 1, set H = cofactor * H.
		h = new(edwards25519.Point).MultByCofactor(p)
		if h.Equal(identity) == 1 {
			continue // a point of small order
		}
		// E. ctr = ctr + 1 (the loop's), and 6. Output H.
		return h, ctr, true
	}
	return nil, 0, false
}

// nonceGeneration is ECVRF_nonce_generation_RFC8032, RFC 9381 Section
// 5.4.2.2. Steps 1 and 2 (hashed_sk_string = Hash(SK) and its second half,
// truncated_hashed_sk_string) are done once by NewPrivateKey, which passes
// that half as nonceKey. It returns k_string; the caller does step 4.
func nonceGeneration(nonceKey *[32]byte, hString []byte) [64]byte {
	// 3. k_string = Hash(truncated_hashed_sk_string || h_string).
	var buf [32 + ptLen]byte
	copy(buf[:32], nonceKey[:])
	copy(buf[32:], hString)
	return sha512.Sum512(buf[:])
	// 4. k = string_to_int(k_string) mod q: SetUniformBytes, in prove.
}

// challengeGeneration is ECVRF_challenge_generation, RFC 9381 Section 5.4.3.
// Its arguments are point_to_string(P1) ... point_to_string(P5) (the callers
// have these encodings already). It returns truncated_c_string, whose
// little-endian value is c.
func challengeGeneration(p1, p2, p3, p4, p5 []byte) [cLen]byte {
	// 1. challenge_generation_domain_separator_front = 0x02.
	// 2. Initialize str = suite_string || 0x02.
	var buf [2 + 5*ptLen + 1]byte
	buf[0] = suiteString
	buf[1] = 0x02
	// 3. For PJ in [P1, P2, P3, P4, P5]: str = str || point_to_string(PJ).
	for i, pj := range [][]byte{p1, p2, p3, p4, p5} {
		copy(buf[2+i*ptLen:2+(i+1)*ptLen], pj)
	}
	// 4. challenge_generation_domain_separator_back = 0x00.
	// 5. str = str || challenge_generation_domain_separator_back.
	buf[len(buf)-1] = 0x00
	// 6. c_string = Hash(str).
	cString := sha512.Sum512(buf[:])
	// 7. truncated_c_string = c_string[0] ... c_string[cLen-1].
	var truncated [cLen]byte
	copy(truncated[:], cString[:cLen])
	// 8. c = string_to_int(truncated_c_string): challengeScalar.
	return truncated
}

// challengeScalar is string_to_int(truncated_c_string) (little-endian for
// this suite) as a scalar. c < 2^128 < q, so it is exact.
func challengeScalar(cString []byte) *edwards25519.Scalar {
	var buf [32]byte
	copy(buf[:], cString)
	c, err := edwards25519.NewScalar().SetCanonicalBytes(buf[:])
	if err != nil {
		panic("vrf: " + err.Error()) // 16 bytes are always reduced
	}
	return c
}

// decodeProof is ECVRF_decode_proof, RFC 9381 Section 5.4.4. Errors wrap
// ErrInvalidProof and say what is wrong.
func decodeProof(pi []byte) (gamma *edwards25519.Point, c, s *edwards25519.Scalar, err error) {
	if len(pi) != ProofSize {
		return nil, nil, nil, fmt.Errorf("%w: proof is %d bytes, want %d", ErrInvalidProof, len(pi), ProofSize)
	}
	// 1. gamma_string = pi_string[0] ... pi_string[ptLen-1].
	gammaString := pi[:ptLen]
	// 2. c_string = pi_string[ptLen] ... pi_string[ptLen+cLen-1].
	cString := pi[ptLen : ptLen+cLen]
	// 3. s_string = pi_string[ptLen+cLen] ... pi_string[ptLen+cLen+qLen-1].
	sString := pi[ptLen+cLen:]
	// 4. Gamma = string_to_point(gamma_string).
	gamma, err = stringToPoint(gammaString)
	// 5. If Gamma = "INVALID", output "INVALID" and stop.
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: Gamma is %v", ErrInvalidProof, err)
	}
	// 6. c = string_to_int(c_string).
	c = challengeScalar(cString)
	// 7. s = string_to_int(s_string).
	// 8. If s >= q, output "INVALID" and stop.
	s, err = edwards25519.NewScalar().SetCanonicalBytes(sString)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: s is not fully reduced (s >= q)", ErrInvalidProof)
	}
	// 9. Output Gamma, c, and s.
	return gamma, c, s, nil
}

// validateKey is ECVRF_validate_key, RFC 9381 Section 5.4.5, on a point that
// string_to_point already decoded: it is "INVALID" if cofactor*Y is the
// identity, that is if Y is one of the 8 points of small order.
func validateKey(y *edwards25519.Point) bool {
	return new(edwards25519.Point).MultByCofactor(y).Equal(identity) == 0
}

var (
	errNotOnCurve   = errors.New("not the encoding of a point on edwards25519")
	errNonCanonical = errors.New("a non-canonical encoding (y >= p)")
	errNegativeZero = errors.New("a non-canonical encoding (x = 0 with the sign bit set)")
)

// stringToPoint is string_to_point for this suite (RFC 9381 Section 5.5):
// decoding as RFC 8032 Section 5.1.3 specifies, which outputs "INVALID" for
// every encoding but the canonical one of a point on the curve. The input
// must be ptLen bytes.
//
// edwards25519.Point.SetBytes does the curve equation but, on purpose,
// accepts the two kinds of non-canonical encodings RFC 8032 refuses, which
// are checked here first (step 1) and last (step 4).
func stringToPoint(s []byte) (*edwards25519.Point, error) {
	// Step 1: y is the low 255 bits, little-endian; if y >= p = 2^255 - 19,
	// decoding fails.
	if !yIsReduced(s) {
		return nil, errNonCanonical
	}
	// Steps 2 and 3: recover x from the curve equation, or fail.
	p, err := new(edwards25519.Point).SetBytes(s)
	if err != nil {
		return nil, errNotOnCurve
	}
	// Step 4: if x = 0 and x_0 (the sign bit) = 1, decoding fails. x = 0
	// only for y = 1 and y = p - 1 (then y^2 - 1 = 0).
	if s[31]&0x80 != 0 && (isY(s, &yOne) || isY(s, &yMinusOne)) {
		return nil, errNegativeZero
	}
	return p, nil
}

// Little-endian encodings of y = 1 and y = p - 1, sign bit clear.
var (
	yOne      = [32]byte{0: 1}
	yMinusOne = func() (y [32]byte) {
		for i := range y {
			y[i] = 0xff
		}
		y[0] = 0xec
		y[31] = 0x7f
		return y
	}()
)

// yIsReduced reports whether the low 255 bits of s, little-endian, are less
// than p = 2^255 - 19 (ed ff ... ff 7f in little-endian).
func yIsReduced(s []byte) bool {
	if s[31]&0x7f != 0x7f {
		return true
	}
	for i := 30; i >= 1; i-- {
		if s[i] != 0xff {
			return true
		}
	}
	return s[0] < 0xed
}

// isY reports whether the low 255 bits of s are y.
func isY(s []byte, y *[32]byte) bool {
	for i := 0; i < 31; i++ {
		if s[i] != y[i] {
			return false
		}
	}
	return s[31]&0x7f == y[31]
}
