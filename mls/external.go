package mls

import (
	"fmt"

	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/keyschedule"
)

// GroupInfo returns a signed GroupInfo MLSMessage for the current epoch
// (§12.4.3) with the external_pub extension, so that new members can join
// with an external commit; includeTree adds the ratchet_tree extension.
func (g *Group) GroupInfo(includeTree bool) ([]byte, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	_, pub, err := g.ks.ExternalKeyPair()
	if err != nil {
		return nil, err
	}
	gi := &GroupInfo{
		GroupContext:    g.ctx,
		Extensions:      Extensions{(&ExternalPub{PublicKey: pub}).Extension()},
		ConfirmationTag: g.ks.ConfirmationTag(g.ctx.ConfirmedTranscriptHash),
		Signer:          g.own,
	}
	if includeTree {
		gi.Extensions = append(gi.Extensions, g.tree.Extension())
	}
	if err := gi.Sign(g.signer); err != nil {
		return nil, err
	}
	return (&MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatGroupInfo, GroupInfo: gi}).Marshal(), nil
}

// ExternalJoinOptions tunes JoinExternal.
type ExternalJoinOptions struct {
	Config
	// RatchetTree is the tree, needed when the GroupInfo lacks it.
	RatchetTree []byte
	// RemoveLeaf, if set, removes this leaf in the same commit: a member
	// rejoining (resync) removes its old appearance.
	RemoveLeaf *uint32
	// ExternalPSKs are psk_ids of external PSKs to inject.
	ExternalPSKs [][]byte
	// Capabilities, if non-nil, are the joiner's leaf capabilities.
	Capabilities *Capabilities
}

// JoinExternal joins a group with an external commit (§12.4.3.2) built
// from a GroupInfo MLSMessage. It returns the group, already in the new
// epoch, and the commit (a PublicMessage) to send to the group.
func JoinExternal(groupInfo []byte, credential Credential, signaturePriv []byte, opts *ExternalJoinOptions) (*Group, []byte, error) {
	if opts == nil {
		opts = &ExternalJoinOptions{}
	}
	var m MLSMessage
	if err := m.Unmarshal(groupInfo); err != nil {
		return nil, nil, err
	}
	if m.WireFormat != WireFormatGroupInfo {
		return nil, nil, fmt.Errorf("%w: wire format %d, want a group info", ErrMalformed, m.WireFormat)
	}
	gi := m.GroupInfo
	suite, err := ciphersuite.Lookup(gi.GroupContext.CipherSuite)
	if err != nil {
		return nil, nil, err
	}
	signer, err := suite.NewSigner(signaturePriv)
	if err != nil {
		return nil, nil, err
	}
	g := &Group{cfg: opts.Config, suite: suite, signKey: signaturePriv, signer: signer, ctx: gi.GroupContext}
	tree, err := g.groupInfoTree(gi, opts.RatchetTree)
	if err != nil {
		return nil, nil, err
	}
	ep, ok, err := gi.Extensions.ExternalPub()
	if err != nil || !ok {
		return nil, nil, fmt.Errorf("%w: group info without external_pub", ErrMalformed)
	}
	kemOutput, initSecret, err := keyschedule.ExternalInit(suite, ep.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	g.tree = tree
	g.interim = keyschedule.InterimTranscriptHash(suite, gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag)

	sender := Sender{Type: SenderTypeNewMemberCommit}
	var refs []ProposalOrRef
	var props []resolvedProposal
	inline := func(p *Proposal) {
		refs = append(refs, ProposalOrRef{Type: ProposalOrRefProposal, Proposal: p})
		props = append(props, resolvedProposal{proposal: p, sender: sender})
	}
	inline(&Proposal{Type: ProposalTypeExternalInit, ExternalInit: &ExternalInit{KEMOutput: kemOutput}})
	if opts.RemoveLeaf != nil {
		inline(&Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: *opts.RemoveLeaf}})
	}
	for _, id := range opts.ExternalPSKs {
		inline(&Proposal{Type: ProposalTypePSK, PreSharedKey: &PreSharedKey{PSK: PreSharedKeyID{
			Type: PSKTypeExternal, ExternalID: id, Nonce: suite.RandomBytes(suite.Nh())}}})
	}
	oldCtx := g.groupContextBytes()
	newTree := tree.Clone()
	applied, err := g.applyProposals(newTree, sender, props)
	if err != nil {
		return nil, nil, err
	}
	leaf, encPriv, err := newLeafNode(suite, credential, signer, opts.Capabilities, Lifetime{}, nil)
	if err != nil {
		return nil, nil, err
	}
	_ = encPriv // replaced by the path's leaf key
	if err := g.checkLeafCapabilities(leaf, applied.extensions); err != nil {
		return nil, nil, err
	}
	ix := g.index(newTree)
	own := leftmostBlank(newTree)
	if err := ix.checkLeaf(leaf, own); err != nil {
		return nil, nil, err
	}
	var gen *PathGeneration
	err = ix.change(own, func() error {
		if _, err := newTree.AddLeaf(leaf); err != nil {
			return err
		}
		gen, err = newTree.GenerateUpdatePath(g.cfg.rand(), own, leaf, signer, gi.GroupContext.GroupID)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	newCtx := GroupContext{
		Version: g.ctx.Version, CipherSuite: g.ctx.CipherSuite, GroupID: g.ctx.GroupID,
		Epoch: g.ctx.Epoch + 1, TreeHash: newTree.TreeHash(), ConfirmedTranscriptHash: g.ctx.ConfirmedTranscriptHash,
		Extensions: applied.extensions,
	}
	path, err := gen.Encrypt(newTree, newCtx.Marshal(), nil)
	if err != nil {
		return nil, nil, err
	}
	content := &FramedContent{
		GroupID: g.ctx.GroupID, Epoch: g.ctx.Epoch, Sender: sender, AuthenticatedData: []byte{},
		ContentType: ContentTypeCommit, Commit: &Commit{Proposals: refs, Path: path},
	}
	ac, err := signContent(signer, WireFormatPublicMessage, content, oldCtx)
	if err != nil {
		return nil, nil, err
	}
	newCtx.ConfirmedTranscriptHash = keyschedule.ConfirmedTranscriptHash(suite, g.interim, ac.ConfirmedTranscriptHashInput())
	pskSecret, err := g.pskSecret(applied.psks)
	if err != nil {
		return nil, nil, err
	}
	ks, err := keyschedule.NewEpoch(suite, initSecret, gen.CommitSecret, pskSecret, newCtx.Marshal())
	if err != nil {
		return nil, nil, err
	}
	ac.Auth.ConfirmationTag = ks.ConfirmationTag(newCtx.ConfirmedTranscriptHash)
	msg := (&MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatPublicMessage,
		PublicMessage: &PublicMessage{Content: ac.Content, Auth: ac.Auth}}).Marshal()

	g.ctx = newCtx
	g.tree = newTree
	g.own = own
	g.keys = gen.Keys
	g.interim = keyschedule.InterimTranscriptHash(suite, newCtx.ConfirmedTranscriptHash, ac.Auth.ConfirmationTag)
	if err := g.startEpoch(ks, 0, nil, nil); err != nil {
		return nil, nil, err
	}
	return g, msg, nil
}

// NewExternalProposal makes a proposal from an external sender (§12.1.8):
// the signer of entry senderIndex of the group's external_senders
// extension (for example the delivery service) proposes p for the given
// group and epoch. The result is a PublicMessage MLSMessage. Only Add,
// Remove, PreSharedKey, ReInit and GroupContextExtensions may be proposed.
func NewExternalProposal(suite *ciphersuite.Suite, groupID []byte, epoch uint64, senderIndex uint32, signaturePriv []byte, p *Proposal) ([]byte, error) {
	switch p.Type {
	case ProposalTypeAdd, ProposalTypeRemove, ProposalTypePSK, ProposalTypeReInit, ProposalTypeGroupContextExtensions:
	default:
		return nil, fmt.Errorf("%w: type %d from an external sender", ErrInvalidProposal, p.Type)
	}
	signer, err := suite.NewSigner(signaturePriv)
	if err != nil {
		return nil, err
	}
	c := &FramedContent{
		GroupID: groupID, Epoch: epoch, Sender: Sender{Type: SenderTypeExternal, Index: senderIndex},
		AuthenticatedData: []byte{}, ContentType: ContentTypeProposal, Proposal: p,
	}
	ac, err := signContent(signer, WireFormatPublicMessage, c, nil)
	if err != nil {
		return nil, err
	}
	return (&MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatPublicMessage,
		PublicMessage: &PublicMessage{Content: ac.Content, Auth: ac.Auth}}).Marshal(), nil
}

// NewJoinProposal makes the proposal by which a prospective member asks to
// be added (§12.1.8, sender new_member_proposal): an Add of its own
// KeyPackage, signed with the KeyPackage's signature key, as a
// PublicMessage MLSMessage for the given group and epoch. A member then
// commits it by reference.
func NewJoinProposal(groupID []byte, epoch uint64, bundle *KeyPackageBundle) ([]byte, error) {
	suite, err := ciphersuite.Lookup(bundle.KeyPackage.CipherSuite)
	if err != nil {
		return nil, err
	}
	signer, err := suite.NewSigner(bundle.SignaturePriv)
	if err != nil {
		return nil, err
	}
	c := &FramedContent{
		GroupID: groupID, Epoch: epoch, Sender: Sender{Type: SenderTypeNewMemberProposal},
		AuthenticatedData: []byte{}, ContentType: ContentTypeProposal,
		Proposal: &Proposal{Type: ProposalTypeAdd, Add: &Add{KeyPackage: bundle.KeyPackage}},
	}
	ac, err := signContent(signer, WireFormatPublicMessage, c, nil)
	if err != nil {
		return nil, err
	}
	return (&MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatPublicMessage,
		PublicMessage: &PublicMessage{Content: ac.Content, Auth: ac.Auth}}).Marshal(), nil
}
