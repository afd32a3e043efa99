package mls

import (
	"fmt"
	"slices"
)

// resolvedProposal is a committed proposal with the sender that proposed
// it (the committer for proposals sent by value).
type resolvedProposal struct {
	proposal *Proposal
	sender   Sender
}

// appliedProposals is the outcome of applying a proposal list (§12.3).
type appliedProposals struct {
	extensions   Extensions
	added        []uint32
	addedKPs     []*KeyPackage
	removed      []uint32
	updated      []uint32
	psks         []PreSharedKeyID
	externalInit *ExternalInit
	reinit       *ReInit
	pathRequired bool
}

func invalidProposal(format string, args ...any) error {
	return fmt.Errorf("%w: %w: "+format, append([]any{ErrInvalidCommit, ErrInvalidProposal}, args...)...)
}

func invalidCommit(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidCommit}, args...)...)
}

// checkKeyPackage validates an Add's KeyPackage for this group (§10.1,
// §7.3) against the GroupContext extensions ext.
func (g *Group) checkKeyPackage(kp *KeyPackage, ext Extensions) error {
	if err := kp.Validate(g.suite, g.cfg.now()); err != nil {
		return err
	}
	return g.checkLeafCapabilities(&kp.LeafNode, ext)
}

// checkLeafCapabilities checks a leaf against the group's required
// capabilities and extensions.
func (g *Group) checkLeafCapabilities(ln *LeafNode, ext Extensions) error {
	required, _, err := ext.RequiredCapabilities()
	if err != nil {
		return err
	}
	if required != nil && !required.SatisfiedBy(&ln.Capabilities) {
		return fmt.Errorf("%w: capabilities do not cover required_capabilities", ErrInvalidLeafNode)
	}
	for i := range ext {
		if !ln.Capabilities.SupportsExtension(ext[i].Type) {
			return fmt.Errorf("%w: group extension %d not supported", ErrInvalidLeafNode, ext[i].Type)
		}
	}
	return nil
}

// checkProposal performs the checks of §12.1 that do not depend on the
// rest of the list, for a proposal received standalone or by value.
func (g *Group) checkProposal(p *Proposal, sender Sender) error {
	switch p.Type {
	case ProposalTypeAdd:
		if err := g.checkKeyPackage(&p.Add.KeyPackage, g.ctx.Extensions); err != nil {
			return fmt.Errorf("%w: add: %w", ErrInvalidProposal, err)
		}
	case ProposalTypeUpdate:
		if sender.Type != SenderTypeMember {
			return fmt.Errorf("%w: update from a non-member", ErrInvalidProposal)
		}
		ln := &p.Update.LeafNode
		check := LeafNodeCheck{Source: LeafNodeSourceUpdate, GroupID: g.ctx.GroupID, LeafIndex: sender.Index}
		if err := ln.Validate(g.suite, &check); err != nil {
			return fmt.Errorf("%w: update: %w", ErrInvalidProposal, err)
		}
		if err := g.checkLeafCapabilities(ln, g.ctx.Extensions); err != nil {
			return fmt.Errorf("%w: update: %w", ErrInvalidProposal, err)
		}
	case ProposalTypeRemove:
		if g.tree.Leaf(p.Remove.Removed) == nil {
			return fmt.Errorf("%w: remove of blank leaf %d", ErrInvalidProposal, p.Remove.Removed)
		}
	case ProposalTypePSK:
		id := &p.PreSharedKey.PSK
		if len(id.Nonce) != g.suite.Nh() {
			return fmt.Errorf("%w: psk_nonce of %d bytes", ErrInvalidProposal, len(id.Nonce))
		}
		// A reinit PSK belongs in the first commit of the group that
		// replaces a reinitialized one (§11.2); branch PSKs are not
		// supported.
		reinitStart := id.Usage == ResumptionPSKUsageReInit && g.ctx.Epoch == 0
		if id.Type == PSKTypeResumption && id.Usage != ResumptionPSKUsageApplication && !reinitStart {
			return fmt.Errorf("%w: resumption PSK with usage %d", ErrInvalidProposal, id.Usage)
		}
	case ProposalTypeReInit:
		if p.ReInit.Version < g.ctx.Version {
			return fmt.Errorf("%w: reinit to an older version", ErrInvalidProposal)
		}
	case ProposalTypeExternalInit:
		if sender.Type != SenderTypeNewMemberCommit {
			return fmt.Errorf("%w: external init outside an external commit", ErrInvalidProposal)
		}
	case ProposalTypeGroupContextExtensions:
		ext := p.GroupContextExtensions.Extensions
		if _, _, err := ext.RequiredCapabilities(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidProposal, err)
		}
		if _, _, err := ext.ExternalSenders(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidProposal, err)
		}
	default:
		return fmt.Errorf("%w: unsupported proposal type %d", ErrInvalidProposal, p.Type)
	}
	// §12.1.8: external senders may propose only some types.
	if sender.Type == SenderTypeExternal {
		switch p.Type {
		case ProposalTypeAdd, ProposalTypeRemove, ProposalTypePSK, ProposalTypeReInit, ProposalTypeGroupContextExtensions:
		default:
			return fmt.Errorf("%w: type %d from an external sender", ErrInvalidProposal, p.Type)
		}
	}
	if sender.Type == SenderTypeNewMemberProposal && p.Type != ProposalTypeAdd {
		return fmt.Errorf("%w: new_member_proposal sender with type %d", ErrInvalidProposal, p.Type)
	}
	return nil
}

// applyProposals validates the list (§12.2) and applies it (§12.3) to
// tree, which the caller has cloned. committer is the commit's sender;
// for an external commit its Index is not yet known.
func (g *Group) applyProposals(tree *RatchetTree, committer Sender, props []resolvedProposal) (*appliedProposals, error) {
	external := committer.Type == SenderTypeNewMemberCommit
	a := &appliedProposals{extensions: g.ctx.Extensions, pathRequired: len(props) == 0}
	var gce, updates, removes, adds []resolvedProposal
	touched := map[uint32]bool{}
	var pskIDs [][]byte
	nExternalInit := 0
	for _, rp := range props {
		p := rp.proposal
		if err := g.checkProposal(p, rp.sender); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
		}
		switch p.Type {
		case ProposalTypeUpdate, ProposalTypeRemove, ProposalTypeExternalInit, ProposalTypeGroupContextExtensions:
			a.pathRequired = true
		}
		if external {
			switch p.Type {
			case ProposalTypeExternalInit, ProposalTypeRemove, ProposalTypePSK:
			default:
				return nil, invalidProposal("type %d in an external commit", p.Type)
			}
		} else if p.Type == ProposalTypeExternalInit {
			return nil, invalidProposal("external init in a member commit")
		}
		switch p.Type {
		case ProposalTypeGroupContextExtensions:
			gce = append(gce, rp)
		case ProposalTypeUpdate:
			if rp.sender == committer {
				return nil, invalidProposal("update from the committer")
			}
			if touched[rp.sender.Index] {
				return nil, invalidProposal("several updates/removes of leaf %d", rp.sender.Index)
			}
			touched[rp.sender.Index] = true
			updates = append(updates, rp)
		case ProposalTypeRemove:
			l := p.Remove.Removed
			if !external && committer.Type == SenderTypeMember && l == committer.Index {
				return nil, invalidProposal("remove of the committer")
			}
			if touched[l] {
				return nil, invalidProposal("several updates/removes of leaf %d", l)
			}
			touched[l] = true
			removes = append(removes, rp)
		case ProposalTypeAdd:
			adds = append(adds, rp)
		case ProposalTypePSK:
			id, err := p.PreSharedKey.PSK.MarshalBinary()
			if err != nil {
				return nil, invalidProposal("%w", err)
			}
			if slices.ContainsFunc(pskIDs, func(x []byte) bool { return equalBytes(x, id) }) {
				return nil, invalidProposal("duplicate PSK")
			}
			pskIDs = append(pskIDs, id)
			a.psks = append(a.psks, p.PreSharedKey.PSK)
		case ProposalTypeReInit:
			if len(props) != 1 {
				return nil, invalidProposal("reinit with other proposals")
			}
			a.reinit = p.ReInit
		case ProposalTypeExternalInit:
			nExternalInit++
			a.externalInit = p.ExternalInit
		}
	}
	if external && (nExternalInit != 1 || len(removes) > 1) {
		return nil, invalidProposal("external commit needs one external init and at most one remove")
	}
	if len(gce) > 1 {
		return nil, invalidProposal("several group context extensions proposals")
	}
	if len(gce) == 1 {
		a.extensions = gce[0].proposal.GroupContextExtensions.Extensions
	}
	// Updates, then removes, then adds (§12.3).
	// The key index follows tree from here on (see keyIndex).
	ix := g.index(g.tree)
	ix.tree = tree
	for _, rp := range updates {
		ln := &rp.proposal.Update.LeafNode
		if err := ix.checkLeaf(ln, rp.sender.Index); err != nil {
			return nil, invalidProposal("update: %w", err)
		}
		if err := ix.change(rp.sender.Index, func() error { return tree.UpdateLeaf(rp.sender.Index, ln) }); err != nil {
			return nil, invalidProposal("update: %w", err)
		}
		a.updated = append(a.updated, rp.sender.Index)
	}
	for _, rp := range removes {
		l := rp.proposal.Remove.Removed
		if err := ix.change(l, func() error { return tree.RemoveLeaf(l) }); err != nil {
			return nil, invalidProposal("remove: %w", err)
		}
		a.removed = append(a.removed, rp.proposal.Remove.Removed)
	}
	for _, rp := range adds {
		kp := &rp.proposal.Add.KeyPackage
		if len(gce) == 1 {
			if err := g.checkLeafCapabilities(&kp.LeafNode, a.extensions); err != nil {
				return nil, invalidProposal("add: %w", err)
			}
		}
		slot := leftmostBlank(tree)
		if err := ix.checkLeaf(&kp.LeafNode, slot); err != nil {
			return nil, invalidProposal("add: %w", err)
		}
		ln := kp.LeafNode
		var idx uint32
		err := ix.change(slot, func() (err error) { idx, err = tree.AddLeaf(&ln); return err })
		if err == nil && idx != slot {
			err = fmt.Errorf("added at leaf %d, expected %d", idx, slot)
		}
		if err != nil {
			return nil, invalidProposal("add: %w", err)
		}
		a.added = append(a.added, idx)
		a.addedKPs = append(a.addedKPs, kp)
	}
	if len(gce) == 1 {
		// Every remaining member must support the new extensions (§12.1.7).
		for i := uint32(0); i < tree.NumLeaves(); i++ {
			if ln := tree.Leaf(i); ln != nil {
				if err := g.checkLeafCapabilities(ln, a.extensions); err != nil {
					return nil, invalidProposal("group context extensions: leaf %d: %w", i, err)
				}
			}
		}
	}
	return a, nil
}

// leftmostBlank is the leaf an Add or an external joiner gets: the
// leftmost blank leaf, or the first leaf of the extension (§7.7).
func leftmostBlank(t *RatchetTree) uint32 {
	n := t.NumLeaves()
	for i := uint32(0); i < n; i++ {
		if t.Leaf(i) == nil {
			return i
		}
	}
	return n
}
