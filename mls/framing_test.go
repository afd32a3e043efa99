package mls

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/keyschedule"
)

type messageProtectionVector struct {
	CipherSuite             uint16   `json:"cipher_suite"`
	GroupID                 hexBytes `json:"group_id"`
	Epoch                   uint64   `json:"epoch"`
	TreeHash                hexBytes `json:"tree_hash"`
	ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
	SignaturePriv           hexBytes `json:"signature_priv"`
	SignaturePub            hexBytes `json:"signature_pub"`
	EncryptionSecret        hexBytes `json:"encryption_secret"`
	SenderDataSecret        hexBytes `json:"sender_data_secret"`
	MembershipKey           hexBytes `json:"membership_key"`
	Proposal                hexBytes `json:"proposal"`
	ProposalPriv            hexBytes `json:"proposal_priv"`
	ProposalPub             hexBytes `json:"proposal_pub"`
	Commit                  hexBytes `json:"commit"`
	CommitPriv              hexBytes `json:"commit_priv"`
	CommitPub               hexBytes `json:"commit_pub"`
	Application             hexBytes `json:"application"`
	ApplicationPriv         hexBytes `json:"application_priv"`
}

// The message-protection vectors use a two-leaf group; the sender is leaf 1.
const mpSender = 1

func TestMessageProtectionVectors(t *testing.T) {
	var vectors []messageProtectionVector
	loadVectors(t, "message-protection.json", &vectors)
	passed := 0
	for i, v := range vectors {
		t.Run(fmt.Sprintf("%d/suite%d", i, v.CipherSuite), func(t *testing.T) {
			suite := vectorSuite(t, v.CipherSuite)
			if suite == nil {
				t.Fatalf("suite %d unsupported", v.CipherSuite)
			}
			runMessageProtection(t, suite, &v)
			if !t.Failed() {
				passed++
			}
		})
	}
	t.Logf("message-protection.json: %d/%d passed", passed, len(vectors))
}

func runMessageProtection(t *testing.T, suite *ciphersuite.Suite, v *messageProtectionVector) {
	gc := (&GroupContext{
		Version: ProtocolVersionMLS10, CipherSuite: suite.ID(), GroupID: v.GroupID, Epoch: v.Epoch,
		TreeHash: v.TreeHash, ConfirmedTranscriptHash: v.ConfirmedTranscriptHash, Extensions: Extensions{},
	}).Marshal()
	newTree := func() *keyschedule.SecretTree {
		st, err := keyschedule.NewSecretTree(suite, bytes.Clone(v.EncryptionSecret), 2, keyschedule.Window{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	signer, err := suite.NewSigner(v.SignaturePriv)
	if err != nil {
		t.Fatal(err)
	}
	// unprotect decodes an MLSMessage and returns its verified content.
	unprotect := func(t *testing.T, msg []byte) *AuthenticatedContent {
		t.Helper()
		var m MLSMessage
		if err := m.Unmarshal(msg); err != nil {
			t.Fatal(err)
		}
		var a *AuthenticatedContent
		switch m.WireFormat {
		case WireFormatPublicMessage:
			a, err = unprotectPublic(suite, m.PublicMessage, v.MembershipKey, gc)
		case WireFormatPrivateMessage:
			var sd senderData
			sd, err = openSenderData(suite, m.PrivateMessage, v.SenderDataSecret)
			if err == nil {
				a, err = unprotectPrivate(suite, m.PrivateMessage, sd, newTree())
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		if a.Content.Sender != (Sender{Type: SenderTypeMember, Index: mpSender}) {
			t.Fatalf("sender %+v", a.Content.Sender)
		}
		if err := verifyContent(suite, v.SignaturePub, a, gc); err != nil {
			t.Fatal(err)
		}
		return a
	}
	// protect frames body and returns the MLSMessage bytes.
	protect := func(t *testing.T, wf WireFormat, c *FramedContent) []byte {
		t.Helper()
		a, err := signContent(signer, wf, c, gc)
		if err != nil {
			t.Fatal(err)
		}
		if c.ContentType == ContentTypeCommit {
			a.Auth.ConfirmationTag = suite.MAC(v.MembershipKey, []byte("any tag"))
		}
		m := MLSMessage{Version: ProtocolVersionMLS10, WireFormat: wf}
		if wf == WireFormatPublicMessage {
			m.PublicMessage = protectPublic(suite, a, v.MembershipKey, gc)
		} else {
			m.PrivateMessage, err = protectPrivate(suite, a, v.SenderDataSecret, newTree(), 32, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
		}
		return m.Marshal()
	}
	content := func(ct ContentType) FramedContent {
		return FramedContent{GroupID: v.GroupID, Epoch: v.Epoch, Sender: Sender{Type: SenderTypeMember, Index: mpSender},
			AuthenticatedData: []byte{}, ContentType: ct}
	}
	var prop Proposal
	if err := prop.Unmarshal(v.Proposal); err != nil {
		t.Fatal(err)
	}
	var commit Commit
	if err := commit.Unmarshal(v.Commit); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		ct       ContentType
		body     []byte
		messages []hexBytes
		formats  []WireFormat
	}{
		{"proposal", ContentTypeProposal, v.Proposal, []hexBytes{v.ProposalPub, v.ProposalPriv}, []WireFormat{WireFormatPublicMessage, WireFormatPrivateMessage}},
		{"commit", ContentTypeCommit, v.Commit, []hexBytes{v.CommitPub, v.CommitPriv}, []WireFormat{WireFormatPublicMessage, WireFormatPrivateMessage}},
		{"application", ContentTypeApplication, v.Application, []hexBytes{v.ApplicationPriv}, []WireFormat{WireFormatPrivateMessage}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fc := content(c.ct)
			switch c.ct {
			case ContentTypeProposal:
				fc.Proposal = &prop
			case ContentTypeCommit:
				fc.Commit = &commit
			default:
				fc.ApplicationData = c.body
			}
			wantBody := marshal(fc.EncodeBody)
			if c.ct != ContentTypeApplication && !bytes.Equal(wantBody, c.body) {
				t.Fatal("body does not re-encode")
			}
			for _, msg := range c.messages {
				a := unprotect(t, msg)
				if got := marshal(a.Content.EncodeBody); !bytes.Equal(got, wantBody) {
					t.Fatalf("unprotected body differs")
				}
			}
			for _, wf := range c.formats {
				a := unprotect(t, protect(t, wf, &fc))
				if got := marshal(a.Content.EncodeBody); !bytes.Equal(got, wantBody) {
					t.Fatalf("round-trip body differs (wire format %d)", wf)
				}
			}
		})
	}
}
