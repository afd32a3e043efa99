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
package ciphersuite

// SKELETON: the API below is fixed (other packages code against it); the
// bodies are being filled in.

import (
	"errors"
	"io"
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
	errTODO       = errors.New("ciphersuite: not implemented yet")
)

// Suite is one cipher suite. Suites are immutable and safe for concurrent use.
type Suite struct {
	id ID
}

// Lookup returns the suite with the given code point, or ErrUnsupportedSuite.
func Lookup(id ID) (*Suite, error) { return nil, errTODO }

// Supported lists every suite Lookup accepts.
func Supported() []ID { return nil }

func (s *Suite) ID() ID         { return s.id }
func (s *Suite) String() string { return "" }

// Nh is the hash (and KDF.Nh) output size; Nk and Nn the AEAD key and nonce sizes.
func (s *Suite) Nh() int { return 0 }
func (s *Suite) Nk() int { return 0 }
func (s *Suite) Nn() int { return 0 }

// Hash returns the suite hash of data.
func (s *Suite) Hash(data []byte) []byte { return nil }

// KDFExtract and KDFExpand are the HKDF functions of the suite's KDF.
func (s *Suite) KDFExtract(salt, ikm []byte) []byte            { return nil }
func (s *Suite) KDFExpand(prk, info []byte, length int) []byte { return nil }

// ExpandWithLabel, DeriveSecret (§8) and DeriveTreeSecret (§9).
func (s *Suite) ExpandWithLabel(secret []byte, label string, context []byte, length int) []byte {
	return nil
}
func (s *Suite) DeriveSecret(secret []byte, label string) []byte { return nil }
func (s *Suite) DeriveTreeSecret(secret []byte, label string, generation uint32, length int) []byte {
	return nil
}

// RefHash (§5.2).
func (s *Suite) RefHash(label string, value []byte) []byte { return nil }

// MAC is the suite's HMAC, used for the membership tag and confirmation tag.
func (s *Suite) MAC(key, data []byte) []byte { return nil }

// AEADSeal and AEADOpen use the suite's AEAD. Open returns ErrDecrypt on
// failure.
func (s *Suite) AEADSeal(key, nonce, aad, plaintext []byte) ([]byte, error) { return nil, errTODO }
func (s *Suite) AEADOpen(key, nonce, aad, ciphertext []byte) ([]byte, error) {
	return nil, errTODO
}

// Signer holds a parsed signature private key.
type Signer interface {
	// Public returns the SignaturePublicKey bytes.
	Public() []byte
	// SignWithLabel signs SignContent{"MLS 1.0 "+label, content} (§5.1.2).
	SignWithLabel(label string, content []byte) ([]byte, error)
}

// NewSigner parses a signature private key in the vectors' encoding.
func (s *Suite) NewSigner(priv []byte) (Signer, error) { return nil, errTODO }

// GenerateSigner makes a fresh signature key pair and returns the signer and
// the private key bytes (for persisting).
func (s *Suite) GenerateSigner(rand io.Reader) (Signer, []byte, error) { return nil, nil, errTODO }

// VerifyWithLabel checks a signature made by SignWithLabel; it returns
// ErrVerify (wrapped) if the signature is bad or the key does not parse.
func (s *Suite) VerifyWithLabel(pub []byte, label string, content, signature []byte) error {
	return errTODO
}

// EncryptWithLabel and DecryptWithLabel (§5.1.3): HPKE base mode with
// info = EncryptContext{"MLS 1.0 "+label, context} and empty aad.
func (s *Suite) EncryptWithLabel(pub []byte, label string, context, plaintext []byte) (kemOutput, ciphertext []byte, err error) {
	return nil, nil, errTODO
}
func (s *Suite) DecryptWithLabel(priv []byte, label string, context, kemOutput, ciphertext []byte) ([]byte, error) {
	return nil, errTODO
}

// HPKEExport sets up an HPKE base-mode sender to pub with the given info and
// exports length bytes under exporterContext (used by external commits,
// §12.4.3.2). HPKEExportOpen is the receiver side.
func (s *Suite) HPKEExport(pub, info, exporterContext []byte, length int) (kemOutput, secret []byte, err error) {
	return nil, nil, errTODO
}
func (s *Suite) HPKEExportOpen(priv, kemOutput, info, exporterContext []byte, length int) ([]byte, error) {
	return nil, errTODO
}

// DeriveKeyPair is HPKE's DeriveKeyPair(ikm) for the suite's KEM, returning
// the private and public key bytes (§4 of RFC 9180; MLS uses it for node
// keys and external_pub).
func (s *Suite) DeriveKeyPair(ikm []byte) (priv, pub []byte, err error) { return nil, nil, errTODO }

// GenerateKeyPair makes a fresh HPKE key pair (init keys, encryption keys).
func (s *Suite) GenerateKeyPair(rand io.Reader) (priv, pub []byte, err error) {
	return nil, nil, errTODO
}

// RandomBytes returns n bytes from crypto/rand.
func (s *Suite) RandomBytes(n int) []byte { return nil }
