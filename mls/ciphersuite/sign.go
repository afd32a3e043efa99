package ciphersuite

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/cloudflare/circl/sign/ed448"
)

// signatureScheme is the signature half of a suite (§5.1.1).
type signatureScheme interface {
	newSigner(priv []byte) (Signer, error)
	generate(rand io.Reader) (Signer, []byte, error)
	verify(pub, msg, sig []byte) error
}

var errBadSignature = errors.New("bad signature")

// ed25519Scheme: private keys are 32-byte seeds (RFC 8032).
type ed25519Scheme struct{}

type ed25519Signer struct {
	// key is kept for the life of the Signer: crypto/ed25519 caches the
	// expanded key by the address of this slice, so reusing it makes every
	// signature after the first skip the key expansion.
	key ed25519.PrivateKey
	pub []byte
}

func (ed25519Scheme) newSigner(priv []byte) (Signer, error) {
	if len(priv) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: Ed25519 private key is %d bytes, want %d", ErrInvalidKey, len(priv), ed25519.SeedSize)
	}
	key := ed25519.NewKeyFromSeed(priv)
	return &ed25519Signer{key: key, pub: append([]byte(nil), key[32:]...)}, nil
}

func (e ed25519Scheme) generate(rand io.Reader) (Signer, []byte, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, nil, fmt.Errorf("generate Ed25519 key: %w", err)
	}
	s, err := e.newSigner(seed)
	return s, seed, err
}

func (ed25519Scheme) verify(pub, msg, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: Ed25519 public key is %d bytes", ErrInvalidKey, len(pub))
	}
	if ed25519HasSmallOrder(pub) {
		return fmt.Errorf("%w: Ed25519 public key has small order", ErrInvalidKey)
	}
	if !ed25519.Verify(ed25519.PublicKey(pub), msg, sig) {
		return errBadSignature
	}
	return nil
}

func (s *ed25519Signer) Public() []byte { return append([]byte(nil), s.pub...) }

func (s *ed25519Signer) SignWithLabel(label string, content []byte) ([]byte, error) {
	msg, err := labelled(label, content)
	if err != nil {
		return nil, err
	}
	return ed25519.Sign(s.key, msg), nil
}

// ecdsaScheme: private keys are raw big-endian scalars, public keys
// uncompressed points, signatures DER-encoded (§5.1.1 and the vectors).
type ecdsaScheme struct {
	curve   elliptic.Curve
	newHash func() hash.Hash
	hash    crypto.Hash
}

var (
	ecdsaP256 = ecdsaScheme{elliptic.P256(), sha256.New, crypto.SHA256}
	ecdsaP384 = ecdsaScheme{elliptic.P384(), sha512.New384, crypto.SHA384}
	ecdsaP521 = ecdsaScheme{elliptic.P521(), sha512.New, crypto.SHA512}
)

type ecdsaSigner struct {
	scheme ecdsaScheme
	key    *ecdsa.PrivateKey
	pub    []byte
}

func (e ecdsaScheme) newSigner(priv []byte) (Signer, error) {
	// Some encoders drop leading zero bytes of the scalar (a P-521 key is
	// then 65 bytes, not 66); restore the fixed-length form.
	if size := (e.curve.Params().BitSize + 7) / 8; len(priv) < size {
		priv = append(make([]byte, size-len(priv), size), priv...)
	}
	key, err := ecdsa.ParseRawPrivateKey(e.curve, priv)
	if err != nil {
		return nil, fmt.Errorf("%w: ECDSA private key: %v", ErrInvalidKey, err)
	}
	pub, err := key.PublicKey.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: ECDSA public key: %v", ErrInvalidKey, err)
	}
	return &ecdsaSigner{scheme: e, key: key, pub: pub}, nil
}

func (e ecdsaScheme) generate(rand io.Reader) (Signer, []byte, error) {
	key, err := ecdsa.GenerateKey(e.curve, rand)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ECDSA key: %w", err)
	}
	priv, err := key.Bytes()
	if err != nil {
		return nil, nil, fmt.Errorf("generate ECDSA key: %w", err)
	}
	s, err := e.newSigner(priv)
	return s, priv, err
}

func (e ecdsaScheme) digest(msg []byte) []byte {
	h := e.newHash()
	h.Write(msg)
	return h.Sum(nil)
}

func (e ecdsaScheme) verify(pub, msg, sig []byte) error {
	key, err := ecdsa.ParseUncompressedPublicKey(e.curve, pub)
	if err != nil {
		return fmt.Errorf("%w: ECDSA public key: %v", ErrInvalidKey, err)
	}
	if !ecdsa.VerifyASN1(key, e.digest(msg), sig) {
		return errBadSignature
	}
	return nil
}

func (s *ecdsaSigner) Public() []byte { return append([]byte(nil), s.pub...) }

func (s *ecdsaSigner) SignWithLabel(label string, content []byte) ([]byte, error) {
	msg, err := labelled(label, content)
	if err != nil {
		return nil, err
	}
	sig, err := ecdsa.SignASN1(cryptoRand, s.key, s.scheme.digest(msg))
	if err != nil {
		return nil, fmt.Errorf("ECDSA sign: %w", err)
	}
	return sig, nil
}

// ed448Scheme: pure Ed448 with an empty context (RFC 8032), private keys
// are 57-byte seeds.
type ed448Scheme struct{}

type ed448Signer struct {
	key ed448.PrivateKey
	pub []byte
}

func (ed448Scheme) newSigner(priv []byte) (Signer, error) {
	if len(priv) != ed448.SeedSize {
		return nil, fmt.Errorf("%w: Ed448 private key is %d bytes, want %d", ErrInvalidKey, len(priv), ed448.SeedSize)
	}
	key := ed448.NewKeyFromSeed(priv)
	pub := key.Public().(ed448.PublicKey)
	return &ed448Signer{key: key, pub: append([]byte(nil), pub...)}, nil
}

func (e ed448Scheme) generate(rand io.Reader) (Signer, []byte, error) {
	seed := make([]byte, ed448.SeedSize)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, nil, fmt.Errorf("generate Ed448 key: %w", err)
	}
	s, err := e.newSigner(seed)
	return s, seed, err
}

func (ed448Scheme) verify(pub, msg, sig []byte) error {
	if len(pub) != ed448.PublicKeySize {
		return fmt.Errorf("%w: Ed448 public key is %d bytes", ErrInvalidKey, len(pub))
	}
	if ed448HasSmallOrder(pub) {
		return fmt.Errorf("%w: Ed448 public key has small order", ErrInvalidKey)
	}
	if !ed448.Verify(ed448.PublicKey(pub), msg, sig, "") {
		return errBadSignature
	}
	return nil
}

func (s *ed448Signer) Public() []byte { return append([]byte(nil), s.pub...) }

func (s *ed448Signer) SignWithLabel(label string, content []byte) ([]byte, error) {
	msg, err := labelled(label, content)
	if err != nil {
		return nil, err
	}
	return ed448.Sign(s.key, msg, ""), nil
}
