package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/parleychat/parley/mls"
)

// runPassiveClient joins a group from a Welcome and follows its commits,
// checking the epoch authenticator after each (test-vectors.md "Passive
// Client Scenarios").
func runPassiveClient(entry json.RawMessage) (uint16, error) {
	var v struct {
		CipherSuite    uint16   `json:"cipher_suite"`
		KeyPackage     hexBytes `json:"key_package"`
		SignaturePriv  hexBytes `json:"signature_priv"`
		EncryptionPriv hexBytes `json:"encryption_priv"`
		InitPriv       hexBytes `json:"init_priv"`
		Welcome        hexBytes `json:"welcome"`
		RatchetTree    hexBytes `json:"ratchet_tree"`
		ExternalPSKs   []struct {
			PSKID hexBytes `json:"psk_id"`
			PSK   hexBytes `json:"psk"`
		} `json:"external_psks"`
		InitialEpochAuthenticator hexBytes `json:"initial_epoch_authenticator"`
		Epochs                    []struct {
			Proposals          []hexBytes `json:"proposals"`
			Commit             hexBytes   `json:"commit"`
			EpochAuthenticator hexBytes   `json:"epoch_authenticator"`
		} `json:"epochs"`
	}
	if err := decode(entry, &v); err != nil {
		return 0, err
	}
	s, err := suite(v.CipherSuite)
	if err != nil {
		return v.CipherSuite, err
	}
	// Every message, and the tree, must re-encode to the same bytes, so
	// that a codec slip is reported as such rather than as a wrong epoch
	// authenticator.
	messages := []namedBytes{{"welcome", v.Welcome}}
	if m := new(mls.MLSMessage); m.Unmarshal(v.KeyPackage) == nil {
		// Some files give the KeyPackage bare; parseKeyPackage takes both.
		messages = append(messages, namedBytes{"key_package", v.KeyPackage})
	}
	for i, ep := range v.Epochs {
		for j, p := range ep.Proposals {
			messages = append(messages, namedBytes{fmt.Sprintf("epoch %d proposal %d", i, j), p})
		}
		messages = append(messages, namedBytes{fmt.Sprintf("epoch %d commit", i), ep.Commit})
	}
	for _, m := range messages {
		if err := messageReencodes(m.name, m.b); err != nil {
			return v.CipherSuite, err
		}
	}
	if v.RatchetTree != nil {
		if out, err := roundTripTree(v.RatchetTree); err != nil || !bytes.Equal(out, v.RatchetTree) {
			return v.CipherSuite, fmt.Errorf("ratchet_tree: does not re-encode to the same bytes (%v)", err)
		}
	}
	kp, err := parseKeyPackage(v.KeyPackage)
	if err != nil {
		return v.CipherSuite, fmt.Errorf("key_package: %w", err)
	}
	// The private keys must belong to the KeyPackage.
	signer, err := s.NewSigner(v.SignaturePriv)
	if err != nil {
		return v.CipherSuite, fmt.Errorf("signature_priv: %w", err)
	}
	if !bytes.Equal(signer.Public(), kp.LeafNode.SignatureKey) {
		return v.CipherSuite, fmt.Errorf("signature_priv does not match the key package's signature key")
	}
	for _, k := range []struct {
		name      string
		priv, pub []byte
	}{{"encryption_priv", v.EncryptionPriv, kp.LeafNode.EncryptionKey}, {"init_priv", v.InitPriv, kp.InitKey}} {
		pub, err := s.HPKEPublicKey(k.priv)
		if err != nil {
			return v.CipherSuite, fmt.Errorf("%s: %w", k.name, err)
		}
		if !bytes.Equal(pub, k.pub) {
			return v.CipherSuite, fmt.Errorf("%s does not match the key package", k.name)
		}
	}

	psks := map[string][]byte{}
	for _, p := range v.ExternalPSKs {
		psks[string(p.PSKID)] = p.PSK
	}
	cfg := &mls.Config{PSKLookup: func(id []byte) ([]byte, bool) { p, ok := psks[string(id)]; return p, ok }}
	bundle := &mls.KeyPackageBundle{KeyPackage: *kp, InitPriv: v.InitPriv, EncryptionPriv: v.EncryptionPriv, SignaturePriv: v.SignaturePriv}
	g, err := mls.JoinFromWelcome(v.Welcome, bundle, v.RatchetTree, cfg)
	if err != nil {
		return v.CipherSuite, fmt.Errorf("join from welcome: %w", err)
	}
	if !bytes.Equal(g.EpochAuthenticator(), v.InitialEpochAuthenticator) {
		return v.CipherSuite, fmt.Errorf("initial epoch authenticator = %x, want %x", g.EpochAuthenticator(), []byte(v.InitialEpochAuthenticator))
	}
	for i, ep := range v.Epochs {
		for j, p := range ep.Proposals {
			if _, err := g.Process(p); err != nil {
				return v.CipherSuite, fmt.Errorf("epoch %d of %d: proposal %d: %w", i, len(v.Epochs), j, err)
			}
		}
		res, err := g.Process(ep.Commit)
		if err != nil {
			return v.CipherSuite, fmt.Errorf("epoch %d of %d: commit: %w", i, len(v.Epochs), err)
		}
		if res.Kind != mls.ResultCommit {
			return v.CipherSuite, fmt.Errorf("epoch %d of %d: the commit message was processed as kind %d", i, len(v.Epochs), res.Kind)
		}
		if !bytes.Equal(g.EpochAuthenticator(), ep.EpochAuthenticator) {
			return v.CipherSuite, fmt.Errorf("epoch %d of %d: epoch authenticator = %x, want %x", i, len(v.Epochs), g.EpochAuthenticator(), []byte(ep.EpochAuthenticator))
		}
	}
	return v.CipherSuite, nil
}

// parseKeyPackage accepts a KeyPackage either bare or in an MLSMessage.
func parseKeyPackage(b []byte) (*mls.KeyPackage, error) {
	var m mls.MLSMessage
	if err := m.Unmarshal(b); err == nil && m.KeyPackage != nil {
		return m.KeyPackage, nil
	}
	kp := new(mls.KeyPackage)
	if err := kp.Unmarshal(b); err != nil {
		return nil, err
	}
	return kp, nil
}

// namedBytes is a vector field and its name, for error messages.
type namedBytes struct {
	name string
	b    []byte
}
