package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/parleychat/parley/client/filecrypt"
	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
)

// Attachments without a file system: the web client (web/wasm) has the
// bytes of a file the user picked, not a path, and hands a download to
// the browser as bytes. These are SendFile and GetFile for that case,
// with the same encryption and the same digest check.

// ErrFileTooLarge is returned by FileBytes for an attachment larger than
// the caller's limit.
var ErrFileTooLarge = errors.New("client: the file is larger than this client accepts")

// SendFileData is SendFile for size bytes read from r, sent under name
// (a plain file name, as the recipient will save it).
func (c *Client) SendFileData(ctx context.Context, target, name string, r io.Reader, size int64, progress Progress) (Sent, error) {
	if size < 0 {
		return Sent{}, fmt.Errorf("client: file %q has a negative size", name)
	}
	if name == "" || strings.ContainsAny(name, "/\\") {
		return Sent{}, fmt.Errorf("client: file name %q is not a plain file name", name)
	}
	return c.sendFileFrom(ctx, target, name, r, size, progress)
}

// FileBytes downloads, decrypts and verifies the attachment of message
// id, as GetFile does, and returns its content only once its SHA-256
// digest and size match what the sender's message says: a changed blob
// returns an error and no bytes. Attachments larger than max bytes are
// refused before any download.
func (c *Client) FileBytes(ctx context.Context, id string, max int64, progress Progress) ([]byte, FileInfo, error) {
	id = strings.ToLower(id)
	var fd fileDescriptor
	err := c.store.Update(func(tx *profile.Tx) error { return tx.GetJSON(bucketFiles, id, &fd) })
	if errors.Is(err, profile.ErrNotFound) {
		return nil, FileInfo{}, fmt.Errorf("%w: %s", ErrFileNotFound, id)
	}
	if err != nil {
		return nil, FileInfo{}, err
	}
	info := FileInfo{Name: fd.Name, Size: fd.Size, SHA256: hex.EncodeToString(fd.SHA256)}
	if fd.Size > max {
		return nil, info, fmt.Errorf("%w: %s is %d bytes, the limit is %d", ErrFileTooLarge, fd.Name, fd.Size, max)
	}
	var buf bytes.Buffer
	buf.Grow(int(fd.Size))
	// limitedWriter (historytransfer.go): a blob that decrypts to more than
	// its descriptor's size cannot grow memory.
	if err := c.decryptBlob(ctx, &fd, &limitedWriter{w: &buf, left: fd.Size}, progress); err != nil {
		return nil, info, fmt.Errorf("get file: %w", err)
	}
	return buf.Bytes(), info, nil
}

// decryptBlob downloads the attachment fd, decrypts it into w and checks
// its digest and size: on an error, what w received must be discarded.
func (c *Client) decryptBlob(ctx context.Context, fd *fileDescriptor, w io.Writer, progress Progress) error {
	if fd.Scheme != filecrypt.Scheme {
		return fmt.Errorf("client: unsupported attachment scheme %q", fd.Scheme)
	}
	var conn *transport.Conn
	if err := c.withLock(ctx, func() (err error) { conn, err = c.connection(ctx); return err }); err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() {
		var p func(int64, int64)
		if progress != nil {
			p = func(n, total int64) { progress(n, total) }
		}
		_, err := conn.DownloadBlob(ctx, fd.Blob, pw, p)
		pw.CloseWithError(err)
	}()
	dec, err := filecrypt.NewDecrypter(pr, fd.Key)
	if err != nil {
		pr.CloseWithError(err)
		return err
	}
	_, err = io.Copy(w, dec)
	pr.CloseWithError(errors.New("download abandoned"))
	if err != nil {
		return err
	}
	return dec.Verify(fd.SHA256, fd.Size)
}
