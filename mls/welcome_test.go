package mls

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/parleychat/parley/mls/keyschedule"
)

func TestWelcomeVectors(t *testing.T) {
	var vectors []struct {
		CipherSuite uint16   `json:"cipher_suite"`
		InitPriv    hexBytes `json:"init_priv"`
		KeyPackage  hexBytes `json:"key_package"`
		SignerPub   hexBytes `json:"signer_pub"`
		Welcome     hexBytes `json:"welcome"`
	}
	loadVectors(t, "welcome.json", &vectors)
	passed := 0
	for i, v := range vectors {
		t.Run(fmt.Sprintf("%d/suite%d", i, v.CipherSuite), func(t *testing.T) {
			suite := vectorSuite(t, v.CipherSuite)
			if suite == nil {
				t.Fatalf("suite %d unsupported", v.CipherSuite)
			}
			kp, err := parseKeyPackage(v.KeyPackage)
			if err != nil {
				t.Fatal(err)
			}
			var m MLSMessage
			if err := m.Unmarshal(v.Welcome); err != nil || m.WireFormat != WireFormatWelcome {
				t.Fatalf("welcome: %v", err)
			}
			g := &Group{}
			gs, gi, pskSecret, err := g.openWelcome(m.Welcome, kp, v.InitPriv)
			if err != nil {
				t.Fatal(err)
			}
			if err := gi.VerifySignature(suite, v.SignerPub); err != nil {
				t.Fatal(err)
			}
			ks, err := keyschedule.FromJoinerSecret(suite, gs.JoinerSecret, pskSecret, gi.GroupContext.Marshal())
			if err != nil {
				t.Fatal(err)
			}
			if err := ks.VerifyConfirmationTag(gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag); err != nil {
				t.Fatal(err)
			}
			// A wrong init key must not open it.
			if _, _, _, err := g.openWelcome(m.Welcome, kp, bytes.Repeat([]byte{1}, len(v.InitPriv))); err == nil {
				t.Fatal("opened with the wrong init key")
			}
			passed++
		})
	}
	t.Logf("welcome.json: %d/%d passed", passed, len(vectors))
}

func TestTranscriptHashVectors(t *testing.T) {
	var vectors []struct {
		CipherSuite                  uint16   `json:"cipher_suite"`
		ConfirmationKey              hexBytes `json:"confirmation_key"`
		AuthenticatedContent         hexBytes `json:"authenticated_content"`
		InterimTranscriptHashBefore  hexBytes `json:"interim_transcript_hash_before"`
		ConfirmedTranscriptHashAfter hexBytes `json:"confirmed_transcript_hash_after"`
		InterimTranscriptHashAfter   hexBytes `json:"interim_transcript_hash_after"`
	}
	loadVectors(t, "transcript-hashes.json", &vectors)
	passed := 0
	for i, v := range vectors {
		t.Run(fmt.Sprintf("%d/suite%d", i, v.CipherSuite), func(t *testing.T) {
			suite := vectorSuite(t, v.CipherSuite)
			if suite == nil {
				t.Fatalf("suite %d unsupported", v.CipherSuite)
			}
			var ac AuthenticatedContent
			if err := ac.Unmarshal(v.AuthenticatedContent); err != nil {
				t.Fatal(err)
			}
			if ac.Content.ContentType != ContentTypeCommit {
				t.Fatal("not a commit")
			}
			if !bytes.Equal(ac.Marshal(), v.AuthenticatedContent) {
				t.Fatal("AuthenticatedContent does not re-encode")
			}
			confirmed := keyschedule.ConfirmedTranscriptHash(suite, v.InterimTranscriptHashBefore, ac.ConfirmedTranscriptHashInput())
			if !bytes.Equal(confirmed, v.ConfirmedTranscriptHashAfter) {
				t.Fatal("confirmed transcript hash differs")
			}
			if !bytes.Equal(suite.MAC(v.ConfirmationKey, confirmed), ac.Auth.ConfirmationTag) {
				t.Fatal("confirmation tag does not verify")
			}
			interim := keyschedule.InterimTranscriptHash(suite, confirmed, ac.Auth.ConfirmationTag)
			if !bytes.Equal(interim, v.InterimTranscriptHashAfter) {
				t.Fatal("interim transcript hash differs")
			}
			passed++
		})
	}
	t.Logf("transcript-hashes.json: %d/%d passed", passed, len(vectors))
}
