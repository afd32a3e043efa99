// Package content is the IETF MIMI content format (draft-ietf-mimi-content-08,
// March 2026): the CBOR container every Parley application message carries
// inside MLS. It is pure: no network, no storage.
//
// Section numbers in comments refer to draft-ietf-mimi-content-08.
//
// Encode always produces the deterministic encoding of RFC 8949 §4.2.1
// (§7.1 of the draft). Decode is for untrusted bytes: it accepts only what
// the draft's CDDL (Appendix B) describes, in deterministic encoding, within
// the draft's limits (§7.3, §10.1) and size caps of its own, and refuses
// anything else with an error that wraps ErrMalformed. What it accepts
// re-encodes to exactly the same bytes, so a message id computed by the
// receiver is the one the sender computed.
package content

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/fxamacker/cbor/v2"
)

// MediaType is the media type of the container itself (§9.1).
const MediaType = "application/mimi-content"

// Media types every MIMI client must be able to receive (§8.1).
const (
	TypePlainText = "text/plain;charset=utf-8"
	TypeMarkdown  = "text/markdown;variant=GFM-MIMI"
)

// SaltSize is the size of the per-message random salt (§3.1).
const SaltSize = 16

// MessageIDSize is the size of a message id (§2.3).
const MessageIDSize = 32

// HashSHA256 is the hash algorithm id of SHA-256 in the IANA Named
// Information Hash Algorithm registry: the first octet of every message id
// (§2.3) and the hashAlg of an ExternalPart's contentHash (§4.2).
const HashSHA256 = 1

// MessageID identifies a message: the hash algorithm id, then the first 31
// octets of the hash (§2.3).
type MessageID [MessageIDSize]byte

// Disposition is a part's intended use (§3.4, §9.2.2).
type Disposition uint8

// The dispositions of the initial registry (§9.2.2). Values 9-255 are
// unknown ones, which a receiver treats as Render (§10.1).
const (
	Unspecified Disposition = 0
	Render      Disposition = 1
	Reaction    Disposition = 2
	Profile     Disposition = 3
	Inline      Disposition = 4
	Icon        Disposition = 5
	Attachment  Disposition = 6
	Session     Disposition = 7
	Preview     Disposition = 8
)

// Cardinality says which kind of part a NestedPart is (§3.4).
type Cardinality uint8

// The cardinalities (§3.4).
const (
	NullPart     Cardinality = 0
	SinglePart   Cardinality = 1
	ExternalPart Cardinality = 2
	MultiPart    Cardinality = 3
)

// Semantics relate the parts of a MultiPart (§3.4).
type Semantics uint8

// The part semantics (§3.4).
const (
	ChooseOne  Semantics = 0 // the receiver picks one part
	SingleUnit Semantics = 1 // all parts form one whole
	ProcessAll Semantics = 2 // each part on its own
)

// Content is a mimiContent (§3.1).
type Content struct {
	Salt [SaltSize]byte
	// Replaces names the message this one edits or deletes (§3.1 {1}),
	// nil for none.
	Replaces *MessageID
	// TopicID groups messages into a topic (§3.1 {2}); empty for none.
	TopicID []byte
	// Expires is nil for no expiry (§3.1 {3}).
	Expires *Expiration
	// InReplyTo names the message this one answers or reacts to (§3.1
	// {4}), nil for none.
	InReplyTo *MessageID
	// Extensions are the mimiExtensions map (§3.3), in deterministic key
	// order after Decode; Encode sorts them.
	Extensions []Extension
	// Body is the nestedPart (§3.4).
	Body Part
}

// Expiration is when a message should be deleted (§3.1 {3}).
type Expiration struct {
	// Relative: Time is seconds after the receiver read the message;
	// otherwise seconds since the UNIX epoch.
	Relative bool
	Time     uint32
}

// Part is a NestedPart (§3.4). Which fields are used depends on
// Cardinality: ContentType and Content for SinglePart, ContentType and
// External for ExternalPart, Semantics and Parts for MultiPart.
type Part struct {
	Disposition Disposition
	// Language is "" or a comma-separated list of RFC 5646 tags.
	Language    string
	Cardinality Cardinality
	ContentType string
	Content     []byte
	External    *External
	Semantics   Semantics
	Parts       []Part
}

// External is the rest of an ExternalPart (§4.2).
type External struct {
	URL string
	// Expires is seconds since the UNIX epoch, 0 for never.
	Expires uint32
	// Size is the content's size in octets, 0 if not given.
	Size uint64
	// EncAlg is an IANA AEAD algorithm number, 0 for none.
	EncAlg      uint16
	Key         []byte
	Nonce       []byte
	AAD         []byte
	HashAlg     uint8
	ContentHash []byte
	Description string
	Filename    string
}

// Extension is one entry of the mimiExtensions map (§3.3).
type Extension struct {
	Key ExtensionKey
	// Value is the entry's value, one CBOR data item in deterministic
	// encoding.
	Value cbor.RawMessage
}

// ExtensionKey is an extension map key: an integer (positive ones are
// IANA registered, negative ones private) or a text string of 1-255
// octets (private).
type ExtensionKey struct {
	Int    int64
	Text   string
	IsText bool
}

// IntKey and TextKey make extension keys.
func IntKey(n int64) ExtensionKey     { return ExtensionKey{Int: n} }
func TextKey(s string) ExtensionKey   { return ExtensionKey{Text: s, IsText: true} }
func (k ExtensionKey) String() string { return keyString(k) }

func keyString(k ExtensionKey) string {
	if k.IsText {
		return fmt.Sprintf("%q", k.Text)
	}
	return fmt.Sprint(k.Int)
}

// The registered extension keys (§9.2.1).
var (
	SenderURIKey = IntKey(1)
	RoomURIKey   = IntKey(2)
)

var encMode = func() cbor.EncMode {
	opts := cbor.CoreDetEncOptions() // RFC 8949 §4.2.1, as §7.1 requires
	opts.NilContainers = cbor.NilContainerAsEmpty
	em, err := opts.EncMode()
	if err != nil {
		panic(err)
	}
	return em
}()

// Marshal encodes v deterministically (for extension values).
func Marshal(v any) ([]byte, error) { return encMode.Marshal(v) }

// Extension returns the value of the extension with key k.
func (c *Content) Extension(k ExtensionKey) (cbor.RawMessage, bool) {
	for _, e := range c.Extensions {
		if e.Key == k {
			return e.Value, true
		}
	}
	return nil, false
}

// SetExtension sets extension k to v encoded in CBOR, replacing any
// value it had.
func (c *Content) SetExtension(k ExtensionKey, v any) error {
	b, err := encMode.Marshal(v)
	if err != nil {
		return err
	}
	if err := checkExtensionValue(b); err != nil {
		return err
	}
	for i := range c.Extensions {
		if c.Extensions[i].Key == k {
			c.Extensions[i].Value = b
			return nil
		}
	}
	c.Extensions = append(c.Extensions, Extension{Key: k, Value: b})
	return nil
}

// Encode returns c in deterministic CBOR. It refuses contents that
// Decode would refuse.
func (c *Content) Encode() ([]byte, error) {
	b, err := c.encode()
	if err != nil {
		return nil, err
	}
	// What we send must be what every receiver accepts.
	if _, err := Decode(b); err != nil {
		return nil, err
	}
	return b, nil
}

func (c *Content) encode() ([]byte, error) {
	ext := make(map[any]cbor.RawMessage, len(c.Extensions))
	for _, e := range c.Extensions {
		var k any = e.Key.Int
		if e.Key.IsText {
			k = e.Key.Text
		}
		if _, dup := ext[k]; dup {
			return nil, fmt.Errorf("%w: extension %s twice", ErrMalformed, e.Key)
		}
		ext[k] = e.Value
	}
	body, err := c.Body.array()
	if err != nil {
		return nil, err
	}
	arr := []any{c.Salt[:], idOrNull(c.Replaces), bytesOrEmpty(c.TopicID), expOrNull(c.Expires), idOrNull(c.InReplyTo), ext, body}
	return encMode.Marshal(arr)
}

func idOrNull(id *MessageID) any {
	if id == nil {
		return nil
	}
	return id[:]
}

func bytesOrEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func expOrNull(e *Expiration) any {
	if e == nil {
		return nil
	}
	return []any{e.Relative, e.Time}
}

func (p *Part) array() ([]any, error) {
	a := []any{uint8(p.Disposition), p.Language, uint8(p.Cardinality)}
	switch p.Cardinality {
	case NullPart:
	case SinglePart:
		a = append(a, p.ContentType, bytesOrEmpty(p.Content))
	case ExternalPart:
		x := p.External
		if x == nil {
			return nil, fmt.Errorf("%w: external part without its fields", ErrMalformed)
		}
		a = append(a, p.ContentType, x.URL, x.Expires, x.Size, x.EncAlg, bytesOrEmpty(x.Key), bytesOrEmpty(x.Nonce),
			bytesOrEmpty(x.AAD), x.HashAlg, bytesOrEmpty(x.ContentHash), x.Description, x.Filename)
	case MultiPart:
		parts := make([]any, len(p.Parts))
		for i := range p.Parts {
			sub, err := p.Parts[i].array()
			if err != nil {
				return nil, err
			}
			parts[i] = sub
		}
		a = append(a, uint8(p.Semantics), parts)
	default:
		return nil, fmt.Errorf("%w: cardinality %d", ErrMalformed, p.Cardinality)
	}
	return a, nil
}

// ComputeMessageID derives the id of the message whose content is
// encoded, sent by senderURI in roomURI (§2.3):
//
//	hash_output = SHA-256( senderUriLength || senderUri ||
//	                       roomUriLength   || roomUri   ||
//	                       message         || salt )
//	messageId   = 0x01 || hash_output[0..30]
//
// with the lengths as big-endian 16-bit integers. encoded must be a
// mimiContent (the salt is read from it).
func ComputeMessageID(senderURI, roomURI string, encoded []byte) (MessageID, error) {
	var id MessageID
	// array(7), bytes(16): the salt is the first field (§3.1).
	if len(encoded) < 2+SaltSize || encoded[0] != 0x87 || encoded[1] != 0x40|SaltSize {
		return id, fmt.Errorf("%w: not a mimiContent", ErrMalformed)
	}
	if len(senderURI) > 0xffff || len(roomURI) > 0xffff {
		return id, errors.New("content: URI longer than 65535 octets")
	}
	h := sha256.New()
	var n [2]byte
	binary.BigEndian.PutUint16(n[:], uint16(len(senderURI)))
	h.Write(n[:])
	h.Write([]byte(senderURI))
	binary.BigEndian.PutUint16(n[:], uint16(len(roomURI)))
	h.Write(n[:])
	h.Write([]byte(roomURI))
	h.Write(encoded)
	h.Write(encoded[2 : 2+SaltSize]) // the salt again, against length extension
	sum := h.Sum(nil)
	id[0] = HashSHA256
	copy(id[1:], sum[:MessageIDSize-1])
	return id, nil
}

// MessageID encodes c and derives its message id (§2.3). It returns the
// encoding too: the id is bound to exactly those bytes.
func (c *Content) MessageID(senderURI, roomURI string) (MessageID, []byte, error) {
	b, err := c.Encode()
	if err != nil {
		return MessageID{}, nil, err
	}
	id, err := ComputeMessageID(senderURI, roomURI, b)
	return id, b, err
}

// PartIndexes walks the body depth first, as the implied part index is
// counted (§3.4), calling fn with each part and its index.
func (c *Content) PartIndexes(fn func(index int, p *Part)) {
	i := 0
	var walk func(p *Part)
	walk = func(p *Part) {
		fn(i, p)
		i++
		for k := range p.Parts {
			walk(&p.Parts[k])
		}
	}
	walk(&c.Body)
}

// sortExtensions orders entries as deterministic encoding orders map keys:
// bytewise by their encoded key (RFC 8949 §4.2.1).
func sortExtensions(es []Extension) {
	enc := func(k ExtensionKey) []byte {
		var b []byte
		if k.IsText {
			b, _ = encMode.Marshal(k.Text)
		} else {
			b, _ = encMode.Marshal(k.Int)
		}
		return b
	}
	sort.SliceStable(es, func(i, j int) bool { return bytes.Compare(enc(es[i].Key), enc(es[j].Key)) < 0 })
}
