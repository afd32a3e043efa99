package client

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"

	"github.com/parleychat/parley/client/filecrypt"
	"github.com/parleychat/parley/content"
	"github.com/parleychat/parley/wire"
)

// Parley's use of the MIMI content format (package content; docs/protocol.md
// "Message content" has the mapping and the deviations from the draft).
const (
	// Parley-specific content types, for what MIMI has no format for yet.
	typeReceipt = "application/vnd.parley.receipt+cbor"
	typeGroup   = "application/vnd.parley.group+cbor"
	// blobURLPrefix: an attachment's url is the blob's path on the
	// conversation's own server.
	blobURLPrefix = "/v1/blobs/"
	// encAlgFilecrypt is a private-use AEAD number (RFC 5116 registry,
	// 65000-65535) for filecrypt's chunked AES-256-GCM.
	encAlgFilecrypt = 65000
	// maxReactionBytes bounds a reaction (one emoji, however composed).
	maxReactionBytes = 64
)

// DeleteWindow is how long after sending a message its sender may delete
// it for everyone. Every member's client enforces it, with the server's
// timestamps of the message and of the delete.
const DeleteWindow = 24 * time.Hour

// Private extension keys (text keys are for private use, §3.3).
var (
	extKT        = content.TextKey("parley.kt")
	extForwarded = content.TextKey("parley.forwarded")
)

// Message kinds of events (Sync reports them; History shows their effect
// on the message they refer to).
const (
	KindReaction    = "reaction"
	KindEdit        = "edit"
	KindDelete      = "delete"
	KindUnsupported = "unsupported"
)

// Errors of the message actions.
var (
	ErrMessageNotFound = errors.New("client: no such message in this profile")
	ErrNotYourMessage  = errors.New("client: only the sender of a message can edit or delete it for everyone")
	ErrDeleteWindow    = fmt.Errorf("client: a message can be deleted for everyone only within %v of sending it", DeleteWindow)
	ErrLegacyMessage   = errors.New("client: that message is from an older client (before the MIMI content format) and cannot be referred to")
	ErrCannotDo        = errors.New("client: not possible for that message")
)

// senderURI and roomURI name a message's sender and conversation in the
// message id derivation (§2.3 of the draft).
func senderURI(user string) string { return "parley:u/" + user }
func roomURI(conv []byte) string   { return "parley:r/" + hexID(conv) }

// Reaction is one person's reaction to a message.
type Reaction struct {
	Emoji string `json:"emoji"`
	User  string `json:"user"`
	// ID is the reaction message's id.
	ID string `json:"id"`
	// full is the MIMI message id, to remove it.
	Full string `json:"mimi_id"`
}

// Edit is an earlier version of an edited message.
type Edit struct {
	Text string    `json:"text"`
	At   time.Time `json:"at"`
}

// parsed is what a MIMI content means to Parley.
type parsed struct {
	kind      string
	text      string
	file      *fileDescriptor
	receipts  []string
	group     *groupMeta
	join      *joinRequest
	target    *content.MessageID // replaces: edit, delete, unreact
	inReplyTo *content.MessageID
	forwarded bool
	kt        *ktView
	timer     time.Duration // kind timer
	typing    bool          // kind typing: started (or stopped)
	own       []ownEntry    // kind own_sync
	why       string        // unsupported: what
}

var errBadContent = errors.New("client: malformed message content")

// interpret maps a decoded content onto Parley's kinds. A content that is
// well formed but means nothing Parley knows is kind unsupported; one
// that breaks a rule Parley's own types set is an error.
func interpret(c *content.Content) (*parsed, error) {
	p := &parsed{inReplyTo: c.InReplyTo}
	if v, ok := c.Extension(extKT); ok {
		var kt struct {
			_    struct{} `cbor:",toarray"`
			Size int64
			Root []byte
		}
		if err := cbor.Unmarshal(v, &kt); err != nil || kt.Size <= 0 || len(kt.Root) != 32 {
			return nil, fmt.Errorf("%w: bad key transparency checkpoint", errBadContent)
		}
		p.kt = &ktView{Size: kt.Size, Root: kt.Root}
	}
	if v, ok := c.Extension(extForwarded); ok {
		if !bytes.Equal(v, []byte{0xf5}) {
			return nil, fmt.Errorf("%w: bad forwarded mark", errBadContent)
		}
		p.forwarded = true
	}
	b := &c.Body
	if c.Replaces != nil {
		p.target = c.Replaces
		switch {
		case b.Cardinality == content.NullPart && b.Disposition == content.Reaction:
			if c.InReplyTo == nil {
				return nil, fmt.Errorf("%w: a removed reaction names no message", errBadContent)
			}
			p.kind = KindReaction // with target: removal
		case b.Cardinality == content.NullPart:
			p.kind = KindDelete
		case b.Cardinality == content.SinglePart && isText(b.ContentType) && b.Disposition != content.Reaction:
			t, err := textOf(b.Content)
			if err != nil {
				return nil, err
			}
			p.kind, p.text = KindEdit, t
		default:
			p.kind, p.why = KindUnsupported, "a replacement of an unsupported form"
		}
		return p, nil
	}
	return p, p.body(b, c.InReplyTo)
}

func (p *parsed) body(b *content.Part, inReplyTo *content.MessageID) error {
	switch b.Cardinality {
	case content.SinglePart:
		ct := mediaType(b.ContentType)
		switch {
		case b.Disposition == content.Reaction:
			if inReplyTo == nil || !isText(ct) {
				p.kind, p.why = KindUnsupported, "a reaction of type "+b.ContentType
				return nil
			}
			t, err := textOf(b.Content)
			if err != nil {
				return err
			}
			if len(t) > maxReactionBytes || strings.IndexFunc(t, unicode.IsControl) >= 0 || strings.TrimSpace(t) == "" {
				return fmt.Errorf("%w: bad reaction", errBadContent)
			}
			p.kind, p.text = KindReaction, t
		case isText(ct):
			t, err := textOf(b.Content)
			if err != nil {
				return err
			}
			p.kind, p.text = KindText, t
		case ct == typeReceipt || ct == typeDelivered:
			var ids [][]byte
			if err := cbor.Unmarshal(b.Content, &ids); err != nil || len(ids) == 0 || len(ids) > maxReceipts {
				return fmt.Errorf("%w: bad receipt", errBadContent)
			}
			for _, id := range ids {
				if len(id) != wire.MessageIDSize {
					return fmt.Errorf("%w: bad receipt id", errBadContent)
				}
				p.receipts = append(p.receipts, hexID(id))
			}
			p.kind = KindReceipt
			if ct == typeDelivered {
				p.kind = kindDelivered
			}
		case ct == typeTimer:
			d, err := parseTimerBody(b.Content)
			if err != nil {
				return err
			}
			p.kind, p.timer = KindTimer, d
		case ct == typeTyping:
			if len(b.Content) != 1 || (b.Content[0] != 0xf5 && b.Content[0] != 0xf4) {
				return fmt.Errorf("%w: bad typing indicator", errBadContent)
			}
			p.kind, p.typing = kindTyping, b.Content[0] == 0xf5
		case ct == typeOwnSync:
			entries, err := decodeOwnState(b.Content)
			if err != nil {
				return err
			}
			p.kind, p.own = kindOwnSync, entries
		case ct == typeJoinRequest:
			req, err := parseJoinRequest(b.Content)
			if err != nil {
				return err
			}
			p.kind, p.join = KindJoinRequest, req
		case ct == typeGroup:
			var g struct {
				Name string `cbor:"name"`
			}
			dm, _ := cbor.DecOptions{ExtraReturnErrors: cbor.ExtraDecErrorUnknownField, DupMapKey: cbor.DupMapKeyEnforcedAPF}.DecMode()
			if err := dm.Unmarshal(b.Content, &g); err != nil || checkGroupName(g.Name) != nil {
				return fmt.Errorf("%w: bad group metadata", errBadContent)
			}
			p.kind, p.group = kindMeta, &groupMeta{Name: g.Name}
		default:
			p.kind, p.why = KindUnsupported, "content type "+b.ContentType
		}
		return nil
	case content.ExternalPart:
		x := b.External
		blob, ok := strings.CutPrefix(x.URL, blobURLPrefix)
		if !ok || x.EncAlg != encAlgFilecrypt {
			p.kind, p.why = KindUnsupported, "an external part at "+x.URL
			return nil
		}
		if id, err := hex.DecodeString(blob); err != nil || len(id) != 16 || len(x.Key) != 32 || len(x.Nonce) != 0 ||
			x.HashAlg != content.HashSHA256 || len(x.ContentHash) != 32 || x.Size > 1<<62 || x.Filename == "" ||
			len(x.Filename) > maxFileNameBytes || len(x.Description) > maxTextBytes {
			return fmt.Errorf("%w: bad file descriptor", errBadContent)
		}
		p.kind = KindFile
		p.file = &fileDescriptor{Blob: blob, Scheme: filecrypt.Scheme, Key: x.Key, SHA256: x.ContentHash, Name: x.Filename, Size: int64(x.Size)}
		p.text = x.Description
		return nil
	case content.MultiPart:
		if b.Semantics == content.ChooseOne {
			// The receiver picks (§3.4): the first alternative Parley can show.
			for i := range b.Parts {
				q := &parsed{inReplyTo: p.inReplyTo, kt: p.kt, forwarded: p.forwarded}
				if err := q.body(&b.Parts[i], inReplyTo); err == nil && q.kind != KindUnsupported && q.kind != "" {
					*p = *q
					return nil
				}
			}
		}
		p.kind, p.why = KindUnsupported, "a multipart body"
		return nil
	}
	p.kind, p.why = KindUnsupported, "an empty body"
	return nil
}

// mediaType is a content type without parameters, in lower case.
func mediaType(ct string) string {
	t, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(t))
}

func isText(ct string) bool {
	t := mediaType(ct)
	return t == "text/plain" || t == "text/markdown"
}

func textOf(b []byte) (string, error) {
	if len(b) == 0 || len(b) > maxTextBytes || !utf8.Valid(b) {
		return "", fmt.Errorf("%w: bad text", errBadContent)
	}
	return string(b), nil
}

// newContent starts an outgoing content with a fresh random salt.
func newContent(body content.Part) *content.Content {
	c := &content.Content{Body: body}
	rand.Read(c.Salt[:])
	return c
}

func textBody(text string) content.Part {
	return content.Part{Disposition: content.Render, Cardinality: content.SinglePart, ContentType: content.TypePlainText, Content: []byte(text)}
}

func fileBody(fd *fileDescriptor, description string) content.Part {
	return content.Part{Disposition: content.Attachment, Cardinality: content.ExternalPart, ContentType: "application/octet-stream",
		External: &content.External{URL: blobURLPrefix + fd.Blob, Size: uint64(fd.Size), EncAlg: encAlgFilecrypt, Key: fd.Key,
			HashAlg: content.HashSHA256, ContentHash: fd.SHA256, Description: description, Filename: fd.Name}}
}

// receiptBody is a read receipt for ids or, with read false, a delivery
// receipt.
func receiptBody(ids []string, read bool) (content.Part, error) {
	raw := make([][]byte, len(ids))
	for i, id := range ids {
		b, err := hex.DecodeString(id)
		if err != nil {
			return content.Part{}, err
		}
		raw[i] = b
	}
	b, err := content.Marshal(raw)
	ct := typeReceipt
	if !read {
		ct = typeDelivered
	}
	return content.Part{Disposition: content.Unspecified, Cardinality: content.SinglePart, ContentType: ct, Content: b}, err
}

func groupBody(name string) (content.Part, error) {
	b, err := content.Marshal(map[string]string{"name": name})
	return content.Part{Disposition: content.Unspecified, Cardinality: content.SinglePart, ContentType: typeGroup, Content: b}, err
}

func parseMimiID(s string) (*content.MessageID, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != content.MessageIDSize {
		return nil, ErrLegacyMessage
	}
	var id content.MessageID
	copy(id[:], b)
	return &id, nil
}

// shortID is the envelope id of a message whose MIMI id is id: its first
// 16 octets. Parley's message ids (what the server de-duplicates by and
// what people type) are these.
func shortID(id *content.MessageID) string { return hexID(id[:wire.MessageIDSize]) }

// mentionsIn returns the members named as @user in text, in order, once.
func mentionsIn(text string, members map[string]bool) []string {
	var out []string
	for i := 0; i < len(text); i++ {
		if text[i] != '@' || (i > 0 && isNameByte(text[i-1])) {
			continue
		}
		j := i + 1
		for j < len(text) && isNameByte(text[j]) {
			j++
		}
		name := strings.TrimRight(text[i+1:j], "._-")
		if members[name] && !slices.Contains(out, name) {
			out = append(out, name)
		}
		i = j - 1
	}
	return out
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}
