package mls

import (
	"errors"
	"fmt"
	"slices"

	"github.com/parleychat/parley/mls/keyschedule"
)

// CommitOptions describes a commit to create (RFC 9420 §12.4.1).
type CommitOptions struct {
	// Adds are KeyPackages to add, each an MLSMessage or a bare KeyPackage.
	Adds [][]byte
	// Removes are leaf indices to remove.
	Removes []uint32
	// ExternalPSKs are psk_ids of external PSKs (found with
	// Config.PSKLookup) to inject.
	ExternalPSKs [][]byte
	// ResumptionPSKEpochs are epochs of this group whose resumption PSK
	// to inject (the current one or a kept past one).
	ResumptionPSKEpochs []uint64
	// GroupContextExtensions, if non-nil, replaces the GroupContext
	// extensions.
	GroupContextExtensions Extensions
	// ReInit, if non-nil, commits a ReInit proposal (alone).
	ReInit *ReInit
	// ProposalRefs are references of received proposals to commit. If
	// IncludeReceived is set, every cached proposal is committed instead.
	ProposalRefs    [][]byte
	IncludeReceived bool
	// ForcePath includes an UpdatePath even when no proposal requires one.
	ForcePath bool
	// AuthenticatedData is sent in the clear (but authenticated).
	AuthenticatedData []byte
}

// CommitOutput is a created commit.
type CommitOutput struct {
	// Commit is the MLSMessage to send to the group.
	Commit []byte
	// Welcome is the MLSMessage for the added members, nil if none.
	Welcome []byte
}

// CommitResult describes a commit that was applied.
type CommitResult struct {
	// Committer is the committer's leaf index in the new epoch.
	Committer uint32
	// External is set for an external commit (a new member joining).
	External bool
	// Added, Removed and Updated list leaf indices (Added and Updated in
	// the new epoch, Removed in the old one).
	Added, Removed, Updated []uint32
	// RemovedMembers describes the removed members as they were.
	RemovedMembers []Member
	// NewEpoch is the epoch the group is now in.
	NewEpoch uint64
	// RemovedSelf is set if this member was removed: the group can no
	// longer be used.
	RemovedSelf bool
	// ReInit is set if the commit carried a ReInit proposal.
	ReInit *ReInit
	// Own is set when this member's pending commit was merged.
	Own bool
}

// parseKeyPackage accepts an MLSMessage carrying a KeyPackage or a bare
// KeyPackage.
func parseKeyPackage(b []byte) (*KeyPackage, error) {
	var m MLSMessage
	if err := m.Unmarshal(b); err == nil {
		if m.WireFormat != WireFormatKeyPackage {
			return nil, fmt.Errorf("%w: wire format %d, want a key package", ErrMalformed, m.WireFormat)
		}
		return m.KeyPackage, nil
	}
	kp := new(KeyPackage)
	if err := kp.Unmarshal(b); err != nil {
		return nil, err
	}
	return kp, nil
}

// pskSecret looks the PSKs up and computes psk_secret (§8.4); nil means
// no PSKs.
func (g *Group) pskSecret(ids []PreSharedKeyID) ([]byte, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	psks := make([]keyschedule.PSK, len(ids))
	for i := range ids {
		secret, err := g.lookupPSK(&ids[i])
		if err != nil {
			return nil, err
		}
		id, err := ids[i].MarshalBinary()
		if err != nil {
			return nil, err
		}
		psks[i] = keyschedule.PSK{ID: id, Secret: secret}
	}
	return keyschedule.PSKSecret(g.suite, psks)
}

func (g *Group) lookupPSK(id *PreSharedKeyID) ([]byte, error) {
	switch id.Type {
	case PSKTypeExternal:
		if g.cfg.PSKLookup != nil {
			if s, ok := g.cfg.PSKLookup(id.ExternalID); ok {
				return s, nil
			}
		}
		return nil, fmt.Errorf("%w: external PSK %x", ErrUnknownPSK, id.ExternalID)
	case PSKTypeResumption:
		if equalBytes(id.GroupID, g.ctx.GroupID) {
			if g.ks != nil && id.Epoch == g.ctx.Epoch {
				return g.ks.ResumptionPSK, nil
			}
			for _, r := range g.resumption {
				if r.epoch == id.Epoch {
					return r.secret, nil
				}
			}
		}
		if g.cfg.ResumptionPSKLookup != nil {
			if s, ok := g.cfg.ResumptionPSKLookup(id.GroupID, id.Epoch); ok {
				return s, nil
			}
		}
		return nil, fmt.Errorf("%w: resumption PSK of epoch %d", ErrUnknownPSK, id.Epoch)
	}
	return nil, fmt.Errorf("%w: PSK type %d", ErrUnknownPSK, id.Type)
}

// ownSender is this member as a sender.
func (g *Group) ownSender() Sender { return Sender{Type: SenderTypeMember, Index: g.own} }

// Commit creates a commit with the given proposals. The commit is
// pending: the group stays in its epoch until MergePendingCommit (the
// delivery service accepted the commit) or until the commit comes back
// through Process; after DiscardPendingCommit (another commit won) it is
// forgotten.
func (g *Group) Commit(opts CommitOptions) (*CommitOutput, error) {
	return g.commitWith(opts)
}

// commitWith is Commit with extra proposals sent by value.
func (g *Group) commitWith(opts CommitOptions, extra ...*Proposal) (*CommitOutput, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	if g.pending != nil {
		return nil, fmt.Errorf("%w: a commit is already pending", ErrPendingCommit)
	}
	ng := g.clone()
	out, err := ng.createCommit(&opts, extra)
	if err != nil {
		return nil, err
	}
	*g = *ng
	return out, nil
}

func (g *Group) createCommit(opts *CommitOptions, extra []*Proposal) (*CommitOutput, error) {
	rand := g.cfg.rand()
	var refs []ProposalOrRef
	var props []resolvedProposal
	byRef := opts.ProposalRefs
	if opts.IncludeReceived {
		byRef = g.committableProposals()
	}
	for _, ref := range byRef {
		i := slices.IndexFunc(g.proposals, func(cp cachedProposal) bool { return equalBytes(cp.ref, ref) })
		if i < 0 {
			return nil, fmt.Errorf("%w: unknown proposal reference", ErrInvalidProposal)
		}
		refs = append(refs, ProposalOrRef{Type: ProposalOrRefReference, Reference: ref})
		props = append(props, resolvedProposal{proposal: g.proposals[i].proposal, sender: g.proposals[i].sender})
	}
	inline := func(p *Proposal) {
		refs = append(refs, ProposalOrRef{Type: ProposalOrRefProposal, Proposal: p})
		props = append(props, resolvedProposal{proposal: p, sender: g.ownSender()})
	}
	if opts.GroupContextExtensions != nil {
		inline(&Proposal{Type: ProposalTypeGroupContextExtensions, GroupContextExtensions: &GroupContextExtensions{Extensions: opts.GroupContextExtensions}})
	}
	for _, l := range opts.Removes {
		inline(&Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: l}})
	}
	for _, b := range opts.Adds {
		kp, err := parseKeyPackage(b)
		if err != nil {
			return nil, fmt.Errorf("add: %w", err)
		}
		inline(&Proposal{Type: ProposalTypeAdd, Add: &Add{KeyPackage: *kp}})
	}
	for _, id := range opts.ExternalPSKs {
		inline(&Proposal{Type: ProposalTypePSK, PreSharedKey: &PreSharedKey{PSK: PreSharedKeyID{
			Type: PSKTypeExternal, ExternalID: id, Nonce: g.suite.RandomBytes(g.suite.Nh())}}})
	}
	for _, e := range opts.ResumptionPSKEpochs {
		inline(&Proposal{Type: ProposalTypePSK, PreSharedKey: &PreSharedKey{PSK: PreSharedKeyID{
			Type: PSKTypeResumption, Usage: ResumptionPSKUsageApplication, GroupID: g.ctx.GroupID,
			Epoch: e, Nonce: g.suite.RandomBytes(g.suite.Nh())}}})
	}
	if opts.ReInit != nil {
		inline(&Proposal{Type: ProposalTypeReInit, ReInit: opts.ReInit})
	}
	for _, p := range extra {
		inline(p)
	}

	oldCtx := g.groupContextBytes()
	tree := g.tree.Clone()
	applied, err := g.applyProposals(tree, g.ownSender(), props)
	if err != nil {
		return nil, err
	}
	newCtx := GroupContext{
		Version: g.ctx.Version, CipherSuite: g.ctx.CipherSuite, GroupID: g.ctx.GroupID,
		Epoch: g.ctx.Epoch + 1, ConfirmedTranscriptHash: g.ctx.ConfirmedTranscriptHash,
		Extensions: applied.extensions,
	}
	commit := &Commit{Proposals: refs}
	if commit.Proposals == nil {
		commit.Proposals = []ProposalOrRef{}
	}
	keys := g.keys
	var commitSecret []byte
	var gen *PathGeneration
	if applied.pathRequired || opts.ForcePath {
		err = g.index(tree).change(g.own, func() (err error) {
			gen, err = tree.GenerateUpdatePath(rand, g.own, tree.Leaf(g.own), g.signer, g.ctx.GroupID)
			return err
		})
		if err != nil {
			return nil, err
		}
		newCtx.TreeHash = tree.TreeHash()
		commit.Path, err = gen.Encrypt(tree, newCtx.Marshal(), applied.added)
		if err != nil {
			return nil, err
		}
		commitSecret = gen.CommitSecret
		keys = gen.Keys
	} else {
		newCtx.TreeHash = tree.TreeHash()
	}
	wf := WireFormatPrivateMessage
	if g.cfg.PublicHandshake {
		wf = WireFormatPublicMessage
	}
	content := &FramedContent{
		GroupID: g.ctx.GroupID, Epoch: g.ctx.Epoch, Sender: g.ownSender(),
		AuthenticatedData: opts.AuthenticatedData, ContentType: ContentTypeCommit, Commit: commit,
	}
	if content.AuthenticatedData == nil {
		content.AuthenticatedData = []byte{}
	}
	ac, err := signContent(g.signer, wf, content, oldCtx)
	if err != nil {
		return nil, err
	}
	newCtx.ConfirmedTranscriptHash = keyschedule.ConfirmedTranscriptHash(g.suite, g.interim, ac.ConfirmedTranscriptHashInput())
	pskSecret, err := g.pskSecret(applied.psks)
	if err != nil {
		return nil, err
	}
	newCtxBytes := newCtx.Marshal()
	ks, err := keyschedule.NewEpoch(g.suite, g.ks.InitSecret, commitSecret, pskSecret, newCtxBytes)
	if err != nil {
		return nil, err
	}
	ac.Auth.ConfirmationTag = ks.ConfirmationTag(newCtx.ConfirmedTranscriptHash)
	msg, err := g.protect(ac, oldCtx)
	if err != nil {
		return nil, err
	}
	out := &CommitOutput{Commit: msg}

	next := g.clone()
	next.ctx = newCtx
	next.tree = tree
	next.keys = keys.Clone()
	next.keys.Prune(tree)
	next.interim = keyschedule.InterimTranscriptHash(g.suite, newCtx.ConfirmedTranscriptHash, ac.Auth.ConfirmationTag)
	next.reinit = applied.reinit
	if len(applied.added) > 0 {
		out.Welcome, err = next.buildWelcome(ks, gen, applied, pskSecret)
		if err != nil {
			return nil, err
		}
	}
	if err := next.startEpoch(ks, g.ctx.Epoch, oldCtx, g.tree); err != nil {
		return nil, err
	}
	g.pending = &pendingCommit{message: msg, welcome: out.Welcome, next: next,
		added: applied.added, removed: applied.removed, updated: applied.updated}
	return out, nil
}

// protect frames ac (signed for the current epoch) in the configured
// handshake wire format, or as PrivateMessage for application data.
func (g *Group) protect(ac *AuthenticatedContent, ctx []byte) ([]byte, error) {
	m := MLSMessage{Version: ProtocolVersionMLS10, WireFormat: ac.WireFormat}
	switch ac.WireFormat {
	case WireFormatPublicMessage:
		m.PublicMessage = protectPublic(g.suite, ac, g.ks.MembershipKey, ctx)
	default:
		g.ownSecretTree()
		pm, err := protectPrivate(g.suite, ac, g.ks.SenderDataSecret, g.st, g.cfg.paddingBlock(), g.cfg.rand())
		if err != nil {
			return nil, err
		}
		m.PrivateMessage = pm
	}
	return m.Marshal(), nil
}

// MergePendingCommit moves the group to the epoch of its pending commit,
// once the delivery service has accepted it.
func (g *Group) MergePendingCommit() (*CommitResult, error) {
	if g.pending == nil {
		return nil, fmt.Errorf("%w: no pending commit", ErrPendingCommit)
	}
	next := g.pending.next
	// Application messages of the old epoch processed while the commit was
	// pending consumed keys from the current secret tree; keep that tree.
	if len(next.past) > 0 && next.past[0].epoch == g.ctx.Epoch {
		pe := *next.past[0]
		pe.secrets = g.st
		next.past[0] = &pe
	}
	pc := g.pending
	res := &CommitResult{Committer: g.own, NewEpoch: next.ctx.Epoch, Own: true, ReInit: next.reinit,
		Added: pc.added, Removed: pc.removed, Updated: pc.updated, RemovedMembers: g.membersAt(pc.removed)}
	retireEpoch(g.ks)
	*g = *next
	g.pending = nil
	return res, nil
}

// DiscardPendingCommit forgets the pending commit (for example when the
// delivery service accepted a competing commit for the same epoch: process
// that one, then commit again).
func (g *Group) DiscardPendingCommit() error {
	if g.pending == nil {
		return fmt.Errorf("%w: no pending commit", ErrPendingCommit)
	}
	retireEpoch(g.pending.next.ks)
	g.pending = nil
	return nil
}

// processCommit applies a received commit (§12.4.2). g is a transactional
// clone.
func (g *Group) processCommit(ac *AuthenticatedContent) (*CommitResult, error) {
	c := ac.Content.Commit
	committer := ac.Content.Sender
	external := committer.Type == SenderTypeNewMemberCommit
	if !external && committer.Index == g.own {
		return nil, invalidCommit("own commit without a matching pending commit")
	}
	var props []resolvedProposal
	for _, por := range c.Proposals {
		if por.Type == ProposalOrRefProposal {
			props = append(props, resolvedProposal{proposal: por.Proposal, sender: committer})
			continue
		}
		if external {
			return nil, invalidCommit("external commit with a proposal reference")
		}
		i := slices.IndexFunc(g.proposals, func(cp cachedProposal) bool { return equalBytes(cp.ref, por.Reference) })
		if i < 0 {
			return nil, invalidCommit("unknown proposal reference %x", por.Reference)
		}
		props = append(props, resolvedProposal{proposal: g.proposals[i].proposal, sender: g.proposals[i].sender})
	}
	oldCtx := g.groupContextBytes()
	tree := g.tree.Clone()
	applied, err := g.applyProposals(tree, committer, props)
	if err != nil {
		return nil, err
	}
	if applied.pathRequired && c.Path == nil {
		return nil, invalidCommit("path required")
	}
	res := &CommitResult{External: external, Added: applied.added, Removed: applied.removed, Updated: applied.updated,
		NewEpoch: g.ctx.Epoch + 1, ReInit: applied.reinit, Committer: committer.Index,
		RemovedMembers: g.membersAt(applied.removed)}
	if slices.Contains(applied.removed, g.own) {
		// We cannot follow the group any further (§12.4.2).
		res.RemovedSelf = true
		g.removed = true
		g.pending = nil
		g.proposals = nil
		return res, nil
	}
	newCtx := GroupContext{
		Version: g.ctx.Version, CipherSuite: g.ctx.CipherSuite, GroupID: g.ctx.GroupID,
		Epoch: g.ctx.Epoch + 1, ConfirmedTranscriptHash: g.ctx.ConfirmedTranscriptHash,
		Extensions: applied.extensions,
	}
	keys := g.keys
	if slices.Contains(applied.updated, g.own) {
		// Our own Update proposal was committed: its leaf key is now ours.
		ln := tree.Leaf(g.own)
		i := slices.IndexFunc(g.updates, func(u pendingUpdate) bool { return equalBytes(u.encryptionKey, ln.EncryptionKey) })
		if i < 0 {
			return nil, invalidCommit("commits an update of ours we do not know")
		}
		keys = NewTreeKeys(g.own, g.updates[i].encryptionPriv)
	}
	var commitSecret []byte
	if c.Path != nil {
		if external {
			// The joiner takes the leftmost blank leaf (§12.4.2). A
			// placeholder with an empty encryption key holds the slot until
			// the path's leaf replaces it.
			ph := c.Path.LeafNode.Clone()
			ph.EncryptionKey = nil
			idx := leftmostBlank(tree)
			if err := g.index(tree).change(idx, func() error { _, err := tree.AddLeaf(ph); return err }); err != nil {
				return nil, invalidCommit("%w", err)
			}
			committer.Index = idx
			res.Committer = idx
		}
		if err := g.checkPath(tree, committer.Index, c.Path, applied.extensions); err != nil {
			return nil, err
		}
		if err := g.index(tree).change(committer.Index, func() error {
			return tree.MergeUpdatePath(committer.Index, c.Path, g.ctx.GroupID)
		}); err != nil {
			return nil, invalidCommit("%w", err)
		}
		newCtx.TreeHash = tree.TreeHash()
		commitSecret, keys, err = tree.DecryptUpdatePath(keys, committer.Index, c.Path, newCtx.Marshal(), applied.added)
		if err != nil {
			return nil, invalidCommit("%w", err)
		}
	} else {
		newCtx.TreeHash = tree.TreeHash()
	}
	newCtx.ConfirmedTranscriptHash = keyschedule.ConfirmedTranscriptHash(g.suite, g.interim, ac.ConfirmedTranscriptHashInput())
	pskSecret, err := g.pskSecret(applied.psks)
	if err != nil {
		return nil, err
	}
	initSecret := g.ks.InitSecret
	if external {
		priv, _, err := g.ks.ExternalKeyPair()
		if err != nil {
			return nil, err
		}
		initSecret, err = keyschedule.ExternalInitOpen(g.suite, priv, applied.externalInit.KEMOutput)
		if err != nil {
			return nil, invalidCommit("%w", err)
		}
	}
	ks, err := keyschedule.NewEpoch(g.suite, initSecret, commitSecret, pskSecret, newCtx.Marshal())
	if err != nil {
		return nil, err
	}
	if err := ks.VerifyConfirmationTag(newCtx.ConfirmedTranscriptHash, ac.Auth.ConfirmationTag); err != nil {
		if errors.Is(err, keyschedule.ErrConfirmationTag) {
			return nil, ErrBadConfirmationTag
		}
		return nil, err
	}
	oldTree, oldEpoch := g.tree, g.ctx.Epoch
	g.ctx = newCtx
	g.tree = tree
	g.keys = keys.Clone()
	g.keys.Prune(tree)
	g.interim = keyschedule.InterimTranscriptHash(g.suite, newCtx.ConfirmedTranscriptHash, ac.Auth.ConfirmationTag)
	g.reinit = applied.reinit
	g.pending = nil
	if err := g.startEpoch(ks, oldEpoch, oldCtx, oldTree); err != nil {
		return nil, err
	}
	return res, nil
}

// checkPath validates an UpdatePath's leaf (§7.3, source commit) and that
// none of its public keys is already in the tree (§12.4.2).
func (g *Group) checkPath(tree *RatchetTree, sender uint32, path *UpdatePath, ext Extensions) error {
	ln := &path.LeafNode
	required, _, err := ext.RequiredCapabilities()
	if err != nil {
		return invalidCommit("%w", err)
	}
	check := LeafNodeCheck{Source: LeafNodeSourceCommit, GroupID: g.ctx.GroupID, LeafIndex: sender,
		Required: required, GroupExtensions: ext}
	if err := ln.Validate(g.suite, &check); err != nil {
		return invalidCommit("path leaf: %w", err)
	}
	ix := g.index(tree)
	if err := ix.checkLeaf(ln, sender); err != nil {
		return invalidCommit("path leaf: %w", err)
	}
	for i := range path.Nodes {
		if ix.hasEncryptionKey(path.Nodes[i].EncryptionKey) {
			return invalidCommit("path key already in the tree")
		}
	}
	return nil
}

// membersAt describes the members at the given leaves of the current tree.
func (g *Group) membersAt(leaves []uint32) []Member {
	var ms []Member
	for _, l := range leaves {
		if m, ok := g.Member(l); ok {
			ms = append(ms, m)
		}
	}
	return ms
}

// committableProposals picks the cached proposals a commit by this member
// can include (§12.2, §12.4): not its own Updates (its path replaces
// them), not a Remove of itself (another member must commit that), one
// Remove or Update per leaf with Removes preferred, and a ReInit only if
// nothing else is pending.
func (g *Group) committableProposals() [][]byte {
	removed := map[uint32]bool{}
	for _, cp := range g.proposals {
		if cp.proposal.Type == ProposalTypeRemove {
			removed[cp.proposal.Remove.Removed] = true
		}
	}
	var refs [][]byte
	var reinit []byte
	updated := map[uint32]bool{}
	seenRemove := map[uint32]bool{}
	for _, cp := range g.proposals {
		p := cp.proposal
		switch p.Type {
		case ProposalTypeUpdate:
			l := cp.sender.Index
			if l == g.own || removed[l] || updated[l] {
				continue
			}
			updated[l] = true
		case ProposalTypeRemove:
			l := p.Remove.Removed
			if l == g.own || seenRemove[l] {
				continue
			}
			seenRemove[l] = true
		case ProposalTypeReInit:
			reinit = cp.ref
			continue
		}
		refs = append(refs, cp.ref)
	}
	if len(refs) == 0 && reinit != nil {
		refs = [][]byte{reinit}
	}
	return refs
}
