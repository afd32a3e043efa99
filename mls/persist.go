package mls

import (
	"fmt"

	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/codec"
	"github.com/parleychat/parley/mls/keyschedule"
)

// groupStateVersion is the leading byte of MarshalBinary's encoding.
const groupStateVersion = 1

// maxPersistedEpochs bounds the past epochs a decoded state may hold.
const maxPersistedEpochs = 64

// MarshalBinary encodes the whole group state: configuration, tree,
// private keys, the secrets of the current and kept epochs, cached
// proposals and the pending commit. It is secret: store it encrypted.
// Config.PSKLookup, Rand and Now are not included.
func (g *Group) MarshalBinary() ([]byte, error) {
	w := codec.NewWriter(nil)
	w.U8(groupStateVersion)
	w.U32(uint32(int32(g.cfg.PaddingBlock)))
	w.U32(g.cfg.Window.MaxForward)
	w.U32(g.cfg.Window.MaxSkipped)
	w.U32(uint32(int32(g.cfg.KeptEpochs)))
	w.Bool(g.cfg.PublicHandshake)
	w.Bool(g.cfg.OmitRatchetTree)
	if err := g.encodeState(w, nil); err != nil {
		return nil, err
	}
	return w.Bytes(), nil
}

// encodeState writes g's state. The tree is written in full when base is
// nil and otherwise as the nodes that differ from base; past epochs' trees
// are written relative to g's tree. Consecutive epochs share almost all
// nodes, so this keeps the state of a large group close to one tree.
func (g *Group) encodeState(w *codec.Writer, base *RatchetTree) error {
	ks, err := g.ks.MarshalBinary()
	if err != nil {
		return err
	}
	st, err := g.st.MarshalBinary()
	if err != nil {
		return err
	}
	w.U16(uint16(g.suite.ID()))
	g.ctx.Encode(w)
	if base == nil {
		g.tree.Encode(w)
	} else {
		encodeTreeDiff(w, base, g.tree)
	}
	g.keys.Encode(w)
	w.U32(g.own)
	w.Opaque(g.signKey)
	w.Opaque(g.interim)
	w.Opaque(ks)
	w.Opaque(st)
	var ferr error
	w.Vector(func(w *codec.Writer) {
		for _, pe := range g.past {
			pst, err := pe.secrets.MarshalBinary()
			if err != nil {
				ferr = err
				return
			}
			w.U64(pe.epoch)
			w.Opaque(pe.groupContext)
			encodeTreeDiff(w, g.tree, pe.tree)
			w.Opaque(pe.senderDataSecret)
			w.Opaque(pst)
		}
	})
	if ferr != nil {
		return ferr
	}
	w.Vector(func(w *codec.Writer) {
		for _, r := range g.resumption {
			w.U64(r.epoch)
			w.Opaque(r.secret)
		}
	})
	w.Vector(func(w *codec.Writer) {
		for _, cp := range g.proposals {
			w.Opaque(cp.ref)
			cp.proposal.Encode(w)
			cp.sender.Encode(w)
		}
	})
	w.Vector(func(w *codec.Writer) {
		for _, u := range g.updates {
			w.Opaque(u.encryptionKey)
			w.Opaque(u.encryptionPriv)
		}
	})
	w.Optional(g.reinit != nil, func(w *codec.Writer) {
		(&Proposal{Type: ProposalTypeReInit, ReInit: g.reinit}).Encode(w)
	})
	w.Bool(g.removed)
	w.Optional(g.pending != nil, func(w *codec.Writer) {
		w.Opaque(g.pending.message)
		w.Opaque(g.pending.welcome)
		encodeU32s(w, g.pending.added)
		encodeU32s(w, g.pending.removed)
		encodeU32s(w, g.pending.updated)
		ferr = g.pending.next.encodeState(w, g.tree)
	})
	return ferr
}

// UnmarshalGroup restores a group encoded by MarshalBinary. Unknown state
// versions and inconsistent states are rejected (wrapping ErrMalformed).
func UnmarshalGroup(data []byte) (*Group, error) {
	r := codec.NewReader(data)
	if v := r.U8(); r.Err() == nil && v != groupStateVersion {
		return nil, fmt.Errorf("%w: group state version %d", ErrMalformed, v)
	}
	var cfg Config
	cfg.PaddingBlock = int(int32(r.U32()))
	cfg.Window.MaxForward = r.U32()
	cfg.Window.MaxSkipped = r.U32()
	cfg.KeptEpochs = int(int32(r.U32()))
	cfg.PublicHandshake = r.Bool()
	cfg.OmitRatchetTree = r.Bool()
	g := decodeState(r, cfg, nil)
	if err := r.Finish(); err != nil {
		return nil, malformed("group state", err)
	}
	// Loading is O(n) anyway; building the key index now keeps the next
	// commit O(log n).
	g.keyIndex = buildKeyIndex(g.tree)
	return g, nil
}

func decodeState(r *codec.Reader, cfg Config, base *RatchetTree) *Group {
	fail := func(err error) *Group {
		r.Fail(err)
		return nil
	}
	suite, err := ciphersuite.Lookup(ciphersuite.ID(r.U16()))
	if r.Err() != nil {
		return nil
	}
	if err != nil {
		return fail(err)
	}
	g := &Group{cfg: cfg, suite: suite}
	g.ctx.Decode(r)
	if r.Err() == nil && g.ctx.CipherSuite != suite.ID() {
		return fail(fmt.Errorf("%w: suite mismatch", codec.ErrInvalidValue))
	}
	if base == nil {
		if g.tree, err = decodeRatchetTree(suite, r); err != nil {
			return fail(err)
		}
	} else if g.tree = decodeTreeDiff(r, base); g.tree == nil {
		return nil
	}
	g.keys = new(TreeKeys)
	g.keys.Decode(r)
	g.own = r.U32()
	g.signKey = r.Opaque()
	g.interim = r.Opaque()
	ksBytes := r.Opaque()
	stBytes := r.Opaque()
	if r.Err() != nil {
		return nil
	}
	if g.tree.Leaf(g.own) == nil || g.keys.LeafIndex != g.own {
		return fail(fmt.Errorf("%w: own leaf %d is blank", codec.ErrInvalidValue, g.own))
	}
	if g.signer, err = suite.NewSigner(g.signKey); err != nil {
		return fail(err)
	}
	g.ks = new(keyschedule.Epoch)
	if err := g.ks.UnmarshalBinary(ksBytes); err != nil {
		return fail(err)
	}
	g.st = new(keyschedule.SecretTree)
	if err := g.st.UnmarshalBinary(stBytes); err != nil {
		return fail(err)
	}
	if g.ks.Suite != suite || g.st.Suite() != suite || g.st.LeafCount() != g.tree.NumLeaves() {
		return fail(fmt.Errorf("%w: epoch secrets do not match the group", codec.ErrInvalidValue))
	}
	r.ReadVector(func(r *codec.Reader) {
		if len(g.past) >= maxPersistedEpochs {
			r.Fail(fmt.Errorf("%w: too many past epochs", codec.ErrInvalidValue))
			return
		}
		pe := &pastEpoch{epoch: r.U64(), groupContext: r.Opaque()}
		if pe.tree = decodeTreeDiff(r, g.tree); pe.tree == nil {
			return
		}
		pe.senderDataSecret = r.Opaque()
		pst := r.Opaque()
		if r.Err() != nil {
			return
		}
		pe.secrets = new(keyschedule.SecretTree)
		if err := pe.secrets.UnmarshalBinary(pst); err != nil {
			r.Fail(err)
			return
		}
		if len(pe.senderDataSecret) != suite.Nh() || pe.secrets.Suite() != suite {
			r.Fail(fmt.Errorf("%w: past epoch secrets", codec.ErrInvalidValue))
			return
		}
		g.past = append(g.past, pe)
	})
	r.ReadVector(func(r *codec.Reader) {
		if len(g.resumption) >= maxPersistedEpochs {
			r.Fail(fmt.Errorf("%w: too many resumption secrets", codec.ErrInvalidValue))
			return
		}
		g.resumption = append(g.resumption, resumptionSecret{epoch: r.U64(), secret: r.Opaque()})
	})
	r.ReadVector(func(r *codec.Reader) {
		cp := cachedProposal{ref: r.Opaque(), proposal: new(Proposal)}
		cp.proposal.Decode(r)
		cp.sender.Decode(r)
		g.proposals = append(g.proposals, cp)
	})
	r.ReadVector(func(r *codec.Reader) {
		g.updates = append(g.updates, pendingUpdate{encryptionKey: r.Opaque(), encryptionPriv: r.Opaque()})
	})
	if r.Optional() {
		var p Proposal
		p.Decode(r)
		if r.Err() == nil && p.Type != ProposalTypeReInit {
			return fail(fmt.Errorf("%w: reinit state", codec.ErrInvalidValue))
		}
		g.reinit = p.ReInit
	}
	g.removed = r.Bool()
	if r.Optional() {
		if base != nil {
			return fail(fmt.Errorf("%w: nested pending commit", codec.ErrInvalidValue))
		}
		pc := &pendingCommit{message: r.Opaque(), welcome: r.Opaque(),
			added: decodeU32s(r), removed: decodeU32s(r), updated: decodeU32s(r)}
		pc.next = decodeState(r, cfg, g.tree)
		if r.Err() != nil {
			return nil
		}
		if len(pc.welcome) == 0 {
			pc.welcome = nil
		}
		g.pending = pc
	}
	if r.Err() != nil {
		return nil
	}
	return g
}

// encodeTreeDiff writes t as its node count and the (index, optional node)
// pairs where it differs from base. Nodes are immutable and shared between
// the trees of consecutive epochs, so pointer comparison finds the
// changes.
func encodeTreeDiff(w *codec.Writer, base, t *RatchetTree) {
	w.U32(uint32(len(t.nodes)))
	w.Vector(func(w *codec.Writer) {
		for x, n := range t.nodes {
			var b *Node
			if x < len(base.nodes) {
				b = base.nodes[x]
			}
			if n == b {
				continue
			}
			w.U32(uint32(x))
			w.Optional(n != nil, func(w *codec.Writer) { n.Encode(w) })
		}
	})
}

// decodeTreeDiff reads what encodeTreeDiff wrote, sharing base's nodes.
// The result's tree hashes are computed on demand. It returns nil after
// recording an error on r.
func decodeTreeDiff(r *codec.Reader, base *RatchetTree) *RatchetTree {
	n := r.U32()
	if r.Err() != nil {
		return nil
	}
	// The node count must describe a full tree, and a tree can only be
	// larger than base by blank nodes or nodes spelled out in the input.
	if n == 0 || n&(n+1) != 0 || n > 2*maxTreeLeaves || uint64(n) > 2*(uint64(len(base.nodes))+uint64(r.Remaining()))+1 {
		r.Fail(fmt.Errorf("%w: tree of %d nodes", codec.ErrInvalidValue, n))
		return nil
	}
	nodes := make([]*Node, n)
	copy(nodes, base.nodes)
	next := uint64(0)
	r.ReadVector(func(r *codec.Reader) {
		x := r.U32()
		var node *Node
		if r.Optional() {
			node = new(Node)
			node.Decode(r)
		}
		if r.Err() != nil {
			return
		}
		if uint64(x) < next || x >= n || (node != nil && (node.Leaf != nil) != isLeafNode(x)) {
			r.Fail(fmt.Errorf("%w: tree diff entry for node %d", codec.ErrInvalidValue, x))
			return
		}
		next = uint64(x) + 1
		nodes[x] = node
	})
	if r.Err() != nil {
		return nil
	}
	return &RatchetTree{suite: base.suite, nodes: nodes, hashes: make([][]byte, n)}
}
