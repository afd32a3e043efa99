package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// randomHex returns n random bytes in hex: device ids.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// BlobTokenKeySize is the length of Config.BlobTokenKey.
const BlobTokenKeySize = 32

// tokens issues and checks the bearer tokens for the HTTP API (blobs,
// channels), handed out in Session.blob_token. A token is its own record
// (docs/protocol.md §10, "Blob tokens"): base64url of
//
//	version (1) ‖ expires (8, seconds since the UNIX epoch, big-endian)
//	‖ device id length (1) ‖ device id ‖ HMAC-SHA-256(key, label ‖ all before)
//
// so that every node holding the same key accepts it and none keeps
// anything per token. The server keeps no copy of the token at all. What
// a table of issued tokens gave before, revocation, comes from the store
// instead: the handlers look the device up on every use (Server.tokenDevice),
// so a device removed (or an account barred) through any node loses its
// token on every node at once.
type tokens struct {
	key []byte
	now func() time.Time
}

const (
	tokenVersion = 1
	// tokenLabel separates these MACs from anything else the key might
	// ever be used for (it is used for nothing else).
	tokenLabel = "parley blob token v1\x00"
	// maxTokenDevice bounds a device id inside a token (ids are 32 hex
	// characters; the bound only keeps the format closed).
	maxTokenDevice = 64
	tokenHeader    = 1 + 8 + 1
	// maxTokenChars bounds what is decoded at all.
	maxTokenChars = (tokenHeader + maxTokenDevice + sha256.Size + 2) * 4 / 3
)

// errBadToken is every refusal: forged, malformed and expired tokens get
// the same answer.
var errBadToken = errors.New("invalid or expired token")

// newTokens returns an issuer for key; a nil key makes a fresh random one
// (a single node: its tokens then end with the process, as before).
func newTokens(key []byte, now func() time.Time) *tokens {
	if len(key) == 0 {
		key = make([]byte, BlobTokenKeySize)
		rand.Read(key)
	}
	if now == nil {
		now = time.Now
	}
	return &tokens{key: key, now: now}
}

func (t *tokens) mac(body []byte) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(tokenLabel))
	m.Write(body)
	return m.Sum(nil)
}

// issue returns a token for device, good for ttl (rounded up to a whole
// second).
func (t *tokens) issue(device string, ttl time.Duration) string {
	return t.encode(device, t.now().Add(ttl+time.Second-1).Unix())
}

func (t *tokens) encode(device string, expires int64) string {
	if len(device) == 0 || len(device) > maxTokenDevice {
		panic("server: device id unfit for a token") // ids are ours: a bug
	}
	b := make([]byte, 0, tokenHeader+len(device)+sha256.Size)
	b = append(b, tokenVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(expires))
	b = append(b, byte(len(device)))
	b = append(b, device...)
	b = append(b, t.mac(b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// device returns the device a token was issued to, if its MAC is this
// key's and it has not expired. It says nothing about whether the device
// still exists: Server.AuthenticateHTTP asks the store.
func (t *tokens) device(tok string) (string, error) {
	dev, exp, err := t.parse(tok)
	if err != nil {
		return "", err
	}
	if !t.now().Before(time.Unix(exp, 0)) {
		return "", errBadToken
	}
	return dev, nil
}

// parse checks a token's form and MAC (untrusted bytes: bounded before
// anything is decoded) and returns what it carries.
func (t *tokens) parse(tok string) (device string, expires int64, err error) {
	if len(tok) > maxTokenChars {
		return "", 0, errBadToken
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(tok)
	if err != nil || len(b) < tokenHeader+sha256.Size || b[0] != tokenVersion {
		return "", 0, errBadToken
	}
	n := int(b[tokenHeader-1])
	if n == 0 || n > maxTokenDevice || len(b) != tokenHeader+n+sha256.Size {
		return "", 0, errBadToken
	}
	body, sum := b[:tokenHeader+n], b[tokenHeader+n:]
	if !hmac.Equal(t.mac(body), sum) { // constant time
		return "", 0, errBadToken
	}
	exp := int64(binary.BigEndian.Uint64(b[1:9]))
	if exp < 0 {
		return "", 0, errBadToken
	}
	return string(body[tokenHeader:]), exp, nil
}

// uploadLabel separates upload tickets' MACs from blob tokens'.
const uploadLabel = "parley upload ticket v1\x00"

// uploadTicket binds a direct upload to its owner, blob id, size and
// disappearing time (seconds, 0 for none), for ttl: the client hands it
// back to finish the upload, on any node with the same key, and the
// server keeps nothing meanwhile.
func (t *tokens) uploadTicket(owner, id string, size, blobExpires int64, ttl time.Duration) string {
	body := fmt.Sprintf("%s\x00%s\x00%d\x00%d\x00%d", owner, id, size, blobExpires, t.now().Add(ttl).Unix())
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(uploadLabel))
	m.Write([]byte(body))
	return base64.RawURLEncoding.EncodeToString([]byte(body)) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// maxTicketChars bounds what checkUploadTicket decodes.
const maxTicketChars = 512

// checkUploadTicket returns what an upload ticket binds, or errBadToken
// if it is forged, malformed or expired.
func (t *tokens) checkUploadTicket(tok string) (owner, id string, size, blobExpires int64, err error) {
	b64, mac64, ok := strings.Cut(tok, ".")
	if !ok || len(tok) > maxTicketChars {
		return "", "", 0, 0, errBadToken
	}
	// Strict: a ticket has one spelling (no spare bits set).
	body, err1 := base64.RawURLEncoding.Strict().DecodeString(b64)
	got, err2 := base64.RawURLEncoding.Strict().DecodeString(mac64)
	if err1 != nil || err2 != nil {
		return "", "", 0, 0, errBadToken
	}
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(uploadLabel))
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return "", "", 0, 0, errBadToken
	}
	f := strings.Split(string(body), "\x00")
	if len(f) != 5 {
		return "", "", 0, 0, errBadToken
	}
	size, err1 = strconv.ParseInt(f[2], 10, 64)
	blobExpires, err2 = strconv.ParseInt(f[3], 10, 64)
	until, err3 := strconv.ParseInt(f[4], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || t.now().Unix() > until {
		return "", "", 0, 0, errBadToken
	}
	return f[0], f[1], size, blobExpires, nil
}
