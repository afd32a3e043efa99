package hashing

import (
	"crypto/md5"
	"crypto/sha256"
	"fmt"
	"io"
)

// Digests are the exact hashes of a file's bytes that hash lists carry
// besides PDQ. MD5 is broken for collision resistance but is what the
// industry lists contain; it is used only to recognise known files.
type Digests struct {
	MD5    [md5.Size]byte
	SHA256 [sha256.Size]byte
	Size   int64
}

// Digest reads r to the end (at most maxBytes bytes, if maxBytes > 0) and
// returns the MD5 and SHA-256 of what it read.
func Digest(r io.Reader, maxBytes int64) (Digests, error) {
	var d Digests
	m, s := md5.New(), sha256.New()
	if maxBytes > 0 {
		r = io.LimitReader(r, maxBytes+1)
	}
	n, err := io.Copy(io.MultiWriter(m, s), r)
	if err != nil {
		return d, fmt.Errorf("digest: read: %w", err)
	}
	if maxBytes > 0 && n > maxBytes {
		return d, fmt.Errorf("digest: %w: more than %d bytes", ErrTooLarge, maxBytes)
	}
	m.Sum(d.MD5[:0])
	s.Sum(d.SHA256[:0])
	d.Size = n
	return d, nil
}
