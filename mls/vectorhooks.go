package mls

import (
	cryptorand "crypto/rand"
	"errors"
	"fmt"
	"io"

	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/keyschedule"
)

// This file exposes message framing (RFC 9420 §6) with explicitly given
// epoch secrets, and the opening of a Welcome (§12.4.3.1), outside any
// Group, for the message-protection and welcome test vectors run by
// package mls/conformance. Applications use Group.Encrypt, Group.Process
// and JoinFromWelcome instead.

// ProtectPublicMessage frames content as a PublicMessage MLSMessage (§6.2):
// it signs it with signer over the encoded GroupContext groupContext, sets
// confirmationTag (commits only) and, for a member sender, the membership
// tag under membershipKey. Application data is refused: it must be sent
// as a PrivateMessage (§6).
func ProtectPublicMessage(suite *ciphersuite.Suite, signer ciphersuite.Signer, content *FramedContent, confirmationTag, membershipKey, groupContext []byte) ([]byte, error) {
	if content.ContentType == ContentTypeApplication {
		return nil, errors.New("mls: application data must be sent as a PrivateMessage")
	}
	a, err := signContent(signer, WireFormatPublicMessage, content, groupContext)
	if err != nil {
		return nil, err
	}
	if content.ContentType == ContentTypeCommit {
		a.Auth.ConfirmationTag = confirmationTag
	}
	m := MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatPublicMessage,
		PublicMessage: protectPublic(suite, a, membershipKey, groupContext)}
	return m.Marshal(), nil
}

// ProtectPrivateMessage frames content, sent by a member, as a
// PrivateMessage MLSMessage (§6.3), signed by signer and encrypted with the
// sender's next key in st and senderDataSecret. A nil rand means
// crypto/rand.
func ProtectPrivateMessage(suite *ciphersuite.Suite, signer ciphersuite.Signer, content *FramedContent, confirmationTag, senderDataSecret []byte, st *keyschedule.SecretTree, groupContext []byte, rand io.Reader) ([]byte, error) {
	a, err := signContent(signer, WireFormatPrivateMessage, content, groupContext)
	if err != nil {
		return nil, err
	}
	if content.ContentType == ContentTypeCommit {
		a.Auth.ConfirmationTag = confirmationTag
	}
	if rand == nil {
		rand = cryptorand.Reader
	}
	pm, err := protectPrivate(suite, a, senderDataSecret, st, 32, rand)
	if err != nil {
		return nil, err
	}
	m := MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatPrivateMessage, PrivateMessage: pm}
	return m.Marshal(), nil
}

// UnprotectMessage checks and opens a PublicMessage or PrivateMessage
// MLSMessage with explicitly given secrets (membershipKey for the former,
// senderDataSecret and st for the latter) and verifies its signature with
// signatureKey over groupContext. It returns the authenticated content.
func UnprotectMessage(suite *ciphersuite.Suite, msg, signatureKey, membershipKey, senderDataSecret []byte, st *keyschedule.SecretTree, groupContext []byte) (*AuthenticatedContent, error) {
	var m MLSMessage
	if err := m.Unmarshal(msg); err != nil {
		return nil, err
	}
	var (
		a   *AuthenticatedContent
		err error
	)
	switch m.WireFormat {
	case WireFormatPublicMessage:
		a, err = unprotectPublic(suite, m.PublicMessage, membershipKey, groupContext)
	case WireFormatPrivateMessage:
		var sd senderData
		sd, err = openSenderData(suite, m.PrivateMessage, senderDataSecret)
		if err == nil {
			a, err = unprotectPrivate(suite, m.PrivateMessage, sd, st)
		}
	default:
		return nil, fmt.Errorf("%w: wire format %d is not a framed message", ErrMalformed, m.WireFormat)
	}
	if err != nil {
		return nil, err
	}
	if err := verifyContent(suite, signatureKey, a, groupContext); err != nil {
		return nil, err
	}
	return a, nil
}

// OpenWelcome decrypts, as JoinFromWelcome does (§12.4.3.1), the
// GroupSecrets that the Welcome MLSMessage welcome carries for kp, with kp's
// init private key initPriv, and the GroupInfo, without joining: the
// welcome test vectors come without a ratchet tree. The GroupInfo's
// signature and confirmation tag are not checked. A Welcome naming PSKs
// fails, as no PSKs are available.
func OpenWelcome(welcome []byte, kp *KeyPackage, initPriv []byte) (*GroupSecrets, *GroupInfo, error) {
	var m MLSMessage
	if err := m.Unmarshal(welcome); err != nil {
		return nil, nil, err
	}
	if m.WireFormat != WireFormatWelcome {
		return nil, nil, fmt.Errorf("%w: wire format %d, want a welcome", ErrMalformed, m.WireFormat)
	}
	gs, gi, _, err := (&Group{}).openWelcome(m.Welcome, kp, initPriv)
	return gs, gi, err
}
