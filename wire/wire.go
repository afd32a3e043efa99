// Package wire defines Parley's client-server protocol: the protobuf
// messages in package parleypb, the protocol version, the limits and
// naming rules both sides check, and the frame codec used on /v1/ws.
//
// The server is an MLS Delivery Service (RFC 9750 §4): it only reads the
// routing fields a client declares (conversation id, epoch, kind and the
// membership delta of a commit); MLS bytes are opaque to it.
package wire

//go:generate protoc --go_out=. --go_opt=paths=source_relative parleypb/parley.proto

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/wire/parleypb"
)

// ProtocolVersion is the version spoken by this package, sent in Hello.
const ProtocolVersion = 1

// Paths served by parleyd.
const (
	PathWebSocket = "/v1/ws"
	PathBlobs     = "/v1/blobs"
	// PathKT serves the key transparency log to auditors: /keys,
	// /checkpoint, /epochs/{n} and POST /cosign (docs/transparency.md).
	PathKT = "/v1/kt"
	// BlobExpiresHeader, on an upload, is when the blob disappears (the
	// attachment of a disappearing message), in seconds since the UNIX
	// epoch: the server deletes it by then.
	BlobExpiresHeader = "Parley-Expires"
	// BlobRedirectHeader ("1"), on a download, says the client follows a
	// redirect to the object store's pre-signed URL, without its token;
	// without it the server streams the blob itself (the web client,
	// whose Content-Security-Policy allows only its own origin).
	BlobRedirectHeader = "Parley-Follow-Redirect"
	// PathBlobUploads starts (POST, with BlobSizeHeader) and finishes
	// (POST PathBlobUploads/{id}, with UploadTicketHeader) a direct
	// upload to the object store (docs/protocol.md §10).
	PathBlobUploads    = "/v1/blobs/uploads"
	BlobSizeHeader     = "Parley-Size"
	UploadTicketHeader = "Parley-Upload-Ticket"
)

// Limits shared by client and server.
const (
	ChallengeSize       = 32
	MessageIDSize       = 16
	MaxConversationID   = 64
	MaxKeyPackageRef    = 64
	MaxKeyPackagesBatch = 200
	MaxKeyPackagesHeld  = 500      // ordinary key packages the server keeps for one device
	MaxKeyPackageSize   = 16 << 10 // bytes of one KeyPackage (X-Wing ones are ~2.7 KB)
	LinkCodeDigits      = 8
	DefaultFetchLimit   = 100
	MaxFetchLimit       = 1000
)

// Signature purposes, bound into every challenge signature so a signature
// made for one request cannot be replayed as another.
const (
	PurposeRegister     = "register"
	PurposeAuthenticate = "authenticate"
	PurposeLink         = "link"
)

// ChallengeMessage returns the bytes a device signs with its Ed25519
// identity key: challenge || authContext || 0x00 || purpose. The server
// chooses challenge (fresh per connection) and authContext (fixed per
// server); see docs/protocol.md "Authentication".
func ChallengeMessage(challenge []byte, authContext, purpose string) []byte {
	var b bytes.Buffer
	b.Write(challenge)
	b.WriteString(authContext)
	b.WriteByte(0)
	b.WriteString(purpose)
	return b.Bytes()
}

// DirectConversationIDSize is the length of conversation ids reserved for
// direct conversations: the server lets a device create a conversation
// with an id of this length only as DirectConversationID(its user, the
// peer it names). Other conversations use other lengths (the client's
// groups: 16 random bytes).
const DirectConversationIDSize = sha256.Size

// DirectConversationID is the id of the direct conversation between users
// a and b (in either order): both sides find it without talking first,
// and, because the server checks it, no third user can take it.
func DirectConversationID(a, b string) []byte {
	if a > b {
		a, b = b, a
	}
	h := sha256.Sum256([]byte("parley direct conversation v1\x00" + a + "\x00" + b))
	return h[:]
}

// ErrBadUsername is returned by CheckUsername.
var ErrBadUsername = errors.New("username must be 3-32 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit")

// CheckUsername reports whether name is an acceptable username. Only
// lower-case ASCII is allowed so that names cannot be confused by case
// folding or Unicode look-alikes.
func CheckUsername(name string) error {
	if len(name) < 3 || len(name) > 32 {
		return ErrBadUsername
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return ErrBadUsername
		}
	}
	return nil
}

// ErrBadNewUsername is returned by CheckNewUsername for a name that
// CheckUsername accepts but that ends in, or doubles, punctuation.
var ErrBadNewUsername = errors.New("a new username may not end in '.', '_' or '-' or have two of them in a row: they are too easy to miss beside a real name")

// CheckNewUsername is CheckUsername plus the rules for names registered
// from now on: no trailing punctuation and no two punctuation characters
// in a row, so that "alice." and "al..ice" cannot stand next to "alice".
// Names registered before these rules keep working everywhere else.
func CheckNewUsername(name string) error {
	if err := CheckUsername(name); err != nil {
		return err
	}
	for i := 0; i < len(name); i++ {
		if isUsernamePunct(name[i]) && (i == len(name)-1 || isUsernamePunct(name[i+1])) {
			return ErrBadNewUsername
		}
	}
	return nil
}

func isUsernamePunct(c byte) bool { return c == '.' || c == '_' || c == '-' }

// usernameConfusables maps each username character that is easily read as
// another to the one it is read as (after the UTS #39 confusables for
// ASCII, and the digits people use as letters). Characters not listed
// stand for themselves.
var usernameConfusables = map[byte]byte{'0': 'o', '1': 'l', 'i': 'l', '3': 'e', '5': 's'}

// usernameDigraphs are pairs read as one letter in most fonts.
var usernameDigraphs = []struct{ from, to string }{{"rn", "m"}, {"vv", "w"}}

// UsernameSkeleton returns the form of a username that look-alike names
// share: punctuation dropped, confusable characters and digraphs folded
// ("a1ice", "al1ce", "alice.", "alice_" and "al.ice" all give "allce"). Two
// names with the same skeleton are too easy to mistake for each other, so
// the server registers at most one of them.
func UsernameSkeleton(name string) string {
	b := make([]byte, 0, len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		if isUsernamePunct(c) {
			continue
		}
		if r, ok := usernameConfusables[c]; ok {
			c = r
		}
		b = append(b, c)
	}
	s := string(b)
	for _, d := range usernameDigraphs {
		s = strings.ReplaceAll(s, d.from, d.to)
	}
	return s
}

// DecodeClientFrame parses one WebSocket message from a client. It rejects
// anything that is not a well-formed ClientFrame with exactly one body.
func DecodeClientFrame(data []byte) (*parleypb.ClientFrame, error) {
	f := new(parleypb.ClientFrame)
	if err := (proto.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(data, f); err != nil {
		return nil, fmt.Errorf("decode ClientFrame: %w", err)
	}
	if f.Body == nil {
		return nil, errors.New("decode ClientFrame: no body")
	}
	return f, nil
}

// PeekRequestID returns the request_id of an encoded ClientFrame from its
// first field, without parsing the rest: the server uses it to answer
// frames it cannot or will not decode (too large, malformed) to the right
// request. It returns 0 if the frame does not start with a request_id.
func PeekRequestID(data []byte) uint64 {
	num, typ, n := protowire.ConsumeTag(data)
	if n < 0 || num != 1 || typ != protowire.VarintType {
		return 0
	}
	v, m := protowire.ConsumeVarint(data[n:])
	if m < 0 {
		return 0
	}
	return v
}

// DecodeServerFrame parses one WebSocket message from the server.
func DecodeServerFrame(data []byte) (*parleypb.ServerFrame, error) {
	f := new(parleypb.ServerFrame)
	if err := proto.Unmarshal(data, f); err != nil {
		return nil, fmt.Errorf("decode ServerFrame: %w", err)
	}
	if f.Body == nil {
		return nil, errors.New("decode ServerFrame: no body")
	}
	return f, nil
}

// Encode marshals a frame deterministically.
func Encode(m proto.Message) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", m, err)
	}
	return b, nil
}

// Error is a protocol error returned by the server. It satisfies error and
// can be matched with errors.Is against the sentinel values below (which
// compare codes only).
type Error struct {
	Code    parleypb.ErrorCode
	Message string
	// Conflict is the winning commit for EPOCH_CONFLICT.
	Conflict *parleypb.Message
	// RetryAfter is how long to wait before retrying, for RATE_LIMITED and
	// STORAGE_UNAVAILABLE (0: not given).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "parley: " + e.Code.String()
	}
	return "parley: " + e.Code.String() + ": " + e.Message
}

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinel errors for errors.Is.
var (
	ErrBadRequest         = &Error{Code: parleypb.ErrorCode_BAD_REQUEST}
	ErrBadFrame           = &Error{Code: parleypb.ErrorCode_BAD_FRAME}
	ErrFrameTooLarge      = &Error{Code: parleypb.ErrorCode_FRAME_TOO_LARGE}
	ErrUnsupportedVersion = &Error{Code: parleypb.ErrorCode_UNSUPPORTED_VERSION}
	ErrUnauthenticated    = &Error{Code: parleypb.ErrorCode_UNAUTHENTICATED}
	ErrPermissionDenied   = &Error{Code: parleypb.ErrorCode_PERMISSION_DENIED}
	ErrNotFound           = &Error{Code: parleypb.ErrorCode_NOT_FOUND}
	ErrAlreadyExists      = &Error{Code: parleypb.ErrorCode_ALREADY_EXISTS}
	ErrInvalidInvite      = &Error{Code: parleypb.ErrorCode_INVALID_INVITE}
	ErrRateLimited        = &Error{Code: parleypb.ErrorCode_RATE_LIMITED}
	ErrEpochConflict      = &Error{Code: parleypb.ErrorCode_EPOCH_CONFLICT}
	ErrWrongEpoch         = &Error{Code: parleypb.ErrorCode_WRONG_EPOCH}
	ErrNotMember          = &Error{Code: parleypb.ErrorCode_NOT_MEMBER}
	ErrUnknownDevice      = &Error{Code: parleypb.ErrorCode_UNKNOWN_DEVICE}
	ErrInternal           = &Error{Code: parleypb.ErrorCode_INTERNAL}
	ErrShuttingDown       = &Error{Code: parleypb.ErrorCode_SHUTTING_DOWN}
	ErrStorageUnavailable = &Error{Code: parleypb.ErrorCode_STORAGE_UNAVAILABLE}
	ErrInboxFull          = &Error{Code: parleypb.ErrorCode_INBOX_FULL}
	ErrNotReady           = &Error{Code: parleypb.ErrorCode_NOT_READY}
	ErrAccountDeleted     = &Error{Code: parleypb.ErrorCode_ACCOUNT_DELETED}
	ErrGroupFull          = &Error{Code: parleypb.ErrorCode_GROUP_FULL}
)
