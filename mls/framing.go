package mls

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"

	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/codec"
	"github.com/parleychat/parley/mls/keyschedule"
	"github.com/parleychat/parley/mls/treemath"
)

// AuthenticatedContent (RFC 9420 §6.1): a FramedContent with the wire
// format it travels in and its authentication data. It is the input to
// proposal references and the confirmed transcript hash.
type AuthenticatedContent struct {
	WireFormat WireFormat
	Content    FramedContent
	Auth       FramedContentAuthData
}

func (a *AuthenticatedContent) Encode(w *codec.Writer) {
	w.U16(uint16(a.WireFormat))
	a.Content.Encode(w)
	a.Auth.Encode(w, a.Content.ContentType)
}

func (a *AuthenticatedContent) Decode(r *codec.Reader) {
	a.WireFormat = WireFormat(r.U16())
	a.Content.Decode(r)
	a.Auth.Decode(r, a.Content.ContentType)
}

func (a *AuthenticatedContent) Marshal() []byte { return marshal(a.Encode) }
func (a *AuthenticatedContent) Unmarshal(b []byte) error {
	return unmarshal("AuthenticatedContent", b, a.Decode)
}

// ConfirmedTranscriptHashInput returns the encoding of
// ConfirmedTranscriptHashInput (§8.2): wire_format, content, signature.
func (a *AuthenticatedContent) ConfirmedTranscriptHashInput() []byte {
	return marshal(func(w *codec.Writer) {
		w.U16(uint16(a.WireFormat))
		a.Content.Encode(w)
		w.Opaque(a.Auth.Signature)
	})
}

// needsGroupContext reports whether the FramedContentTBS of a sender's
// content carries the GroupContext (§6.1).
func needsGroupContext(t SenderType) bool {
	return t == SenderTypeMember || t == SenderTypeNewMemberCommit
}

// encodeTBS writes FramedContentTBS (§6.1). groupContext is the encoded
// GroupContext of the content's epoch, used for member and
// new_member_commit senders.
func encodeTBS(w *codec.Writer, wf WireFormat, c *FramedContent, groupContext []byte) {
	w.U16(uint16(ProtocolVersionMLS10))
	w.U16(uint16(wf))
	c.Encode(w)
	if needsGroupContext(c.Sender.Type) {
		w.Raw(groupContext)
	}
}

// signContent builds the AuthenticatedContent for c, signed by signer
// (§6.1). The confirmation tag of a commit is filled in by the caller.
func signContent(signer ciphersuite.Signer, wf WireFormat, c *FramedContent, groupContext []byte) (*AuthenticatedContent, error) {
	w := codec.NewWriter(nil)
	encodeTBS(w, wf, c, groupContext)
	sig, err := signer.SignWithLabel("FramedContentTBS", w.Bytes())
	if err != nil {
		return nil, fmt.Errorf("sign FramedContent: %w", err)
	}
	return &AuthenticatedContent{WireFormat: wf, Content: *c, Auth: FramedContentAuthData{Signature: sig}}, nil
}

// verifyContent checks a's signature with the sender's signature key.
func verifyContent(suite *ciphersuite.Suite, signatureKey []byte, a *AuthenticatedContent, groupContext []byte) error {
	w := codec.NewWriter(nil)
	encodeTBS(w, a.WireFormat, &a.Content, groupContext)
	if err := suite.VerifyWithLabel(signatureKey, "FramedContentTBS", w.Bytes(), a.Auth.Signature); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	return nil
}

// membershipTBM returns AuthenticatedContentTBM (§6.2).
func membershipTBM(a *AuthenticatedContent, groupContext []byte) []byte {
	w := codec.NewWriter(nil)
	encodeTBS(w, a.WireFormat, &a.Content, groupContext)
	a.Auth.Encode(w, a.Content.ContentType)
	return w.Bytes()
}

// protectPublic wraps a (wire format PublicMessage) as a PublicMessage, with
// a membership tag for member senders (§6.2).
func protectPublic(suite *ciphersuite.Suite, a *AuthenticatedContent, membershipKey, groupContext []byte) *PublicMessage {
	m := &PublicMessage{Content: a.Content, Auth: a.Auth}
	if a.Content.Sender.Type == SenderTypeMember {
		m.MembershipTag = suite.MAC(membershipKey, membershipTBM(a, groupContext))
	}
	return m
}

// unprotectPublic checks a PublicMessage's membership tag (for member
// senders) and returns its AuthenticatedContent. The signature is checked
// by the caller, who knows the sender's key.
func unprotectPublic(suite *ciphersuite.Suite, m *PublicMessage, membershipKey, groupContext []byte) (*AuthenticatedContent, error) {
	a := &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: m.Content, Auth: m.Auth}
	if m.Content.Sender.Type == SenderTypeMember {
		want := suite.MAC(membershipKey, membershipTBM(a, groupContext))
		if subtle.ConstantTimeCompare(want, m.MembershipTag) != 1 {
			return nil, ErrBadMembershipTag
		}
	}
	return a, nil
}

// ratchetFor picks the secret-tree ratchet for a content type (§6.3.1).
func ratchetFor(ct ContentType) keyschedule.RatchetType {
	if ct == ContentTypeApplication {
		return keyschedule.ApplicationRatchet
	}
	return keyschedule.HandshakeRatchet
}

func encodePrivateContentAAD(c *FramedContent) []byte {
	return marshal(func(w *codec.Writer) {
		w.Opaque(c.GroupID)
		w.U64(c.Epoch)
		w.U8(uint8(c.ContentType))
		w.Opaque(c.AuthenticatedData)
	})
}

func encodeSenderDataAAD(groupID []byte, epoch uint64, ct ContentType) []byte {
	return marshal(func(w *codec.Writer) {
		w.Opaque(groupID)
		w.U64(epoch)
		w.U8(uint8(ct))
	})
}

// paddingFor returns how many zero bytes to append to a PrivateMessageContent
// of n bytes so that it fills whole blocks of block bytes (no padding for
// block <= 1). Hiding the exact length limits what the delivery service
// learns from message sizes (§6.3.1, §16.4.3).
func paddingFor(n, block int) int {
	if block <= 1 {
		return 0
	}
	return (block - n%block) % block
}

// protectPrivate encrypts a (wire format PrivateMessage, member sender) as
// a PrivateMessage (§6.3): the content with the next key of the sender's
// ratchet in st and a random reuse guard, the sender data with the key
// derived from sender_data_secret and a ciphertext sample.
func protectPrivate(suite *ciphersuite.Suite, a *AuthenticatedContent, senderDataSecret []byte, st *keyschedule.SecretTree, padBlock int, rand io.Reader) (*PrivateMessage, error) {
	c := &a.Content
	if c.Sender.Type != SenderTypeMember {
		return nil, fmt.Errorf("protect PrivateMessage: sender type %d is not a member", c.Sender.Type)
	}
	kn, err := st.Next(treemath.LeafIndex(c.Sender.Index), ratchetFor(c.ContentType))
	if err != nil {
		return nil, fmt.Errorf("protect PrivateMessage: %w", err)
	}
	defer clear(kn.Key)
	var guard [4]byte
	if _, err := io.ReadFull(rand, guard[:]); err != nil {
		return nil, fmt.Errorf("protect PrivateMessage: %w", err)
	}
	w := codec.NewWriter(nil)
	c.EncodeBody(w)
	a.Auth.Encode(w, c.ContentType)
	w.Raw(make([]byte, paddingFor(w.Len(), padBlock)))
	pt := w.Bytes()
	ct, err := suite.AEADSeal(kn.Key, keyschedule.ApplyReuseGuard(kn.Nonce, guard), encodePrivateContentAAD(c), pt)
	clear(pt)
	if err != nil {
		return nil, fmt.Errorf("protect PrivateMessage: %w", err)
	}
	sd := marshal(func(w *codec.Writer) {
		w.U32(c.Sender.Index)
		w.U32(kn.Generation)
		w.Raw(guard[:])
	})
	key, nonce := keyschedule.SenderDataKeyNonce(suite, senderDataSecret, ct)
	esd, err := suite.AEADSeal(key, nonce, encodeSenderDataAAD(c.GroupID, c.Epoch, c.ContentType), sd)
	if err != nil {
		return nil, fmt.Errorf("protect PrivateMessage: %w", err)
	}
	return &PrivateMessage{
		GroupID: c.GroupID, Epoch: c.Epoch, ContentType: c.ContentType,
		AuthenticatedData: c.AuthenticatedData, EncryptedSenderData: esd, Ciphertext: ct,
	}, nil
}

// senderData is SenderData (§6.3.2).
type senderData struct {
	leaf       uint32
	generation uint32
	reuseGuard [4]byte
}

// openSenderData decrypts a PrivateMessage's sender data.
func openSenderData(suite *ciphersuite.Suite, m *PrivateMessage, senderDataSecret []byte) (senderData, error) {
	key, nonce := keyschedule.SenderDataKeyNonce(suite, senderDataSecret, m.Ciphertext)
	pt, err := suite.AEADOpen(key, nonce, encodeSenderDataAAD(m.GroupID, m.Epoch, m.ContentType), m.EncryptedSenderData)
	if err != nil {
		return senderData{}, fmt.Errorf("%w: sender data: %w", ErrDecrypt, err)
	}
	var sd senderData
	err = unmarshal("SenderData", pt, func(r *codec.Reader) {
		sd.leaf = r.U32()
		sd.generation = r.U32()
		copy(sd.reuseGuard[:], r.Raw(4))
	})
	return sd, err
}

// unprotectPrivate decrypts a PrivateMessage whose sender data sd was
// already opened, taking (and so deleting) the key from st. The signature
// is checked by the caller.
func unprotectPrivate(suite *ciphersuite.Suite, m *PrivateMessage, sd senderData, st *keyschedule.SecretTree) (*AuthenticatedContent, error) {
	kn, err := st.Key(treemath.LeafIndex(sd.leaf), ratchetFor(m.ContentType), sd.generation)
	switch {
	case errors.Is(err, keyschedule.ErrGenerationUsed):
		return nil, fmt.Errorf("%w: %w", ErrReplay, err)
	case errors.Is(err, keyschedule.ErrGenerationTooFar):
		return nil, fmt.Errorf("%w: %w", ErrTooFarAhead, err)
	case errors.Is(err, keyschedule.ErrLeafOutOfRange):
		return nil, fmt.Errorf("%w: %w", ErrUnknownSender, err)
	case err != nil:
		return nil, err
	}
	defer clear(kn.Key)
	a := &AuthenticatedContent{
		WireFormat: WireFormatPrivateMessage,
		Content: FramedContent{
			GroupID: m.GroupID, Epoch: m.Epoch,
			Sender:            Sender{Type: SenderTypeMember, Index: sd.leaf},
			AuthenticatedData: m.AuthenticatedData, ContentType: m.ContentType,
		},
	}
	pt, err := suite.AEADOpen(kn.Key, keyschedule.ApplyReuseGuard(kn.Nonce, sd.reuseGuard), encodePrivateContentAAD(&a.Content), m.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("%w: content: %w", ErrDecrypt, err)
	}
	err = unmarshal("PrivateMessageContent", pt, func(r *codec.Reader) {
		a.Content.DecodeBody(r)
		a.Auth.Decode(r, a.Content.ContentType)
		// The padding must be all zeros (§6.3.1).
		for _, b := range r.Raw(r.Remaining()) {
			if b != 0 {
				invalid(r, "non-zero padding")
				return
			}
		}
	})
	clear(pt)
	if err != nil {
		return nil, err
	}
	return a, nil
}
