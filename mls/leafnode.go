package mls

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/codec"
)

// LeafNodeSource (RFC 9420 §7.2).
type LeafNodeSource uint8

const (
	LeafNodeSourceKeyPackage LeafNodeSource = 1
	LeafNodeSourceUpdate     LeafNodeSource = 2
	LeafNodeSourceCommit     LeafNodeSource = 3
)

// ErrInvalidLeafNode is wrapped by LeafNode validation failures.
var ErrInvalidLeafNode = errors.New("mls: invalid leaf node")

// LeafNode (RFC 9420 §7.2). Lifetime is meaningful for source key_package,
// ParentHash for source commit.
type LeafNode struct {
	EncryptionKey []byte
	SignatureKey  []byte
	Credential    Credential
	Capabilities  Capabilities
	Source        LeafNodeSource
	Lifetime      Lifetime
	ParentHash    []byte
	Extensions    Extensions
	Signature     []byte
}

func (ln *LeafNode) encodeContent(w *codec.Writer) {
	w.Opaque(ln.EncryptionKey)
	w.Opaque(ln.SignatureKey)
	ln.Credential.Encode(w)
	ln.Capabilities.Encode(w)
	w.U8(uint8(ln.Source))
	switch ln.Source {
	case LeafNodeSourceKeyPackage:
		ln.Lifetime.Encode(w)
	case LeafNodeSourceCommit:
		w.Opaque(ln.ParentHash)
	}
	ln.Extensions.Encode(w)
}

func (ln *LeafNode) Encode(w *codec.Writer) {
	ln.encodeContent(w)
	w.Opaque(ln.Signature)
}

func (ln *LeafNode) Decode(r *codec.Reader) {
	*ln = LeafNode{}
	ln.EncryptionKey = r.Opaque()
	ln.SignatureKey = r.Opaque()
	ln.Credential.Decode(r)
	ln.Capabilities.Decode(r)
	ln.Source = LeafNodeSource(r.U8())
	if r.Err() != nil {
		return
	}
	switch ln.Source {
	case LeafNodeSourceKeyPackage:
		ln.Lifetime.Decode(r)
	case LeafNodeSourceUpdate:
	case LeafNodeSourceCommit:
		ln.ParentHash = r.Opaque()
	default:
		invalid(r, "leaf node source %d", ln.Source)
		return
	}
	ln.Extensions = decodeExtensions(r)
	ln.Signature = r.Opaque()
}

func (ln *LeafNode) Marshal() []byte { return marshal(ln.Encode) }
func (ln *LeafNode) Unmarshal(b []byte) error {
	return unmarshal("LeafNode", b, ln.Decode)
}

// TBS returns the LeafNodeTBS encoding (§7.2). groupID and leafIndex are
// ignored for source key_package and bound into the signature otherwise.
func (ln *LeafNode) TBS(groupID []byte, leafIndex uint32) []byte {
	w := codec.NewWriter(nil)
	ln.encodeContent(w)
	if ln.Source == LeafNodeSourceUpdate || ln.Source == LeafNodeSourceCommit {
		w.Opaque(groupID)
		w.U32(leafIndex)
	}
	return w.Bytes()
}

// Sign sets Signature with SignWithLabel(., "LeafNodeTBS", LeafNodeTBS).
// The signer's key must be SignatureKey.
func (ln *LeafNode) Sign(signer ciphersuite.Signer, groupID []byte, leafIndex uint32) error {
	sig, err := signer.SignWithLabel("LeafNodeTBS", ln.TBS(groupID, leafIndex))
	if err != nil {
		return fmt.Errorf("sign LeafNode: %w", err)
	}
	ln.Signature = sig
	return nil
}

// VerifySignature checks Signature against SignatureKey.
func (ln *LeafNode) VerifySignature(suite *ciphersuite.Suite, groupID []byte, leafIndex uint32) error {
	if err := suite.VerifyWithLabel(ln.SignatureKey, "LeafNodeTBS", ln.TBS(groupID, leafIndex), ln.Signature); err != nil {
		return fmt.Errorf("%w: signature: %w", ErrInvalidLeafNode, err)
	}
	return nil
}

// Clone returns a shallow copy whose top-level fields may be changed freely
// (byte slices are shared, so change them by replacing, not in place).
func (ln *LeafNode) Clone() *LeafNode {
	c := *ln
	return &c
}

// LeafNodeCheck describes the context a LeafNode is validated in (§7.3).
type LeafNodeCheck struct {
	// Source is the leaf_node_source the context requires.
	Source LeafNodeSource
	// GroupID and LeafIndex bind update/commit signatures.
	GroupID   []byte
	LeafIndex uint32
	// Now, if non-zero, is the Unix time a key_package lifetime must cover.
	Now uint64
	// Required, if non-nil, is the group's required_capabilities.
	Required *RequiredCapabilities
	// GroupExtensions, if non-nil, are the GroupContext extensions the
	// leaf's capabilities must support (§13.4).
	GroupExtensions Extensions
	// SkipSignature skips the signature check (already verified).
	SkipSignature bool
	// Replaces, if non-nil, is the leaf an Update proposal or a commit's
	// path replaces: the encryption key must change (§7.3).
	Replaces *LeafNode
}

// Validate checks the parts of §7.3 that concern this leaf alone: source,
// signature, required capabilities, lifetime, that its own extensions and
// credential type are listed in its capabilities. The group-wide checks
// (unique keys, credential types supported by everyone) are in
// RatchetTree.CheckLeafInGroup and RatchetTree.Validate. Credential
// validation against an authentication service is the caller's.
func (ln *LeafNode) Validate(suite *ciphersuite.Suite, c *LeafNodeCheck) error {
	if ln.Source != c.Source {
		return fmt.Errorf("%w: source %d, want %d", ErrInvalidLeafNode, ln.Source, c.Source)
	}
	if c.Replaces != nil && bytes.Equal(c.Replaces.EncryptionKey, ln.EncryptionKey) {
		return fmt.Errorf("%w: encryption key not updated", ErrInvalidLeafNode)
	}
	if !c.SkipSignature {
		if err := ln.VerifySignature(suite, c.GroupID, c.LeafIndex); err != nil {
			return err
		}
	}
	if c.Required != nil && !c.Required.SatisfiedBy(&ln.Capabilities) {
		return fmt.Errorf("%w: capabilities do not cover required_capabilities", ErrInvalidLeafNode)
	}
	for i := range c.GroupExtensions {
		if !ln.Capabilities.SupportsExtension(c.GroupExtensions[i].Type) {
			return fmt.Errorf("%w: group extension %d not supported", ErrInvalidLeafNode, c.GroupExtensions[i].Type)
		}
	}
	if ln.Source == LeafNodeSourceKeyPackage && c.Now != 0 && !ln.Lifetime.Contains(c.Now) {
		return fmt.Errorf("%w: outside its lifetime", ErrInvalidLeafNode)
	}
	for i := range ln.Extensions {
		if !ln.Capabilities.SupportsExtension(ln.Extensions[i].Type) {
			return fmt.Errorf("%w: extension %d not in capabilities", ErrInvalidLeafNode, ln.Extensions[i].Type)
		}
	}
	if !ln.Capabilities.SupportsCredential(ln.Credential.Type) {
		return fmt.Errorf("%w: own credential type %d not in capabilities", ErrInvalidLeafNode, ln.Credential.Type)
	}
	return nil
}
