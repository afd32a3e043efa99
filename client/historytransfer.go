package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/bits"
	"net/http"
	"os"
	"time"

	"github.com/parleychat/parley/client/filecrypt"
	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/devicelist"
	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/codec"
)

// History transfer: a device that approved a new one sends it the
// history, end to end (docs/protocol.md §16).
//
// The approving device, with the user's consent, writes the same records
// "parley export" writes (history and settings; no key, no MLS state;
// disappearing messages whose time passed left out, timers kept), pads
// them (Padmé), encrypts them like a file attachment (client/filecrypt,
// a fresh random key) and uploads the ciphertext as a blob that expires
// in a week. The pointer (blob id, key, SHA-256 of the ciphertext, sizes)
// goes to the new device in a Welcome: the approving device creates a
// one-off MLS group whose GroupContext carries the pointer as a private
// extension and adds the new device from one of its key packages, which
// it first checks against the account's signed device list. MLS encrypts
// the group's secrets to that key package's HPKE init key (RFC 9420
// §12.4.3.1) and the GroupInfo, with the extension, under them, signed
// by the approving device's leaf (§12.4.3): only that device can read the
// pointer, and it can tell which device sent it. The new device accepts
// a pointer only from another device of its own account's signed list,
// downloads the blob, checks the ciphertext's size and digest before it
// decrypts anything, and imports it in one transaction (Import's code):
// anything wrong changes nothing. The link code's 80-bit secret plays no
// part: it only authenticates the keys at link time.

// extensionHistoryTransfer is the GroupContext extension of a history
// transfer's one-off group (private use range, RFC 9420 §17.3).
const extensionHistoryTransfer mls.ExtensionType = 0xF0A2

// historyPointerVersion is the first byte of the extension's data.
const historyPointerVersion = 1

// Bounds of a pointer, checked by the decoder.
const (
	// maxHistoryBlob bounds the ciphertext a pointer may name (the
	// server's attachment limit is far lower; this keeps a hostile
	// pointer from naming absurd sizes).
	maxHistoryBlob = 1 << 40
	// historyBlobLifetime is how long the server keeps an unfetched
	// transfer: the new device deletes it once imported.
	historyBlobLifetime = 7 * 24 * time.Hour
	// maxHistoryAttempts bounds how often a device retries a transfer
	// that failed for a reason that may pass (the network).
	maxHistoryAttempts = 5
	// memorySpoolLimit bounds a transfer held in memory where no
	// temporary file can be made (the browser).
	memorySpoolLimit = 256 << 20
)

// Errors of history transfer; callers branch on them.
var (
	// ErrHistoryDigest: the blob the server returned is not the one the
	// approving device uploaded (its size or SHA-256 differ). Nothing
	// was imported.
	ErrHistoryDigest = errors.New("client: the transferred history does not match its digest: the server returned other bytes than your device uploaded; nothing was imported")
	// ErrBadHistoryPointer: a history transfer's pointer is malformed.
	ErrBadHistoryPointer = errors.New("client: malformed history transfer")
	// ErrNoHistory: no history transfer arrived in time.
	ErrNoHistory = errors.New("client: no history arrived from the approving device (approve with --history there, or run parley devices send-history on it)")
)

// historyPointer tells a new device where its history is and how to
// read it:
//
//	struct {
//	    uint8 version = 1;
//	    opaque blob_id<V>;   /* 16 bytes */
//	    opaque key<V>;       /* 32 bytes, the filecrypt key */
//	    opaque sha256<V>;    /* 32 bytes, of the ciphertext as uploaded */
//	    uint64 blob_size;    /* bytes of ciphertext */
//	    uint64 plain_size;   /* bytes of export records before the padding */
//	    uint64 messages;     /* messages in the records, for progress */
//	} ParleyHistoryTransfer;
//
// The encoding is canonical: the decoder accepts exactly what the encoder
// writes.
type historyPointer struct {
	Blob      []byte
	Key       []byte
	SHA256    []byte
	BlobSize  uint64
	PlainSize uint64
	Messages  uint64
}

func (p *historyPointer) marshal() []byte {
	w := codec.NewWriter(nil)
	w.U8(historyPointerVersion)
	w.Opaque(p.Blob)
	w.Opaque(p.Key)
	w.Opaque(p.SHA256)
	w.U64(p.BlobSize)
	w.U64(p.PlainSize)
	w.U64(p.Messages)
	return w.Bytes()
}

// parseHistoryPointer decodes and checks a pointer (untrusted bytes).
func parseHistoryPointer(b []byte) (*historyPointer, error) {
	r := codec.NewReader(b)
	if v := r.U8(); r.Err() == nil && v != historyPointerVersion {
		return nil, fmt.Errorf("%w: version %d (update Parley on this device)", ErrBadHistoryPointer, v)
	}
	p := &historyPointer{Blob: r.Opaque(), Key: r.Opaque(), SHA256: r.Opaque(), BlobSize: r.U64(), PlainSize: r.U64(), Messages: r.U64()}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadHistoryPointer, err)
	}
	switch {
	case len(p.Blob) != 16 || len(p.Key) != filecrypt.KeySize || len(p.SHA256) != sha256.Size:
		return nil, fmt.Errorf("%w: a field has the wrong length", ErrBadHistoryPointer)
	case p.BlobSize == 0 || p.BlobSize > maxHistoryBlob || p.PlainSize == 0 || p.PlainSize > p.BlobSize || p.Messages > maxHistoryBlob:
		return nil, fmt.Errorf("%w: sizes out of bounds", ErrBadHistoryPointer)
	case filecrypt.CiphertextSize(int64(p.PlainSize)) > int64(p.BlobSize):
		return nil, fmt.Errorf("%w: the records are larger than the blob", ErrBadHistoryPointer)
	}
	return p, nil
}

// padme returns the padded length of n bytes (the Padmé scheme of
// Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and
// Communication with PURBs", 2019): at most 12% more, and what the
// server sees of the size leaks O(log log n) bits.
func padme(n uint64) uint64 {
	if n < 2 {
		return n
	}
	e := uint64(bits.Len64(n) - 1) // ⌊log2 n⌋
	s := uint64(bits.Len64(e))     // ⌊log2 e⌋ + 1
	mask := uint64(1)<<(e-s) - 1   // the low bits to clear
	return (n + mask) &^ mask
}

// HistoryTransfer is what SendHistory sent.
type HistoryTransfer struct {
	Device        string `json:"device"`
	Conversations int    `json:"conversations"`
	Messages      int    `json:"messages"`
	// Bytes is the size of the encrypted blob the server holds.
	Bytes int64 `json:"bytes"`
}

// HistoryReceived is a history transfer this device imported.
type HistoryReceived struct {
	From          string `json:"from"` // the sending device
	Conversations int    `json:"conversations"`
	Messages      int    `json:"messages"`
	Skipped       int    `json:"skipped,omitempty"`
}

// SendHistory sends this profile's history, end to end, to deviceID, a
// device of this account's signed device list (a device just linked):
// see the comment at the top of this file. Call it only with the user's
// consent. progress, if set, is told the stage ("export", "upload") and
// how much of it is done.
func (c *Client) SendHistory(ctx context.Context, deviceID string, progress func(stage string, done, total int64)) (HistoryTransfer, error) {
	out := HistoryTransfer{Device: deviceID}
	if deviceID == c.acct.DeviceID {
		return out, errors.New("client: send the history to another device of this account, not to this one")
	}
	err := c.withLock(ctx, func() error {
		conn, err := c.connection(ctx)
		if err != nil {
			return err
		}
		own, err := c.verifiedList(ctx, conn, c.acct.User)
		if err != nil {
			return err
		}
		if _, ok := own.Device(deviceID); !ok {
			return fmt.Errorf("%w: %s is not a device of your account's signed list; nothing was sent", ErrUnlistedDevice, deviceID)
		}
		// The key package first: a device that cannot be reached gets
		// no upload.
		kp, suite, err := c.ownKeyPackage(ctx, conn, deviceID, own)
		if err != nil {
			return err
		}
		// Everything up to now (the new device joined every conversation
		// at the commits that added it; what came before is in here).
		if err := c.syncAll(ctx, conn); err != nil {
			return err
		}
		ptr, res, err := c.uploadHistory(ctx, conn, progress)
		if err != nil {
			return err
		}
		out.Conversations, out.Messages, out.Bytes = res.Conversations, res.Messages, int64(ptr.BlobSize)
		if err := c.sendHistoryPointer(ctx, conn, suite, kp, deviceID, ptr.marshal()); err != nil {
			if derr := conn.DeleteBlob(context.WithoutCancel(ctx), hex.EncodeToString(ptr.Blob)); derr != nil {
				c.warn(nil, nil, fmt.Errorf("delete the history upload after a failed transfer: %w", derr))
			}
			return err
		}
		return nil
	})
	return out, err
}

// ownKeyPackage fetches a key package of this account's device deviceID
// and checks it against the signed list own (X-Wing if it has one).
func (c *Client) ownKeyPackage(ctx context.Context, conn *transport.Conn, deviceID string, list devicelist.List) (transport.DeviceKeyPackage, ciphersuite.ID, error) {
	for _, suite := range knownSuites {
		kps, err := retryRateLimited(ctx, func() ([]transport.DeviceKeyPackage, error) {
			return conn.FetchKeyPackagesOf(ctx, uint16(suite), c.acct.User, deviceID)
		})
		if err != nil {
			return transport.DeviceKeyPackage{}, 0, err
		}
		if len(kps) == 0 {
			continue
		}
		if err := c.checkKeyPackage(kps[0], c.acct.User, list, suite); err != nil {
			return transport.DeviceKeyPackage{}, 0, err
		}
		return kps[0], suite, nil
	}
	return transport.DeviceKeyPackage{}, 0, fmt.Errorf("client: device %s has published no key packages yet; try again once it has finished linking", deviceID)
}

// uploadHistory writes the history records, padded and encrypted under
// a fresh key, to a blob. Call with the lock held.
func (c *Client) uploadHistory(ctx context.Context, conn *transport.Conn, progress func(string, int64, int64)) (*historyPointer, ExportResult, error) {
	key := filecrypt.NewKey()
	sp, err := newSpool(c.opts.Dir, -1)
	if err != nil {
		return nil, ExportResult{}, err
	}
	defer sp.discard()
	pr, pw := io.Pipe()
	type written struct {
		res   ExportResult
		plain int64
	}
	done := make(chan written, 1)
	go func() {
		cw := &countingWriter{w: pw}
		var p Progress
		if progress != nil {
			p = func(d, t int64) { progress("export", d, t) }
		}
		res, err := c.writeHistory(ctx, cw, p)
		plain := cw.n
		if err == nil {
			// Zeros up to the padded length: the server learns the size
			// only roughly. The pointer says where the records end.
			_, err = io.CopyN(pw, zeroReader{}, int64(padme(uint64(plain)))-plain)
		}
		pw.CloseWithError(err)
		done <- written{res, plain}
	}()
	enc, err := filecrypt.NewEncrypter(pr, key)
	if err != nil {
		pr.CloseWithError(err)
		<-done
		return nil, ExportResult{}, err
	}
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(sp, sum), enc)
	pr.CloseWithError(err) // unblocks the writer if the copy stopped early
	w := <-done
	if err != nil {
		return nil, ExportResult{}, fmt.Errorf("client: encrypt the history: %w", err)
	}
	rd, err := sp.reader()
	if err != nil {
		return nil, ExportResult{}, err
	}
	var up func(int64)
	if progress != nil {
		up = func(sent int64) { progress("upload", sent, n) }
	}
	id, err := conn.UploadExpiringBlob(ctx, rd, n, c.opts.now().Add(historyBlobLifetime), up)
	if err != nil {
		return nil, ExportResult{}, fmt.Errorf("client: upload the history (%d bytes encrypted): %w", n, err)
	}
	blob, err := hex.DecodeString(id)
	if err != nil || len(blob) != 16 {
		return nil, ExportResult{}, fmt.Errorf("client: the server named the upload %q, not a blob id", id)
	}
	return &historyPointer{Blob: blob, Key: key, SHA256: sum.Sum(nil), BlobSize: uint64(n), PlainSize: uint64(w.plain),
		Messages: uint64(w.res.Messages)}, w.res, nil
}

// sendHistoryPointer puts ext (a pointer's bytes) in the GroupContext of
// a new one-off group and adds device user's key package kp to it: the
// Welcome reaches only that device. The group's state is not kept.
func (c *Client) sendHistoryPointer(ctx context.Context, conn *transport.Conn, suite ciphersuite.ID, kp transport.DeviceKeyPackage, deviceID string, ext []byte) error {
	s, err := ciphersuite.Lookup(suite)
	if err != nil {
		return err
	}
	id := randomBytes(groupIDSize)
	g, err := mls.CreateGroup(s, id, c.credential(), c.acct.SignKey, &mls.CreateOptions{Config: groupConfig(), Capabilities: leafCapabilities(s),
		Extensions: mls.Extensions{{Type: extensionHistoryTransfer, Data: ext}}})
	if err != nil {
		return fmt.Errorf("client: history transfer group: %w", err)
	}
	out, err := g.Add(kp.KeyPackage.Data)
	if err != nil {
		return fmt.Errorf("client: add the new device to the history transfer: %w", err)
	}
	if err := conn.CreateConversation(ctx, id); err != nil {
		return fmt.Errorf("client: history transfer group: %w", err)
	}
	if _, err := conn.SendCommit(ctx, transport.Commit{ID: transport.NewMessageID(), ConversationID: id, Epoch: 0, Payload: out.Commit,
		Added: []string{deviceID}, Welcome: out.Welcome}); err != nil {
		return fmt.Errorf("client: send the history transfer to %s: %w", deviceID, err)
	}
	return nil
}

// historyIncoming is a pointer received in a Welcome, kept until it is
// imported (bucketHistoryIn, by the Welcome's id).
type historyIncoming struct {
	Pointer  []byte    `json:"pointer"`
	From     Sender    `json:"from"`
	FromKey  []byte    `json:"from_key"` // the sender's MLS signature key
	Received time.Time `json:"received"`
	Attempts int       `json:"attempts,omitempty"`
}

const bucketHistoryIn = "history-in"

// historyWelcome handles a Welcome to a history transfer's group (g, its
// extension's data ext): it checks who sent it and keeps the pointer for
// receiveHistory. The group itself is not kept. Called inside the
// Welcome's transaction.
func (c *Client) historyWelcome(tx *profile.Tx, m transport.Message, g *mls.Group, ext []byte) error {
	if _, err := parseHistoryPointer(ext); err != nil {
		return err
	}
	var from *mls.Member
	members := g.Members()
	for i := range members {
		s, err := memberIdentity(members[i])
		if err != nil {
			return err
		}
		if s != (Sender{User: c.acct.User, Device: c.acct.DeviceID}) {
			if from != nil {
				return fmt.Errorf("%w: a history transfer with more than one sender", ErrBadHistoryPointer)
			}
			from = &members[i]
		}
	}
	if from == nil {
		return fmt.Errorf("%w: a history transfer from nobody", ErrBadHistoryPointer)
	}
	if leaf, ok := g.WelcomeSigner(); ok && leaf != from.LeafIndex {
		return fmt.Errorf("%w: a history transfer signed by another member than its sender", ErrBadHistoryPointer)
	}
	s, _ := memberIdentity(*from)
	if s.User != c.acct.User {
		return fmt.Errorf("%w: %s sent this device a history transfer; only your own devices can", ErrOutsider, s.User)
	}
	if err := tx.PutJSON(bucketHistoryIn, hexID(m.ID), &historyIncoming{Pointer: ext, From: s, FromKey: from.SignatureKey,
		Received: c.opts.now().UTC()}); err != nil {
		return err
	}
	return markSeen(tx, m.ID)
}

// receiveHistory imports the history transfers received. A transfer
// that cannot be trusted or read is dropped with a warning; one that
// failed for a reason that may pass (the network) is tried again at the
// next sync, a few times. Call with the lock held.
func (c *Client) receiveHistory(ctx context.Context, conn *transport.Conn) ([]HistoryReceived, error) {
	var items []profile.Item
	if err := c.store.Update(func(tx *profile.Tx) (err error) { items, err = tx.List(bucketHistoryIn); return err }); err != nil {
		return nil, err
	}
	var got []HistoryReceived
	var firstErr error
	for _, it := range items {
		var in historyIncoming
		if err := jsonUnmarshal(it.Value, &in); err != nil {
			return got, err
		}
		res, err := c.receiveOne(ctx, conn, &in)
		if err == nil {
			got = append(got, res)
		} else {
			c.warn(nil, nil, fmt.Errorf("history transfer from device %s: %w", in.From.Device, err))
			firstErr = cmpOr(firstErr, err)
		}
		drop := err == nil || permanentHistoryError(err) || in.Attempts+1 >= maxHistoryAttempts
		if err := c.store.Update(func(tx *profile.Tx) error {
			if drop {
				return tx.Delete(bucketHistoryIn, it.Key)
			}
			in.Attempts++
			return tx.PutJSON(bucketHistoryIn, it.Key, &in)
		}); err != nil {
			return got, err
		}
		if ctx.Err() != nil {
			return got, ctx.Err()
		}
	}
	c.mu.Lock()
	c.historyGot = append(c.historyGot, got...)
	c.historyErr = cmpOr(c.historyErr, firstErr)
	c.mu.Unlock()
	return got, nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// permanentHistoryError reports whether retrying cannot help.
func permanentHistoryError(err error) bool {
	var he *transport.HTTPError
	if errors.As(err, &he) && he.StatusCode == http.StatusNotFound {
		return true
	}
	for _, e := range []error{ErrHistoryDigest, ErrBadHistoryPointer, ErrBadExport, ErrOtherAccount, ErrUnlistedDevice, ErrOutsider,
		filecrypt.ErrAuth, filecrypt.ErrDigest} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// receiveOne checks the sender of a pointer against the account's signed
// list, then fetches, checks and imports its history.
func (c *Client) receiveOne(ctx context.Context, conn *transport.Conn, in *historyIncoming) (HistoryReceived, error) {
	out := HistoryReceived{From: in.From.Device}
	p, err := parseHistoryPointer(in.Pointer)
	if err != nil {
		return out, err
	}
	own, err := c.verifiedList(ctx, conn, c.acct.User)
	if err != nil {
		return out, err
	}
	if in.From.User != c.acct.User || in.From.Device == c.acct.DeviceID {
		return out, fmt.Errorf("%w: a history transfer from %s/%s", ErrOutsider, in.From.User, in.From.Device)
	}
	if err := checkListed(own, in.From.Device, in.FromKey); err != nil {
		return out, err
	}
	sp, err := newSpool(c.opts.Dir, int64(p.BlobSize))
	if err != nil {
		return out, err
	}
	defer sp.discard()
	sum := sha256.New()
	lw := &limitedWriter{w: io.MultiWriter(sp, sum), left: int64(p.BlobSize)}
	var dp func(int64, int64)
	if f := c.opts.OnHistoryProgress; f != nil {
		dp = func(n, _ int64) { f("download", n, int64(p.BlobSize)) }
	}
	n, err := conn.DownloadBlob(ctx, hex.EncodeToString(p.Blob), lw, dp)
	if errors.Is(err, errTooLong) || (err == nil && n != int64(p.BlobSize)) {
		return out, fmt.Errorf("%w (the server's blob is not %d bytes)", ErrHistoryDigest, p.BlobSize)
	}
	if err != nil {
		return out, fmt.Errorf("client: download the history: %w", err)
	}
	if !verifyHistoryDigest(sum, p.SHA256) {
		return out, ErrHistoryDigest
	}
	rd, err := sp.reader()
	if err != nil {
		return out, err
	}
	dec, err := filecrypt.NewDecrypter(rd, p.Key)
	if err != nil {
		return out, err
	}
	var ip Progress
	if f := c.opts.OnHistoryProgress; f != nil {
		ip = func(d, t int64) { f("import", d, t) }
	}
	res, err := c.readHistory(ctx, io.LimitReader(dec, int64(p.PlainSize)), ip)
	if err != nil {
		return out, fmt.Errorf("client: import the transferred history: %w", err)
	}
	out.Conversations, out.Messages, out.Skipped = res.Conversations, res.Messages, res.Skipped
	// Imported: the blob has served (a device of this account uploaded
	// it, so this one may delete it).
	if err := conn.DeleteBlob(ctx, hex.EncodeToString(p.Blob)); err != nil {
		c.warn(nil, nil, fmt.Errorf("delete the history transfer from the server (it expires within a week anyway): %w", err))
	}
	return out, nil
}

// verifyHistoryDigest compares the downloaded ciphertext's SHA-256 with
// the pointer's, in constant time.
func verifyHistoryDigest(sum hash.Hash, want []byte) bool {
	return subtle.ConstantTimeCompare(sum.Sum(nil), want) == 1
}

// TakeReceivedHistory returns and clears the history transfers imported
// by syncs so far.
func (c *Client) TakeReceivedHistory() []HistoryReceived {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := c.historyGot
	c.historyGot = nil
	return got
}

// WaitForHistory syncs until a history transfer from another device of
// this account has been imported (then returns what it imported), one
// failed (its error), or ctx ends (ErrNoHistory). It does not take the
// new messages Sync reports.
func (c *Client) WaitForHistory(ctx context.Context) (HistoryReceived, error) {
	for {
		err := c.withLock(ctx, func() error {
			conn, err := c.connection(ctx)
			if err != nil {
				return err
			}
			return c.syncAll(ctx, conn)
		})
		if err != nil && ctx.Err() != nil {
			return HistoryReceived{}, ErrNoHistory
		}
		if err != nil {
			return HistoryReceived{}, err
		}
		c.mu.Lock()
		got, herr := c.historyGot, c.historyErr
		c.historyGot, c.historyErr = nil, nil
		c.mu.Unlock()
		if len(got) > 0 {
			return got[0], nil
		}
		if herr != nil {
			return HistoryReceived{}, herr
		}
		select {
		case <-ctx.Done():
			return HistoryReceived{}, ErrNoHistory
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// spool holds a transfer's ciphertext: a temporary file (0600) beside
// the profile, or memory where there is no file system (the browser).
type spool struct {
	f   *os.File
	buf *bytes.Buffer
}

func newSpool(dir string, size int64) (*spool, error) {
	if f, err := os.CreateTemp(dir, ".parley-history-*"); err == nil {
		return &spool{f: f}, nil
	}
	if size > memorySpoolLimit {
		return nil, fmt.Errorf("client: no room for a %d-byte history transfer (no temporary file here, and it is too large to hold in memory)", size)
	}
	return &spool{buf: new(bytes.Buffer)}, nil
}

func (s *spool) Write(p []byte) (int, error) {
	if s.f != nil {
		return s.f.Write(p)
	}
	if s.buf.Len()+len(p) > memorySpoolLimit {
		return 0, fmt.Errorf("client: a history transfer over %d bytes cannot be held in memory", memorySpoolLimit)
	}
	return s.buf.Write(p)
}

// reader rewinds and reads back what was written.
func (s *spool) reader() (io.Reader, error) {
	if s.f != nil {
		if _, err := s.f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		return s.f, nil
	}
	return bytes.NewReader(s.buf.Bytes()), nil
}

func (s *spool) discard() {
	if s.f != nil {
		s.f.Close()
		os.Remove(s.f.Name())
	}
}

var errTooLong = errors.New("client: more bytes than expected")

// limitedWriter fails once more than left bytes are written.
type limitedWriter struct {
	w    io.Writer
	left int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		return 0, errTooLong
	}
	l.left -= int64(len(p))
	return l.w.Write(p)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
