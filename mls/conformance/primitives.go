package conformance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/parleychat/parley/mls/codec"
	"github.com/parleychat/parley/mls/keyschedule"
	"github.com/parleychat/parley/mls/treemath"
)

// runTreeMath checks the Appendix C tree arithmetic for one tree size.
func runTreeMath(entry json.RawMessage) (uint16, error) {
	var v struct {
		NLeaves uint32    `json:"n_leaves"`
		NNodes  uint32    `json:"n_nodes"`
		Root    uint32    `json:"root"`
		Left    []*uint32 `json:"left"`
		Right   []*uint32 `json:"right"`
		Parent  []*uint32 `json:"parent"`
		Sibling []*uint32 `json:"sibling"`
	}
	if err := decode(entry, &v); err != nil {
		return 0, err
	}
	n := v.NLeaves
	if w, ok := treemath.NodeWidth(n); !ok || w != v.NNodes {
		return 0, fmt.Errorf("n_leaves %d: node width = %d (ok %v), want %d", n, w, ok, v.NNodes)
	}
	if r, ok := treemath.Root(n); !ok || uint32(r) != v.Root {
		return 0, fmt.Errorf("n_leaves %d: root = %d (ok %v), want %d", n, r, ok, v.Root)
	}
	for _, l := range [][]*uint32{v.Left, v.Right, v.Parent, v.Sibling} {
		if len(l) != int(v.NNodes) {
			return 0, fmt.Errorf("n_leaves %d: %d relations for %d nodes", n, len(l), v.NNodes)
		}
	}
	check := func(what string, i int, want *uint32, got treemath.NodeIndex, ok bool) error {
		switch {
		case want == nil && ok:
			return fmt.Errorf("n_leaves %d: %s(%d) = %d, want none", n, what, i, got)
		case want != nil && !ok:
			return fmt.Errorf("n_leaves %d: %s(%d) = none, want %d", n, what, i, *want)
		case want != nil && uint32(got) != *want:
			return fmt.Errorf("n_leaves %d: %s(%d) = %d, want %d", n, what, i, got, *want)
		}
		return nil
	}
	for i := range int(v.NNodes) {
		x := treemath.NodeIndex(i)
		l, lok := treemath.Left(x)
		r, rok := treemath.Right(x)
		p, pok := treemath.Parent(x, n)
		s, sok := treemath.Sibling(x, n)
		if err := errors.Join(
			check("left", i, v.Left[i], l, lok),
			check("right", i, v.Right[i], r, rok),
			check("parent", i, v.Parent[i], p, pok),
			check("sibling", i, v.Sibling[i], s, sok),
		); err != nil {
			return 0, err
		}
	}
	return 0, nil
}

// runDeserialization checks one variable-length vector header (§2.1.2).
func runDeserialization(entry json.RawMessage) (uint16, error) {
	var v struct {
		Header hexBytes `json:"vlbytes_header"`
		Length int      `json:"length"`
	}
	if err := decode(entry, &v); err != nil {
		return 0, err
	}
	r := codec.NewReader(v.Header)
	got := r.Varint()
	if err := r.Finish(); err != nil {
		return 0, fmt.Errorf("header %x: %w", []byte(v.Header), err)
	}
	if got != v.Length {
		return 0, fmt.Errorf("header %x decodes to %d, want %d", []byte(v.Header), got, v.Length)
	}
	if enc := codec.AppendVarint(nil, v.Length); !bytes.Equal(enc, v.Header) {
		return 0, fmt.Errorf("length %d encodes to %x, want %x", v.Length, enc, []byte(v.Header))
	}
	return 0, nil
}

// runCryptoBasics checks the labelled primitives of §5 and §8.
func runCryptoBasics(entry json.RawMessage) (uint16, error) {
	var v struct {
		CipherSuite uint16 `json:"cipher_suite"`
		RefHash     struct {
			Label string   `json:"label"`
			Value hexBytes `json:"value"`
			Out   hexBytes `json:"out"`
		} `json:"ref_hash"`
		ExpandWithLabel struct {
			Secret  hexBytes `json:"secret"`
			Label   string   `json:"label"`
			Context hexBytes `json:"context"`
			Length  int      `json:"length"`
			Out     hexBytes `json:"out"`
		} `json:"expand_with_label"`
		DeriveSecret struct {
			Secret hexBytes `json:"secret"`
			Label  string   `json:"label"`
			Out    hexBytes `json:"out"`
		} `json:"derive_secret"`
		DeriveTreeSecret struct {
			Secret     hexBytes `json:"secret"`
			Label      string   `json:"label"`
			Generation uint32   `json:"generation"`
			Length     int      `json:"length"`
			Out        hexBytes `json:"out"`
		} `json:"derive_tree_secret"`
		SignWithLabel struct {
			Priv      hexBytes `json:"priv"`
			Pub       hexBytes `json:"pub"`
			Content   hexBytes `json:"content"`
			Label     string   `json:"label"`
			Signature hexBytes `json:"signature"`
		} `json:"sign_with_label"`
		EncryptWithLabel struct {
			Priv       hexBytes `json:"priv"`
			Pub        hexBytes `json:"pub"`
			Label      string   `json:"label"`
			Context    hexBytes `json:"context"`
			Plaintext  hexBytes `json:"plaintext"`
			KEMOutput  hexBytes `json:"kem_output"`
			Ciphertext hexBytes `json:"ciphertext"`
		} `json:"encrypt_with_label"`
	}
	if err := decode(entry, &v); err != nil {
		return 0, err
	}
	s, err := suite(v.CipherSuite)
	if err != nil {
		return v.CipherSuite, err
	}
	var c checker
	c.bytes("RefHash", s.RefHash(v.RefHash.Label, v.RefHash.Value), v.RefHash.Out)
	e := v.ExpandWithLabel
	c.bytes("ExpandWithLabel", s.ExpandWithLabel(e.Secret, e.Label, e.Context, e.Length), e.Out)
	d := v.DeriveSecret
	c.bytes("DeriveSecret", s.DeriveSecret(d.Secret, d.Label), d.Out)
	dt := v.DeriveTreeSecret
	c.bytes("DeriveTreeSecret", s.DeriveTreeSecret(dt.Secret, dt.Label, dt.Generation, dt.Length), dt.Out)

	sw := v.SignWithLabel
	c.ok("VerifyWithLabel(vector signature)", s.VerifyWithLabel(sw.Pub, sw.Label, sw.Content, sw.Signature))
	if signer, err := s.NewSigner(sw.Priv); c.ok("signature_priv", err) {
		c.bytes("public key of signature_priv", signer.Public(), sw.Pub)
		sig, err := signer.SignWithLabel(sw.Label, sw.Content)
		if c.ok("SignWithLabel", err) {
			c.ok("VerifyWithLabel(own signature)", s.VerifyWithLabel(sw.Pub, sw.Label, sw.Content, sig))
			// The label is bound into the signature (§5.1.2).
			if s.VerifyWithLabel(sw.Pub, sw.Label+"x", sw.Content, sig) == nil {
				c.fail("signature verifies under another label")
			}
		}
	}

	ew := v.EncryptWithLabel
	if pub, err := s.HPKEPublicKey(ew.Priv); c.ok("HPKE public key of encrypt_with_label.priv", err) {
		c.bytes("HPKE public key of encrypt_with_label.priv", pub, ew.Pub)
	}
	pt, err := s.DecryptWithLabel(ew.Priv, ew.Label, ew.Context, ew.KEMOutput, ew.Ciphertext)
	if c.ok("DecryptWithLabel(vector)", err) {
		c.bytes("DecryptWithLabel(vector)", pt, ew.Plaintext)
	}
	kemOut, ct, err := s.EncryptWithLabel(ew.Pub, ew.Label, ew.Context, ew.Plaintext)
	if c.ok("EncryptWithLabel", err) {
		pt, err := s.DecryptWithLabel(ew.Priv, ew.Label, ew.Context, kemOut, ct)
		if c.ok("DecryptWithLabel(own ciphertext)", err) {
			c.bytes("DecryptWithLabel(own ciphertext)", pt, ew.Plaintext)
		}
	}
	return v.CipherSuite, c.err
}

// runSecretTree checks sender-data keys and the secret tree's ratchets (§9).
func runSecretTree(entry json.RawMessage) (uint16, error) {
	var v struct {
		CipherSuite      uint16   `json:"cipher_suite"`
		EncryptionSecret hexBytes `json:"encryption_secret"`
		SenderData       struct {
			SenderDataSecret hexBytes `json:"sender_data_secret"`
			Ciphertext       hexBytes `json:"ciphertext"`
			Key              hexBytes `json:"key"`
			Nonce            hexBytes `json:"nonce"`
		} `json:"sender_data"`
		Leaves [][]struct {
			Generation       uint32   `json:"generation"`
			ApplicationKey   hexBytes `json:"application_key"`
			ApplicationNonce hexBytes `json:"application_nonce"`
			HandshakeKey     hexBytes `json:"handshake_key"`
			HandshakeNonce   hexBytes `json:"handshake_nonce"`
		} `json:"leaves"`
	}
	if err := decode(entry, &v); err != nil {
		return 0, err
	}
	s, err := suite(v.CipherSuite)
	if err != nil {
		return v.CipherSuite, err
	}
	var c checker
	key, nonce := keyschedule.SenderDataKeyNonce(s, v.SenderData.SenderDataSecret, v.SenderData.Ciphertext)
	c.bytes("sender data key", key, v.SenderData.Key)
	c.bytes("sender data nonce", nonce, v.SenderData.Nonce)

	tree, err := keyschedule.NewSecretTree(s, bytes.Clone(v.EncryptionSecret), uint32(len(v.Leaves)), keyschedule.Window{})
	if !c.ok("secret tree", err) {
		return v.CipherSuite, c.err
	}
	for l, gens := range v.Leaves {
		leaf := treemath.LeafIndex(l)
		for _, g := range gens {
			hs, err := tree.Key(leaf, keyschedule.HandshakeRatchet, g.Generation)
			c.ok(fmt.Sprintf("leaf %d handshake generation %d", l, g.Generation), err)
			app, err := tree.Key(leaf, keyschedule.ApplicationRatchet, g.Generation)
			c.ok(fmt.Sprintf("leaf %d application generation %d", l, g.Generation), err)
			if c.err != nil {
				return v.CipherSuite, c.err
			}
			at := fmt.Sprintf(" (leaf %d, generation %d)", l, g.Generation)
			c.bytes("handshake key"+at, hs.Key, g.HandshakeKey)
			c.bytes("handshake nonce"+at, hs.Nonce, g.HandshakeNonce)
			c.bytes("application key"+at, app.Key, g.ApplicationKey)
			c.bytes("application nonce"+at, app.Nonce, g.ApplicationNonce)
		}
	}
	return v.CipherSuite, c.err
}

// encodeGroupContext builds a GroupContext with no extensions (§8.1), as
// the key-schedule and message-protection vectors specify.
func encodeGroupContext(suite uint16, groupID []byte, epoch uint64, treeHash, confirmed []byte) []byte {
	w := codec.NewWriter(nil)
	w.U16(1) // mls10
	w.U16(suite)
	w.Opaque(groupID)
	w.U64(epoch)
	w.Opaque(treeHash)
	w.Opaque(confirmed)
	w.Opaque(nil) // extensions
	return w.Bytes()
}

// runKeySchedule checks the epoch key schedule of §8 over several epochs,
// both for a member (from init_secret) and a joiner (from joiner_secret).
func runKeySchedule(entry json.RawMessage) (uint16, error) {
	var v struct {
		CipherSuite       uint16   `json:"cipher_suite"`
		GroupID           hexBytes `json:"group_id"`
		InitialInitSecret hexBytes `json:"initial_init_secret"`
		Epochs            []struct {
			TreeHash                hexBytes `json:"tree_hash"`
			CommitSecret            hexBytes `json:"commit_secret"`
			PSKSecret               hexBytes `json:"psk_secret"`
			ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
			GroupContext            hexBytes `json:"group_context"`
			JoinerSecret            hexBytes `json:"joiner_secret"`
			WelcomeSecret           hexBytes `json:"welcome_secret"`
			InitSecret              hexBytes `json:"init_secret"`
			SenderDataSecret        hexBytes `json:"sender_data_secret"`
			EncryptionSecret        hexBytes `json:"encryption_secret"`
			ExporterSecret          hexBytes `json:"exporter_secret"`
			EpochAuthenticator      hexBytes `json:"epoch_authenticator"`
			ExternalSecret          hexBytes `json:"external_secret"`
			ConfirmationKey         hexBytes `json:"confirmation_key"`
			MembershipKey           hexBytes `json:"membership_key"`
			ResumptionPSK           hexBytes `json:"resumption_psk"`
			ExternalPub             hexBytes `json:"external_pub"`
			Exporter                struct {
				Label   string   `json:"label"` // used verbatim
				Context hexBytes `json:"context"`
				Length  int      `json:"length"`
				Secret  hexBytes `json:"secret"`
			} `json:"exporter"`
		} `json:"epochs"`
	}
	if err := decode(entry, &v); err != nil {
		return 0, err
	}
	s, err := suite(v.CipherSuite)
	if err != nil {
		return v.CipherSuite, err
	}
	var c checker
	initSecret := []byte(v.InitialInitSecret)
	for i, ep := range v.Epochs {
		at := fmt.Sprintf("epoch %d: ", i)
		gc := encodeGroupContext(v.CipherSuite, v.GroupID, uint64(i), ep.TreeHash, ep.ConfirmedTranscriptHash)
		c.bytes(at+"group_context", gc, ep.GroupContext)
		e, err := keyschedule.NewEpoch(s, initSecret, ep.CommitSecret, ep.PSKSecret, gc)
		if !c.ok(at+"key schedule", err) {
			break
		}
		c.bytes(at+"joiner_secret", e.JoinerSecret, ep.JoinerSecret)
		c.bytes(at+"welcome_secret", e.WelcomeSecret, ep.WelcomeSecret)
		c.bytes(at+"init_secret", e.InitSecret, ep.InitSecret)
		c.bytes(at+"sender_data_secret", e.SenderDataSecret, ep.SenderDataSecret)
		c.bytes(at+"encryption_secret", e.EncryptionSecret, ep.EncryptionSecret)
		c.bytes(at+"exporter_secret", e.ExporterSecret, ep.ExporterSecret)
		c.bytes(at+"epoch_authenticator", e.EpochAuthenticator, ep.EpochAuthenticator)
		c.bytes(at+"external_secret", e.ExternalSecret, ep.ExternalSecret)
		c.bytes(at+"confirmation_key", e.ConfirmationKey, ep.ConfirmationKey)
		c.bytes(at+"membership_key", e.MembershipKey, ep.MembershipKey)
		c.bytes(at+"resumption_psk", e.ResumptionPSK, ep.ResumptionPSK)
		if _, pub, err := e.ExternalKeyPair(); c.ok(at+"external key pair", err) {
			c.bytes(at+"external_pub", pub, ep.ExternalPub)
		}
		if exp, err := e.Export(ep.Exporter.Label, ep.Exporter.Context, ep.Exporter.Length); c.ok(at+"exporter", err) {
			c.bytes(at+"exporter", exp, ep.Exporter.Secret)
		}
		// A joiner starting from joiner_secret reaches the same epoch.
		j, err := keyschedule.FromJoinerSecret(s, bytes.Clone(ep.JoinerSecret), ep.PSKSecret, gc)
		if c.ok(at+"joiner key schedule", err) {
			c.bytes(at+"joiner's epoch_authenticator", j.EpochAuthenticator, ep.EpochAuthenticator)
			c.bytes(at+"joiner's init_secret", j.InitSecret, ep.InitSecret)
		}
		if c.err != nil {
			break
		}
		initSecret = e.InitSecret
	}
	return v.CipherSuite, c.err
}

// runPSKSecret checks the folding of external PSKs into psk_secret (§8.4).
func runPSKSecret(entry json.RawMessage) (uint16, error) {
	var v struct {
		CipherSuite uint16 `json:"cipher_suite"`
		PSKs        []struct {
			PSKID    hexBytes `json:"psk_id"`
			PSK      hexBytes `json:"psk"`
			PSKNonce hexBytes `json:"psk_nonce"`
		} `json:"psks"`
		PSKSecret hexBytes `json:"psk_secret"`
	}
	if err := decode(entry, &v); err != nil {
		return 0, err
	}
	s, err := suite(v.CipherSuite)
	if err != nil {
		return v.CipherSuite, err
	}
	var psks []keyschedule.PSK
	for _, p := range v.PSKs {
		id := keyschedule.PreSharedKeyID{Type: keyschedule.PSKExternal, ExternalID: p.PSKID, Nonce: p.PSKNonce}
		enc, err := id.MarshalBinary()
		if err != nil {
			return v.CipherSuite, fmt.Errorf("encode PreSharedKeyID: %w", err)
		}
		psks = append(psks, keyschedule.PSK{ID: enc, Secret: p.PSK})
	}
	got, err := keyschedule.PSKSecret(s, psks)
	if err != nil {
		return v.CipherSuite, fmt.Errorf("psk_secret: %w", err)
	}
	var c checker
	c.bytes(fmt.Sprintf("psk_secret of %d PSKs", len(psks)), got, v.PSKSecret)
	return v.CipherSuite, c.err
}
