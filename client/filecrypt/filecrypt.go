// Package filecrypt encrypts file attachments for Parley.
//
// Every file gets a fresh random 256-bit key. The plaintext is cut into
// 64 KiB chunks, each sealed with AES-256-GCM under that key; the nonce of
// chunk i is the 11-byte big-endian counter i followed by one byte that is
// 1 for the final chunk and 0 otherwise (the STREAM construction of Hoang,
// Reyhanitabar, Rogaway and Vizár). The counter stops chunks from being
// reordered or dropped, the final flag stops truncation and extension at
// a chunk boundary. A file of size n always has max(1, ⌈n/64 KiB⌉) chunks,
// so an empty file is one empty final chunk; small files are simply a
// single chunk, so there is no separate one-shot format.
//
// The ciphertext is what the server stores. The key, the SHA-256 digest of
// the plaintext, the name and the size travel inside an MLS application
// message, so the server learns only the ciphertext length. Because keys
// are never reused, the fixed nonce sequence is safe.
package filecrypt

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Parameters of the format.
const (
	KeySize   = 32
	ChunkSize = 64 << 10
	tagSize   = 16
	// Scheme names the format in attachment descriptors.
	Scheme = "parley-aes256gcm-stream64k-v1"
	// maxCounter keeps the 11-byte counter from wrapping (never reached:
	// it is 2^64 chunks, and sizes are int64).
	maxCounter = 1<<64 - 1
)

// Errors callers branch on.
var (
	ErrAuth   = errors.New("filecrypt: ciphertext is corrupt, truncated or was encrypted under another key")
	ErrDigest = errors.New("filecrypt: SHA-256 digest of the decrypted file does not match")
)

// NewKey returns a fresh random file key.
func NewKey() []byte {
	k := make([]byte, KeySize)
	rand.Read(k)
	return k
}

// CiphertextSize returns the size of the encryption of a size-byte file.
func CiphertextSize(size int64) int64 {
	chunks := (size + ChunkSize - 1) / ChunkSize
	if chunks == 0 {
		chunks = 1
	}
	return size + chunks*tagSize
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("filecrypt: key is %d bytes, want %d", len(key), KeySize)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func nonce(counter uint64, last bool) []byte {
	var n [12]byte
	binary.BigEndian.PutUint64(n[3:11], counter)
	if last {
		n[11] = 1
	}
	return n[:]
}

// Encrypter is an io.Reader producing the ciphertext of a plaintext
// stream. After it returns io.EOF, Digest and Size describe the plaintext.
type Encrypter struct {
	aead    cipher.AEAD
	src     *bufio.Reader
	sum     hash.Hash
	size    int64
	counter uint64
	buf     []byte // plaintext chunk
	out     []byte // pending ciphertext
	done    bool
	err     error
}

// NewEncrypter returns a reader of the encryption of src under key.
func NewEncrypter(src io.Reader, key []byte) (*Encrypter, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return &Encrypter{
		aead: aead,
		src:  bufio.NewReaderSize(src, ChunkSize),
		sum:  sha256.New(),
		buf:  make([]byte, ChunkSize),
	}, nil
}

func (e *Encrypter) Read(p []byte) (int, error) {
	for len(e.out) == 0 {
		if e.err != nil {
			return 0, e.err
		}
		if e.done {
			return 0, io.EOF
		}
		e.fill()
	}
	n := copy(p, e.out)
	e.out = e.out[n:]
	return n, nil
}

// fill seals the next chunk into e.out.
func (e *Encrypter) fill() {
	n, err := io.ReadFull(e.src, e.buf)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		e.err = fmt.Errorf("filecrypt: read plaintext: %w", err)
		return
	}
	last := err != nil
	if !last {
		// A full chunk is final only if nothing follows it.
		if _, perr := e.src.Peek(1); perr == io.EOF {
			last = true
		} else if perr != nil {
			e.err = fmt.Errorf("filecrypt: read plaintext: %w", perr)
			return
		}
	}
	if e.counter == maxCounter {
		e.err = errors.New("filecrypt: file too large")
		return
	}
	chunk := e.buf[:n]
	e.sum.Write(chunk)
	e.size += int64(n)
	e.out = e.aead.Seal(e.out[:0], nonce(e.counter, last), chunk, nil)
	e.counter++
	e.done = last
}

// Digest returns the SHA-256 of the plaintext read so far (all of it once
// Read has returned io.EOF).
func (e *Encrypter) Digest() []byte { return e.sum.Sum(nil) }

// Size returns the number of plaintext bytes read so far.
func (e *Encrypter) Size() int64 { return e.size }

// Decrypter is an io.Reader of the plaintext of a ciphertext stream. It
// returns only authenticated bytes, and ErrAuth if the stream is damaged,
// truncated or extended. After io.EOF, Verify checks the digest.
type Decrypter struct {
	aead    cipher.AEAD
	src     *bufio.Reader
	sum     hash.Hash
	size    int64
	counter uint64
	buf     []byte
	out     []byte
	done    bool
	err     error
}

// NewDecrypter returns a reader of the decryption of src under key.
func NewDecrypter(src io.Reader, key []byte) (*Decrypter, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return &Decrypter{
		aead: aead,
		src:  bufio.NewReaderSize(src, ChunkSize+tagSize),
		sum:  sha256.New(),
		buf:  make([]byte, ChunkSize+tagSize),
	}, nil
}

func (d *Decrypter) Read(p []byte) (int, error) {
	for len(d.out) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		if d.done {
			return 0, io.EOF
		}
		d.fill()
	}
	n := copy(p, d.out)
	d.out = d.out[n:]
	return n, nil
}

func (d *Decrypter) fill() {
	n, err := io.ReadFull(d.src, d.buf)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		d.err = fmt.Errorf("filecrypt: read ciphertext: %w", err)
		return
	}
	last := err != nil
	if !last {
		if _, perr := d.src.Peek(1); perr == io.EOF {
			last = true
		} else if perr != nil {
			d.err = fmt.Errorf("filecrypt: read ciphertext: %w", perr)
			return
		}
	}
	if n < tagSize || d.counter == maxCounter {
		d.err = ErrAuth
		return
	}
	pt, oerr := d.aead.Open(d.out[:0], nonce(d.counter, last), d.buf[:n], nil)
	if oerr != nil {
		d.err = ErrAuth
		return
	}
	// A short chunk that is not final, or an empty final chunk after
	// data, cannot come from Encrypter.
	if last && len(pt) == 0 && d.counter > 0 {
		d.err = ErrAuth
		return
	}
	d.sum.Write(pt)
	d.size += int64(len(pt))
	d.out = pt
	d.counter++
	d.done = last
}

// Size returns the number of plaintext bytes produced so far.
func (d *Decrypter) Size() int64 { return d.size }

// Verify checks, after the whole stream was read, that the plaintext has
// the expected SHA-256 digest and size.
func (d *Decrypter) Verify(digest []byte, size int64) error {
	if !d.done || d.err != nil {
		return ErrAuth
	}
	if subtle.ConstantTimeCompare(d.sum.Sum(nil), digest) != 1 || d.size != size {
		return ErrDigest
	}
	return nil
}
