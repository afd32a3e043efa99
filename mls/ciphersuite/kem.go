package ciphersuite

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"

	circlhpke "github.com/cloudflare/circl/hpke"
)

// kem is the HPKE half of a suite: its KEM together with the suite's HPKE
// KDF and AEAD (RFC 9180 base mode only; MLS uses nothing else).
type kem interface {
	// seedSize is how many random bytes GenerateKeyPair feeds DeriveKeyPair.
	seedSize() int
	derive(ikm []byte) (priv, pub []byte, err error)
	public(priv []byte) ([]byte, error)
	setupSender(pub, info []byte) (enc []byte, ctx hpkeContext, err error)
	setupReceiver(priv, enc, info []byte) (hpkeContext, error)
}

// hpkeContext is a single-use HPKE context: MLS seals or opens at most once
// per context, always with empty aad (§5.1.3), or exports.
type hpkeContext interface {
	seal(plaintext []byte) ([]byte, error)
	open(ciphertext []byte) ([]byte, error)
	export(exporterContext []byte, length int) ([]byte, error)
}

func x25519() ecdh.Curve { return ecdh.X25519() }
func p256() ecdh.Curve   { return ecdh.P256() }
func p384() ecdh.Curve   { return ecdh.P384() }
func p521() ecdh.Curve   { return ecdh.P521() }

// stdKEM is an HPKE suite from crypto/hpke.
type stdKEM struct {
	kem  hpke.KEM
	kdf  hpke.KDF
	aead hpke.AEAD
}

func (k stdKEM) seedSize() int { return 64 }

func (k stdKEM) derive(ikm []byte) (priv, pub []byte, err error) {
	sk, err := k.kem.DeriveKeyPair(ikm)
	if err != nil {
		return nil, nil, err
	}
	priv, err = sk.Bytes()
	if err != nil {
		return nil, nil, err
	}
	return priv, sk.PublicKey().Bytes(), nil
}

func (k stdKEM) public(priv []byte) ([]byte, error) {
	sk, err := k.newPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE private key: %v", ErrInvalidKey, err)
	}
	return sk.PublicKey().Bytes(), nil
}

func (k stdKEM) setupSender(pub, info []byte) ([]byte, hpkeContext, error) {
	pk, err := k.kem.NewPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: HPKE public key: %v", ErrInvalidKey, err)
	}
	enc, s, err := hpke.NewSender(pk, k.kdf, k.aead, info)
	if err != nil {
		return nil, nil, err
	}
	return enc, stdContext{sender: s}, nil
}

// nistScalarSizes are the private key lengths of the NIST DHKEMs, by KEM
// ID. Some encoders drop leading zero bytes of the scalar; they are put
// back before parsing.
var nistScalarSizes = map[uint16]int{0x0010: 32, 0x0011: 48, 0x0012: 66}

func (k stdKEM) newPrivateKey(priv []byte) (hpke.PrivateKey, error) {
	if size := nistScalarSizes[k.kem.ID()]; len(priv) < size {
		priv = append(make([]byte, size-len(priv), size), priv...)
	}
	return k.kem.NewPrivateKey(priv)
}

func (k stdKEM) setupReceiver(priv, enc, info []byte) (hpkeContext, error) {
	sk, err := k.newPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE private key: %v", ErrInvalidKey, err)
	}
	r, err := hpke.NewRecipient(enc, sk, k.kdf, k.aead, info)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	return stdContext{recipient: r}, nil
}

type stdContext struct {
	sender    *hpke.Sender
	recipient *hpke.Recipient
}

var errWrongSide = errors.New("ciphersuite: HPKE context used on the wrong side")

func (c stdContext) seal(pt []byte) ([]byte, error) {
	if c.sender == nil {
		return nil, errWrongSide
	}
	return c.sender.Seal(nil, pt)
}

func (c stdContext) open(ct []byte) ([]byte, error) {
	if c.recipient == nil {
		return nil, errWrongSide
	}
	return c.recipient.Open(nil, ct)
}

func (c stdContext) export(exporterContext []byte, length int) ([]byte, error) {
	if c.sender != nil {
		return c.sender.Export(string(exporterContext), length)
	}
	return c.recipient.Export(string(exporterContext), length)
}

// x448KEM is DHKEM(X448, HKDF-SHA512) from circl, with HKDF-SHA512 and
// AES-256-GCM or ChaCha20Poly1305 (suites 4 and 6).
type x448KEM struct {
	suite circlhpke.Suite
}

const (
	x448KEMID = 0x0021
	x448Size  = 56
)

func newX448KEM(chacha bool) x448KEM {
	aead := circlhpke.AEAD_AES256GCM
	if chacha {
		aead = circlhpke.AEAD_ChaCha20Poly1305
	}
	return x448KEM{suite: circlhpke.NewSuite(circlhpke.KEM_X448_HKDF_SHA512, circlhpke.KDF_HKDF_SHA512, aead)}
}

func (k x448KEM) seedSize() int { return 64 }

// derive is DeriveKeyPair of RFC 9180 §7.1.3 for X448. circl's own
// DeriveKeyPair insists on a 56-byte seed, but MLS feeds it Nh = 64-byte
// secrets, and RFC 9180 takes ikm of any length, so it is done here:
//
//	dkp_prk = LabeledExtract("", "dkp_prk", ikm)
//	sk = LabeledExpand(dkp_prk, "sk", "", Nsk)
func (k x448KEM) derive(ikm []byte) (priv, pub []byte, err error) {
	suiteID := []byte{'K', 'E', 'M', x448KEMID >> 8, x448KEMID & 0xff}
	labeledIKM := append(append(append([]byte("HPKE-v1"), suiteID...), "dkp_prk"...), ikm...)
	prk, err := hkdf.Extract(sha512.New, labeledIKM, nil)
	if err != nil {
		return nil, nil, err
	}
	info := binary.BigEndian.AppendUint16(nil, x448Size)
	info = append(append(append(info, "HPKE-v1"...), suiteID...), "sk"...)
	sk, err := hkdf.Expand(sha512.New, prk, string(info), x448Size)
	if err != nil {
		return nil, nil, err
	}
	pub, err = k.public(sk)
	if err != nil {
		return nil, nil, err
	}
	return sk, pub, nil
}

func (k x448KEM) public(priv []byte) ([]byte, error) {
	sk, err := circlhpke.KEM_X448_HKDF_SHA512.Scheme().UnmarshalBinaryPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: X448 private key: %v", ErrInvalidKey, err)
	}
	return sk.Public().MarshalBinary()
}

func (k x448KEM) setupSender(pub, info []byte) ([]byte, hpkeContext, error) {
	pk, err := circlhpke.KEM_X448_HKDF_SHA512.Scheme().UnmarshalBinaryPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: X448 public key: %v", ErrInvalidKey, err)
	}
	s, err := k.suite.NewSender(pk, info)
	if err != nil {
		return nil, nil, err
	}
	enc, sealer, err := s.Setup(cryptoRand)
	if err != nil {
		return nil, nil, err
	}
	return enc, circlContext{sealer: sealer}, nil
}

func (k x448KEM) setupReceiver(priv, enc, info []byte) (hpkeContext, error) {
	sk, err := circlhpke.KEM_X448_HKDF_SHA512.Scheme().UnmarshalBinaryPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: X448 private key: %v", ErrInvalidKey, err)
	}
	if len(enc) != x448Size {
		return nil, fmt.Errorf("%w: X448 kem_output is %d bytes", ErrDecrypt, len(enc))
	}
	r, err := k.suite.NewReceiver(sk, info)
	if err != nil {
		return nil, err
	}
	opener, err := r.Setup(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	return circlContext{opener: opener}, nil
}

type circlContext struct {
	sealer circlhpke.Sealer
	opener circlhpke.Opener
}

func (c circlContext) seal(pt []byte) ([]byte, error) {
	if c.sealer == nil {
		return nil, errWrongSide
	}
	return c.sealer.Seal(pt, nil)
}

func (c circlContext) open(ct []byte) ([]byte, error) {
	if c.opener == nil {
		return nil, errWrongSide
	}
	return c.opener.Open(ct, nil)
}

// export checks length itself because circl panics above 255*Nh.
func (c circlContext) export(exporterContext []byte, length int) ([]byte, error) {
	if length < 0 || length > 255*64 {
		return nil, ErrInvalidLength
	}
	if c.sealer != nil {
		return c.sealer.Export(exporterContext, uint(length)), nil
	}
	return c.opener.Export(exporterContext, uint(length)), nil
}
