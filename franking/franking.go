// Package franking makes abuse reports of end-to-end encrypted messages
// verifiable (message franking): a recipient can prove to the server who
// sent what, and when, without the server having seen or stored anything
// of the message.
//
// The construction is Facebook Messenger's (Secret Conversations
// technical whitepaper, 2016) and that of Grubbs, Lu and Ristenpart
// ("Message Franking via Committing Authenticated Encryption", CRYPTO
// 2017), fitted to MLS:
//
//  1. The sender's content carries a fresh 16-byte salt (the MIMI
//     content's salt field) and names the sender and the conversation. The
//     sender commits to the exact content bytes with
//     tag = HMAC-SHA256(salt, content), which the salt makes hiding, and
//     puts the tag in the MLS PrivateMessage's authenticated_data (AAD),
//     so it is bound to the ciphertext by the AEAD and readable by the
//     server. HMAC-SHA256 with a secret key is a committing PRF: nobody
//     can find a second (salt, content) giving the same tag.
//  2. The server, when it hands the message out, signs
//     frank = Ed25519(franking key, "parley frank v1" || tag ||
//     conversation || sender device || accepted time), with a franking
//     key of its own that clients pin. It stores nothing for this: the
//     frank is recomputed from what the message row already holds.
//  3. The recipient, on decrypting, checks that the tag opens to the
//     content (a message whose tag does not is shown as tampered) and
//     keeps salt, tag and frank with the message.
//  4. A report carries the content, the frank and its context; the server
//     checks the frank with its own key and the tag against the content.
//     A report cannot be forged (no frank), altered (the tag would not
//     open), re-attributed or moved to another conversation or time (the
//     frank covers them), and the server refuses reports older than it
//     keeps franks valid.
//
// Attachments are committed through the content: it names each file's
// plaintext SHA-256, so a report of a file proves which file. The AEAD
// alone is never the commitment (AES-GCM is not committing: Dodis et al.,
// "Fast Message Franking: From Invisible Salamanders to Encryptment",
// CRYPTO 2018).
package franking

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Sizes.
const (
	SaltSize = 16
	TagSize  = sha256.Size
)

// Tag commits to content under salt: HMAC-SHA256(salt, content).
func Tag(salt, content []byte) ([]byte, error) {
	if len(salt) != SaltSize {
		return nil, fmt.Errorf("%w: salt of %d bytes", ErrMalformed, len(salt))
	}
	m := hmac.New(sha256.New, salt)
	m.Write(content)
	return m.Sum(nil), nil
}

// Opens reports whether tag commits to content under salt (constant time).
func Opens(tag, salt, content []byte) bool {
	want, err := Tag(salt, content)
	return err == nil && hmac.Equal(want, tag)
}

// Errors callers branch on.
var (
	ErrMalformed = errors.New("franking: malformed")
	ErrNoTag     = errors.New("franking: the message carries no franking tag")
)

// AAD encoding. The tag travels in the PrivateMessage's authenticated_data
// as a SafeAAD-shaped item (draft-ietf-mls-extensions, "Safe AAD"):
//
//	uint16 component_id (0xF0F1, private use) || uint8 length (32) || tag
const aadComponent = 0xF0F1

// AAD returns the authenticated_data that carries tag.
func AAD(tag []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, aadComponent)
	b = append(b, byte(len(tag)))
	return append(b, tag...)
}

// TagFromAAD returns the tag an authenticated_data carries: ErrNoTag if it
// carries none (messages from clients without franking), ErrMalformed if it
// is not one this package wrote.
func TagFromAAD(aad []byte) ([]byte, error) {
	if len(aad) == 0 {
		return nil, ErrNoTag
	}
	if len(aad) != 3+TagSize || binary.BigEndian.Uint16(aad) != aadComponent || aad[2] != TagSize {
		return nil, fmt.Errorf("%w: authenticated data of %d bytes", ErrMalformed, len(aad))
	}
	return aad[3:], nil
}

// Context is what the server's frank binds a tag to: the conversation,
// the sending account and device, and when the server accepted the
// message.
type Context struct {
	Conversation []byte
	SenderUser   string
	SenderDevice string
	Accepted     time.Time // millisecond precision
}

func (c Context) valid() bool {
	return len(c.Conversation) <= 0xFFFF && len(c.SenderUser) <= 0xFF && len(c.SenderDevice) <= 0xFF
}

func frankInput(tag []byte, c Context) []byte {
	b := []byte("parley frank v1\x00")
	b = append(b, tag...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.Conversation)))
	b = append(b, c.Conversation...)
	b = append(b, byte(len(c.SenderUser)))
	b = append(b, c.SenderUser...)
	b = append(b, byte(len(c.SenderDevice)))
	b = append(b, c.SenderDevice...)
	return binary.BigEndian.AppendUint64(b, uint64(c.Accepted.UnixMilli()))
}

// Frank is the server's signature over a tag in its context.
func Frank(key ed25519.PrivateKey, tag []byte, c Context) ([]byte, error) {
	if len(tag) != TagSize || !c.valid() {
		return nil, fmt.Errorf("%w: tag or context", ErrMalformed)
	}
	return ed25519.Sign(key, frankInput(tag, c)), nil
}

// VerifyFrank checks a frank under the server's franking public key.
func VerifyFrank(pub ed25519.PublicKey, frank, tag []byte, c Context) bool {
	if len(pub) != ed25519.PublicKeySize || len(frank) != ed25519.SignatureSize || len(tag) != TagSize || !c.valid() {
		return false
	}
	return ed25519.Verify(pub, frankInput(tag, c), frank)
}
