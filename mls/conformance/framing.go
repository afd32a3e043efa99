package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/mls/codec"
	"github.com/parleychat/parley/mls/keyschedule"
)

// runMessageProtection checks PublicMessage and PrivateMessage framing
// (§6.2, §6.3) of a proposal, a commit and application data sent by leaf
// 1 of a two-member group: the vector's messages open, and messages this
// implementation protects open again.
func runMessageProtection(entry json.RawMessage) (uint16, error) {
	var v struct {
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
		ProposalPub             hexBytes `json:"proposal_pub"`
		ProposalPriv            hexBytes `json:"proposal_priv"`
		Commit                  hexBytes `json:"commit"`
		CommitPub               hexBytes `json:"commit_pub"`
		CommitPriv              hexBytes `json:"commit_priv"`
		Application             hexBytes `json:"application"`
		ApplicationPriv         hexBytes `json:"application_priv"`
	}
	if err := decode(entry, &v); err != nil {
		return 0, err
	}
	s, err := suite(v.CipherSuite)
	if err != nil {
		return v.CipherSuite, err
	}
	gc := encodeGroupContext(v.CipherSuite, v.GroupID, v.Epoch, v.TreeHash, v.ConfirmedTranscriptHash)
	signer, err := s.NewSigner(v.SignaturePriv)
	if err != nil {
		return v.CipherSuite, fmt.Errorf("signature_priv: %w", err)
	}
	const sender = 1
	newTree := func() (*keyschedule.SecretTree, error) {
		return keyschedule.NewSecretTree(s, bytes.Clone(v.EncryptionSecret), 2, keyschedule.Window{})
	}
	// open unprotects a message with a fresh secret tree and returns the
	// encoded content body.
	open := func(msg []byte) ([]byte, error) {
		st, err := newTree()
		if err != nil {
			return nil, err
		}
		a, err := mls.UnprotectMessage(s, msg, v.SignaturePub, v.MembershipKey, v.SenderDataSecret, st, gc)
		if err != nil {
			return nil, err
		}
		if a.Content.Sender != (mls.Sender{Type: mls.SenderTypeMember, Index: sender}) {
			return nil, fmt.Errorf("sender %+v, want member %d", a.Content.Sender, sender)
		}
		w := codec.NewWriter(nil)
		a.Content.EncodeBody(w)
		return w.Bytes(), nil
	}

	var prop mls.Proposal
	if err := prop.Unmarshal(v.Proposal); err != nil {
		return v.CipherSuite, fmt.Errorf("proposal: %w", err)
	}
	var commit mls.Commit
	if err := commit.Unmarshal(v.Commit); err != nil {
		return v.CipherSuite, fmt.Errorf("commit: %w", err)
	}
	cases := []struct {
		name            string
		content         mls.FramedContent
		body            []byte // the vector's encoding of the body, if it has one
		pub, priv       []byte
		publicForbidden bool
	}{
		{"proposal", mls.FramedContent{ContentType: mls.ContentTypeProposal, Proposal: &prop}, v.Proposal, v.ProposalPub, v.ProposalPriv, false},
		{"commit", mls.FramedContent{ContentType: mls.ContentTypeCommit, Commit: &commit}, v.Commit, v.CommitPub, v.CommitPriv, false},
		{"application", mls.FramedContent{ContentType: mls.ContentTypeApplication, ApplicationData: v.Application}, nil, nil, v.ApplicationPriv, true},
	}
	// Any well-formed tag will do: these checks do not verify it.
	tag := s.MAC(v.MembershipKey, []byte("confirmation tag"))
	for _, c := range cases {
		fc := c.content
		fc.GroupID, fc.Epoch, fc.AuthenticatedData = v.GroupID, v.Epoch, []byte{}
		fc.Sender = mls.Sender{Type: mls.SenderTypeMember, Index: sender}
		w := codec.NewWriter(nil)
		fc.EncodeBody(w)
		want := w.Bytes()
		if c.body != nil && !bytes.Equal(want, c.body) {
			return v.CipherSuite, fmt.Errorf("%s: re-encodes to different bytes", c.name)
		}

		var vectorMsgs [][]byte
		if c.pub != nil {
			vectorMsgs = append(vectorMsgs, c.pub)
		}
		vectorMsgs = append(vectorMsgs, c.priv)
		for _, msg := range vectorMsgs {
			if err := messageReencodes(c.name+" message", msg); err != nil {
				return v.CipherSuite, err
			}
			got, err := open(msg)
			if err != nil {
				return v.CipherSuite, fmt.Errorf("%s: unprotect vector message: %w", c.name, err)
			}
			if !bytes.Equal(got, want) {
				return v.CipherSuite, fmt.Errorf("%s: unprotected vector message carries different content", c.name)
			}
		}

		pub, err := mls.ProtectPublicMessage(s, signer, &fc, tag, v.MembershipKey, gc)
		switch {
		case c.publicForbidden && err == nil:
			// §6: application data must be sent as a PrivateMessage.
			return v.CipherSuite, fmt.Errorf("%s: protecting as a PublicMessage succeeded", c.name)
		case c.publicForbidden:
		case err != nil:
			return v.CipherSuite, fmt.Errorf("%s: protect as PublicMessage: %w", c.name, err)
		default:
			if got, err := open(pub); err != nil || !bytes.Equal(got, want) {
				return v.CipherSuite, fmt.Errorf("%s: own PublicMessage does not round-trip: %v", c.name, err)
			}
		}

		st, err := newTree()
		if err != nil {
			return v.CipherSuite, err
		}
		priv, err := mls.ProtectPrivateMessage(s, signer, &fc, tag, v.SenderDataSecret, st, gc, nil)
		if err != nil {
			return v.CipherSuite, fmt.Errorf("%s: protect as PrivateMessage: %w", c.name, err)
		}
		if got, err := open(priv); err != nil || !bytes.Equal(got, want) {
			return v.CipherSuite, fmt.Errorf("%s: own PrivateMessage does not round-trip: %v", c.name, err)
		}
	}
	return v.CipherSuite, nil
}

// runTranscriptHashes checks the transcript hash update and confirmation
// tag of a Commit (§8.2).
func runTranscriptHashes(entry json.RawMessage) (uint16, error) {
	var v struct {
		CipherSuite                 uint16   `json:"cipher_suite"`
		ConfirmationKey             hexBytes `json:"confirmation_key"`
		AuthenticatedContent        hexBytes `json:"authenticated_content"`
		InterimTranscriptHashBefore hexBytes `json:"interim_transcript_hash_before"`
		ConfirmedTranscriptHash     hexBytes `json:"confirmed_transcript_hash_after"`
		InterimTranscriptHash       hexBytes `json:"interim_transcript_hash_after"`
	}
	if err := decode(entry, &v); err != nil {
		return 0, err
	}
	s, err := suite(v.CipherSuite)
	if err != nil {
		return v.CipherSuite, err
	}
	confirmedInput, tag, err := splitAuthenticatedCommit(v.AuthenticatedContent)
	if err != nil {
		return v.CipherSuite, err
	}
	var c checker
	// The mls package's own view of the commit must agree.
	var ac mls.AuthenticatedContent
	if err := ac.Unmarshal(v.AuthenticatedContent); err != nil {
		return v.CipherSuite, fmt.Errorf("decode AuthenticatedContent: %w", err)
	}
	if !bytes.Equal(ac.Marshal(), v.AuthenticatedContent) {
		c.fail("AuthenticatedContent re-encodes to different bytes")
	}
	c.bytes("AuthenticatedContent.ConfirmedTranscriptHashInput", ac.ConfirmedTranscriptHashInput(), confirmedInput)
	c.bytes("AuthenticatedContent confirmation tag", ac.Auth.ConfirmationTag, tag)
	confirmed := keyschedule.ConfirmedTranscriptHash(s, v.InterimTranscriptHashBefore, confirmedInput)
	c.bytes("confirmed_transcript_hash_after", confirmed, v.ConfirmedTranscriptHash)
	e := &keyschedule.Epoch{Suite: s, ConfirmationKey: v.ConfirmationKey}
	c.ok("confirmation tag", e.VerifyConfirmationTag(v.ConfirmedTranscriptHash, tag))
	c.bytes("interim_transcript_hash_after", keyschedule.InterimTranscriptHash(s, confirmed, tag), v.InterimTranscriptHash)
	return v.CipherSuite, c.err
}

// splitAuthenticatedCommit decodes an AuthenticatedContent carrying a
// Commit (§6.1) and splits it into ConfirmedTranscriptHashInput (everything
// but the confirmation tag, §8.2) and the confirmation tag.
func splitAuthenticatedCommit(ac []byte) (confirmedInput, tag []byte, err error) {
	r := codec.NewReader(ac)
	r.U16() // wire_format
	var content mls.FramedContent
	content.Decode(r)
	if r.Err() == nil && content.ContentType != mls.ContentTypeCommit {
		return nil, nil, fmt.Errorf("authenticated_content carries content type %d, not a commit", content.ContentType)
	}
	// The signature ends ConfirmedTranscriptHashInput.
	sig := r.Opaque()
	n := len(ac) - r.Remaining()
	tag = r.Opaque()
	if err := r.Finish(); err != nil {
		return nil, nil, fmt.Errorf("decode authenticated_content: %w", err)
	}
	_ = sig
	return ac[:n], tag, nil
}
