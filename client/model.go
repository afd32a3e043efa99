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
