package mls

import (
	"fmt"

	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/codec"
	"github.com/parleychat/parley/mls/keyschedule"
)

// ParentNode (RFC 9420 §7.1). UnmergedLeaves are leaf indices, increasing.
type ParentNode struct {
	EncryptionKey  []byte
	ParentHash     []byte
	UnmergedLeaves []uint32
}

func (p *ParentNode) Encode(w *codec.Writer) {
	w.Opaque(p.EncryptionKey)
	w.Opaque(p.ParentHash)
	encodeU32s(w, p.UnmergedLeaves)
}

func (p *ParentNode) Decode(r *codec.Reader) {
	p.EncryptionKey = r.Opaque()
	p.ParentHash = r.Opaque()
	p.UnmergedLeaves = decodeU32s(r)
}

func (p *ParentNode) Marshal() []byte { return marshal(p.Encode) }
func (p *ParentNode) Unmarshal(b []byte) error {
	return unmarshal("ParentNode", b, p.Decode)
}

// NodeType (RFC 9420 §7.8).
type NodeType uint8

const (
	NodeTypeLeaf   NodeType = 1
	NodeTypeParent NodeType = 2
)

// Node is a non-blank ratchet tree node: exactly one of Leaf and Parent is
// set. A blank node is a nil *Node.
type Node struct {
	Leaf   *LeafNode
	Parent *ParentNode
}

// EncryptionKey returns the node's HPKE public key.
func (n *Node) EncryptionKey() []byte {
	if n.Leaf != nil {
		return n.Leaf.EncryptionKey
	}
	return n.Parent.EncryptionKey
}

func (n *Node) Encode(w *codec.Writer) {
	if n.Leaf != nil {
		w.U8(uint8(NodeTypeLeaf))
		n.Leaf.Encode(w)
	} else {
		w.U8(uint8(NodeTypeParent))
		n.Parent.Encode(w)
	}
}

func (n *Node) Decode(r *codec.Reader) {
	*n = Node{}
	switch t := NodeType(r.U8()); t {
	case NodeTypeLeaf:
		n.Leaf = new(LeafNode)
		n.Leaf.Decode(r)
	case NodeTypeParent:
		n.Parent = new(ParentNode)
		n.Parent.Decode(r)
	default:
		invalid(r, "node type %d", t)
	}
}

// UpdatePathNode (RFC 9420 §7.6).
type UpdatePathNode struct {
	EncryptionKey       []byte
	EncryptedPathSecret []HPKECiphertext
}

func (n *UpdatePathNode) Encode(w *codec.Writer) {
	w.Opaque(n.EncryptionKey)
	w.Vector(func(w *codec.Writer) {
		for i := range n.EncryptedPathSecret {
			n.EncryptedPathSecret[i].Encode(w)
		}
	})
}

func (n *UpdatePathNode) Decode(r *codec.Reader) {
	n.EncryptionKey = r.Opaque()
	n.EncryptedPathSecret = []HPKECiphertext{}
	r.ReadVector(func(r *codec.Reader) {
		var c HPKECiphertext
		c.Decode(r)
		n.EncryptedPathSecret = append(n.EncryptedPathSecret, c)
	})
}

// UpdatePath (RFC 9420 §7.6).
type UpdatePath struct {
	LeafNode LeafNode
	Nodes    []UpdatePathNode
}

func (p *UpdatePath) Encode(w *codec.Writer) {
	p.LeafNode.Encode(w)
	w.Vector(func(w *codec.Writer) {
		for i := range p.Nodes {
			p.Nodes[i].Encode(w)
		}
	})
}

func (p *UpdatePath) Decode(r *codec.Reader) {
	p.LeafNode.Decode(r)
	p.Nodes = []UpdatePathNode{}
	r.ReadVector(func(r *codec.Reader) {
		var n UpdatePathNode
		n.Decode(r)
		p.Nodes = append(p.Nodes, n)
	})
}

func (p *UpdatePath) Marshal() []byte { return marshal(p.Encode) }
func (p *UpdatePath) Unmarshal(b []byte) error {
	return unmarshal("UpdatePath", b, p.Decode)
}

// GroupContext (RFC 9420 §8.1).
type GroupContext struct {
	Version                 ProtocolVersion
	CipherSuite             ciphersuite.ID
	GroupID                 []byte
	Epoch                   uint64
	TreeHash                []byte
	ConfirmedTranscriptHash []byte
	Extensions              Extensions
}

func (c *GroupContext) Encode(w *codec.Writer) {
	w.U16(uint16(c.Version))
	w.U16(uint16(c.CipherSuite))
	w.Opaque(c.GroupID)
	w.U64(c.Epoch)
	w.Opaque(c.TreeHash)
	w.Opaque(c.ConfirmedTranscriptHash)
	c.Extensions.Encode(w)
}

func (c *GroupContext) Decode(r *codec.Reader) {
	c.Version = decodeVersion(r)
	c.CipherSuite = ciphersuite.ID(r.U16())
	c.GroupID = r.Opaque()
	c.Epoch = r.U64()
	c.TreeHash = r.Opaque()
	c.ConfirmedTranscriptHash = r.Opaque()
	c.Extensions = decodeExtensions(r)
}

func (c *GroupContext) Marshal() []byte { return marshal(c.Encode) }
func (c *GroupContext) Unmarshal(b []byte) error {
	return unmarshal("GroupContext", b, c.Decode)
}

// PreSharedKeyID, PSKType and ResumptionPSKUsage (RFC 9420 §8.4) are the
// key schedule's: the PSK proposal and GroupSecrets carry the same structure
// the PSK secret derivation hashes, so one type encodes it.
type (
	PreSharedKeyID     = keyschedule.PreSharedKeyID
	PSKType            = keyschedule.PSKType
	ResumptionPSKUsage = keyschedule.ResumptionUsage
)

const (
	PSKTypeExternal   = keyschedule.PSKExternal
	PSKTypeResumption = keyschedule.PSKResumption

	ResumptionPSKUsageApplication = keyschedule.UsageApplication
	ResumptionPSKUsageReInit      = keyschedule.UsageReinit
	ResumptionPSKUsageBranch      = keyschedule.UsageBranch
)

// The proposal bodies (RFC 9420 §12.1).
type (
	Add struct {
		KeyPackage KeyPackage
	}
	Update struct {
		LeafNode LeafNode
	}
	Remove struct {
		Removed uint32
	}
	PreSharedKey struct {
		PSK PreSharedKeyID
	}
	ReInit struct {
		GroupID     []byte
		Version     ProtocolVersion
		CipherSuite ciphersuite.ID
		Extensions  Extensions
	}
	ExternalInit struct {
		KEMOutput []byte
	}
	GroupContextExtensions struct {
		Extensions Extensions
	}
)

// Proposal (RFC 9420 §12.1): Type selects which one body pointer is set.
type Proposal struct {
	Type                   ProposalType
	Add                    *Add
	Update                 *Update
	Remove                 *Remove
	PreSharedKey           *PreSharedKey
	ReInit                 *ReInit
	ExternalInit           *ExternalInit
	GroupContextExtensions *GroupContextExtensions
}

func (p *Proposal) Encode(w *codec.Writer) {
	w.U16(uint16(p.Type))
	switch p.Type {
	case ProposalTypeAdd:
		p.Add.KeyPackage.Encode(w)
	case ProposalTypeUpdate:
		p.Update.LeafNode.Encode(w)
	case ProposalTypeRemove:
		w.U32(p.Remove.Removed)
	case ProposalTypePSK:
		p.PreSharedKey.PSK.Encode(w)
	case ProposalTypeReInit:
		w.Opaque(p.ReInit.GroupID)
		w.U16(uint16(p.ReInit.Version))
		w.U16(uint16(p.ReInit.CipherSuite))
		p.ReInit.Extensions.Encode(w)
	case ProposalTypeExternalInit:
		w.Opaque(p.ExternalInit.KEMOutput)
	case ProposalTypeGroupContextExtensions:
		p.GroupContextExtensions.Extensions.Encode(w)
	}
}

func (p *Proposal) Decode(r *codec.Reader) {
	*p = Proposal{Type: ProposalType(r.U16())}
	if r.Err() != nil {
		return
	}
	switch p.Type {
	case ProposalTypeAdd:
		p.Add = new(Add)
		p.Add.KeyPackage.Decode(r)
	case ProposalTypeUpdate:
		p.Update = new(Update)
		p.Update.LeafNode.Decode(r)
	case ProposalTypeRemove:
		p.Remove = &Remove{Removed: r.U32()}
	case ProposalTypePSK:
		p.PreSharedKey = &PreSharedKey{PSK: keyschedule.DecodePreSharedKeyID(r)}
	case ProposalTypeReInit:
		p.ReInit = &ReInit{GroupID: r.Opaque(), Version: ProtocolVersion(r.U16()), CipherSuite: ciphersuite.ID(r.U16())}
		p.ReInit.Extensions = decodeExtensions(r)
	case ProposalTypeExternalInit:
		p.ExternalInit = &ExternalInit{KEMOutput: r.Opaque()}
	case ProposalTypeGroupContextExtensions:
		p.GroupContextExtensions = &GroupContextExtensions{Extensions: decodeExtensions(r)}
	default:
		invalid(r, "proposal type %d", p.Type)
	}
}

func (p *Proposal) Marshal() []byte { return marshal(p.Encode) }
func (p *Proposal) Unmarshal(b []byte) error {
	return unmarshal("Proposal", b, p.Decode)
}

// ProposalRef returns the ProposalRef of an AuthenticatedContent carrying a
// proposal: RefHash("MLS 1.0 Proposal Reference", authenticatedContent) (§5.2).
func ProposalRef(suite *ciphersuite.Suite, authenticatedContent []byte) []byte {
	return suite.RefHash("MLS 1.0 Proposal Reference", authenticatedContent)
}

// ProposalOrRefType (RFC 9420 §12.4).
type ProposalOrRefType uint8

const (
	ProposalOrRefProposal  ProposalOrRefType = 1
	ProposalOrRefReference ProposalOrRefType = 2
)

// ProposalOrRef: Proposal is set for type proposal, Reference for reference.
type ProposalOrRef struct {
	Type      ProposalOrRefType
	Proposal  *Proposal
	Reference []byte
}

func (p *ProposalOrRef) Encode(w *codec.Writer) {
	w.U8(uint8(p.Type))
	switch p.Type {
	case ProposalOrRefProposal:
		p.Proposal.Encode(w)
	case ProposalOrRefReference:
		w.Opaque(p.Reference)
	}
}

func (p *ProposalOrRef) Decode(r *codec.Reader) {
	*p = ProposalOrRef{Type: ProposalOrRefType(r.U8())}
	if r.Err() != nil {
		return
	}
	switch p.Type {
	case ProposalOrRefProposal:
		p.Proposal = new(Proposal)
		p.Proposal.Decode(r)
	case ProposalOrRefReference:
		p.Reference = r.Opaque()
	default:
		invalid(r, "ProposalOrRef type %d", p.Type)
	}
}

// Commit (RFC 9420 §12.4). Path is nil when absent.
type Commit struct {
	Proposals []ProposalOrRef
	Path      *UpdatePath
}

func (c *Commit) Encode(w *codec.Writer) {
	w.Vector(func(w *codec.Writer) {
		for i := range c.Proposals {
			c.Proposals[i].Encode(w)
		}
	})
	w.Optional(c.Path != nil, func(w *codec.Writer) { c.Path.Encode(w) })
}

func (c *Commit) Decode(r *codec.Reader) {
	*c = Commit{Proposals: []ProposalOrRef{}}
	r.ReadVector(func(r *codec.Reader) {
		var p ProposalOrRef
		p.Decode(r)
		c.Proposals = append(c.Proposals, p)
	})
	if r.Optional() {
		c.Path = new(UpdatePath)
		c.Path.Decode(r)
	}
}

func (c *Commit) Marshal() []byte { return marshal(c.Encode) }
func (c *Commit) Unmarshal(b []byte) error {
	return unmarshal("Commit", b, c.Decode)
}

// ContentType (RFC 9420 §6).
type ContentType uint8

const (
	ContentTypeApplication ContentType = 1
	ContentTypeProposal    ContentType = 2
	ContentTypeCommit      ContentType = 3
)

func decodeContentType(r *codec.Reader) ContentType {
	t := ContentType(r.U8())
	if r.Err() == nil && (t < ContentTypeApplication || t > ContentTypeCommit) {
		invalid(r, "content type %d", t)
	}
	return t
}

// SenderType (RFC 9420 §6).
type SenderType uint8

const (
	SenderTypeMember            SenderType = 1
	SenderTypeExternal          SenderType = 2
	SenderTypeNewMemberProposal SenderType = 3
	SenderTypeNewMemberCommit   SenderType = 4
)

// Sender (RFC 9420 §6). Index is the leaf_index for member senders and the
// sender_index (into external_senders) for external senders.
type Sender struct {
	Type  SenderType
	Index uint32
}

func (s *Sender) Encode(w *codec.Writer) {
	w.U8(uint8(s.Type))
	if s.Type == SenderTypeMember || s.Type == SenderTypeExternal {
		w.U32(s.Index)
	}
}

func (s *Sender) Decode(r *codec.Reader) {
	*s = Sender{Type: SenderType(r.U8())}
	if r.Err() != nil {
		return
	}
	switch s.Type {
	case SenderTypeMember, SenderTypeExternal:
		s.Index = r.U32()
	case SenderTypeNewMemberProposal, SenderTypeNewMemberCommit:
	default:
		invalid(r, "sender type %d", s.Type)
	}
}

// WireFormat (RFC 9420 §6, IANA "MLS Wire Formats").
type WireFormat uint16

const (
	WireFormatPublicMessage  WireFormat = 1
	WireFormatPrivateMessage WireFormat = 2
	WireFormatWelcome        WireFormat = 3
	WireFormatGroupInfo      WireFormat = 4
	WireFormatKeyPackage     WireFormat = 5
)

// FramedContent (RFC 9420 §6): ContentType selects ApplicationData,
// Proposal or Commit.
type FramedContent struct {
	GroupID           []byte
	Epoch             uint64
	Sender            Sender
	AuthenticatedData []byte
	ContentType       ContentType
	ApplicationData   []byte
	Proposal          *Proposal
	Commit            *Commit
}

// EncodeBody writes the content-type-selected part (shared with
// PrivateMessageContent, §6.3.1).
func (c *FramedContent) EncodeBody(w *codec.Writer) {
	switch c.ContentType {
	case ContentTypeApplication:
		w.Opaque(c.ApplicationData)
	case ContentTypeProposal:
		c.Proposal.Encode(w)
	case ContentTypeCommit:
		c.Commit.Encode(w)
	}
}

// DecodeBody reads the part selected by c.ContentType.
func (c *FramedContent) DecodeBody(r *codec.Reader) {
	switch c.ContentType {
	case ContentTypeApplication:
		c.ApplicationData = r.Opaque()
	case ContentTypeProposal:
		c.Proposal = new(Proposal)
		c.Proposal.Decode(r)
	case ContentTypeCommit:
		c.Commit = new(Commit)
		c.Commit.Decode(r)
	default:
		invalid(r, "content type %d", c.ContentType)
	}
}

func (c *FramedContent) Encode(w *codec.Writer) {
	w.Opaque(c.GroupID)
	w.U64(c.Epoch)
	c.Sender.Encode(w)
	w.Opaque(c.AuthenticatedData)
	w.U8(uint8(c.ContentType))
	c.EncodeBody(w)
}

func (c *FramedContent) Decode(r *codec.Reader) {
	*c = FramedContent{}
	c.GroupID = r.Opaque()
	c.Epoch = r.U64()
	c.Sender.Decode(r)
	c.AuthenticatedData = r.Opaque()
	c.ContentType = decodeContentType(r)
	if r.Err() != nil {
		return
	}
	c.DecodeBody(r)
}

func (c *FramedContent) Marshal() []byte { return marshal(c.Encode) }
func (c *FramedContent) Unmarshal(b []byte) error {
	return unmarshal("FramedContent", b, c.Decode)
}

// FramedContentAuthData (RFC 9420 §6.1). ConfirmationTag is present only
// for commits, so decoding needs the content type.
type FramedContentAuthData struct {
	Signature       []byte
	ConfirmationTag []byte
}

func (a *FramedContentAuthData) Encode(w *codec.Writer, ct ContentType) {
	w.Opaque(a.Signature)
	if ct == ContentTypeCommit {
		w.Opaque(a.ConfirmationTag)
	}
}

func (a *FramedContentAuthData) Decode(r *codec.Reader, ct ContentType) {
	*a = FramedContentAuthData{Signature: r.Opaque()}
	if ct == ContentTypeCommit {
		a.ConfirmationTag = r.Opaque()
	}
}

// PublicMessage (RFC 9420 §6.2). MembershipTag is present for member senders.
type PublicMessage struct {
	Content       FramedContent
	Auth          FramedContentAuthData
	MembershipTag []byte
}

func (m *PublicMessage) Encode(w *codec.Writer) {
	m.Content.Encode(w)
	m.Auth.Encode(w, m.Content.ContentType)
	if m.Content.Sender.Type == SenderTypeMember {
		w.Opaque(m.MembershipTag)
	}
}

func (m *PublicMessage) Decode(r *codec.Reader) {
	*m = PublicMessage{}
	m.Content.Decode(r)
	m.Auth.Decode(r, m.Content.ContentType)
	if m.Content.Sender.Type == SenderTypeMember {
		m.MembershipTag = r.Opaque()
	}
}

func (m *PublicMessage) Marshal() []byte { return marshal(m.Encode) }
func (m *PublicMessage) Unmarshal(b []byte) error {
	return unmarshal("PublicMessage", b, m.Decode)
}

// PrivateMessage (RFC 9420 §6.3).
type PrivateMessage struct {
	GroupID             []byte
	Epoch               uint64
	ContentType         ContentType
	AuthenticatedData   []byte
	EncryptedSenderData []byte
	Ciphertext          []byte
}

func (m *PrivateMessage) Encode(w *codec.Writer) {
	w.Opaque(m.GroupID)
	w.U64(m.Epoch)
	w.U8(uint8(m.ContentType))
	w.Opaque(m.AuthenticatedData)
	w.Opaque(m.EncryptedSenderData)
	w.Opaque(m.Ciphertext)
}

func (m *PrivateMessage) Decode(r *codec.Reader) {
	m.GroupID = r.Opaque()
	m.Epoch = r.U64()
	m.ContentType = decodeContentType(r)
	m.AuthenticatedData = r.Opaque()
	m.EncryptedSenderData = r.Opaque()
	m.Ciphertext = r.Opaque()
}

func (m *PrivateMessage) Marshal() []byte { return marshal(m.Encode) }
func (m *PrivateMessage) Unmarshal(b []byte) error {
	return unmarshal("PrivateMessage", b, m.Decode)
}

// PathSecret (RFC 9420 §12.4.3.1).
type PathSecret struct {
	PathSecret []byte
}

// GroupSecrets (RFC 9420 §12.4.3.1). PathSecret is nil when absent.
type GroupSecrets struct {
	JoinerSecret []byte
	PathSecret   *PathSecret
	PSKs         []PreSharedKeyID
}

func (g *GroupSecrets) Encode(w *codec.Writer) {
	w.Opaque(g.JoinerSecret)
	w.Optional(g.PathSecret != nil, func(w *codec.Writer) { w.Opaque(g.PathSecret.PathSecret) })
	w.Vector(func(w *codec.Writer) {
		for i := range g.PSKs {
			g.PSKs[i].Encode(w)
		}
	})
}

func (g *GroupSecrets) Decode(r *codec.Reader) {
	*g = GroupSecrets{JoinerSecret: r.Opaque(), PSKs: []PreSharedKeyID{}}
	if r.Optional() {
		g.PathSecret = &PathSecret{PathSecret: r.Opaque()}
	}
	r.ReadVector(func(r *codec.Reader) {
		g.PSKs = append(g.PSKs, keyschedule.DecodePreSharedKeyID(r))
	})
}

func (g *GroupSecrets) Marshal() []byte { return marshal(g.Encode) }
func (g *GroupSecrets) Unmarshal(b []byte) error {
	return unmarshal("GroupSecrets", b, g.Decode)
}

// EncryptedGroupSecrets (RFC 9420 §12.4.3.1).
type EncryptedGroupSecrets struct {
	NewMember             []byte // KeyPackageRef
	EncryptedGroupSecrets HPKECiphertext
}

// Welcome (RFC 9420 §12.4.3.1).
type Welcome struct {
	CipherSuite        ciphersuite.ID
	Secrets            []EncryptedGroupSecrets
	EncryptedGroupInfo []byte
}

func (m *Welcome) Encode(w *codec.Writer) {
	w.U16(uint16(m.CipherSuite))
	w.Vector(func(w *codec.Writer) {
		for i := range m.Secrets {
			w.Opaque(m.Secrets[i].NewMember)
			m.Secrets[i].EncryptedGroupSecrets.Encode(w)
		}
	})
	w.Opaque(m.EncryptedGroupInfo)
}

func (m *Welcome) Decode(r *codec.Reader) {
	*m = Welcome{CipherSuite: ciphersuite.ID(r.U16()), Secrets: []EncryptedGroupSecrets{}}
	r.ReadVector(func(r *codec.Reader) {
		var s EncryptedGroupSecrets
		s.NewMember = r.Opaque()
		s.EncryptedGroupSecrets.Decode(r)
		m.Secrets = append(m.Secrets, s)
	})
	m.EncryptedGroupInfo = r.Opaque()
}

func (m *Welcome) Marshal() []byte { return marshal(m.Encode) }
func (m *Welcome) Unmarshal(b []byte) error {
	return unmarshal("Welcome", b, m.Decode)
}

// GroupInfo (RFC 9420 §12.4.3).
type GroupInfo struct {
	GroupContext    GroupContext
	Extensions      Extensions
	ConfirmationTag []byte
	Signer          uint32
	Signature       []byte
}

func (g *GroupInfo) encodeTBS(w *codec.Writer) {
	g.GroupContext.Encode(w)
	g.Extensions.Encode(w)
	w.Opaque(g.ConfirmationTag)
	w.U32(g.Signer)
}

func (g *GroupInfo) Encode(w *codec.Writer) {
	g.encodeTBS(w)
	w.Opaque(g.Signature)
}

func (g *GroupInfo) Decode(r *codec.Reader) {
	*g = GroupInfo{}
	g.GroupContext.Decode(r)
	g.Extensions = decodeExtensions(r)
	g.ConfirmationTag = r.Opaque()
	g.Signer = r.U32()
	g.Signature = r.Opaque()
}

func (g *GroupInfo) Marshal() []byte { return marshal(g.Encode) }
func (g *GroupInfo) Unmarshal(b []byte) error {
	return unmarshal("GroupInfo", b, g.Decode)
}

// TBS returns the GroupInfoTBS encoding.
func (g *GroupInfo) TBS() []byte { return marshal(g.encodeTBS) }

// Sign sets Signature with SignWithLabel(., "GroupInfoTBS", GroupInfoTBS).
func (g *GroupInfo) Sign(signer ciphersuite.Signer) error {
	sig, err := signer.SignWithLabel("GroupInfoTBS", g.TBS())
	if err != nil {
		return fmt.Errorf("sign GroupInfo: %w", err)
	}
	g.Signature = sig
	return nil
}

// VerifySignature checks Signature with signatureKey (that of leaf Signer).
func (g *GroupInfo) VerifySignature(suite *ciphersuite.Suite, signatureKey []byte) error {
	if err := suite.VerifyWithLabel(signatureKey, "GroupInfoTBS", g.TBS(), g.Signature); err != nil {
		return fmt.Errorf("verify GroupInfo: %w", err)
	}
	return nil
}

// MLSMessage (RFC 9420 §6): WireFormat selects which one pointer is set.
type MLSMessage struct {
	Version        ProtocolVersion
	WireFormat     WireFormat
	PublicMessage  *PublicMessage
	PrivateMessage *PrivateMessage
	Welcome        *Welcome
	GroupInfo      *GroupInfo
	KeyPackage     *KeyPackage
}

func (m *MLSMessage) Encode(w *codec.Writer) {
	w.U16(uint16(m.Version))
	w.U16(uint16(m.WireFormat))
	switch m.WireFormat {
	case WireFormatPublicMessage:
		m.PublicMessage.Encode(w)
	case WireFormatPrivateMessage:
		m.PrivateMessage.Encode(w)
	case WireFormatWelcome:
		m.Welcome.Encode(w)
	case WireFormatGroupInfo:
		m.GroupInfo.Encode(w)
	case WireFormatKeyPackage:
		m.KeyPackage.Encode(w)
	}
}

func (m *MLSMessage) Decode(r *codec.Reader) {
	*m = MLSMessage{Version: decodeVersion(r), WireFormat: WireFormat(r.U16())}
	if r.Err() != nil {
		return
	}
	switch m.WireFormat {
	case WireFormatPublicMessage:
		m.PublicMessage = new(PublicMessage)
		m.PublicMessage.Decode(r)
	case WireFormatPrivateMessage:
		m.PrivateMessage = new(PrivateMessage)
		m.PrivateMessage.Decode(r)
	case WireFormatWelcome:
		m.Welcome = new(Welcome)
		m.Welcome.Decode(r)
	case WireFormatGroupInfo:
		m.GroupInfo = new(GroupInfo)
		m.GroupInfo.Decode(r)
	case WireFormatKeyPackage:
		m.KeyPackage = new(KeyPackage)
		m.KeyPackage.Decode(r)
	default:
		invalid(r, "wire format %d", m.WireFormat)
	}
}

func (m *MLSMessage) Marshal() []byte { return marshal(m.Encode) }
func (m *MLSMessage) Unmarshal(b []byte) error {
	return unmarshal("MLSMessage", b, m.Decode)
}
