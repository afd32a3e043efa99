// Package mls implements the Messaging Layer Security protocol (RFC 9420):
// its wire structures, the ratchet tree with TreeKEM, and (in other files)
// framing, proposals, commits and the group state machine.
//
// Every wire structure T has
//
//	func (x *T) Encode(w *codec.Writer)   // append the TLS encoding
//	func (x *T) Decode(r *codec.Reader)   // read it; errors stick on r
//	func (x *T) Marshal() []byte          // the encoding as a new slice
//	func (x *T) Unmarshal(b []byte) error // decode exactly b, strictly
//
// Encode/Decode compose into larger structures (FramedContentTBS, the
// transcript hash inputs, ...); Marshal/Unmarshal are for whole messages.
// Decoding is strict: unknown enum values in a select, bad optional markers,
// non-minimal length headers and trailing bytes are errors, and no length is
// trusted before the bytes behind it exist. Decoded slices never alias the
// input.
//
// Values placed in a RatchetTree (LeafNode, ParentNode) are treated as
// immutable from then on: the tree shares them between clones.
//
// The ratchet tree and TreeKEM are used like this (RFC 9420 §12.4):
//
//	// Committer
//	next := tree.Clone()
//	// ... next.UpdateLeaf / RemoveLeaf / AddLeaf for the proposals ...
//	gen, _ := next.GenerateUpdatePath(rand, me, next.Leaf(me), signer, groupID)
//	ctx.TreeHash = next.TreeHash() // provisional GroupContext
//	path, _ := gen.Encrypt(next, ctx.Marshal(), addedLeaves)
//	// commit_secret = gen.CommitSecret, new keys = gen.Keys,
//	// Welcome path_secret = gen.PathSecretFor(newLeaf)
//
//	// Receiver
//	next := tree.Clone()
//	// ... apply the same proposals ...
//	next.MergeUpdatePath(sender, path, groupID)
//	ctx.TreeHash = next.TreeHash()
//	commitSecret, keys, _ := next.DecryptUpdatePath(keys, sender, path, ctx.Marshal(), addedLeaves)
//
//	// Joiner
//	tree, _ := DecodeRatchetTree(suite, ext)
//	tree.Validate(&TreeValidation{GroupID: ..., TreeHash: ..., Extensions: ...})
//	keys := NewTreeKeys(myLeaf, encryptionPriv)
//	keys, _, _ = tree.InstallPathSecret(keys, groupInfo.Signer, pathSecret)
package mls

import (
	"errors"
	"fmt"

	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/codec"
)

// ErrMalformed is wrapped by every decoding error caused by bad input.
var ErrMalformed = errors.New("mls: malformed message")

// ProtocolVersion (RFC 9420 §6).
type ProtocolVersion uint16

// ProtocolVersionMLS10 is the only version defined.
const ProtocolVersionMLS10 ProtocolVersion = 1

// CredentialType (RFC 9420 §5.3, IANA "MLS Credential Types").
type CredentialType uint16

const (
	CredentialTypeBasic CredentialType = 1
	CredentialTypeX509  CredentialType = 2
)

// ExtensionType (RFC 9420 §13.3).
type ExtensionType uint16

const (
	ExtensionApplicationID        ExtensionType = 1
	ExtensionRatchetTree          ExtensionType = 2
	ExtensionRequiredCapabilities ExtensionType = 3
	ExtensionExternalPub          ExtensionType = 4
	ExtensionExternalSenders      ExtensionType = 5
)

// IsDefault reports whether t is one of the RFC 9420 extension types every
// client implements (and so must not list in Capabilities, §7.2).
func (t ExtensionType) IsDefault() bool { return t >= 1 && t <= 5 }

// ProposalType (RFC 9420 §12.1).
type ProposalType uint16

const (
	ProposalTypeAdd                    ProposalType = 1
	ProposalTypeUpdate                 ProposalType = 2
	ProposalTypeRemove                 ProposalType = 3
	ProposalTypePSK                    ProposalType = 4
	ProposalTypeReInit                 ProposalType = 5
	ProposalTypeExternalInit           ProposalType = 6
	ProposalTypeGroupContextExtensions ProposalType = 7
)

// IsDefault reports whether t is one of the RFC 9420 proposal types.
func (t ProposalType) IsDefault() bool { return t >= 1 && t <= 7 }

// malformed makes a decoding error that wraps ErrMalformed and codec's cause.
func malformed(what string, err error) error {
	if errors.Is(err, ErrMalformed) {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	return fmt.Errorf("decode %s: %w: %w", what, ErrMalformed, err)
}

// invalid records an unknown or forbidden value on r.
func invalid(r *codec.Reader, format string, args ...any) {
	r.Fail(fmt.Errorf("%w: "+format, append([]any{codec.ErrInvalidValue}, args...)...))
}

// unmarshal decodes exactly b into v.
func unmarshal(what string, b []byte, decode func(r *codec.Reader)) error {
	r := codec.NewReader(b)
	decode(r)
	if err := r.Finish(); err != nil {
		return malformed(what, err)
	}
	return nil
}

func marshal(encode func(w *codec.Writer)) []byte {
	w := codec.NewWriter(nil)
	encode(w)
	return w.Bytes()
}

// decodeVersion reads a ProtocolVersion that must be mls10.
func decodeVersion(r *codec.Reader) ProtocolVersion {
	v := ProtocolVersion(r.U16())
	if r.Err() == nil && v != ProtocolVersionMLS10 {
		invalid(r, "protocol version %d", v)
	}
	return v
}

// Credential (RFC 9420 §5.3). Identity is set for basic credentials,
// Certificates (DER, end-entity first) for x509.
type Credential struct {
	Type         CredentialType
	Identity     []byte
	Certificates [][]byte
}

// NewBasicCredential returns a basic credential for identity.
func NewBasicCredential(identity []byte) Credential {
	return Credential{Type: CredentialTypeBasic, Identity: identity}
}

func (c *Credential) Encode(w *codec.Writer) {
	w.U16(uint16(c.Type))
	switch c.Type {
	case CredentialTypeBasic:
		w.Opaque(c.Identity)
	case CredentialTypeX509:
		w.Vector(func(w *codec.Writer) {
			for _, cert := range c.Certificates {
				w.Opaque(cert)
			}
		})
	}
}

func (c *Credential) Decode(r *codec.Reader) {
	*c = Credential{Type: CredentialType(r.U16())}
	if r.Err() != nil {
		return
	}
	switch c.Type {
	case CredentialTypeBasic:
		c.Identity = r.Opaque()
	case CredentialTypeX509:
		c.Certificates = [][]byte{}
		r.ReadVector(func(r *codec.Reader) {
			c.Certificates = append(c.Certificates, r.Opaque())
		})
	default:
		invalid(r, "credential type %d", c.Type)
	}
}

// Equal reports whether two credentials are identical.
func (c *Credential) Equal(o *Credential) bool {
	if c.Type != o.Type || string(c.Identity) != string(o.Identity) || len(c.Certificates) != len(o.Certificates) {
		return false
	}
	for i := range c.Certificates {
		if string(c.Certificates[i]) != string(o.Certificates[i]) {
			return false
		}
	}
	return true
}

func (c *Credential) Marshal() []byte { return marshal(c.Encode) }
func (c *Credential) Unmarshal(b []byte) error {
	return unmarshal("Credential", b, c.Decode)
}

// Capabilities (RFC 9420 §7.2). Unknown values are kept (and ignored by
// validation), as the spec requires for GREASE.
type Capabilities struct {
	Versions     []ProtocolVersion
	CipherSuites []ciphersuite.ID
	Extensions   []ExtensionType
	Proposals    []ProposalType
	Credentials  []CredentialType
}

func encodeU16s[T ~uint16](w *codec.Writer, v []T) {
	w.Vector(func(w *codec.Writer) {
		for _, x := range v {
			w.U16(uint16(x))
		}
	})
}

// maxListEntries bounds the capability-style lists and extension lists we
// accept. The spec sets no limit, but nothing legitimate comes close, and
// validation compares such lists pairwise, so unbounded ones would let a
// single message cost quadratic time.
const maxListEntries = 1024

func decodeU16s[T ~uint16](r *codec.Reader) []T {
	v := []T{}
	r.ReadVector(func(r *codec.Reader) {
		if len(v) == maxListEntries {
			invalid(r, "list longer than %d entries", maxListEntries)
			return
		}
		v = append(v, T(r.U16()))
	})
	return v
}

func encodeU32s(w *codec.Writer, v []uint32) {
	w.Vector(func(w *codec.Writer) {
		for _, x := range v {
			w.U32(x)
		}
	})
}

func decodeU32s(r *codec.Reader) []uint32 {
	v := []uint32{}
	r.ReadVector(func(r *codec.Reader) { v = append(v, r.U32()) })
	return v
}

func (c *Capabilities) Encode(w *codec.Writer) {
	encodeU16s(w, c.Versions)
	encodeU16s(w, c.CipherSuites)
	encodeU16s(w, c.Extensions)
	encodeU16s(w, c.Proposals)
	encodeU16s(w, c.Credentials)
}

func (c *Capabilities) Decode(r *codec.Reader) {
	c.Versions = decodeU16s[ProtocolVersion](r)
	c.CipherSuites = decodeU16s[ciphersuite.ID](r)
	c.Extensions = decodeU16s[ExtensionType](r)
	c.Proposals = decodeU16s[ProposalType](r)
	c.Credentials = decodeU16s[CredentialType](r)
}

func (c *Capabilities) Marshal() []byte { return marshal(c.Encode) }
func (c *Capabilities) Unmarshal(b []byte) error {
	return unmarshal("Capabilities", b, c.Decode)
}

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// SupportsExtension reports whether the capabilities cover extension type t
// (default types are always supported).
func (c *Capabilities) SupportsExtension(t ExtensionType) bool {
	return t.IsDefault() || contains(c.Extensions, t)
}

// SupportsProposal reports whether the capabilities cover proposal type t.
func (c *Capabilities) SupportsProposal(t ProposalType) bool {
	return t.IsDefault() || contains(c.Proposals, t)
}

// SupportsCredential reports whether credential type t is listed.
func (c *Capabilities) SupportsCredential(t CredentialType) bool {
	return contains(c.Credentials, t)
}

// Lifetime (RFC 9420 §7.2), in seconds since the Unix epoch.
type Lifetime struct {
	NotBefore uint64
	NotAfter  uint64
}

func (l *Lifetime) Encode(w *codec.Writer) { w.U64(l.NotBefore); w.U64(l.NotAfter) }
func (l *Lifetime) Decode(r *codec.Reader) { l.NotBefore = r.U64(); l.NotAfter = r.U64() }
func (l *Lifetime) Marshal() []byte        { return marshal(l.Encode) }
func (l *Lifetime) Unmarshal(b []byte) error {
	return unmarshal("Lifetime", b, l.Decode)
}

// Contains reports whether the Unix time t lies within the lifetime.
func (l *Lifetime) Contains(t uint64) bool { return l.NotBefore <= t && t <= l.NotAfter }

// HPKECiphertext (RFC 9420 §7.6).
type HPKECiphertext struct {
	KEMOutput  []byte
	Ciphertext []byte
}

func (c *HPKECiphertext) Encode(w *codec.Writer) { w.Opaque(c.KEMOutput); w.Opaque(c.Ciphertext) }
func (c *HPKECiphertext) Decode(r *codec.Reader) { c.KEMOutput = r.Opaque(); c.Ciphertext = r.Opaque() }
func (c *HPKECiphertext) Marshal() []byte        { return marshal(c.Encode) }
func (c *HPKECiphertext) Unmarshal(b []byte) error {
	return unmarshal("HPKECiphertext", b, c.Decode)
}
