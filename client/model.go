package client

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parleychat/parley/wire"
)

// Message kinds as shown to users (Message.Kind).
const (
	KindText       = "text"
	KindFile       = "file"
	KindReceipt    = "receipt"
	KindMembership = "membership"
)

// Sender identifies a device of a user.
type Sender struct {
	User   string `json:"user"`
	Device string `json:"device"`
}

// Message is one entry of a conversation's history, as printed by
// `parley sync --json` (one object per line).
type Message struct {
	ID string `json:"id"`
	// Conversation is "@user" for a direct conversation, "#name" for a
	// group.
	Conversation   string    `json:"conversation"`
	ConversationID string    `json:"conversation_id"`
	Sender         Sender    `json:"sender"`
	SentAt         time.Time `json:"sent_at"`
	Kind           string    `json:"kind"`
	Text           string    `json:"text"`
	// File describes an attachment (kind file); fetch it with GetFile(ID).
	File *FileInfo `json:"file,omitempty"`
	// ReceiptFor lists the message ids a read receipt is for.
	ReceiptFor []string `json:"receipt_for,omitempty"`
	// Membership describes a membership change (kind membership).
	Membership *Membership `json:"membership,omitempty"`
	// Outgoing is set for messages this device sent.
	Outgoing bool `json:"outgoing,omitempty"`
	// Seq is the message's position in the server log (0 for local
	// entries).
	Seq uint64 `json:"seq,omitempty"`
	// MimiID is the message's MIMI message id (draft-ietf-mimi-content
	// §2.3), of which ID is the first 16 octets; empty for messages of
	// clients from before the MIMI content format.
	MimiID string `json:"mimi_id,omitempty"`
	// ReplyTo is the id of the message this one answers, and Quote the
	// start of that message's text (when this device has it).
	ReplyTo string `json:"reply_to,omitempty"`
	Quote   string `json:"quote,omitempty"`
	// Forwarded marks a message forwarded from another conversation.
	Forwarded bool `json:"forwarded,omitempty"`
	// Mentions are the group members the text names as @user;
	// Mentioned is set when this device's user is one of them.
	Mentions  []string `json:"mentions,omitempty"`
	Mentioned bool     `json:"mentioned,omitempty"`
	// Reactions to this message.
	Reactions []Reaction `json:"reactions,omitempty"`
	// Edited is set once the sender edited the message; Text is the
	// latest version and Edits the earlier ones, oldest first.
	Edited   bool      `json:"edited,omitempty"`
	EditedAt time.Time `json:"edited_at,omitzero"`
	Edits    []Edit    `json:"edits,omitempty"`
	EditSeq  uint64    `json:"edit_seq,omitempty"`
	// Deleted is set when the sender deleted the message for everyone:
	// its text, file and earlier versions are gone.
	Deleted bool `json:"deleted,omitempty"`
	// Target is, for events (kinds reaction, edit, delete), the id of the
	// message they change; Reaction the emoji, Removed set when a
	// reaction was taken back.
	Target   string `json:"target,omitempty"`
	Reaction string `json:"reaction,omitempty"`
	Removed  bool   `json:"removed,omitempty"`
	// ExpiresAt is when the message disappears from every device
	// (disappearing messages); zero for never.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Muted is set, when Sync reports the message, if its conversation
	// is muted: store it, show it, but do not notify.
	Muted bool `json:"muted,omitempty"`
}

// FileInfo describes an attachment, without its key.
type FileInfo struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Membership is a change of a conversation's members.
type Membership struct {
	Added   []Sender `json:"added,omitempty"`
	Removed []Sender `json:"removed,omitempty"`
	Left    []Sender `json:"left,omitempty"` // removed at their own request
}

// payload is the plaintext of every Parley application message, sealed
// in an MLS PrivateMessage. The id equals the envelope's message id, so a
// server cannot present one message under another id.
type payload struct {
	V      int    `json:"v"`
	ID     string `json:"id"`
	Kind   string `json:"kind"` // text, file, receipt or meta
	SentAt int64  `json:"sent_at"`
	Text   string `json:"text,omitempty"`
	// File carries what a recipient needs to fetch and decrypt the blob.
	File *fileDescriptor `json:"file,omitempty"`
	// Receipts are the ids of the messages read.
	Receipts []string `json:"receipts,omitempty"`
	// Group carries a group's metadata (kind meta).
	Group *groupMeta `json:"group,omitempty"`
	// KT is the latest key transparency checkpoint the sender's device
	// accepted: members compare what the directory showed them, so a
	// server that shows them different directories is caught.
	KT *ktView `json:"kt,omitempty"`
}

// ktView names a checkpoint: the log's size and root hash.
type ktView struct {
	Size int64  `json:"size"`
	Root []byte `json:"root"`
}

const payloadVersion = 1

const kindMeta = "meta"

// fileDescriptor is the secret part of an attachment (see filecrypt).
type fileDescriptor struct {
	Blob   string `json:"blob"`
	Scheme string `json:"scheme"`
	Key    []byte `json:"key"`
	SHA256 []byte `json:"sha256"`
	Name   string `json:"name"`
	Size   int64  `json:"size"`
}

type groupMeta struct {
	Name string `json:"name"`
}

// Limits on decoded payloads.
const (
	maxTextBytes     = 64 << 10
	maxReceipts      = 1000
	maxFileNameBytes = 255
	maxGroupName     = 64
)

var errBadPayload = errors.New("client: malformed message payload")

// legacyHead is what any version of the JSON payload has.
type legacyHead struct {
	V    int    `json:"v"`
	ID   string `json:"id"`
	Kind string `json:"kind"`
}

// legacyUnsupported recognises a well-formed JSON payload of a version or
// kind this client does not know, which it shows as an unsupported
// message rather than dropping.
func legacyUnsupported(b []byte) (legacyHead, bool) {
	var h legacyHead
	if err := json.Unmarshal(b, &h); err != nil {
		return h, false
	}
	if id, err := hex.DecodeString(h.ID); err != nil || len(id) != wire.MessageIDSize {
		return h, false
	}
	switch {
	case h.V != payloadVersion:
		h.Kind = fmt.Sprintf("payload version %d", h.V)
	case h.Kind == KindText || h.Kind == KindFile || h.Kind == KindReceipt || h.Kind == kindMeta:
		return h, false
	default:
		h.Kind = fmt.Sprintf("kind %q", h.Kind)
	}
	return h, true
}

// decodePayload parses and checks an application message's plaintext.
func decodePayload(b []byte) (*payload, error) {
	var p payload
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadPayload, err)
	}
	if p.V != payloadVersion {
		return nil, fmt.Errorf("%w: version %d", errBadPayload, p.V)
	}
	if id, err := hex.DecodeString(p.ID); err != nil || len(id) != wire.MessageIDSize {
		return nil, fmt.Errorf("%w: bad id", errBadPayload)
	}
	if len(p.Text) > maxTextBytes || !utf8.ValidString(p.Text) {
		return nil, fmt.Errorf("%w: bad text", errBadPayload)
	}
	if p.KT != nil && (p.KT.Size <= 0 || len(p.KT.Root) != 32) {
		return nil, fmt.Errorf("%w: bad checkpoint", errBadPayload)
	}
	switch p.Kind {
	case KindText:
	case KindFile:
		f := p.File
		if f == nil || f.Blob == "" || len(f.Key) != 32 || len(f.SHA256) != 32 || f.Size < 0 ||
			f.Name == "" || len(f.Name) > maxFileNameBytes || !utf8.ValidString(f.Name) {
			return nil, fmt.Errorf("%w: bad file descriptor", errBadPayload)
		}
	case KindReceipt:
		if len(p.Receipts) == 0 || len(p.Receipts) > maxReceipts {
			return nil, fmt.Errorf("%w: bad receipt", errBadPayload)
		}
		for _, r := range p.Receipts {
			if id, err := hex.DecodeString(r); err != nil || len(id) != wire.MessageIDSize {
				return nil, fmt.Errorf("%w: bad receipt id", errBadPayload)
			}
		}
	case kindMeta:
		if p.Group == nil || checkGroupName(p.Group.Name) != nil {
			return nil, fmt.Errorf("%w: bad group metadata", errBadPayload)
		}
	default:
		return nil, fmt.Errorf("%w: kind %q", errBadPayload, p.Kind)
	}
	return &p, nil
}

// ErrBadGroupName is returned for unacceptable group names.
var ErrBadGroupName = errors.New("client: a group name is 1-64 characters of letters, digits, '.', '_' or '-'")

func checkGroupName(name string) error {
	if name == "" || len(name) > maxGroupName {
		return ErrBadGroupName
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
		default:
			return ErrBadGroupName
		}
	}
	return nil
}

// credentialIdentity is the BasicCredential identity of a device.
func credentialIdentity(user, device string) []byte { return []byte(user + "/" + device) }

// parseIdentity splits a BasicCredential identity.
func parseIdentity(id []byte) (Sender, error) {
	user, device, ok := strings.Cut(string(id), "/")
	if !ok || wire.CheckUsername(user) != nil || device == "" || len(device) > 128 || !utf8.ValidString(device) {
		return Sender{}, fmt.Errorf("client: malformed credential identity %q", id)
	}
	return Sender{User: user, Device: device}, nil
}
