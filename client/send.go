package client

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parleychat/parley/client/filecrypt"
	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/wire"
)

// Sent is the server's delivery receipt for a message this device sent.
type Sent struct {
	ID             string `json:"id"`
	Conversation   string `json:"conversation"`
	ConversationID string `json:"conversation_id"`
	// Seq is the message's position in the conversation log: the server
	// has stored it durably.
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate,omitempty"`
	Kind      string `json:"kind"`
	// File is set for attachments.
	File *FileInfo `json:"file,omitempty"`
}

// prepare resolves target (creating a direct conversation on first use)
// and catches up with it. Call with the lock held.
func (c *Client) prepare(ctx context.Context, target string) (*transport.Conn, *convRecord, error) {
	conn, err := c.connection(ctx)
	if err != nil {
		return nil, nil, err
	}
	// Welcomes first: the target may be a conversation we were just
	// added to.
	if _, err := c.processInbox(ctx, conn); err != nil {
		return nil, nil, err
	}
	r, err := c.resolve(ctx, target, true)
	if err != nil {
		return nil, nil, err
	}
	if _, err := c.syncConversation(ctx, conn, r.ID); err != nil {
		return nil, nil, err
	}
	// Re-read: syncing may have renamed it or removed us.
	err = c.store.Update(func(tx *profile.Tx) error {
		rr, err := getConv(tx, r.ID)
		if err == nil {
			*r = *rr
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if r.Refused {
		return nil, nil, refusedError(r)
	}
	if r.Removed {
		return nil, nil, fmt.Errorf("%w: %s", ErrNotMember, r.label())
	}
	if r.Kind == ConvDirect {
		err := c.store.Update(func(tx *profile.Tx) error {
			g, err := loadGroup(tx, r.ID)
			if err != nil {
				return err
			}
			return checkDirectMembers(g, c.acct.User, r.Peer)
		})
		if err != nil {
			return nil, nil, err
		}
	}
	var g *mls.Group
	if err := c.store.Update(func(tx *profile.Tx) (err error) { g, err = loadGroup(tx, r.ID); return err }); err != nil {
		return nil, nil, err
	}
	if err := c.checkRoster(ctx, conn, r, g); err != nil {
		return nil, nil, err
	}
	return conn, r, nil
}

// prepareSend is prepare for sending a message: it also refuses while a
// contact the user verified has changed devices since (see Verify).
func (c *Client) prepareSend(ctx context.Context, target string) (*transport.Conn, *convRecord, error) {
	conn, r, err := c.prepare(ctx, target)
	if err != nil {
		return nil, nil, err
	}
	var g *mls.Group
	if err := c.store.Update(func(tx *profile.Tx) (err error) { g, err = loadGroup(tx, r.ID); return err }); err != nil {
		return nil, nil, err
	}
	if err := c.checkVerified(g); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", r.label(), err)
	}
	return conn, r, nil
}

// SendText sends a text message to "@user" or "#group".
func (c *Client) SendText(ctx context.Context, target, text string) (Sent, error) {
	if err := checkText(text); err != nil {
		return Sent{}, err
	}
	var sent Sent
	err := c.withLock(ctx, func() error {
		conn, r, err := c.prepareSend(ctx, target)
		if err != nil {
			return err
		}
		sent, err = c.sendContent(ctx, conn, r, newContent(textBody(text)), true)
		return err
	})
	return sent, err
}

func checkText(text string) error {
	if text == "" || len(text) > maxTextBytes || !utf8.ValidString(text) {
		return fmt.Errorf("client: a message is 1 to %d bytes of UTF-8", maxTextBytes)
	}
	return nil
}

// sendMeta announces a group's name to its members.
func (c *Client) sendMeta(ctx context.Context, r *convRecord) error {
	conn, err := c.connection(ctx)
	if err != nil {
		return err
	}
	body, err := groupBody(r.Name)
	if err != nil {
		return err
	}
	_, err = c.sendContent(ctx, conn, r, newContent(body), false)
	return err
}

// Progress reports bytes done of total.
type Progress func(done, total int64)

// SendFile encrypts the file at path with a fresh key (see filecrypt),
// uploads the ciphertext and sends the key, digest, name and size to
// target inside MLS.
func (c *Client) SendFile(ctx context.Context, target, path string, progress Progress) (Sent, error) {
	f, err := os.Open(path)
	if err != nil {
		return Sent{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return Sent{}, err
	}
	if !info.Mode().IsRegular() {
		return Sent{}, fmt.Errorf("client: %s is not a regular file", path)
	}
	return c.sendFileFrom(ctx, target, filepath.Base(path), f, info.Size(), progress)
}

// sendFileFrom encrypts size bytes of r as an attachment named name,
// uploads it and sends its descriptor to target (SendFile, SendFileData).
func (c *Client) sendFileFrom(ctx context.Context, target, name string, f io.Reader, size int64, progress Progress) (Sent, error) {
	if len(name) > maxFileNameBytes || !utf8.ValidString(name) {
		return Sent{}, fmt.Errorf("client: file name %q is too long or not UTF-8", name)
	}
	var sent Sent
	err := c.withLock(ctx, func() error {
		conn, r, err := c.prepareSend(ctx, target)
		if err != nil {
			return err
		}
		key := filecrypt.NewKey()
		enc, err := filecrypt.NewEncrypter(f, key)
		if err != nil {
			return err
		}
		ctSize := filecrypt.CiphertextSize(size)
		var pr func(int64)
		if progress != nil {
			pr = func(n int64) { progress(n, ctSize) }
		}
		expires := c.expiryFor(r) // the blob disappears with the message
		blob, err := conn.UploadExpiringBlob(ctx, enc, ctSize, expires, pr)
		if err != nil {
			return err
		}
		if enc.Size() != size {
			dropBlob(ctx, conn, blob)
			return fmt.Errorf("client: %s changed size while it was being sent", name)
		}
		fd := &fileDescriptor{Blob: blob, Scheme: filecrypt.Scheme, Key: key, SHA256: enc.Digest(), Name: name, Size: enc.Size()}
		cont := newContent(fileBody(fd, ""))
		cont.Expires = mimiExpiry(expires)
		sent, err = c.sendContent(ctx, conn, r, cont, true)
		var refused *wire.Error
		if errors.As(err, &refused) {
			// The server refused the message, so it stored nothing and no
			// one will fetch the file. Any other failure (a connection
			// lost after sending) may have delivered it: keep the blob.
			dropBlob(ctx, conn, blob)
		}
		return err
	})
	return sent, err
}

// dropBlob deletes an uploaded blob that no message refers to, so that it
// does not count against the account's attachment quota until it expires.
// Failing to is harmless (it expires), so the error is dropped.
func dropBlob(ctx context.Context, conn *transport.Conn, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	conn.DeleteBlob(ctx, id)
}

// DeleteFile deletes from the server the attachment of message id, which
// this account sent: it stops counting against the account's attachment
// quota, and members who have not downloaded it yet no longer can (the
// message stays). The server refuses anyone else's delete, and answers
// it as for a blob that does not exist.
func (c *Client) DeleteFile(ctx context.Context, id string) error {
	id = strings.ToLower(id)
	var fd fileDescriptor
	err := c.store.Update(func(tx *profile.Tx) error { return tx.GetJSON(bucketFiles, id, &fd) })
	if errors.Is(err, profile.ErrNotFound) {
		return fmt.Errorf("%w: %s", ErrFileNotFound, id)
	}
	if err != nil {
		return err
	}
	return c.withLock(ctx, func() error {
		conn, err := c.connection(ctx)
		if err != nil {
			return err
		}
		if err := conn.DeleteBlob(ctx, fd.Blob); err != nil {
			return fmt.Errorf("delete the file of message %s from the server (only files you sent can be): %w", id, err)
		}
		return nil
	})
}

// GetFile downloads, decrypts and verifies the attachment of message id,
// writing it to out (default: its name in the current directory; if out
// is a directory, its name in there). It never overwrites an existing
// file, and nothing is written unless the digest matches. It returns the
// path written.
func (c *Client) GetFile(ctx context.Context, id, out string, progress Progress) (string, FileInfo, error) {
	id = strings.ToLower(id)
	var fd fileDescriptor
	err := c.store.Update(func(tx *profile.Tx) error { return tx.GetJSON(bucketFiles, id, &fd) })
	if errors.Is(err, profile.ErrNotFound) {
		return "", FileInfo{}, fmt.Errorf("%w: %s", ErrFileNotFound, id)
	}
	if err != nil {
		return "", FileInfo{}, err
	}
	out, info, err := c.download(ctx, &fd, out, progress)
	if err != nil {
		return out, info, err
	}
	if abs, err := filepath.Abs(out); err == nil {
		// A disappearing message's file is deleted with it.
		if err := c.noteDownload(id, abs); err != nil {
			return out, info, err
		}
	}
	return out, info, nil
}

// download fetches, decrypts and verifies the attachment fd into out (see
// GetFile).
func (c *Client) download(ctx context.Context, fd *fileDescriptor, out string, progress Progress) (string, FileInfo, error) {
	if fd.Scheme != filecrypt.Scheme {
		return "", FileInfo{}, fmt.Errorf("client: unsupported attachment scheme %q", fd.Scheme)
	}
	info := FileInfo{Name: fd.Name, Size: fd.Size, SHA256: hex.EncodeToString(fd.SHA256)}
	if out == "" {
		out = safeName(fd.Name)
	} else if st, err := os.Stat(out); err == nil && st.IsDir() {
		out = filepath.Join(out, safeName(fd.Name))
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".parley-download-*")
	if err != nil {
		return "", info, err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	err = c.decryptBlob(ctx, fd, tmp, progress)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", info, fmt.Errorf("get file: %w", err)
	}
	// Link instead of rename so an existing file is never replaced.
	if err := os.Link(tmp.Name(), out); err != nil {
		if errors.Is(err, os.ErrExist) {
			return "", info, fmt.Errorf("client: %s already exists", out)
		}
		return "", info, err
	}
	return out, info, nil
}

// safeName turns a sender-chosen file name into a plain name in the
// current directory.
func safeName(name string) string {
	name = filepath.Base(filepath.Clean("/" + strings.ReplaceAll(name, "\\", "/")))
	if name == "/" || name == "." || name == ".." || name == "" || strings.HasPrefix(name, ".") {
		name = "attachment" + name
	}
	return name
}

// History returns up to limit of the newest messages of a conversation
// ("@user", "#group" or an id), oldest first.
func (c *Client) History(ctx context.Context, target string, limit int) ([]Message, error) {
	var out []Message
	err := c.withLock(ctx, func() error {
		return c.store.Update(func(tx *profile.Tx) error {
			r, err := lookupLocalPast(tx, c.acct.User, target)
			if err != nil {
				return err
			}
			items, err := tx.List(historyPfx + hexID(r.ID))
			if err != nil {
				return err
			}
			for _, it := range items {
				var m Message
				if err := jsonUnmarshal(it.Value, &m); err != nil {
					return err
				}
				if c.expired(m.ExpiresAt) {
					continue // disappeared; the next sweep deletes it
				}
				m.Conversation = r.label()
				withQuote(tx, &m)
				out = append(out, m)
			}
			out = inLogOrder(out)
			if limit > 0 && len(out) > limit {
				out = out[len(out)-limit:]
			}
			return nil
		})
	})
	return out, err
}

// lookupLocal resolves a target among stored conversations only.
func lookupLocal(tx *profile.Tx, self, target string) (*convRecord, error) {
	return lookupLocalIn(tx, self, target, false)
}

// lookupLocalPast is lookupLocal that also finds groups this device was
// removed from or left, for reading their history.
func lookupLocalPast(tx *profile.Tx, self, target string) (*convRecord, error) {
	return lookupLocalIn(tx, self, target, true)
}

func lookupLocalIn(tx *profile.Tx, self, target string, past bool) (*convRecord, error) {
	if id, err := hex.DecodeString(target); err == nil && (len(id) == groupIDSize || len(id) == wire.DirectConversationIDSize) {
		return getConv(tx, id)
	}
	kind, name, err := parseTarget(target)
	if err != nil {
		return nil, err
	}
	if kind == ConvGroup {
		return findGroupIn(tx, name, past)
	}
	r, err := getConv(tx, directID(self, name))
	if errors.Is(err, profile.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrUnknownTarget, target)
	}
	return r, err
}

// inLogOrder sorts a conversation's stored messages into the server's
// order (its sequence numbers), the same on every device: a device stores
// its own message when the server acknowledges it but others' earlier ones
// only at its next sync, so insertion order differs between devices.
// Entries without a sequence number (local notes) keep their place after
// the entry stored before them.
func inLogOrder(ms []Message) []Message {
	type keyed struct {
		m   Message
		seq uint64
		i   int
	}
	ks := make([]keyed, len(ms))
	var last uint64
	for i, m := range ms {
		if m.Seq > 0 {
			last = m.Seq
		}
		ks[i] = keyed{m, last, i}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]Message, len(ks))
	for i, k := range ks {
		out[i] = k.m
	}
	return out
}
