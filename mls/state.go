package mls

import (
	"crypto/rand"
	"fmt"
	"io"
	"slices"

	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/keyschedule"
)

// Config holds a group's local policy. The zero value is usable; zero
// fields take the defaults documented below.
type Config struct {
	// PaddingBlock pads PrivateMessage contents to a multiple of this many
	// bytes (default 32; 1 disables padding).
	PaddingBlock int
	// Window bounds out-of-order PrivateMessages per sender (default
	// keyschedule.DefaultWindow).
	Window keyschedule.Window
	// KeptEpochs is how many past epochs' secret trees are kept to decrypt
	// late application messages, and how many past resumption secrets are
	// kept (default 3; negative keeps none).
	KeptEpochs int
	// PublicHandshake sends this member's proposals and commits as
	// PublicMessage instead of PrivateMessage.
	PublicHandshake bool
	// OmitRatchetTree leaves the ratchet_tree extension out of Welcome
	// messages; joiners then need the tree out of band.
	OmitRatchetTree bool

	// PSKLookup returns the value of an external PSK by its psk_id. It is
	// not persisted: set it again after UnmarshalGroup (SetPSKLookup).
	PSKLookup func(pskID []byte) ([]byte, bool)
	// ResumptionPSKLookup returns the resumption PSK of another group at
	// an epoch (for a reinitialized group: the old group's, see
	// Group.ResumptionPSK). Not persisted.
	ResumptionPSKLookup func(groupID []byte, epoch uint64) ([]byte, bool)
	// Rand is the randomness source (default crypto/rand); not persisted.
	Rand io.Reader
	// Now returns the Unix time used for KeyPackage lifetime checks
	// (default the system clock; a function returning 0 skips them).
	Now func() uint64
}

func (c *Config) paddingBlock() int {
	if c.PaddingBlock == 0 {
		return 32
	}
	return c.PaddingBlock
}

func (c *Config) keptEpochs() int {
	switch {
	case c.KeptEpochs == 0:
		return 3
	case c.KeptEpochs < 0:
		return 0
	}
	return c.KeptEpochs
}

func (c *Config) rand() io.Reader {
	if c.Rand == nil {
		return rand.Reader
	}
	return c.Rand
}

func (c *Config) now() uint64 {
	if c.Now == nil {
		return unixNow()
	}
	return c.Now()
}

// pastEpoch is what is kept of an old epoch to decrypt and authenticate
// its late application messages.
type pastEpoch struct {
	epoch            uint64
	groupContext     []byte // encoded, for FramedContentTBS
	tree             *RatchetTree
	senderDataSecret []byte
	secrets          *keyschedule.SecretTree
}

// resumptionSecret is an old epoch's resumption_psk (§8.6).
type resumptionSecret struct {
	epoch  uint64
	secret []byte
}

// cachedProposal is a proposal received (or sent) in the current epoch,
// available to commits by reference.
type cachedProposal struct {
	ref      []byte
	proposal *Proposal
	sender   Sender
}

// pendingUpdate is the private key of an Update proposal this member sent
// in the current epoch, needed if someone commits it.
type pendingUpdate struct {
	encryptionKey  []byte
	encryptionPriv []byte
}

// pendingCommit is a commit this member created that the delivery service
// has not yet confirmed: next is the group state it leads to.
type pendingCommit struct {
	message []byte
	welcome []byte
	next    *Group
	// What the commit changes, for the CommitResult of the merge.
	added, removed, updated []uint32
}

// Group is one member's state of an MLS group (RFC 9420). Methods that
// change it are transactional: if they return an error the Group is
// unchanged. A Group is not safe for concurrent use.
type Group struct {
	cfg   Config
	suite *ciphersuite.Suite

	ctx     GroupContext
	tree    *RatchetTree // shared copy-on-write: clone before changing
	keys    *TreeKeys    // replaced, never changed in place
	own     uint32
	signKey []byte
	signer  ciphersuite.Signer
	interim []byte

	ks *keyschedule.Epoch
	// st is the current epoch's secret tree. It is shared with clones of
	// the Group, so it is cloned before any use that derives keys.
	st *keyschedule.SecretTree

	past       []*pastEpoch // newest first
	resumption []resumptionSecret
	proposals  []cachedProposal
	updates    []pendingUpdate
	pending    *pendingCommit
	reinit     *ReInit
	removed    bool
	// welcomeSigner is the leaf that signed the GroupInfo of the Welcome
	// this member joined with, plus one (0: not joined by a Welcome in
	// this session). Not persisted: it is for checks at the join.
	welcomeSigner uint32

	// keyIndex speeds up leaf checks; it is not persisted (see keyIndex).
	keyIndex *keyIndex
}

// clone returns a shallow transactional copy: slices are copied, the tree
// and secret trees are shared and must be replaced, not changed in place.
func (g *Group) clone() *Group {
	c := *g
	c.past = slices.Clone(g.past)
	c.resumption = slices.Clone(g.resumption)
	c.proposals = slices.Clone(g.proposals)
	c.updates = slices.Clone(g.updates)
	return &c
}

// ownSecretTree makes g.st private to g before keys are derived from it.
func (g *Group) ownSecretTree() { g.st = g.st.Clone() }

// groupContextBytes is the encoded current GroupContext.
func (g *Group) groupContextBytes() []byte { return g.ctx.Marshal() }

// Member describes one leaf of the group.
type Member struct {
	LeafIndex     uint32
	Credential    Credential
	SignatureKey  []byte
	EncryptionKey []byte
}

// Members lists the current members in leaf order.
func (g *Group) Members() []Member {
	var ms []Member
	for i := uint32(0); i < g.tree.NumLeaves(); i++ {
		if ln := g.tree.Leaf(i); ln != nil {
			ms = append(ms, Member{LeafIndex: i, Credential: ln.Credential, SignatureKey: ln.SignatureKey, EncryptionKey: ln.EncryptionKey})
		}
	}
	return ms
}

// Member returns the member at leaf index i.
func (g *Group) Member(i uint32) (Member, bool) {
	ln := g.tree.Leaf(i)
	if ln == nil {
		return Member{}, false
	}
	return Member{LeafIndex: i, Credential: ln.Credential, SignatureKey: ln.SignatureKey, EncryptionKey: ln.EncryptionKey}, true
}

// WelcomeSigner returns the leaf index of the member whose signature on
// the GroupInfo of the Welcome this member joined with was verified
// (RFC 9420 §12.4.3.1): the committer that added it. ok is false for a
// group not joined by JoinFromWelcome in this process (created, or
// loaded from storage).
func (g *Group) WelcomeSigner() (leaf uint32, ok bool) {
	if g.welcomeSigner == 0 {
		return 0, false
	}
	return g.welcomeSigner - 1, true
}

// OwnLeaf is this member's leaf index.
func (g *Group) OwnLeaf() uint32 { return g.own }

// Epoch is the current epoch number.
func (g *Group) Epoch() uint64 { return g.ctx.Epoch }

// GroupID is the group's ID.
func (g *Group) GroupID() []byte { return slices.Clone(g.ctx.GroupID) }

// Suite is the group's cipher suite.
func (g *Group) Suite() *ciphersuite.Suite { return g.suite }

// GroupContext returns a copy of the current GroupContext.
func (g *Group) GroupContext() GroupContext {
	var c GroupContext
	_ = c.Unmarshal(g.ctx.Marshal())
	return c
}

// ResumptionPSK returns the resumption_psk of the current epoch or of a
// kept past epoch (§8.6).
func (g *Group) ResumptionPSK(epoch uint64) ([]byte, bool) {
	if epoch == g.ctx.Epoch && g.ks != nil {
		return slices.Clone(g.ks.ResumptionPSK), true
	}
	for _, r := range g.resumption {
		if r.epoch == epoch {
			return slices.Clone(r.secret), true
		}
	}
	return nil, false
}

// RatchetTree returns the current ratchet tree (the ratchet_tree extension
// body), for joiners when Welcomes or GroupInfos leave it out.
func (g *Group) RatchetTree() []byte { return g.tree.Marshal() }

// TreeHash is the current tree hash.
func (g *Group) TreeHash() []byte { return slices.Clone(g.ctx.TreeHash) }

// EpochAuthenticator is the current epoch_authenticator (§8.7): members
// compare it out of band to detect a split view of the group.
func (g *Group) EpochAuthenticator() []byte { return slices.Clone(g.ks.EpochAuthenticator) }

// Export is MLS-Exporter(label, context, length) of the current epoch
// (§8.5).
func (g *Group) Export(label string, context []byte, length int) ([]byte, error) {
	return g.ks.Export(label, context, length)
}

// Removed reports whether this member has been removed from the group.
func (g *Group) Removed() bool { return g.removed }

// PendingReInit returns the parameters of a committed ReInit proposal: the
// group must no longer be used and is to be replaced by a new one.
func (g *Group) PendingReInit() (*ReInit, bool) { return g.reinit, g.reinit != nil }

// HasPendingCommit reports whether a commit created by this member awaits
// MergePendingCommit or DiscardPendingCommit.
func (g *Group) HasPendingCommit() bool { return g.pending != nil }

// SetPSKLookup sets the external PSK lookup (Config.PSKLookup).
func (g *Group) SetPSKLookup(f func(pskID []byte) ([]byte, bool)) {
	g.cfg.PSKLookup = f
	if g.pending != nil {
		g.pending.next.cfg.PSKLookup = f
	}
}

// SetResumptionPSKLookup sets Config.ResumptionPSKLookup.
func (g *Group) SetResumptionPSKLookup(f func(groupID []byte, epoch uint64) ([]byte, bool)) {
	g.cfg.ResumptionPSKLookup = f
	if g.pending != nil {
		g.pending.next.cfg.ResumptionPSKLookup = f
	}
}

// usable reports why the group cannot send.
func (g *Group) usable() error {
	if g.removed {
		return ErrRemoved
	}
	if g.reinit != nil {
		return fmt.Errorf("%w: group is being reinitialized", ErrUnsupported)
	}
	return nil
}

// startEpoch installs ks as the current epoch: the old one becomes a past
// epoch (keeping only what late application messages need), the oldest
// are dropped, and the cached proposals are cleared.
func (g *Group) startEpoch(ks *keyschedule.Epoch, oldEpoch uint64, oldCtx []byte, oldTree *RatchetTree) error {
	st, err := ks.NewSecretTree(g.tree.NumLeaves(), g.cfg.Window)
	if err != nil {
		return err
	}
	if g.ks != nil {
		keep := g.cfg.keptEpochs()
		if keep > 0 {
			pe := &pastEpoch{epoch: oldEpoch, groupContext: oldCtx, tree: oldTree,
				senderDataSecret: g.ks.SenderDataSecret, secrets: g.st}
			g.past = append([]*pastEpoch{pe}, g.past...)
			g.resumption = append([]resumptionSecret{{epoch: oldEpoch, secret: g.ks.ResumptionPSK}}, g.resumption...)
		}
		if len(g.past) > keep {
			g.past = g.past[:keep]
		}
		if len(g.resumption) > keep {
			g.resumption = g.resumption[:keep]
		}
	}
	// The joiner and welcome secrets are only needed to build a Welcome,
	// which the caller has done by now (§9.2 deletion schedule).
	ks.ForgetJoinSecrets()
	g.ks = ks
	g.st = st
	g.proposals = nil
	g.updates = nil
	return nil
}

// retireEpoch wipes the secrets of an epoch the group has left, except
// those a past epoch still uses (sender_data_secret, resumption_psk); the
// secret tree deletes its own keys as they are used (§9.2).
func retireEpoch(ks *keyschedule.Epoch) {
	if ks == nil {
		return
	}
	for _, f := range []*[]byte{&ks.InitSecret, &ks.ExporterSecret, &ks.ExternalSecret,
		&ks.ConfirmationKey, &ks.MembershipKey, &ks.EpochAuthenticator, &ks.JoinerSecret, &ks.WelcomeSecret} {
		clear(*f)
		*f = nil
	}
}
