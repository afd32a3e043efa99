package mls

import (
	"fmt"
	"time"

	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/codec"
)

// ExtensionLastResort marks a KeyPackage that may be used more than once
// (the last_resort extension, IANA "MLS Extension Types" 0x000A).
const ExtensionLastResort ExtensionType = 0x000A

func unixNow() uint64 { return uint64(time.Now().Unix()) }

// KeyPackageOptions tunes NewKeyPackage. The zero value gives a KeyPackage
// valid from an hour ago for 90 days with default capabilities.
type KeyPackageOptions struct {
	// Lifetime, if non-zero, is the validity period.
	Lifetime Lifetime
	// Capabilities, if non-nil, replaces the default capabilities
	// (version 1.0, the suite, basic and x509 credentials).
	Capabilities *Capabilities
	// LeafExtensions go in the LeafNode, Extensions in the KeyPackage.
	LeafExtensions Extensions
	Extensions     Extensions
	// LastResort adds the last_resort extension.
	LastResort bool
}

// KeyPackageBundle is a KeyPackage with its private keys. Keep it (for
// instance with MarshalBinary) until the Welcome that uses it arrives,
// then delete it unless it is a last-resort package.
type KeyPackageBundle struct {
	KeyPackage     KeyPackage
	InitPriv       []byte
	EncryptionPriv []byte
	SignaturePriv  []byte
}

func defaultCapabilities(suite *ciphersuite.Suite) Capabilities {
	return Capabilities{
		Versions:     []ProtocolVersion{ProtocolVersionMLS10},
		CipherSuites: []ciphersuite.ID{suite.ID()},
		Extensions:   []ExtensionType{},
		Proposals:    []ProposalType{},
		Credentials:  []CredentialType{CredentialTypeBasic, CredentialTypeX509},
	}
}

// NewKeyPackage makes a signed KeyPackage (RFC 9420 §10) for credential
// and the signature private key signaturePriv. It returns the KeyPackage
// as an MLSMessage, ready to publish, and the private bundle.
func NewKeyPackage(suite *ciphersuite.Suite, credential Credential, signaturePriv []byte, opts *KeyPackageOptions) ([]byte, *KeyPackageBundle, error) {
	if opts == nil {
		opts = &KeyPackageOptions{}
	}
	signer, err := suite.NewSigner(signaturePriv)
	if err != nil {
		return nil, nil, err
	}
	initPriv, initPub, err := suite.GenerateKeyPair(nil)
	if err != nil {
		return nil, nil, err
	}
	leaf, encPriv, err := newLeafNode(suite, credential, signer, opts.Capabilities, opts.Lifetime, opts.LeafExtensions)
	if err != nil {
		return nil, nil, err
	}
	kp := KeyPackage{
		Version: ProtocolVersionMLS10, CipherSuite: suite.ID(), InitKey: initPub,
		Extensions: append(Extensions{}, opts.Extensions...),
	}
	if opts.LastResort {
		kp.Extensions = append(kp.Extensions, Extension{Type: ExtensionLastResort, Data: []byte{}})
		if !leaf.Capabilities.SupportsExtension(ExtensionLastResort) {
			leaf.Capabilities.Extensions = append(leaf.Capabilities.Extensions, ExtensionLastResort)
			if err := leaf.Sign(signer, nil, 0); err != nil {
				return nil, nil, err
			}
		}
	}
	kp.LeafNode = *leaf
	if err := kp.Sign(signer); err != nil {
		return nil, nil, err
	}
	msg := (&MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatKeyPackage, KeyPackage: &kp}).Marshal()
	return msg, &KeyPackageBundle{KeyPackage: kp, InitPriv: initPriv, EncryptionPriv: encPriv, SignaturePriv: signaturePriv}, nil
}

// newLeafNode makes a key_package-source LeafNode with a fresh encryption
// key pair.
func newLeafNode(suite *ciphersuite.Suite, credential Credential, signer ciphersuite.Signer, caps *Capabilities, lifetime Lifetime, ext Extensions) (*LeafNode, []byte, error) {
	encPriv, encPub, err := suite.GenerateKeyPair(nil)
	if err != nil {
		return nil, nil, err
	}
	if lifetime == (Lifetime{}) {
		now := unixNow()
		lifetime = Lifetime{NotBefore: now - 3600, NotAfter: now + 90*24*3600}
	}
	c := defaultCapabilities(suite)
	if caps != nil {
		c = *caps
	}
	if ext == nil {
		ext = Extensions{}
	}
	ln := &LeafNode{
		EncryptionKey: encPub, SignatureKey: signer.Public(), Credential: credential,
		Capabilities: c, Source: LeafNodeSourceKeyPackage, Lifetime: lifetime, Extensions: ext,
	}
	for i := range ext {
		if !ln.Capabilities.SupportsExtension(ext[i].Type) {
			ln.Capabilities.Extensions = append(ln.Capabilities.Extensions, ext[i].Type)
		}
	}
	if err := ln.Sign(signer, nil, 0); err != nil {
		return nil, nil, err
	}
	return ln, encPriv, nil
}

// MarshalBinary encodes the bundle, private keys included: store it
// encrypted.
func (b *KeyPackageBundle) MarshalBinary() ([]byte, error) {
	w := codec.NewWriter(nil)
	w.U8(1)
	b.KeyPackage.Encode(w)
	w.Opaque(b.InitPriv)
	w.Opaque(b.EncryptionPriv)
	w.Opaque(b.SignaturePriv)
	return w.Bytes(), nil
}

// UnmarshalBinary restores a bundle encoded by MarshalBinary.
func (b *KeyPackageBundle) UnmarshalBinary(data []byte) error {
	var nb KeyPackageBundle
	err := unmarshal("KeyPackageBundle", data, func(r *codec.Reader) {
		if v := r.U8(); r.Err() == nil && v != 1 {
			invalid(r, "bundle version %d", v)
			return
		}
		nb.KeyPackage.Decode(r)
		nb.InitPriv = r.Opaque()
		nb.EncryptionPriv = r.Opaque()
		nb.SignaturePriv = r.Opaque()
	})
	if err != nil {
		return fmt.Errorf("key package bundle: %w", err)
	}
	*b = nb
	return nil
}
