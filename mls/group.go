package mls

// The Group API, in the order a messenger meets it:
//
//   - NewKeyPackage publishes a KeyPackage and returns the private
//     KeyPackageBundle to keep until a Welcome arrives.
//   - CreateGroup starts a group; JoinFromWelcome and JoinExternal join one.
//   - Add, Remove, Update and Commit create a commit (and a Welcome for new
//     members) that is pending until MergePendingCommit, after the delivery
//     service accepted it, or DiscardPendingCommit, after it lost a race
//     (process the winning commit, then commit again). Propose* send
//     standalone proposals for a later commit by reference.
//   - Encrypt protects application messages; Process handles everything
//     received (application messages, proposals, commits, including the
//     member's own commit coming back) and is transactional: on error the
//     group is unchanged.
//   - MarshalBinary and UnmarshalGroup persist the whole state.
//
// Errors are the sentinels of errors.go, to be tested with errors.Is.

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/keyschedule"
)

// CreateOptions are the group-wide settings fixed at creation, on top of
// the local Config.
type CreateOptions struct {
	Config
	// ExternalSenders may send proposals to the group (§12.1.8.1).
	ExternalSenders ExternalSenders
	// RequiredCapabilities every member must have (§11.1).
	RequiredCapabilities *RequiredCapabilities
	// Extensions are further GroupContext extensions.
	Extensions Extensions
	// Capabilities, if non-nil, are the creator's leaf capabilities.
	Capabilities *Capabilities
}

// CreateGroup starts a one-member group at epoch 0 (RFC 9420 §11).
func CreateGroup(suite *ciphersuite.Suite, groupID []byte, credential Credential, signaturePriv []byte, opts *CreateOptions) (*Group, error) {
	if opts == nil {
		opts = &CreateOptions{}
	}
	signer, err := suite.NewSigner(signaturePriv)
	if err != nil {
		return nil, err
	}
	ext := append(Extensions{}, opts.Extensions...)
	if opts.RequiredCapabilities != nil {
		ext = append(ext, opts.RequiredCapabilities.Extension())
	}
	if len(opts.ExternalSenders) > 0 {
		ext = append(ext, opts.ExternalSenders.Extension())
	}
	leaf, encPriv, err := newLeafNode(suite, credential, signer, opts.Capabilities, Lifetime{}, nil)
	if err != nil {
		return nil, err
	}
	g := &Group{cfg: opts.Config, suite: suite, signKey: signaturePriv, signer: signer}
	if err := g.checkLeafCapabilities(leaf, ext); err != nil {
		return nil, err
	}
	g.tree = NewRatchetTree(suite, leaf)
	g.keys = NewTreeKeys(0, encPriv)
	g.ctx = GroupContext{
		Version: ProtocolVersionMLS10, CipherSuite: suite.ID(), GroupID: bytes.Clone(groupID),
		Epoch: 0, TreeHash: g.tree.TreeHash(), ConfirmedTranscriptHash: []byte{}, Extensions: ext,
	}
	initSecret := suite.RandomBytes(suite.Nh())
	ks, err := keyschedule.NewEpoch(suite, initSecret, nil, nil, g.ctx.Marshal())
	clear(initSecret)
	if err != nil {
		return nil, err
	}
	// §8.2: the interim transcript hash of epoch 0 follows from the
	// empty confirmed transcript hash and the epoch's confirmation tag.
	g.interim = keyschedule.InterimTranscriptHash(suite, g.ctx.ConfirmedTranscriptHash, ks.ConfirmationTag(g.ctx.ConfirmedTranscriptHash))
	if err := g.startEpoch(ks, 0, nil, nil); err != nil {
		return nil, err
	}
	return g, nil
}

// ReInitGroup creates the group that replaces this one after a committed
// ReInit (§11.2): a new group with the ReInit's group ID, cipher suite and
// extensions, and a commit adding the other members from their new
// KeyPackages (for the new suite) with the reinit resumption PSK, which
// ties the two groups together. The members join from the Welcome with
// Config.ResumptionPSKLookup answering from their old group
// (Group.ResumptionPSK). The new group's commit is pending, as usual.
func (g *Group) ReInitGroup(keyPackages [][]byte, opts *CreateOptions) (*Group, *CommitOutput, error) {
	ri := g.reinit
	if ri == nil {
		return nil, nil, fmt.Errorf("%w: no committed reinit", ErrInvalidProposal)
	}
	suite, err := ciphersuite.Lookup(ri.CipherSuite)
	if err != nil {
		return nil, nil, err
	}
	var o CreateOptions
	if opts != nil {
		o = *opts
	}
	o.Extensions = ri.Extensions
	o.ExternalSenders, o.RequiredCapabilities = nil, nil // carried in ri.Extensions
	old := g.ctx
	resumption := bytes.Clone(g.ks.ResumptionPSK)
	prev := o.Config.ResumptionPSKLookup
	o.Config.ResumptionPSKLookup = func(groupID []byte, epoch uint64) ([]byte, bool) {
		if equalBytes(groupID, old.GroupID) && epoch == old.Epoch {
			return resumption, true
		}
		if prev != nil {
			return prev(groupID, epoch)
		}
		return nil, false
	}
	ln := g.tree.Leaf(g.own)
	ng, err := CreateGroup(suite, ri.GroupID, ln.Credential, g.signKey, &o)
	if err != nil {
		return nil, nil, err
	}
	psk := &Proposal{Type: ProposalTypePSK, PreSharedKey: &PreSharedKey{PSK: PreSharedKeyID{
		Type: PSKTypeResumption, Usage: ResumptionPSKUsageReInit, GroupID: old.GroupID,
		Epoch: old.Epoch, Nonce: suite.RandomBytes(suite.Nh())}}}
	out, err := ng.commitWith(CommitOptions{Adds: keyPackages}, psk)
	if err != nil {
		return nil, nil, err
	}
	return ng, out, nil
}

// Add commits adding the members whose KeyPackages (MLSMessages) are given.
func (g *Group) Add(keyPackages ...[]byte) (*CommitOutput, error) {
	return g.Commit(CommitOptions{Adds: keyPackages})
}

// Remove commits removing the members at the given leaf indices.
func (g *Group) Remove(leaves ...uint32) (*CommitOutput, error) {
	return g.Commit(CommitOptions{Removes: leaves})
}

// Update commits a fresh path: new keys for this member and its direct
// path (post-compromise security).
func (g *Group) Update() (*CommitOutput, error) {
	return g.Commit(CommitOptions{ForcePath: true})
}

// MaxApplicationData bounds the plaintext plus authenticated data of one
// application message. The wire format's vector lengths stop at 2^30, and a
// messenger sends bulk content as encrypted attachments, not MLS messages.
const MaxApplicationData = 16 << 20

// Encrypt protects an application message as a PrivateMessage MLSMessage
// (§6.3) with authenticatedData sent in the clear. It refuses messages over
// MaxApplicationData with ErrTooLarge.
func (g *Group) Encrypt(plaintext, authenticatedData []byte) ([]byte, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	if n := len(plaintext) + len(authenticatedData); n > MaxApplicationData {
		return nil, fmt.Errorf("%w: %d bytes, at most %d (send large content as an encrypted attachment)", ErrTooLarge, n, MaxApplicationData)
	}
	if authenticatedData == nil {
		authenticatedData = []byte{}
	}
	ng := g.clone()
	c := &FramedContent{
		GroupID: g.ctx.GroupID, Epoch: g.ctx.Epoch, Sender: g.ownSender(),
		AuthenticatedData: authenticatedData, ContentType: ContentTypeApplication, ApplicationData: plaintext,
	}
	ac, err := signContent(g.signer, WireFormatPrivateMessage, c, g.groupContextBytes())
	if err != nil {
		return nil, err
	}
	msg, err := ng.protect(ac, nil)
	if err != nil {
		return nil, err
	}
	*g = *ng
	return msg, nil
}

// Propose sends a proposal as a standalone message (§12.1) and caches it,
// so that a later Commit can include it by reference. It returns the
// message and the proposal's reference.
func (g *Group) Propose(p *Proposal) (msg, ref []byte, err error) {
	if err := g.usable(); err != nil {
		return nil, nil, err
	}
	if p.Type == ProposalTypeUpdate || p.Type == ProposalTypeExternalInit {
		return nil, nil, fmt.Errorf("%w: use ProposeUpdate or Update", ErrInvalidProposal)
	}
	ng := g.clone()
	msg, ref, err = ng.propose(p)
	if err != nil {
		return nil, nil, err
	}
	*g = *ng
	return msg, ref, nil
}

// propose frames, protects and caches p; g is a transactional clone.
func (g *Group) propose(p *Proposal) (msg, ref []byte, err error) {
	if err := g.checkProposal(p, g.ownSender()); err != nil {
		return nil, nil, err
	}
	wf := WireFormatPrivateMessage
	if g.cfg.PublicHandshake {
		wf = WireFormatPublicMessage
	}
	ctx := g.groupContextBytes()
	c := &FramedContent{
		GroupID: g.ctx.GroupID, Epoch: g.ctx.Epoch, Sender: g.ownSender(),
		AuthenticatedData: []byte{}, ContentType: ContentTypeProposal, Proposal: p,
	}
	ac, err := signContent(g.signer, wf, c, ctx)
	if err != nil {
		return nil, nil, err
	}
	msg, err = g.protect(ac, ctx)
	if err != nil {
		return nil, nil, err
	}
	ref = ProposalRef(g.suite, ac.Marshal())
	g.proposals = append(g.proposals, cachedProposal{ref: ref, proposal: p, sender: g.ownSender()})
	return msg, ref, nil
}

// ProposeUpdate proposes replacing this member's leaf with one holding a
// fresh encryption key (§12.1.2); a Commit by another member applies it.
// (A member's own commit cannot include its Update: use Update() to commit
// a fresh path instead.)
func (g *Group) ProposeUpdate() (msg, ref []byte, err error) {
	if err := g.usable(); err != nil {
		return nil, nil, err
	}
	priv, pub, err := g.suite.GenerateKeyPair(g.cfg.rand())
	if err != nil {
		return nil, nil, err
	}
	ln := g.tree.Leaf(g.own).Clone()
	ln.EncryptionKey = pub
	ln.Source = LeafNodeSourceUpdate
	ln.Lifetime = Lifetime{}
	ln.ParentHash = nil
	if err := ln.Sign(g.signer, g.ctx.GroupID, g.own); err != nil {
		return nil, nil, err
	}
	ng := g.clone()
	ng.updates = append(ng.updates, pendingUpdate{encryptionKey: pub, encryptionPriv: priv})
	msg, ref, err = ng.propose(&Proposal{Type: ProposalTypeUpdate, Update: &Update{LeafNode: *ln}})
	if err != nil {
		return nil, nil, err
	}
	*g = *ng
	return msg, ref, nil
}

// ProposeAdd proposes adding the member of a KeyPackage (MLSMessage).
func (g *Group) ProposeAdd(keyPackage []byte) (msg, ref []byte, err error) {
	kp, err := parseKeyPackage(keyPackage)
	if err != nil {
		return nil, nil, err
	}
	return g.Propose(&Proposal{Type: ProposalTypeAdd, Add: &Add{KeyPackage: *kp}})
}

// ProposeRemove proposes removing the member at leaf.
func (g *Group) ProposeRemove(leaf uint32) (msg, ref []byte, err error) {
	return g.Propose(&Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: leaf}})
}

// ResultKind says what a processed message was.
type ResultKind int

const (
	ResultApplication ResultKind = iota + 1
	ResultProposal
	ResultCommit
)

// Result describes a processed message.
type Result struct {
	Kind ResultKind
	// Sender is the message's sender; for members, SenderLeaf and
	// Credential identify them (Credential is also set for external and
	// new-member senders).
	Sender     Sender
	SenderLeaf uint32
	Credential Credential
	// Epoch is the epoch the message was sent in.
	Epoch uint64
	// AuthenticatedData is the message's unencrypted associated data.
	AuthenticatedData []byte
	// Plaintext is set for application messages.
	Plaintext []byte
	// Proposal and ProposalRef are set for proposals (now cached).
	Proposal    *Proposal
	ProposalRef []byte
	// Commit is set for commits.
	Commit *CommitResult
}

// Process handles an MLSMessage (PublicMessage or PrivateMessage) received
// from the group: it decrypts application messages, caches proposals and
// applies commits, merging this member's own pending commit when it comes
// back. On any error the Group is unchanged.
func (g *Group) Process(data []byte) (*Result, error) {
	var m MLSMessage
	if err := m.Unmarshal(data); err != nil {
		return nil, err
	}
	if g.pending != nil && bytes.Equal(data, g.pending.message) {
		cr, err := g.MergePendingCommit()
		if err != nil {
			return nil, err
		}
		return &Result{Kind: ResultCommit, Sender: Sender{Type: SenderTypeMember, Index: cr.Committer},
			SenderLeaf: cr.Committer, Epoch: cr.NewEpoch - 1, Commit: cr}, nil
	}
	if g.removed {
		return nil, ErrRemoved
	}
	ng := g.clone()
	res, err := ng.process(&m)
	if err != nil {
		return nil, err
	}
	if ng.ks != g.ks {
		retireEpoch(g.ks)
	}
	if g.pending != nil && ng.pending == nil {
		// Another commit won: our pending one can never be merged.
		retireEpoch(g.pending.next.ks)
	}
	*g = *ng
	return res, nil
}

// epochView is what is needed to authenticate a message of one epoch.
type epochView struct {
	ctx              []byte
	tree             *RatchetTree
	senderDataSecret []byte
	secrets          **keyschedule.SecretTree // replaced by a clone before use
	current          bool
}

func (g *Group) epochView(epoch uint64) (*epochView, error) {
	if epoch == g.ctx.Epoch {
		return &epochView{ctx: g.groupContextBytes(), tree: g.tree, senderDataSecret: g.ks.SenderDataSecret, secrets: &g.st, current: true}, nil
	}
	for i, pe := range g.past {
		if pe.epoch == epoch {
			c := *pe
			g.past[i] = &c // g.past was cloned with g: copy before changing
			return &epochView{ctx: c.groupContext, tree: c.tree, senderDataSecret: c.senderDataSecret, secrets: &c.secrets}, nil
		}
	}
	return nil, fmt.Errorf("%w: epoch %d, current %d", ErrWrongEpoch, epoch, g.ctx.Epoch)
}

func (g *Group) process(m *MLSMessage) (*Result, error) {
	var ac *AuthenticatedContent
	var view *epochView
	var err error
	switch m.WireFormat {
	case WireFormatPublicMessage:
		pm := m.PublicMessage
		if !equalBytes(pm.Content.GroupID, g.ctx.GroupID) {
			return nil, ErrWrongGroup
		}
		if pm.Content.Epoch != g.ctx.Epoch {
			return nil, fmt.Errorf("%w: epoch %d, current %d", ErrWrongEpoch, pm.Content.Epoch, g.ctx.Epoch)
		}
		if pm.Content.ContentType == ContentTypeApplication {
			return nil, fmt.Errorf("%w: application data in a PublicMessage", ErrMalformed)
		}
		view, _ = g.epochView(g.ctx.Epoch)
		if pm.Content.Sender.Type == SenderTypeMember {
			if view.tree.Leaf(pm.Content.Sender.Index) == nil {
				return nil, fmt.Errorf("%w: leaf %d", ErrUnknownSender, pm.Content.Sender.Index)
			}
			if pm.Content.Sender.Index == g.own {
				// Our own messages come back from the delivery service;
				// only a pending commit is acted on (above).
				return nil, fmt.Errorf("%w: message from this member", ErrReplay)
			}
		}
		ac, err = unprotectPublic(g.suite, pm, g.ks.MembershipKey, view.ctx)
		if err != nil {
			return nil, err
		}
	case WireFormatPrivateMessage:
		pm := m.PrivateMessage
		if !equalBytes(pm.GroupID, g.ctx.GroupID) {
			return nil, ErrWrongGroup
		}
		if view, err = g.epochView(pm.Epoch); err != nil {
			return nil, err
		}
		if !view.current && pm.ContentType != ContentTypeApplication {
			return nil, fmt.Errorf("%w: handshake message for epoch %d", ErrWrongEpoch, pm.Epoch)
		}
		sd, err := openSenderData(g.suite, pm, view.senderDataSecret)
		if err != nil {
			return nil, err
		}
		if view.tree.Leaf(sd.leaf) == nil {
			return nil, fmt.Errorf("%w: leaf %d", ErrUnknownSender, sd.leaf)
		}
		if sd.leaf == g.own && view.current {
			return nil, fmt.Errorf("%w: message from this member", ErrReplay)
		}
		st := (*view.secrets).Clone()
		*view.secrets = st
		if ac, err = unprotectPrivate(g.suite, pm, sd, st); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: wire format %d is not a group message", ErrUnsupported, m.WireFormat)
	}
	res := &Result{Sender: ac.Content.Sender, Epoch: ac.Content.Epoch, AuthenticatedData: ac.Content.AuthenticatedData}
	sigKey, err := g.senderKey(ac, view, res)
	if err != nil {
		return nil, err
	}
	if err := verifyContent(g.suite, sigKey, ac, view.ctx); err != nil {
		return nil, err
	}
	switch ac.Content.ContentType {
	case ContentTypeApplication:
		res.Kind = ResultApplication
		res.Plaintext = ac.Content.ApplicationData
	case ContentTypeProposal:
		if err := g.checkProposal(ac.Content.Proposal, ac.Content.Sender); err != nil {
			return nil, err
		}
		res.Kind = ResultProposal
		res.Proposal = ac.Content.Proposal
		res.ProposalRef = ProposalRef(g.suite, ac.Marshal())
		if slices.ContainsFunc(g.proposals, func(cp cachedProposal) bool { return equalBytes(cp.ref, res.ProposalRef) }) {
			return nil, ErrDuplicateProposal
		}
		g.proposals = append(g.proposals, cachedProposal{ref: res.ProposalRef, proposal: ac.Content.Proposal, sender: ac.Content.Sender})
	case ContentTypeCommit:
		res.Kind = ResultCommit
		if res.Commit, err = g.processCommit(ac); err != nil {
			return nil, err
		}
		if res.Commit.External {
			res.SenderLeaf = res.Commit.Committer
		}
	}
	return res, nil
}

// senderKey finds the signature key that must have signed ac (§6.1) and
// records who the sender is in res.
func (g *Group) senderKey(ac *AuthenticatedContent, view *epochView, res *Result) ([]byte, error) {
	s := ac.Content.Sender
	switch s.Type {
	case SenderTypeMember:
		ln := view.tree.Leaf(s.Index)
		if ln == nil {
			return nil, fmt.Errorf("%w: leaf %d", ErrUnknownSender, s.Index)
		}
		res.SenderLeaf, res.Credential = s.Index, ln.Credential
		return ln.SignatureKey, nil
	case SenderTypeExternal:
		senders, _, err := g.ctx.Extensions.ExternalSenders()
		if err != nil || s.Index >= uint32(len(senders)) {
			return nil, fmt.Errorf("%w: external sender %d", ErrUnknownSender, s.Index)
		}
		if ac.Content.ContentType != ContentTypeProposal {
			return nil, fmt.Errorf("%w: external sender may only propose", ErrUnknownSender)
		}
		res.Credential = senders[s.Index].Credential
		return senders[s.Index].SignatureKey, nil
	case SenderTypeNewMemberProposal:
		if ac.Content.ContentType != ContentTypeProposal || ac.Content.Proposal.Type != ProposalTypeAdd {
			return nil, fmt.Errorf("%w: new member may only propose its own add", ErrInvalidProposal)
		}
		ln := &ac.Content.Proposal.Add.KeyPackage.LeafNode
		res.Credential = ln.Credential
		return ln.SignatureKey, nil
	case SenderTypeNewMemberCommit:
		if ac.Content.ContentType != ContentTypeCommit || ac.Content.Commit.Path == nil {
			return nil, fmt.Errorf("%w: external commit without a path", ErrInvalidCommit)
		}
		ln := &ac.Content.Commit.Path.LeafNode
		res.Credential = ln.Credential
		return ln.SignatureKey, nil
	}
	return nil, fmt.Errorf("%w: sender type %d", ErrUnknownSender, s.Type)
}
