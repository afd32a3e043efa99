package mls

import (
	"fmt"
	"slices"

	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/keyschedule"
)

// buildWelcome makes the Welcome for the members a commit added
// (§12.4.3.1). g is the group state of the new epoch, before startEpoch;
// ks is the new epoch's key schedule (still holding the joiner secret).
func (g *Group) buildWelcome(ks *keyschedule.Epoch, gen *PathGeneration, applied *appliedProposals, pskSecret []byte) ([]byte, error) {
	gi := &GroupInfo{
		GroupContext:    g.ctx,
		Extensions:      Extensions{},
		ConfirmationTag: ks.ConfirmationTag(g.ctx.ConfirmedTranscriptHash),
		Signer:          g.own,
	}
	if !g.cfg.OmitRatchetTree {
		gi.Extensions = append(gi.Extensions, g.tree.Extension())
	}
	if err := gi.Sign(g.signer); err != nil {
		return nil, err
	}
	welcomeSecret, err := keyschedule.WelcomeSecret(g.suite, ks.JoinerSecret, pskSecret)
	if err != nil {
		return nil, err
	}
	key, nonce := keyschedule.WelcomeKeyNonce(g.suite, welcomeSecret)
	clear(welcomeSecret)
	egi, err := g.suite.AEADSeal(key, nonce, nil, gi.Marshal())
	if err != nil {
		return nil, fmt.Errorf("encrypt GroupInfo: %w", err)
	}
	w := &Welcome{CipherSuite: g.suite.ID(), EncryptedGroupInfo: egi}
	psks := applied.psks
	if psks == nil {
		psks = []PreSharedKeyID{}
	}
	for i, leaf := range applied.added {
		kp := applied.addedKPs[i]
		gs := GroupSecrets{JoinerSecret: ks.JoinerSecret, PSKs: psks}
		if gen != nil {
			if ps, ok := gen.PathSecretFor(leaf); ok {
				gs.PathSecret = &PathSecret{PathSecret: ps}
			}
		}
		kem, ct, err := g.suite.EncryptWithLabel(kp.InitKey, "Welcome", egi, gs.Marshal())
		if err != nil {
			return nil, fmt.Errorf("encrypt GroupSecrets: %w", err)
		}
		w.Secrets = append(w.Secrets, EncryptedGroupSecrets{
			NewMember:             kp.Ref(g.suite),
			EncryptedGroupSecrets: HPKECiphertext{KEMOutput: kem, Ciphertext: ct},
		})
	}
	return (&MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatWelcome, Welcome: w}).Marshal(), nil
}

// JoinFromWelcome joins a group with a Welcome message (§12.4.3.1) for the
// KeyPackage in bundle. ratchetTree is the ratchet_tree extension body,
// needed only when the Welcome's GroupInfo does not carry the tree. cfg
// (may be nil) supplies local policy and the external PSK lookup.
//
// The tree is fully validated; credentials are not (check Members with
// the application's authentication service).
func JoinFromWelcome(welcome []byte, bundle *KeyPackageBundle, ratchetTree []byte, cfg *Config) (*Group, error) {
	var m MLSMessage
	if err := m.Unmarshal(welcome); err != nil {
		return nil, err
	}
	if m.WireFormat != WireFormatWelcome {
		return nil, fmt.Errorf("%w: wire format %d, want a welcome", ErrMalformed, m.WireFormat)
	}
	g := &Group{}
	if cfg != nil {
		g.cfg = *cfg
	}
	gs, gi, pskSecret, err := g.openWelcome(m.Welcome, &bundle.KeyPackage, bundle.InitPriv)
	if err != nil {
		return nil, err
	}
	suite := g.suite
	if gi.GroupContext.CipherSuite != suite.ID() {
		return nil, fmt.Errorf("%w: group info suite %#04x", ErrInvalidProposal, gi.GroupContext.CipherSuite)
	}
	kp := &bundle.KeyPackage
	tree, err := g.groupInfoTree(gi, ratchetTree)
	if err != nil {
		return nil, err
	}
	own, ok := tree.FindLeaf(func(_ uint32, ln *LeafNode) bool {
		return equalBytes(ln.EncryptionKey, kp.LeafNode.EncryptionKey) && equalBytes(ln.SignatureKey, kp.LeafNode.SignatureKey)
	})
	if !ok {
		return nil, fmt.Errorf("%w: own leaf not in the tree", ErrInvalidTree)
	}
	keys := NewTreeKeys(own, bundle.EncryptionPriv)
	if gs.PathSecret != nil {
		keys, _, err = tree.InstallPathSecret(keys, gi.Signer, gs.PathSecret.PathSecret)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidTree, err)
		}
	}
	ctxBytes := gi.GroupContext.Marshal()
	ks, err := keyschedule.FromJoinerSecret(suite, gs.JoinerSecret, pskSecret, ctxBytes)
	if err != nil {
		return nil, err
	}
	if err := ks.VerifyConfirmationTag(gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag); err != nil {
		return nil, fmt.Errorf("%w: group info", ErrBadConfirmationTag)
	}
	signer, err := suite.NewSigner(bundle.SignaturePriv)
	if err != nil {
		return nil, err
	}
	g.ctx = gi.GroupContext
	g.tree = tree
	g.keyIndex = buildKeyIndex(tree) // the join is O(n) anyway; commits then are not
	g.keys = keys
	g.own = own
	g.welcomeSigner = gi.Signer + 1
	g.signKey = bundle.SignaturePriv
	g.signer = signer
	g.interim = keyschedule.InterimTranscriptHash(suite, gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag)
	if err := g.startEpoch(ks, 0, nil, nil); err != nil {
		return nil, err
	}
	return g, nil
}

// openWelcome decrypts the GroupSecrets meant for kp and the GroupInfo of
// a Welcome (§12.4.3.1). It sets g.suite and uses g's PSK lookup.
func (g *Group) openWelcome(w *Welcome, kp *KeyPackage, initPriv []byte) (*GroupSecrets, *GroupInfo, []byte, error) {
	if w.CipherSuite != kp.CipherSuite {
		return nil, nil, nil, fmt.Errorf("%w: welcome suite %#04x, key package %#04x", ErrInvalidProposal, w.CipherSuite, kp.CipherSuite)
	}
	suite, err := ciphersuite.Lookup(w.CipherSuite)
	if err != nil {
		return nil, nil, nil, err
	}
	g.suite = suite
	ref := kp.Ref(suite)
	i := slices.IndexFunc(w.Secrets, func(s EncryptedGroupSecrets) bool { return equalBytes(s.NewMember, ref) })
	if i < 0 {
		return nil, nil, nil, fmt.Errorf("%w: welcome is not for this key package", ErrDecrypt)
	}
	egs := &w.Secrets[i].EncryptedGroupSecrets
	pt, err := suite.DecryptWithLabel(initPriv, "Welcome", w.EncryptedGroupInfo, egs.KEMOutput, egs.Ciphertext)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: group secrets: %w", ErrDecrypt, err)
	}
	gs := new(GroupSecrets)
	err = gs.Unmarshal(pt)
	clear(pt)
	if err != nil {
		return nil, nil, nil, err
	}
	pskSecret, err := g.pskSecret(gs.PSKs)
	if err != nil {
		return nil, nil, nil, err
	}
	welcomeSecret, err := keyschedule.WelcomeSecret(suite, gs.JoinerSecret, pskSecret)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	key, nonce := keyschedule.WelcomeKeyNonce(suite, welcomeSecret)
	clear(welcomeSecret)
	giBytes, err := suite.AEADOpen(key, nonce, nil, w.EncryptedGroupInfo)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: group info: %w", ErrDecrypt, err)
	}
	gi := new(GroupInfo)
	if err := gi.Unmarshal(giBytes); err != nil {
		return nil, nil, nil, err
	}
	return gs, gi, pskSecret, nil
}

// groupInfoTree returns the validated ratchet tree of a GroupInfo: from
// its ratchet_tree extension or, failing that, from ratchetTree. It also
// checks the GroupInfo's signature by its signer leaf.
func (g *Group) groupInfoTree(gi *GroupInfo, ratchetTree []byte) (*RatchetTree, error) {
	data, ok := gi.Extensions.RatchetTreeData()
	if !ok {
		data = ratchetTree
	}
	if data == nil {
		return nil, fmt.Errorf("%w: no ratchet tree", ErrInvalidTree)
	}
	tree, err := DecodeRatchetTree(g.suite, data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidTree, err)
	}
	now := uint64(0)
	if g.cfg.Now != nil {
		now = g.cfg.Now()
	}
	if err := tree.Validate(&TreeValidation{
		GroupID: gi.GroupContext.GroupID, TreeHash: gi.GroupContext.TreeHash,
		Extensions: gi.GroupContext.Extensions, Now: now,
	}); err != nil {
		return nil, err
	}
	signer := tree.Leaf(gi.Signer)
	if signer == nil {
		return nil, fmt.Errorf("%w: group info signer %d is not a member", ErrUnknownSender, gi.Signer)
	}
	if err := gi.VerifySignature(g.suite, signer.SignatureKey); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	return tree, nil
}
