// Package profile is the Parley client's encrypted local store: a
// key-value store of buckets that holds the device's identity keys, its
// MLS group states and the message history. Where the rows live is a
// Backend: one SQLite database (modernc.org/sqlite) under the profile
// directory for the CLI, IndexedDB in the browser (GOOS=js, the web
// client; there "dir" names the IndexedDB database). Sealing happens
// above the backend, so both hold exactly the same sealed rows.
//
// # Encryption at rest
//
// The store never holds a secret, a name or a message body in the clear.
// A 32-byte master key is derived from the user's passphrase with Argon2id
// (RFC 9106) over a random 16-byte salt; the salt and the cost parameters
// are the only plaintext metadata. From the master key HKDF-SHA256 derives
//
//   - an encryption key for XChaCha20-Poly1305 (random 24-byte nonces), and
//   - a MAC key that turns bucket names and row keys into opaque 16- and
//     32-byte HMAC-SHA256 identifiers, so the schema reveals neither which
//     conversations exist nor who is in them.
//
// Every stored value is sealed as nonce || AEAD(key || value) with the
// row's identifiers as associated data, so a row cannot be moved to
// another key or bucket without failing authentication. A verifier row
// sealed the same way tells a wrong passphrase (ErrWrongPassphrase) from a
// damaged database.
//
// On disk, the directory is created 0700 and every file in it 0600.
//
// # Concurrency
//
// A Store is safe for concurrent use. Separate processes that open the same
// profile coordinate through Lock, an advisory whole-profile lock held
// around each read-modify-write of client state.
package profile

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// Errors callers branch on.
var (
	ErrWrongPassphrase = errors.New("profile: wrong passphrase")
	ErrNotExist        = errors.New("profile: no profile in this directory (run parley init)")
	ErrExist           = errors.New("profile: a profile already exists in this directory")
	ErrNotFound        = errors.New("profile: not found")
	ErrCorrupt         = errors.New("profile: database is damaged or was tampered with")
	// ErrStorage: the backend could not read or write (a disk or
	// IndexedDB failure, a closed profile). Unlike an error of the
	// transaction's own logic it may pass: a caller must not act as if
	// the transaction had run (acknowledge what it was storing).
	ErrStorage = errors.New("profile: storage failed")
)

// storageErr marks a backend's error as ErrStorage (ErrNotFound and
// errors already marked pass unchanged).
func storageErr(err error) error {
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrStorage) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrStorage, err)
}

// KDFParams are the Argon2id costs used to derive the master key.
type KDFParams struct {
	Time      uint32 `json:"t"`
	MemoryKiB uint32 `json:"m"`
	Threads   uint8  `json:"p"`
}

// DefaultKDF is RFC 9106 §4's second recommended option (64 MiB, 3 passes).
var DefaultKDF = KDFParams{Time: 3, MemoryKiB: 64 * 1024, Threads: 4}

// maxKDF bounds the parameters read back from a database, so that a
// tampered header cannot make Open allocate unbounded memory.
var maxKDF = KDFParams{Time: 64, MemoryKiB: 4 * 1024 * 1024, Threads: 64}

func (p KDFParams) check() error {
	if p.Time < 1 || p.MemoryKiB < 8*uint32(p.Threads) || p.Threads < 1 ||
		p.Time > maxKDF.Time || p.MemoryKiB > maxKDF.MemoryKiB || p.Threads > maxKDF.Threads {
		return fmt.Errorf("profile: unacceptable Argon2id parameters %+v", p)
	}
	return nil
}

// header is the plaintext meta row "kdf".
type header struct {
	Version int       `json:"v"`
	Salt    []byte    `json:"salt"`
	KDF     KDFParams `json:"kdf"`
}

const (
	formatVersion = 1
	saltSize      = 16
	bucketIDSize  = 16
	rowIDSize     = 32
	verifierText  = "parley profile verifier v1"
	adPrefix      = "parley profile v1\x00"
)

func deriveKeys(passphrase []byte, h header) cipherState {
	master := argon2.IDKey(passphrase, h.Salt, h.KDF.Time, h.KDF.MemoryKiB, h.KDF.Threads, 32)
	enc, err1 := hkdf.Key(sha256.New, master, h.Salt, "parley profile encryption", chacha20poly1305.KeySize)
	mac, err2 := hkdf.Key(sha256.New, master, h.Salt, "parley profile identifiers", 32)
	if err1 != nil || err2 != nil {
		// Only possible for absurd lengths, which these are not.
		panic("profile: hkdf: " + errors.Join(err1, err2).Error())
	}
	clear(master)
	return cipherState{encKey: enc, macKey: mac}
}

func (c cipherState) bucketID(bucket string) []byte {
	m := hmac.New(sha256.New, c.macKey)
	m.Write([]byte("bucket\x00"))
	m.Write([]byte(bucket))
	return m.Sum(nil)[:bucketIDSize]
}

func (c cipherState) rowID(bucket, key string) []byte {
	m := hmac.New(sha256.New, c.macKey)
	m.Write([]byte("row\x00"))
	var n [binary.MaxVarintLen64]byte
	m.Write(n[:binary.PutUvarint(n[:], uint64(len(bucket)))])
	m.Write([]byte(bucket))
	m.Write([]byte(key))
	return m.Sum(nil)
}

func ad(bucketID, rowID []byte) []byte {
	b := make([]byte, 0, len(adPrefix)+2+len(bucketID)+len(rowID))
	b = append(b, adPrefix...)
	b = append(b, byte(len(bucketID)))
	b = append(b, bucketID...)
	b = append(b, byte(len(rowID)))
	return append(b, rowID...)
}

// sealRow encrypts uvarint(len(key)) || key || value.
func (c cipherState) sealRow(bucketID, rowID, key, value []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(c.encKey)
	if err != nil {
		return nil, err
	}
	pt := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(key)+len(value)), uint64(len(key)))
	pt = append(pt, key...)
	pt = append(pt, value...)
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(pt)+aead.Overhead())
	rand.Read(out)
	out = aead.Seal(out, out, pt, ad(bucketID, rowID))
	clear(pt)
	return out, nil
}

func (c cipherState) openRow(bucketID, rowID, sealed []byte) (key, value []byte, err error) {
	aead, err := chacha20poly1305.NewX(c.encKey)
	if err != nil {
		return nil, nil, err
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, nil, ErrCorrupt
	}
	pt, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], ad(bucketID, rowID))
	if err != nil {
		return nil, nil, ErrCorrupt
	}
	n, k := binary.Uvarint(pt)
	if k <= 0 || n > uint64(len(pt)-k) {
		return nil, nil, ErrCorrupt
	}
	return pt[k : k+int(n)], pt[k+int(n):], nil
}

// Store is an open profile.
type Store struct {
	dir  string
	b    Backend
	seal cipherState
}

type cipherState struct {
	encKey []byte
	macKey []byte
}

// Dir returns the profile directory (in the browser: the IndexedDB
// database's name).
func (s *Store) Dir() string { return s.dir }

// CreateOn makes a new profile on an empty backend, protected by
// passphrase; dir is what Dir reports. On error the caller closes b and
// removes whatever it made.
func CreateOn(b Backend, dir string, passphrase []byte, kdf KDFParams) (*Store, error) {
	if err := kdf.check(); err != nil {
		return nil, err
	}
	if len(passphrase) == 0 {
		return nil, errors.New("profile: empty passphrase")
	}
	h := header{Version: formatVersion, Salt: make([]byte, saltSize), KDF: kdf}
	rand.Read(h.Salt)
	s := &Store{dir: dir, b: b, seal: deriveKeys(passphrase, h)}
	hb, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	verifier, err := s.seal.sealRow([]byte("meta"), []byte("verifier"), nil, []byte(verifierText))
	if err != nil {
		return nil, err
	}
	err = b.Update(context.Background(), func(tx RawTx) error {
		if _, err := tx.Meta(metaKDF); !errors.Is(err, ErrNotFound) {
			if err == nil {
				return ErrExist
			}
			return err
		}
		if err := tx.PutMeta(metaKDF, hb); err != nil {
			return err
		}
		return tx.PutMeta(metaVerifier, verifier)
	})
	if err != nil {
		return nil, fmt.Errorf("profile: write header: %w", err)
	}
	return s, nil
}

// Meta rows: the plaintext header and the sealed verifier.
const (
	metaKDF      = "kdf"
	metaVerifier = "verifier"
)

// OpenOn opens the profile on b with passphrase: ErrNotExist if b holds
// none, ErrWrongPassphrase for a wrong passphrase. The caller closes b
// on error.
func OpenOn(b Backend, dir string, passphrase []byte) (*Store, error) {
	var hb, verifier []byte
	err := b.Update(context.Background(), func(tx RawTx) (err error) {
		if hb, err = tx.Meta(metaKDF); err != nil {
			return err
		}
		verifier, err = tx.Meta(metaVerifier)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		if hb == nil {
			return nil, ErrNotExist
		}
		return nil, fmt.Errorf("%w: no verifier", ErrCorrupt)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read header: %v", ErrCorrupt, err)
	}
	var h header
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	if h.Version != formatVersion {
		return nil, fmt.Errorf("profile: unsupported format version %d", h.Version)
	}
	if len(h.Salt) != saltSize {
		return nil, fmt.Errorf("%w: salt is %d bytes", ErrCorrupt, len(h.Salt))
	}
	if err := h.KDF.check(); err != nil {
		return nil, err
	}
	s := &Store{dir: dir, b: b, seal: deriveKeys(passphrase, h)}
	_, pt, err := s.seal.openRow([]byte("meta"), []byte("verifier"), verifier)
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	if !bytes.Equal(pt, []byte(verifierText)) {
		return nil, ErrCorrupt
	}
	return s, nil
}

// Close closes the backend.
func (s *Store) Close() error { return s.b.Close() }

// Lock takes the profile's inter-process lock, waiting until ctx is done
// (ErrLocked then). The returned function releases it. Lock is not
// reentrant.
func (s *Store) Lock(ctx context.Context) (unlock func(), err error) { return s.b.Lock(ctx) }

// Compact makes what was deleted unrecoverable from the files, where the
// backend keeps files that could still hold it (SQLite: deleted rows are
// overwritten already, with secure_delete, and this checkpoints the WAL,
// which still holds the pages as they were before, into the database and
// truncates it to zero bytes). Other backends have nothing to do.
func (s *Store) Compact(ctx context.Context) error {
	if c, ok := s.b.(compacter); ok {
		return c.Compact(ctx)
	}
	return nil
}

// compacter is a Backend whose files may keep deleted rows until told.
type compacter interface {
	Compact(ctx context.Context) error
}

// rowWalker is a Backend that can list every row it holds.
type rowWalker interface {
	AllRows(fn func(bucket []byte, r RawRow) error) error
}

// Values calls fn with every stored row as it is on disk (sealed) and
// opened, for audits: a test that checks something deleted is gone reads
// every value there is.
func (s *Store) Values(fn func(sealed, value []byte) error) error {
	w, ok := s.b.(rowWalker)
	if !ok {
		return errors.New("profile: this profile's backend cannot list its rows")
	}
	return w.AllRows(func(bucket []byte, r RawRow) error {
		_, v, err := s.seal.openRow(bucket, r.ID, r.Sealed)
		if err != nil {
			return err
		}
		return fn(r.Sealed, v)
	})
}

// Item is a row of a bucket.
type Item struct {
	Key   string
	Value []byte
}

// Tx is a read-write transaction; see Update.
type Tx struct {
	s  *Store
	tx RawTx
}

// Update runs fn in one backend transaction, committed if fn returns nil
// and rolled back otherwise.
func (s *Store) Update(fn func(tx *Tx) error) error {
	return s.UpdateContext(context.Background(), fn)
}

// UpdateContext is Update with a context.
func (s *Store) UpdateContext(ctx context.Context, fn func(tx *Tx) error) error {
	var fnErr error
	err := s.b.Update(ctx, func(raw RawTx) error { fnErr = fn(&Tx{s: s, tx: raw}); return fnErr })
	if err != nil && fnErr == nil {
		return storageErr(err) // beginning or committing failed
	}
	return err
}

// Get returns the value stored under (bucket, key), or ErrNotFound.
func (s *Store) Get(bucket, key string) (v []byte, err error) {
	err = s.Update(func(tx *Tx) error { v, err = tx.Get(bucket, key); return err })
	return v, err
}

// Put stores value under (bucket, key), replacing any previous value but
// keeping its position in List order.
func (s *Store) Put(bucket, key string, value []byte) error {
	return s.Update(func(tx *Tx) error { return tx.Put(bucket, key, value) })
}

// Delete removes (bucket, key); deleting a missing row is not an error.
func (s *Store) Delete(bucket, key string) error {
	return s.Update(func(tx *Tx) error { return tx.Delete(bucket, key) })
}

// List returns every row of bucket in insertion order.
func (s *Store) List(bucket string) (items []Item, err error) {
	err = s.Update(func(tx *Tx) error { items, err = tx.List(bucket); return err })
	return items, err
}

// Get returns the value stored under (bucket, key), or ErrNotFound.
func (t *Tx) Get(bucket, key string) ([]byte, error) {
	b, r := t.s.seal.bucketID(bucket), t.s.seal.rowID(bucket, key)
	sealed, err := t.tx.Get(b, r)
	if err != nil {
		return nil, storageErr(err)
	}
	k, v, err := t.s.seal.openRow(b, r, sealed)
	if err != nil {
		return nil, err
	}
	if string(k) != key {
		return nil, ErrCorrupt
	}
	return v, nil
}

// Has reports whether (bucket, key) exists.
func (t *Tx) Has(bucket, key string) (bool, error) {
	_, err := t.Get(bucket, key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Put stores value under (bucket, key).
func (t *Tx) Put(bucket, key string, value []byte) error {
	b, r := t.s.seal.bucketID(bucket), t.s.seal.rowID(bucket, key)
	sealed, err := t.s.seal.sealRow(b, r, []byte(key), value)
	if err != nil {
		return err
	}
	return storageErr(t.tx.Put(b, r, sealed))
}

// Delete removes (bucket, key).
func (t *Tx) Delete(bucket, key string) error {
	b, r := t.s.seal.bucketID(bucket), t.s.seal.rowID(bucket, key)
	return storageErr(t.tx.Delete(b, r))
}

// DeleteBucket removes every row of bucket.
func (t *Tx) DeleteBucket(bucket string) error {
	return storageErr(t.tx.DeleteBucket(t.s.seal.bucketID(bucket)))
}

// List returns every row of bucket in insertion order.
func (t *Tx) List(bucket string) ([]Item, error) {
	b := t.s.seal.bucketID(bucket)
	rows, err := t.tx.List(b)
	if err != nil {
		return nil, storageErr(err)
	}
	items := make([]Item, 0, len(rows))
	for _, row := range rows {
		k, v, err := t.s.seal.openRow(b, row.ID, row.Sealed)
		if err != nil {
			return nil, err
		}
		if !hmac.Equal(t.s.seal.rowID(bucket, string(k)), row.ID) {
			return nil, ErrCorrupt
		}
		items = append(items, Item{Key: string(k), Value: v})
	}
	return items, nil
}

// Count returns the number of rows in bucket.
func (t *Tx) Count(bucket string) (int, error) {
	n, err := t.tx.Count(t.s.seal.bucketID(bucket))
	return n, storageErr(err)
}

// PutJSON stores v encoded as JSON.
func (t *Tx) PutJSON(bucket, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("profile: encode %s: %w", bucket, err)
	}
	return t.Put(bucket, key, b)
}

// GetJSON decodes the JSON value under (bucket, key) into v.
func (t *Tx) GetJSON(bucket, key string, v any) error {
	b, err := t.Get(bucket, key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("profile: decode %s: %w", bucket, err)
	}
	return nil
}
