package mls

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/codec"
)

// ErrInvalidKeyPackage is wrapped by KeyPackage validation failures.
var ErrInvalidKeyPackage = errors.New("mls: invalid key package")

// KeyPackage (RFC 9420 §10).
type KeyPackage struct {
	Version     ProtocolVersion
	CipherSuite ciphersuite.ID
	InitKey     []byte
	LeafNode    LeafNode
	Extensions  Extensions
	Signature   []byte
}

func (kp *KeyPackage) encodeTBS(w *codec.Writer) {
	w.U16(uint16(kp.Version))
	w.U16(uint16(kp.CipherSuite))
	w.Opaque(kp.InitKey)
	kp.LeafNode.Encode(w)
	kp.Extensions.Encode(w)
}

func (kp *KeyPackage) Encode(w *codec.Writer) {
	kp.encodeTBS(w)
	w.Opaque(kp.Signature)
}

func (kp *KeyPackage) Decode(r *codec.Reader) {
	*kp = KeyPackage{}
	kp.Version = decodeVersion(r)
	kp.CipherSuite = ciphersuite.ID(r.U16())
	kp.InitKey = r.Opaque()
	kp.LeafNode.Decode(r)
	kp.Extensions = decodeExtensions(r)
	kp.Signature = r.Opaque()
}

func (kp *KeyPackage) Marshal() []byte { return marshal(kp.Encode) }
func (kp *KeyPackage) Unmarshal(b []byte) error {
	return unmarshal("KeyPackage", b, kp.Decode)
}

// TBS returns the KeyPackageTBS encoding.
func (kp *KeyPackage) TBS() []byte { return marshal(kp.encodeTBS) }

// Sign sets Signature with SignWithLabel(., "KeyPackageTBS", KeyPackageTBS).
// The LeafNode must already be signed.
func (kp *KeyPackage) Sign(signer ciphersuite.Signer) error {
	sig, err := signer.SignWithLabel("KeyPackageTBS", kp.TBS())
	if err != nil {
		return fmt.Errorf("sign KeyPackage: %w", err)
	}
	kp.Signature = sig
	return nil
}

// VerifySignature checks Signature against LeafNode.SignatureKey.
func (kp *KeyPackage) VerifySignature(suite *ciphersuite.Suite) error {
	if err := suite.VerifyWithLabel(kp.LeafNode.SignatureKey, "KeyPackageTBS", kp.TBS(), kp.Signature); err != nil {
		return fmt.Errorf("%w: signature: %w", ErrInvalidKeyPackage, err)
	}
	return nil
}

// Ref returns the KeyPackageRef: RefHash("MLS 1.0 KeyPackage Reference",
// KeyPackage) (§5.2).
func (kp *KeyPackage) Ref(suite *ciphersuite.Suite) []byte {
	return suite.RefHash("MLS 1.0 KeyPackage Reference", kp.Marshal())
}

// Validate performs KeyPackage validation (§10.1) for a group using suite:
// version and cipher suite, the leaf node as a key_package leaf (signature,
// lifetime if now != 0, its own capabilities), the KeyPackage signature and
// init_key != encryption_key. Group-level checks on the leaf (required
// capabilities, unique keys) are the caller's, via LeafNodeCheck and
// RatchetTree.CheckLeafInGroup.
func (kp *KeyPackage) Validate(suite *ciphersuite.Suite, now uint64) error {
	if kp.Version != ProtocolVersionMLS10 {
		return fmt.Errorf("%w: version %d", ErrInvalidKeyPackage, kp.Version)
	}
	if kp.CipherSuite != suite.ID() {
		return fmt.Errorf("%w: cipher suite %#04x, group uses %#04x", ErrInvalidKeyPackage, kp.CipherSuite, suite.ID())
	}
	if err := kp.LeafNode.Validate(suite, &LeafNodeCheck{Source: LeafNodeSourceKeyPackage, Now: now}); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidKeyPackage, err)
	}
	// §10.1: the creator must list its extensions in the capabilities, but
	// a receiver MUST ignore unknown KeyPackage extensions (§13.4), and
	// senders GREASE them (§13.5). So only the non-default extensions this
	// implementation acts on are held to the capabilities rule.
	for i := range kp.Extensions {
		if kp.Extensions[i].Type != ExtensionLastResort {
			continue
		}
		if !kp.LeafNode.Capabilities.SupportsExtension(kp.Extensions[i].Type) {
			return fmt.Errorf("%w: extension %d not in capabilities", ErrInvalidKeyPackage, kp.Extensions[i].Type)
		}
	}
	if err := kp.VerifySignature(suite); err != nil {
		return err
	}
	if bytes.Equal(kp.InitKey, kp.LeafNode.EncryptionKey) {
		return fmt.Errorf("%w: init_key equals encryption_key", ErrInvalidKeyPackage)
	}
	return nil
}
