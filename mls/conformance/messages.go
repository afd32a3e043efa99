package conformance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/mls/codec"
	"github.com/parleychat/parley/mls/keyschedule"
)

// runMessages checks that every structure decodes and re-encodes to the
// same bytes (test-vectors.md "Messages").
func runMessages(entry json.RawMessage) (uint16, error) {
	var v map[string]hexBytes
	if err := decode(entry, &v); err != nil {
		return 0, err
	}
	type check struct {
		field string
		round func([]byte) ([]byte, error)
	}
	mlsMessage := func(wf mls.WireFormat, ct mls.ContentType) func([]byte) ([]byte, error) {
		return func(b []byte) ([]byte, error) {
			var m mls.MLSMessage
			if err := m.Unmarshal(b); err != nil {
				return nil, err
			}
			if m.WireFormat != wf {
				return nil, fmt.Errorf("wire format %d, want %d", m.WireFormat, wf)
			}
			if ct != 0 && m.PublicMessage.Content.ContentType != ct {
				return nil, fmt.Errorf("content type %d, want %d", m.PublicMessage.Content.ContentType, ct)
			}
			return m.Marshal(), nil
		}
	}
	checks := []check{
		{"mls_welcome", mlsMessage(mls.WireFormatWelcome, 0)},
		{"mls_group_info", mlsMessage(mls.WireFormatGroupInfo, 0)},
		{"mls_key_package", mlsMessage(mls.WireFormatKeyPackage, 0)},
		{"ratchet_tree", roundTripTree},
		{"group_secrets", func(b []byte) ([]byte, error) {
			var g mls.GroupSecrets
			err := g.Unmarshal(b)
			return g.Marshal(), err
		}},
		{"add_proposal", proposalBody(mls.ProposalTypeAdd)},
		{"update_proposal", proposalBody(mls.ProposalTypeUpdate)},
		{"remove_proposal", proposalBody(mls.ProposalTypeRemove)},
		{"pre_shared_key_proposal", proposalBody(mls.ProposalTypePSK)},
		{"re_init_proposal", proposalBody(mls.ProposalTypeReInit)},
		{"external_init_proposal", proposalBody(mls.ProposalTypeExternalInit)},
		{"group_context_extensions_proposal", proposalBody(mls.ProposalTypeGroupContextExtensions)},
		{"commit", func(b []byte) ([]byte, error) {
			var c mls.Commit
			err := c.Unmarshal(b)
			return c.Marshal(), err
		}},
		{"public_message_application", mlsMessage(mls.WireFormatPublicMessage, mls.ContentTypeApplication)},
		{"public_message_proposal", mlsMessage(mls.WireFormatPublicMessage, mls.ContentTypeProposal)},
		{"public_message_commit", mlsMessage(mls.WireFormatPublicMessage, mls.ContentTypeCommit)},
		{"private_message", mlsMessage(mls.WireFormatPrivateMessage, 0)},
	}
	for _, c := range checks {
		b, ok := v[c.field]
		if !ok {
			return 0, fmt.Errorf("%s: missing", c.field)
		}
		out, err := c.round(b)
		if err != nil {
			return 0, fmt.Errorf("%s: decode: %w", c.field, err)
		}
		if !bytes.Equal(out, b) {
			return 0, fmt.Errorf("%s: re-encodes to different bytes", c.field)
		}
	}
	return 0, nil
}

// messageReencodes checks that an MLSMessage (§6) decodes and re-encodes
// to the same bytes; field names it in the error.
func messageReencodes(field string, b []byte) error {
	var m mls.MLSMessage
	if err := m.Unmarshal(b); err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	if !bytes.Equal(m.Marshal(), b) {
		return fmt.Errorf("%s: MLSMessage re-encodes to different bytes", field)
	}
	return nil
}

// proposalBody round-trips the body of one proposal type, by decoding it as
// a Proposal (a uint16 type followed by the body, §12.1).
func proposalBody(t mls.ProposalType) func([]byte) ([]byte, error) {
	return func(b []byte) ([]byte, error) {
		w := codec.NewWriter(nil)
		w.U16(uint16(t))
		w.Raw(b)
		var p mls.Proposal
		if err := p.Unmarshal(w.Bytes()); err != nil {
			return nil, err
		}
		if p.Type != t {
			return nil, fmt.Errorf("decoded proposal type %d, want %d", p.Type, t)
		}
		return p.Marshal()[2:], nil
	}
}

// roundTripTree round-trips a ratchet_tree extension body, optional<Node>
// ratchet_tree<V> (§12.4.3.3), without interpreting it for any suite.
func roundTripTree(b []byte) ([]byte, error) {
	var nodes []*mls.Node
	r := codec.NewReader(b)
	r.ReadVector(func(r *codec.Reader) {
		var n *mls.Node
		if r.Optional() {
			n = new(mls.Node)
			n.Decode(r)
		}
		nodes = append(nodes, n)
	})
	if err := r.Finish(); err != nil {
		return nil, err
	}
	w := codec.NewWriter(nil)
	w.Vector(func(w *codec.Writer) {
		for _, n := range nodes {
			w.Optional(n != nil, func(w *codec.Writer) { n.Encode(w) })
		}
	})
	return w.Bytes(), nil
}

// runWelcome opens a Welcome with a KeyPackage's init key and checks the
// GroupInfo's signature and confirmation tag (§12.4.3.1).
func runWelcome(entry json.RawMessage) (uint16, error) {
	var v struct {
		CipherSuite uint16   `json:"cipher_suite"`
		InitPriv    hexBytes `json:"init_priv"`
		SignerPub   hexBytes `json:"signer_pub"`
		KeyPackage  hexBytes `json:"key_package"`
		Welcome     hexBytes `json:"welcome"`
	}
	if err := decode(entry, &v); err != nil {
		return 0, err
	}
	s, err := suite(v.CipherSuite)
	if err != nil {
		return v.CipherSuite, err
	}
	for _, m := range []namedBytes{{"key_package", v.KeyPackage}, {"welcome", v.Welcome}} {
		if err := messageReencodes(m.name, m.b); err != nil {
			return v.CipherSuite, err
		}
	}
	var kpMsg, wMsg mls.MLSMessage
	if err := kpMsg.Unmarshal(v.KeyPackage); err != nil || kpMsg.KeyPackage == nil {
		return v.CipherSuite, fmt.Errorf("key_package: not an MLSMessage(KeyPackage): %v", err)
	}
	if err := wMsg.Unmarshal(v.Welcome); err != nil || wMsg.Welcome == nil {
		return v.CipherSuite, fmt.Errorf("welcome: not an MLSMessage(Welcome): %v", err)
	}
	w := wMsg.Welcome
	ref := kpMsg.KeyPackage.Ref(s)
	var egs *mls.EncryptedGroupSecrets
	for i := range w.Secrets {
		if bytes.Equal(w.Secrets[i].NewMember, ref) {
			egs = &w.Secrets[i]
		}
	}
	if egs == nil {
		return v.CipherSuite, fmt.Errorf("welcome has no secrets for the key package %x", ref)
	}
	gsBytes, err := s.DecryptWithLabel(v.InitPriv, "Welcome", w.EncryptedGroupInfo,
		egs.EncryptedGroupSecrets.KEMOutput, egs.EncryptedGroupSecrets.Ciphertext)
	if err != nil {
		return v.CipherSuite, fmt.Errorf("decrypt group secrets: %w", err)
	}
	var gs mls.GroupSecrets
	if err := gs.Unmarshal(gsBytes); err != nil {
		return v.CipherSuite, fmt.Errorf("group secrets: %w", err)
	}
	if len(gs.PSKs) != 0 {
		return v.CipherSuite, fmt.Errorf("group secrets name %d PSKs; the vector has none", len(gs.PSKs))
	}
	welcomeSecret, err := keyschedule.WelcomeSecret(s, gs.JoinerSecret, nil)
	if err != nil {
		return v.CipherSuite, fmt.Errorf("welcome secret: %w", err)
	}
	key, nonce := keyschedule.WelcomeKeyNonce(s, welcomeSecret)
	giBytes, err := s.AEADOpen(key, nonce, nil, w.EncryptedGroupInfo)
	if err != nil {
		return v.CipherSuite, fmt.Errorf("decrypt group info: %w", err)
	}
	var gi mls.GroupInfo
	if err := gi.Unmarshal(giBytes); err != nil {
		return v.CipherSuite, fmt.Errorf("group info: %w", err)
	}
	if err := gi.VerifySignature(s, v.SignerPub); err != nil {
		return v.CipherSuite, fmt.Errorf("group info signature: %w", err)
	}
	epoch, err := keyschedule.FromJoinerSecret(s, gs.JoinerSecret, nil, gi.GroupContext.Marshal())
	if err != nil {
		return v.CipherSuite, fmt.Errorf("key schedule: %w", err)
	}
	if err := epoch.VerifyConfirmationTag(gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag); err != nil {
		return v.CipherSuite, fmt.Errorf("group info confirmation tag: %w", err)
	}

	// The code path of JoinFromWelcome must find the same secrets and
	// GroupInfo, and only with the right init key.
	joinGS, joinGI, err := mls.OpenWelcome(v.Welcome, kpMsg.KeyPackage, v.InitPriv)
	if err != nil {
		return v.CipherSuite, fmt.Errorf("mls.OpenWelcome: %w", err)
	}
	if !bytes.Equal(joinGS.JoinerSecret, gs.JoinerSecret) {
		return v.CipherSuite, fmt.Errorf("mls.OpenWelcome: joiner secret differs")
	}
	if !bytes.Equal(joinGI.Marshal(), giBytes) {
		return v.CipherSuite, fmt.Errorf("mls.OpenWelcome: group info differs")
	}
	wrongPriv := bytes.Repeat([]byte{1}, len(v.InitPriv))
	if _, _, err := mls.OpenWelcome(v.Welcome, kpMsg.KeyPackage, wrongPriv); !errors.Is(err, mls.ErrDecrypt) {
		return v.CipherSuite, fmt.Errorf("mls.OpenWelcome with a wrong init key: error %v, want mls.ErrDecrypt", err)
	}
	return v.CipherSuite, nil
}
