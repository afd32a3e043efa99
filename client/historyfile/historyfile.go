// Package historyfile is the encrypted file format of "parley export":
// a versioned header, then the plaintext (whatever the caller writes) in
// chunks sealed with XChaCha20-Poly1305 under a key Argon2id (RFC 9106)
// derives from a passphrase.
//
// Layout (all integers big-endian):
//
//	magic      8 bytes  "PARLEYHX"
//	version    1 byte   1
//	kdf        1 byte   1 = Argon2id
//	time       4 bytes  Argon2id passes
//	memory     4 bytes  Argon2id memory in KiB
//	threads    1 byte   Argon2id lanes
//	salt      16 bytes
//	aead       1 byte   1 = XChaCha20-Poly1305, STREAM chunks
//	chunk      4 bytes  plaintext bytes per chunk (4 KiB to 1 MiB)
//	prefix    15 bytes  nonce prefix (random)
//	check     16 bytes  key check: tells a wrong passphrase from damage
//	chunks ...          each chunk+16 bytes; the last is shorter (maybe
//	                    only its 16-byte tag) and sealed as the last
//
// A chunk's nonce is prefix ‖ 8-byte counter ‖ 1 byte (1 for the last
// chunk, else 0): the STREAM construction (Hoang, Reyhanitabar, Rogaway,
// Vizár, "Online Authenticated-Encryption and its Nonce-Reuse
// Misuse-Resistance", 2015), so chunks cannot be reordered, dropped or
// cut off unnoticed. Every chunk's associated data is the whole header,
// so no header field can be changed either. The reader treats the file
// as untrusted input: the KDF costs are bounded before anything is
// derived (a crafted file cannot make it allocate gigabytes) and it
// releases no plaintext of a chunk that does not authenticate.
package historyfile

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// Errors a reader returns; callers branch on them.
var (
	ErrNotHistoryFile   = errors.New("historyfile: not a Parley history file")
	ErrVersion          = errors.New("historyfile: a history file of a newer (or unknown) format version: update parley")
	ErrBadHeader        = errors.New("historyfile: the file's header is malformed")
	ErrWrongPassphrase  = errors.New("historyfile: wrong passphrase for this file")
	ErrCorrupt          = errors.New("historyfile: the file is damaged, cut short or was tampered with")
	ErrUnacceptableCost = errors.New("historyfile: the file asks for Argon2id costs beyond what this reader accepts")
)

const (
	magic      = "PARLEYHX"
	version    = 1
	kdfArgon2  = 1
	aeadStream = 1
	saltSize   = 16
	prefixSize = chacha20poly1305.NonceSizeX - 9
	checkSize  = 16
	// HeaderSize is the length of the header.
	HeaderSize = len(magic) + 1 + 1 + 4 + 4 + 1 + saltSize + 1 + 4 + prefixSize + checkSize
	// DefaultChunk is the plaintext size of a chunk.
	DefaultChunk = 64 << 10
	minChunk     = 4 << 10
	maxChunk     = 1 << 20
	tagSize      = chacha20poly1305.Overhead
)

// KDF are Argon2id's costs.
type KDF struct {
	Time      uint32
	MemoryKiB uint32
	Threads   uint8
}

// DefaultKDF is RFC 9106 §4's second recommended option.
var DefaultKDF = KDF{Time: 3, MemoryKiB: 64 * 1024, Threads: 4}

// MaxKDF bounds what a reader accepts from a file: at most 1 GiB of
// memory, 16 passes, 16 lanes.
var MaxKDF = KDF{Time: 16, MemoryKiB: 1 << 20, Threads: 16}

func (k KDF) check() error {
	if k.Time < 1 || k.Threads < 1 || k.MemoryKiB < 8*uint32(k.Threads) {
		return fmt.Errorf("%w: Argon2id costs %+v", ErrBadHeader, k)
	}
	if k.Time > MaxKDF.Time || k.MemoryKiB > MaxKDF.MemoryKiB || k.Threads > MaxKDF.Threads {
		return fmt.Errorf("%w: %+v", ErrUnacceptableCost, k)
	}
	return nil
}

// Header is a history file's header.
type Header struct {
	KDF    KDF
	Salt   [saltSize]byte
	Chunk  uint32
	Prefix [prefixSize]byte
	Check  [checkSize]byte
}

// Marshal encodes the header.
func (h *Header) Marshal() []byte {
	b := make([]byte, 0, HeaderSize)
	b = append(b, magic...)
	b = append(b, version, kdfArgon2)
	b = binary.BigEndian.AppendUint32(b, h.KDF.Time)
	b = binary.BigEndian.AppendUint32(b, h.KDF.MemoryKiB)
	b = append(b, h.KDF.Threads)
	b = append(b, h.Salt[:]...)
	b = append(b, aeadStream)
	b = binary.BigEndian.AppendUint32(b, h.Chunk)
	b = append(b, h.Prefix[:]...)
	return append(b, h.Check[:]...)
}

// ParseHeader decodes and checks a header (b must be exactly HeaderSize
// bytes). Nothing is derived: it is cheap on any input.
func ParseHeader(b []byte) (*Header, error) {
	if len(b) < len(magic) || string(b[:len(magic)]) != magic {
		return nil, ErrNotHistoryFile
	}
	if len(b) < len(magic)+1 {
		return nil, fmt.Errorf("%w: cut short", ErrBadHeader)
	}
	if b[len(magic)] != version {
		return nil, fmt.Errorf("%w (version %d)", ErrVersion, b[len(magic)])
	}
	if len(b) != HeaderSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrBadHeader, len(b), HeaderSize)
	}
	p := b[len(magic)+1:]
	if p[0] != kdfArgon2 {
		return nil, fmt.Errorf("%w: key derivation %d", ErrVersion, p[0])
	}
	h := &Header{}
	h.KDF.Time = binary.BigEndian.Uint32(p[1:])
	h.KDF.MemoryKiB = binary.BigEndian.Uint32(p[5:])
	h.KDF.Threads = p[9]
	p = p[10:]
	copy(h.Salt[:], p)
	p = p[saltSize:]
	if p[0] != aeadStream {
		return nil, fmt.Errorf("%w: cipher %d", ErrVersion, p[0])
	}
	h.Chunk = binary.BigEndian.Uint32(p[1:])
	p = p[5:]
	copy(h.Prefix[:], p)
	copy(h.Check[:], p[prefixSize:])
	if err := h.KDF.check(); err != nil {
		return nil, err
	}
	if h.Chunk < minChunk || h.Chunk > maxChunk {
		return nil, fmt.Errorf("%w: chunk size %d", ErrBadHeader, h.Chunk)
	}
	return h, nil
}

// keys derives the chunk cipher and the key check from a passphrase.
func keys(passphrase []byte, h *Header) (cipher.AEAD, [checkSize]byte, error) {
	master := argon2.IDKey(passphrase, h.Salt[:], h.KDF.Time, h.KDF.MemoryKiB, h.KDF.Threads, 32)
	enc, err1 := hkdf.Key(sha256.New, master, h.Salt[:], "parley history file v1 encryption", chacha20poly1305.KeySize)
	chk, err2 := hkdf.Key(sha256.New, master, h.Salt[:], "parley history file v1 key check", checkSize)
	var check [checkSize]byte
	if err := errors.Join(err1, err2); err != nil {
		return nil, check, err
	}
	copy(check[:], chk)
	aead, err := chacha20poly1305.NewX(enc)
	return aead, check, err
}

func nonce(prefix *[prefixSize]byte, counter uint64, last bool) []byte {
	n := make([]byte, 0, chacha20poly1305.NonceSizeX)
	n = append(n, prefix[:]...)
	n = binary.BigEndian.AppendUint64(n, counter)
	if last {
		return append(n, 1)
	}
	return append(n, 0)
}

// Writer encrypts what is written to it. Close writes the last chunk:
// without it the file is incomplete (and readers say so).
type Writer struct {
	w       io.Writer
	aead    cipher.AEAD
	header  []byte
	prefix  [prefixSize]byte
	buf     []byte
	chunk   int
	counter uint64
	err     error
}

// NewWriter writes a header to w and returns a Writer sealing chunks of
// DefaultChunk bytes under passphrase with costs kdf.
func NewWriter(w io.Writer, passphrase []byte, kdf KDF) (*Writer, error) {
	return newWriter(w, passphrase, kdf, DefaultChunk)
}

func newWriter(w io.Writer, passphrase []byte, kdf KDF, chunk int) (*Writer, error) {
	if len(passphrase) == 0 {
		return nil, errors.New("historyfile: empty passphrase")
	}
	h := &Header{KDF: kdf, Chunk: uint32(chunk)}
	if err := kdf.check(); err != nil {
		return nil, err
	}
	if chunk < minChunk || chunk > maxChunk {
		return nil, fmt.Errorf("historyfile: chunk size %d", chunk)
	}
	rand.Read(h.Salt[:])
	rand.Read(h.Prefix[:])
	aead, check, err := keys(passphrase, h)
	if err != nil {
		return nil, err
	}
	h.Check = check
	hb := h.Marshal()
	if _, err := w.Write(hb); err != nil {
		return nil, err
	}
	return &Writer{w: w, aead: aead, header: hb, prefix: h.Prefix, chunk: chunk, buf: make([]byte, 0, chunk)}, nil
}

// Write buffers p, sealing and writing every full chunk.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		k := min(len(p), w.chunk-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p, n = p[k:], n+k
		// A full chunk is sealed only once more follows, so that the
		// last chunk is never empty unless the whole file is.
		if len(w.buf) == w.chunk && len(p) > 0 {
			if err := w.flush(false); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (w *Writer) flush(last bool) error {
	out := w.aead.Seal(nil, nonce(&w.prefix, w.counter, last), w.buf, w.header)
	w.counter++
	w.buf = w.buf[:0]
	if _, err := w.w.Write(out); err != nil {
		w.err = err
		return err
	}
	return nil
}

// Close seals and writes the last chunk. It does not close the
// underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	// What is buffered (a full chunk included: Write keeps one back) is
	// the last chunk.
	err := w.flush(true)
	if err == nil {
		w.err = errors.New("historyfile: writer closed")
	}
	return err
}

// Reader decrypts a history file. It returns plaintext only from chunks
// that authenticate, and ErrCorrupt for anything else, including a file
// cut short (the last chunk is marked).
type Reader struct {
	r       io.Reader
	aead    cipher.AEAD
	header  []byte
	prefix  [prefixSize]byte
	chunk   int
	in      []byte // read ahead: have bytes
	have    int
	out     []byte
	counter uint64
	done    bool
	err     error
}

// ReadHeader reads and checks the header from r, without deriving keys.
func ReadHeader(r io.Reader) (*Header, []byte, error) {
	hb := make([]byte, HeaderSize)
	n, err := io.ReadFull(r, hb)
	if err != nil {
		if _, perr := ParseHeader(hb[:n]); perr != nil && (errors.Is(perr, ErrNotHistoryFile) || errors.Is(perr, ErrVersion)) {
			return nil, nil, perr
		}
		return nil, nil, fmt.Errorf("%w: cut short", ErrBadHeader)
	}
	h, err := ParseHeader(hb)
	return h, hb, err
}

// NewReader reads the header from r and derives the key from
// passphrase: ErrWrongPassphrase if it is not the file's.
func NewReader(r io.Reader, passphrase []byte) (*Reader, error) {
	h, hb, err := ReadHeader(r)
	if err != nil {
		return nil, err
	}
	aead, check, err := keys(passphrase, h)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(check[:], h.Check[:]) {
		return nil, ErrWrongPassphrase
	}
	return &Reader{r: r, aead: aead, header: hb, prefix: h.Prefix, chunk: int(h.Chunk), in: make([]byte, int(h.Chunk)+tagSize+1)}, nil
}

// Read returns authenticated plaintext.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.done {
			return 0, io.EOF
		}
		r.next()
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

// next reads and opens one chunk. It reads one byte past a full chunk to
// learn whether this one is the last.
func (r *Reader) next() {
	full := r.chunk + tagSize
	n, err := io.ReadFull(r.r, r.in[r.have:full+1])
	r.have += n
	switch {
	case err == nil:
		pt, oerr := r.aead.Open(nil, nonce(&r.prefix, r.counter, false), r.in[:full], r.header)
		if oerr != nil {
			r.err = ErrCorrupt
			return
		}
		r.counter++
		r.in[0], r.have = r.in[full], 1
		r.out = pt
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		pt, oerr := r.aead.Open(nil, nonce(&r.prefix, r.counter, true), r.in[:r.have], r.header)
		if oerr != nil {
			r.err = ErrCorrupt
			return
		}
		r.out, r.done = pt, true
	default:
		r.err = err
	}
}
