// Package ciphersuite provides the MLS cipher suites of RFC 9420 §17.1 and the
// labelled primitives built on them (§5.1, §8): RefHash, ExpandWithLabel,
// DeriveSecret, DeriveTreeSecret, SignWithLabel/VerifyWithLabel and
// EncryptWithLabel/DecryptWithLabel, plus the HPKE and AEAD operations the
// rest of MLS needs.
//
// Keys cross this API as bytes in the encodings MLS puts on the wire
// (SignaturePublicKey, HPKEPublicKey) and the private-key encodings the
// official test vectors use (an Ed25519/Ed448 seed, a raw ECDSA scalar, a raw
// HPKE KEM private key). Signer caches a parsed signing key, since signing is
// on the hot path of every handshake message.
//
// Suites 1, 2, 3, 5 and 7 and the X-Wing suite use only the standard library
// (crypto/hpke, crypto/ecdsa, crypto/ed25519, crypto/hkdf) and
// golang.org/x/crypto; suites 4 and 6 (X448 and Ed448) use
// github.com/cloudflare/circl, since the standard library has neither curve.
package ciphersuite

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/parleychat/parley/mls/codec"
	"golang.org/x/crypto/chacha20poly1305"
)

// ID is a cipher suite's IANA code point.
type ID uint16

const (
	MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519        ID = 0x0001
	MLS_128_DHKEMP256_AES128GCM_SHA256_P256             ID = 0x0002
	MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519 ID = 0x0003
	MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448            ID = 0x0004
	MLS_256_DHKEMP521_AES256GCM_SHA512_P521             ID = 0x0005
	MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448     ID = 0x0006
	MLS_256_DHKEMP384_AES256GCM_SHA384_P384             ID = 0x0007
	// MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519 is the X-Wing hybrid
	// post-quantum suite (draft-ietf-mls-pq-ciphersuites, TBD1) on a
	// private-use code point until IANA assigns one.
	MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519 ID = 0xF001
)

var (
	// ErrUnsupportedSuite is returned by Lookup for a code point this
	// package does not implement.
	ErrUnsupportedSuite = errors.New("ciphersuite: unsupported cipher suite")
	// ErrVerify means a signature did not verify.
	ErrVerify = errors.New("ciphersuite: signature verification failed")
	// ErrDecrypt means an AEAD or HPKE open failed.
	ErrDecrypt = errors.New("ciphersuite: decryption failed")
	// ErrInvalidKey means key bytes did not parse for the suite.
	ErrInvalidKey = errors.New("ciphersuite: invalid key")
	// ErrInvalidLength means a requested output length, or the length of a
	// nonce, is outside what the primitive allows.
	ErrInvalidLength = errors.New("ciphersuite: invalid length")
)

// Suite is one cipher suite. Suites are immutable and safe for concurrent use.
type Suite struct {
	id      ID
	name    string
	newHash func() hash.Hash
	nh      int
	nk      int
	nn      int
	newAEAD func(key []byte) (cipher.AEAD, error)
	kem     kem
	sig     signatureScheme
}

var suites = []*Suite{
	{
		id: MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, name: "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519",
		newHash: sha256.New, nh: 32, nk: 16, nn: 12, newAEAD: newGCM,
		kem: stdKEM{kem: hpke.DHKEM(x25519()), kdf: hpke.HKDFSHA256(), aead: hpke.AES128GCM()},
		sig: ed25519Scheme{},
	},
	{
		id: MLS_128_DHKEMP256_AES128GCM_SHA256_P256, name: "MLS_128_DHKEMP256_AES128GCM_SHA256_P256",
		newHash: sha256.New, nh: 32, nk: 16, nn: 12, newAEAD: newGCM,
		kem: stdKEM{kem: hpke.DHKEM(p256()), kdf: hpke.HKDFSHA256(), aead: hpke.AES128GCM()},
		sig: ecdsaP256,
	},
	{
		id: MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519, name: "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519",
		newHash: sha256.New, nh: 32, nk: 32, nn: 12, newAEAD: chacha20poly1305.New,
		kem: stdKEM{kem: hpke.DHKEM(x25519()), kdf: hpke.HKDFSHA256(), aead: hpke.ChaCha20Poly1305()},
		sig: ed25519Scheme{},
	},
	{
		id: MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448, name: "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448",
		newHash: sha512.New, nh: 64, nk: 32, nn: 12, newAEAD: newGCM,
		kem: newX448KEM(false), sig: ed448Scheme{},
	},
	{
		id: MLS_256_DHKEMP521_AES256GCM_SHA512_P521, name: "MLS_256_DHKEMP521_AES256GCM_SHA512_P521",
		newHash: sha512.New, nh: 64, nk: 32, nn: 12, newAEAD: newGCM,
		kem: stdKEM{kem: hpke.DHKEM(p521()), kdf: hpke.HKDFSHA512(), aead: hpke.AES256GCM()},
		sig: ecdsaP521,
	},
	{
		id: MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448, name: "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448",
		newHash: sha512.New, nh: 64, nk: 32, nn: 12, newAEAD: chacha20poly1305.New,
		kem: newX448KEM(true), sig: ed448Scheme{},
	},
	{
		id: MLS_256_DHKEMP384_AES256GCM_SHA384_P384, name: "MLS_256_DHKEMP384_AES256GCM_SHA384_P384",
		newHash: sha512.New384, nh: 48, nk: 32, nn: 12, newAEAD: newGCM,
		kem: stdKEM{kem: hpke.DHKEM(p384()), kdf: hpke.HKDFSHA384(), aead: hpke.AES256GCM()},
		sig: ecdsaP384,
	},
	{
		id: MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519, name: "MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519",
		newHash: sha256.New, nh: 32, nk: 16, nn: 12, newAEAD: newGCM,
		kem: stdKEM{kem: hpke.MLKEM768X25519(), kdf: hpke.HKDFSHA256(), aead: hpke.AES128GCM()},
		sig: ed25519Scheme{},
	},
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Lookup returns the suite with the given code point, or ErrUnsupportedSuite.
func Lookup(id ID) (*Suite, error) {
	for _, s := range suites {
		if s.id == id {
			return s, nil
		}
	}
	return nil, fmt.Errorf("%w: 0x%04x", ErrUnsupportedSuite, uint16(id))
}

// Supported lists every suite Lookup accepts, in code-point order.
func Supported() []ID {
	ids := make([]ID, len(suites))
	for i, s := range suites {
		ids[i] = s.id
	}
	return ids
}

// ID returns the suite's code point.
func (s *Suite) ID() ID { return s.id }

// String returns the suite's IANA name.
func (s *Suite) String() string { return s.name }

// Nh is the hash (and KDF.Nh) output size; Nk and Nn the AEAD key and nonce sizes.
func (s *Suite) Nh() int { return s.nh }
func (s *Suite) Nk() int { return s.nk }
func (s *Suite) Nn() int { return s.nn }

// Hash returns the suite hash of data.
func (s *Suite) Hash(data []byte) []byte {
	h := s.newHash()
	h.Write(data)
	return h.Sum(nil)
}

// KDFExtract and KDFExpand are the HKDF functions of the suite's KDF.
// KDFExpand returns nil if length is negative or above 255*Nh, the most
// HKDF can produce; callers pass lengths fixed by the protocol.
func (s *Suite) KDFExtract(salt, ikm []byte) []byte {
	prk, err := hkdf.Extract(s.newHash, ikm, salt)
	if err != nil {
		return nil
	}
	return prk
}

func (s *Suite) KDFExpand(prk, info []byte, length int) []byte {
	if length < 0 || length > 255*s.nh {
		return nil
	}
	out, err := hkdf.Expand(s.newHash, prk, string(info), length)
	if err != nil {
		return nil
	}
	return out
}

// ExpandWithLabel, DeriveSecret (§8) and DeriveTreeSecret (§9).
//
// ExpandWithLabel(Secret, Label, Context, Length) =
// KDF.Expand(Secret, KDFLabel, Length) with KDFLabel{uint16 length;
// opaque label<V> = "MLS 1.0 " + Label; opaque context<V>}. It returns nil
// if length does not fit a uint16 or exceeds what HKDF can produce.
func (s *Suite) ExpandWithLabel(secret []byte, label string, context []byte, length int) []byte {
	if length < 0 || length > 0xffff || len(context) > codec.MaxVarint-64 || len(label) > 1<<16 {
		return nil
	}
	w := codec.NewWriter(make([]byte, 0, 2+1+8+len(label)+4+len(context)))
	w.U16(uint16(length))
	w.Varint(len(mlsPrefix) + len(label))
	w.Raw([]byte(mlsPrefix))
	w.Raw([]byte(label))
	w.Opaque(context)
	return s.KDFExpand(secret, w.Bytes(), length)
}

// DeriveSecret(Secret, Label) = ExpandWithLabel(Secret, Label, "", Nh).
func (s *Suite) DeriveSecret(secret []byte, label string) []byte {
	return s.ExpandWithLabel(secret, label, nil, s.nh)
}

// DeriveTreeSecret(Secret, Label, Generation, Length) =
// ExpandWithLabel(Secret, Label, uint32 Generation, Length).
func (s *Suite) DeriveTreeSecret(secret []byte, label string, generation uint32, length int) []byte {
	var ctx [4]byte
	ctx[0], ctx[1], ctx[2], ctx[3] = byte(generation>>24), byte(generation>>16), byte(generation>>8), byte(generation)
	return s.ExpandWithLabel(secret, label, ctx[:], length)
}

// RefHash (§5.2) is Hash(RefHashInput{opaque label<V>; opaque value<V>}).
// The label is used as given (e.g. "MLS 1.0 KeyPackage Reference").
func (s *Suite) RefHash(label string, value []byte) []byte {
	if len(label) > codec.MaxVarint || len(value) > codec.MaxVarint {
		return nil
	}
	w := codec.NewWriter(make([]byte, 0, 8+len(label)+len(value)))
	w.Opaque([]byte(label))
	w.Opaque(value)
	return s.Hash(w.Bytes())
}

// MAC is the suite's HMAC, used for the membership tag and confirmation tag.
func (s *Suite) MAC(key, data []byte) []byte {
	m := hmac.New(s.newHash, key)
	m.Write(data)
	return m.Sum(nil)
}

// AEADSeal and AEADOpen use the suite's AEAD. Open returns ErrDecrypt on
// failure; both return ErrInvalidKey or ErrInvalidLength for a key or nonce
// of the wrong size.
func (s *Suite) AEADSeal(key, nonce, aad, plaintext []byte) ([]byte, error) {
	aead, err := s.aead(key, nonce)
	if err != nil {
		return nil, err
	}
	return aead.Seal(nil, nonce, plaintext, aad), nil
}

func (s *Suite) AEADOpen(key, nonce, aad, ciphertext []byte) ([]byte, error) {
	aead, err := s.aead(key, nonce)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, nonce, ciphertext, aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

func (s *Suite) aead(key, nonce []byte) (cipher.AEAD, error) {
	if len(key) != s.nk {
		return nil, fmt.Errorf("%w: AEAD key is %d bytes, want %d", ErrInvalidKey, len(key), s.nk)
	}
	if len(nonce) != s.nn {
		return nil, fmt.Errorf("%w: AEAD nonce is %d bytes, want %d", ErrInvalidLength, len(nonce), s.nn)
	}
	aead, err := s.newAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	return aead, nil
}

// mlsPrefix is prepended to every label of §5.1.2, §5.1.3 and §8.
const mlsPrefix = "MLS 1.0 "

// labelled encodes the two-field structs SignContent (§5.1.2) and
// EncryptContext (§5.1.3): opaque label<V> = "MLS 1.0 " + label, then
// opaque content<V>.
func labelled(label string, content []byte) ([]byte, error) {
	if len(mlsPrefix)+len(label) > codec.MaxVarint || len(content) > codec.MaxVarint {
		return nil, fmt.Errorf("%w: labelled content too long", ErrInvalidLength)
	}
	w := codec.NewWriter(make([]byte, 0, 8+len(mlsPrefix)+len(label)+len(content)))
	w.Varint(len(mlsPrefix) + len(label))
	w.Raw([]byte(mlsPrefix))
	w.Raw([]byte(label))
	w.Opaque(content)
	return w.Bytes(), nil
}

// Signer holds a parsed signature private key.
type Signer interface {
	// Public returns the SignaturePublicKey bytes.
	Public() []byte
	// SignWithLabel signs SignContent{"MLS 1.0 "+label, content} (§5.1.2).
	SignWithLabel(label string, content []byte) ([]byte, error)
}

// NewSigner parses a signature private key in the vectors' encoding.
func (s *Suite) NewSigner(priv []byte) (Signer, error) {
	sg, err := s.sig.newSigner(priv)
	if err != nil {
		return nil, fmt.Errorf("%s signer: %w", s.name, err)
	}
	return sg, nil
}

// GenerateSigner makes a fresh signature key pair and returns the signer and
// the private key bytes (for persisting). A nil rand means crypto/rand.
func (s *Suite) GenerateSigner(rand io.Reader) (Signer, []byte, error) {
	if rand == nil {
		rand = cryptoRand
	}
	return s.sig.generate(rand)
}

// VerifyWithLabel checks a signature made by SignWithLabel; it returns
// ErrVerify (wrapped) if the signature is bad or the key does not parse.
func (s *Suite) VerifyWithLabel(pub []byte, label string, content, signature []byte) error {
	msg, err := labelled(label, content)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrVerify, err)
	}
	if err := s.sig.verify(pub, msg, signature); err != nil {
		return fmt.Errorf("%w: %w", ErrVerify, err)
	}
	return nil
}

// EncryptWithLabel and DecryptWithLabel (§5.1.3): HPKE base mode with
// info = EncryptContext{"MLS 1.0 "+label, context} and empty aad.
func (s *Suite) EncryptWithLabel(pub []byte, label string, context, plaintext []byte) (kemOutput, ciphertext []byte, err error) {
	info, err := labelled(label, context)
	if err != nil {
		return nil, nil, err
	}
	enc, ctx, err := s.kem.setupSender(pub, info)
	if err != nil {
		return nil, nil, fmt.Errorf("EncryptWithLabel: %w", err)
	}
	ct, err := ctx.seal(plaintext)
	if err != nil {
		return nil, nil, fmt.Errorf("EncryptWithLabel: %w", err)
	}
	return enc, ct, nil
}

func (s *Suite) DecryptWithLabel(priv []byte, label string, context, kemOutput, ciphertext []byte) ([]byte, error) {
	info, err := labelled(label, context)
	if err != nil {
		return nil, err
	}
	ctx, err := s.kem.setupReceiver(priv, kemOutput, info)
	if err != nil {
		return nil, fmt.Errorf("DecryptWithLabel: %w", err)
	}
	pt, err := ctx.open(ciphertext)
	if err != nil {
		return nil, fmt.Errorf("DecryptWithLabel: %w", ErrDecrypt)
	}
	return pt, nil
}

// HPKEExport sets up an HPKE base-mode sender to pub with the given info and
// exports length bytes under exporterContext (used by external commits,
// §12.4.3.2). HPKEExportOpen is the receiver side.
func (s *Suite) HPKEExport(pub, info, exporterContext []byte, length int) (kemOutput, secret []byte, err error) {
	if length < 0 || length > 255*s.nh || length > 0xffff {
		return nil, nil, fmt.Errorf("HPKE export: %w: %d bytes", ErrInvalidLength, length)
	}
	enc, ctx, err := s.kem.setupSender(pub, info)
	if err != nil {
		return nil, nil, fmt.Errorf("HPKE export: %w", err)
	}
	out, err := ctx.export(exporterContext, length)
	if err != nil {
		return nil, nil, fmt.Errorf("HPKE export: %w", err)
	}
	return enc, out, nil
}

func (s *Suite) HPKEExportOpen(priv, kemOutput, info, exporterContext []byte, length int) ([]byte, error) {
	if length < 0 || length > 255*s.nh || length > 0xffff {
		return nil, fmt.Errorf("HPKE export: %w: %d bytes", ErrInvalidLength, length)
	}
	ctx, err := s.kem.setupReceiver(priv, kemOutput, info)
	if err != nil {
		return nil, fmt.Errorf("HPKE export: %w", err)
	}
	out, err := ctx.export(exporterContext, length)
	if err != nil {
		return nil, fmt.Errorf("HPKE export: %w", err)
	}
	return out, nil
}

// DeriveKeyPair is HPKE's DeriveKeyPair(ikm) for the suite's KEM, returning
// the private and public key bytes (§4 of RFC 9180; MLS uses it for node
// keys and external_pub).
func (s *Suite) DeriveKeyPair(ikm []byte) (priv, pub []byte, err error) {
	priv, pub, err = s.kem.derive(ikm)
	if err != nil {
		return nil, nil, fmt.Errorf("DeriveKeyPair: %w", err)
	}
	return priv, pub, nil
}

// GenerateKeyPair makes a fresh HPKE key pair (init keys, encryption keys):
// it reads Nh bytes of seed from rand (nil means crypto/rand) and derives
// the pair from them, so tests can make keys deterministic.
func (s *Suite) GenerateKeyPair(rand io.Reader) (priv, pub []byte, err error) {
	if rand == nil {
		rand = cryptoRand
	}
	seed := make([]byte, s.kem.seedSize())
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, nil, fmt.Errorf("GenerateKeyPair: %w", err)
	}
	return s.DeriveKeyPair(seed)
}

// HPKEPublicKey returns the public key of an HPKE private key in the
// suite's encoding, or ErrInvalidKey.
func (s *Suite) HPKEPublicKey(priv []byte) ([]byte, error) {
	pub, err := s.kem.public(priv)
	if err != nil {
		return nil, err
	}
	return pub, nil
}

// RandomBytes returns n bytes from crypto/rand (nil if n is negative).
func (s *Suite) RandomBytes(n int) []byte {
	if n < 0 {
		return nil
	}
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand crashes the program instead)
	return b
}

var cryptoRand = rand.Reader
