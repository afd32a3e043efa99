package vrf

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"testing"

	"filippo.io/edwards25519"
)

// rfcVector is one example of RFC 9381 Appendix B.3.
type rfcVector struct {
	name  string
	sk    string // SK, the RFC 8032 secret key (our seed)
	pk    string // PK
	alpha string // alpha, hex
	x     string // x, the secret scalar (clamped, not reduced mod q)
	ctr   int    // "try_and_increment succeeded on ctr = ..."
	h     string // H
	k     string // k (the 64-byte k_string of Section 5.4.2.2, before reduction)
	u     string // U = k*B
	v     string // V = k*H
	pi    string // pi
	beta  string // beta
}

// rfc9381Vectors are the test vectors of RFC 9381 Appendix B.3
// (ECVRF-EDWARDS25519-SHA512-TAI), Examples 16, 17 and 18, copied value by
// value. SK and PK are the RFC 8032 Section 7.1 test keys 1, 2 and 3.
var rfc9381Vectors = []rfcVector{
	{
		name:  "Example 16",
		sk:    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
		pk:    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
		alpha: "", // the empty string
		x:     "307c83864f2833cb427a2ef1c00a013cfdff2768d980c0a3a520f006904de94f",
		ctr:   0,
		h:     "91bbed02a99461df1ad4c6564a5f5d829d0b90cfc7903e7a5797bd658abf3318",
		k: "7100f3d9eadb6dc4743b029736ff283f5be494128df128df2817106f345b8594" +
			"b6d6da2d6fb0b4c0257eb337675d96eab49cf39e66cc2c9547c2bf8b2a6afae4",
		u: "aef27c725be964c6a9bf4c45ca8e35df258c1878b838f37d9975523f09034071",
		v: "5016572f71466c646c119443455d6cb9b952f07d060ec8286d678615d55f954f",
		pi: "8657106690b5526245a92b003bb079ccd1a92130477671f6fc01ad16f26f723f" +
			"26f8a57ccaed74ee1b190bed1f479d97" +
			"27d2d0f9b005a6e456a35d4fb0daab1268a1b0db10836d9826a528ca76567805",
		beta: "90cf1df3b703cce59e2a35b925d411164068269d7b2d29f3301c03dd757876ff" +
			"66b71dda49d2de59d03450451af026798e8f81cd2e333de5cdf4f3e140fdd8ae",
	},
	{
		name:  "Example 17",
		sk:    "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
		pk:    "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
		alpha: "72", // 1 byte
		x:     "68bd9ed75882d52815a97585caf4790a7f6c6b3b7f821c5e259a24b02e502e51",
		ctr:   1,
		h:     "5b659fc3d4e9263fd9a4ed1d022d75eaacc20df5e09f9ea937502396598dc551",
		k: "42589bbf0c485c3c91c1621bb4bfe04aed7be76ee48f9b00793b2342acb9c167" +
			"cab856f9f9d4febc311330c20b0a8afd3743d05433e8be8d32522ecdc16cc5ce",
		u: "1dcb0a4821a2c48bf53548228b7f170962988f6d12f5439f31987ef41f034ab3",
		v: "fd03c0bf498c752161bae4719105a074630a2aa5f200ff7b3995f7bfb1513423",
		pi: "f3141cd382dc42909d19ec5110469e4feae18300e94f304590abdced48aed593" +
			"3bf0864a62558b3ed7f2fea45c92a465" +
			"301b3bbf5e3e54ddf2d935be3b67926da3ef39226bbc355bdc9850112c8f4b02",
		beta: "eb4440665d3891d668e7e0fcaf587f1b4bd7fbfe99d0eb2211ccec90496310eb" +
			"5e33821bc613efb94db5e5b54c70a848a0bef4553a41befc57663b56373a5031",
	},
	{
		name:  "Example 18",
		sk:    "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
		pk:    "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
		alpha: "af82", // 2 bytes
		x:     "909a8b755ed902849023a55b15c23d11ba4d7f4ec5c2f51b1325a181991ea95c",
		ctr:   0,
		h:     "bf4339376f5542811de615e3313d2b36f6f53c0acfebb482159711201192576a",
		k: "38b868c335ccda94a088428cbf3ec8bc7955bfaffe1f3bd2aa2c59fc31a0febc" +
			"59d0e1af3715773ce11b3bbdd7aba8e3505d4b9de6f7e4a96e67e0d6bb6d6c3a",
		u: "2bae73e15a64042fcebf062abe7e432b2eca6744f3e8265bc38e009cd577ecd5",
		v: "88cba1cb0d4f9b649d9a86026b69de076724a93a65c349c988954f0961c5d506",
		pi: "9bc0f79119cc5604bf02d23b4caede71393cedfbb191434dd016d30177ccbf80" +
			"96bb474e53895c362d8628ee9f9ea3c0" +
			"e52c7a5c691b6c18c9979866568add7a2d41b00b05081ed0f58ee5e31b3a970e",
		beta: "645427e5d00c62a23fb703732fa5d892940935942101e456ecca7bb217c61c45" +
			"2118fec1219202a0edcf038bb6373241578be7217ba85a2687f7a0310b2df19f",
	},
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func checkHex(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	if g := hex.EncodeToString(got); g != want {
		t.Errorf("%s = %s\n  want %s", what, g, want)
	}
}

// TestRFC9381Vectors checks every value RFC 9381 Appendix B.3 gives: the
// key (PK, and x), each step of proving (ctr and H of encode_to_curve, k of
// nonce generation, U and V of the challenge, and the proof pi, whose
// challenge and s therefore match), ProofToHash (beta), and Verify (which
// must recompute the same U and V, and give the same beta).
func TestRFC9381Vectors(t *testing.T) {
	for _, tv := range rfc9381Vectors {
		t.Run(tv.name, func(t *testing.T) {
			seed := unhex(t, tv.sk)
			alpha := unhex(t, tv.alpha)

			// Keys: RFC 8032 Section 5.1.5, as RFC 9381 Section 5.5 says.
			priv, err := NewPrivateKey(seed)
			if err != nil {
				t.Fatal(err)
			}
			checkHex(t, "PK", priv.Public().Bytes(), tv.pk)
			xString, _ := expandSecretKey(seed)
			checkHex(t, "x", xString[:], tv.x)
			// Independently: the VRF key is the Ed25519 key of the same seed.
			edPub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
			checkHex(t, "crypto/ed25519 public key", edPub, tv.pk)
			if !bytes.Equal(priv.Seed(), seed) {
				t.Errorf("Seed() = %x, want %x", priv.Seed(), seed)
			}

			// Section 5.4.1.1 on its own: encode_to_curve(PK_string, alpha).
			h, ctr, ok := encodeToCurveTryAndIncrement(unhex(t, tv.pk), alpha)
			if !ok {
				t.Fatal("encode_to_curve failed")
			}
			if ctr != tv.ctr {
				t.Errorf("try_and_increment succeeded on ctr = %d, want %d", ctr, tv.ctr)
			}
			checkHex(t, "H", h.Bytes(), tv.h)

			// Section 5.4.2.2 on its own: k_string from SK and h_string.
			_, nonceKey := expandSecretKey(seed)
			kString := nonceGeneration(&nonceKey, unhex(t, tv.h))
			checkHex(t, "k", kString[:], tv.k)

			// Section 5.1, with what it computed on the way.
			tr := priv.prove(alpha)
			if tr.ctr != tv.ctr {
				t.Errorf("prove: ctr = %d, want %d", tr.ctr, tv.ctr)
			}
			checkHex(t, "prove: H", tr.h.Bytes(), tv.h)
			checkHex(t, "prove: k", tr.kString[:], tv.k)
			checkHex(t, "prove: U = k*B", tr.u.Bytes(), tv.u)
			checkHex(t, "prove: V = k*H", tr.v.Bytes(), tv.v)
			checkHex(t, "pi", tr.pi, tv.pi)
			checkHex(t, "Prove", priv.Prove(alpha), tv.pi)

			// Section 5.4.3 on its own: c from (Y, H, Gamma, U, V) is the c
			// in pi, and s = k + c*x mod q is the s in pi.
			pi := unhex(t, tv.pi)
			c := challengeGeneration(unhex(t, tv.pk), unhex(t, tv.h), pi[:ptLen], unhex(t, tv.u), unhex(t, tv.v))
			checkHex(t, "c", c[:], tv.pi[2*ptLen:2*(ptLen+cLen)])
			k, _ := edwards25519.NewScalar().SetUniformBytes(unhex(t, tv.k))
			s := edwards25519.NewScalar().MultiplyAdd(challengeScalar(c[:]), priv.x, k)
			checkHex(t, "s", s.Bytes(), tv.pi[2*(ptLen+cLen):])
			// And Gamma = x*H.
			gamma := new(edwards25519.Point).ScalarMult(priv.x, h)
			checkHex(t, "Gamma", gamma.Bytes(), tv.pi[:2*ptLen])

			// Section 5.2.
			beta, err := ProofToHash(pi)
			if err != nil {
				t.Fatalf("ProofToHash: %v", err)
			}
			checkHex(t, "beta", beta, tv.beta)

			// Section 5.3, from the encoded public key only.
			pub, err := ParsePublicKey(unhex(t, tv.pk))
			if err != nil {
				t.Fatalf("ParsePublicKey: %v", err)
			}
			if !pub.Equal(priv.Public()) {
				t.Error("parsed public key is not Equal to Public()")
			}
			vbeta, u, v, err := pub.verify(alpha, pi)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			checkHex(t, "verify: U = s*B - c*Y", u.Bytes(), tv.u)
			checkHex(t, "verify: V = s*H - c*Gamma", v.Bytes(), tv.v)
			checkHex(t, "verify: beta", vbeta, tv.beta)
			vbeta, err = pub.Verify(alpha, pi)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			checkHex(t, "Verify", vbeta, tv.beta)
		})
	}
}

// TestRFC9381VectorsRefuseOtherInputs: each example's proof is refused for
// the other examples' alphas and keys.
func TestRFC9381VectorsRefuseOtherInputs(t *testing.T) {
	for i, tv := range rfc9381Vectors {
		pi := unhex(t, tv.pi)
		for j, other := range rfc9381Vectors {
			if i == j {
				continue
			}
			pub, err := ParsePublicKey(unhex(t, tv.pk))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pub.Verify(unhex(t, other.alpha), pi); !errors.Is(err, ErrInvalidProof) {
				t.Errorf("%s proof with the alpha of %s: err = %v, want ErrInvalidProof", tv.name, other.name, err)
			}
			otherPub, err := ParsePublicKey(unhex(t, other.pk))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := otherPub.Verify(unhex(t, tv.alpha), pi); !errors.Is(err, ErrInvalidProof) {
				t.Errorf("%s proof under the key of %s: err = %v, want ErrInvalidProof", tv.name, other.name, err)
			}
		}
	}
}
