package log

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Store keeps a log's records and the tlog hashes over them. MemStore is
// the in-memory one; the server's is SQL. A Store is used by one Log at a
// time, which serializes Append.
type Store interface {
	// ReadHashes returns the stored hashes at the given storage indexes
	// (tlog.StoredHashIndex), or an error if any is not stored.
	tlog.HashReader
	// Size returns the number of records stored.
	Size() (int64, error)
	// Append stores record n (n equal to Size) and the hashes
	// tlog.StoredHashes computed for it, which belong at storage indexes
	// tlog.StoredHashIndex(0, n) onwards. Both are stored, or neither.
	Append(n int64, record []byte, hashes []tlog.Hash) error
	// ReadRecord returns record n.
	ReadRecord(n int64) ([]byte, error)
}

var (
	// ErrTimeGoesBack is returned by Append for an epoch time earlier than
	// the previous epoch's: the draft (§4) requires log entry timestamps to
	// be monotonic, and clients check it.
	ErrTimeGoesBack = errors.New("log: epoch time earlier than the previous epoch's")
	// ErrNoSuchEpoch is returned for an epoch or tree size the log does
	// not have.
	ErrNoSuchEpoch = errors.New("log: no such epoch")
)

// Log is the directory's side of the log: it appends one Entry per epoch
// and signs checkpoints. It is safe for concurrent use.
type Log struct {
	origin string
	signer note.Signer
	store  Store

	mu   sync.Mutex
	size int64
	last Entry // the latest entry, if size > 0
}

// Open returns the log kept in store, named origin and signed by signer
// (a note key named after the origin, by convention).
func Open(store Store, origin string, signer note.Signer) (*Log, error) {
	if err := checkOrigin(origin); err != nil {
		return nil, err
	}
	size, err := store.Size()
	if err != nil {
		return nil, fmt.Errorf("log: reading size: %w", err)
	}
	l := &Log{origin: origin, signer: signer, store: store, size: size}
	if size > 0 {
		if l.last, err = l.Entry(uint64(size - 1)); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Size returns the number of epochs in the log.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size
}

// Append adds the next epoch, whose prefix tree has root prefixRoot, at
// time t (truncated to the millisecond; ErrTimeGoesBack if before the
// previous epoch's), and returns its entry and a checkpoint signed by the
// log that includes it.
func (l *Log) Append(prefixRoot [32]byte, t time.Time) (Entry, []byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := Entry{Epoch: uint64(l.size), Time: t.Truncate(time.Millisecond).UTC(), PrefixRoot: prefixRoot}
	if l.size > 0 && e.Time.Before(l.last.Time) {
		return Entry{}, nil, fmt.Errorf("%w: %v after %v", ErrTimeGoesBack, e.Time, l.last.Time)
	}
	rec, err := e.MarshalBinary()
	if err != nil {
		return Entry{}, nil, err
	}
	hashes, err := tlog.StoredHashes(l.size, rec, l.store)
	if err != nil {
		return Entry{}, nil, fmt.Errorf("log: hashing epoch %d: %w", e.Epoch, err)
	}
	if err := l.store.Append(l.size, rec, hashes); err != nil {
		return Entry{}, nil, fmt.Errorf("log: storing epoch %d: %w", e.Epoch, err)
	}
	l.size++
	l.last = e
	cp, err := l.signLocked()
	if err != nil {
		return Entry{}, nil, err
	}
	return e, cp, nil
}

// Checkpoint returns the current checkpoint, signed by the log.
func (l *Log) Checkpoint() ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.signLocked()
}

func (l *Log) signLocked() ([]byte, error) {
	h, err := tlog.TreeHash(l.size, l.store)
	if err != nil {
		return nil, fmt.Errorf("log: tree hash at size %d: %w", l.size, err)
	}
	return Sign(Checkpoint{Origin: l.origin, Size: l.size, Hash: h}, l.signer)
}

// Entry returns the entry of one epoch.
func (l *Log) Entry(epoch uint64) (Entry, error) {
	l.mu.Lock()
	size := l.size
	l.mu.Unlock()
	if epoch >= uint64(size) {
		return Entry{}, fmt.Errorf("%w: epoch %d, log has %d", ErrNoSuchEpoch, epoch, size)
	}
	rec, err := l.store.ReadRecord(int64(epoch))
	if err != nil {
		return Entry{}, fmt.Errorf("log: reading epoch %d: %w", epoch, err)
	}
	e, err := ParseEntry(rec)
	if err != nil {
		return Entry{}, fmt.Errorf("log: stored epoch %d: %w", epoch, err)
	}
	if e.Epoch != epoch {
		return Entry{}, fmt.Errorf("log: stored epoch %d says it is epoch %d", epoch, e.Epoch)
	}
	return e, nil
}

// ProveEntry returns the proof that epoch's entry is in the checkpoint of
// size treeSize.
func (l *Log) ProveEntry(epoch uint64, treeSize int64) (tlog.RecordProof, error) {
	if err := l.checkSize(uint64(treeSize)); err != nil {
		return nil, err
	}
	if treeSize <= 0 || epoch >= uint64(treeSize) {
		return nil, fmt.Errorf("%w: epoch %d in a tree of %d", ErrNoSuchEpoch, epoch, treeSize)
	}
	p, err := tlog.ProveRecord(treeSize, int64(epoch), l.store)
	if err != nil {
		return nil, fmt.Errorf("log: proving epoch %d in %d: %w", epoch, treeSize, err)
	}
	return p, nil
}

// ProveConsistency returns the proof that the checkpoint of size newSize
// extends the one of size oldSize. A proof from size 0 is empty.
func (l *Log) ProveConsistency(oldSize, newSize int64) (tlog.TreeProof, error) {
	if oldSize < 0 || oldSize > newSize {
		return nil, fmt.Errorf("%w: consistency from %d to %d", ErrNoSuchEpoch, oldSize, newSize)
	}
	if err := l.checkSize(uint64(newSize)); err != nil {
		return nil, err
	}
	if oldSize == 0 {
		return tlog.TreeProof{}, nil
	}
	p, err := tlog.ProveTree(newSize, oldSize, l.store)
	if err != nil {
		return nil, fmt.Errorf("log: proving %d extends %d: %w", newSize, oldSize, err)
	}
	return p, nil
}

// checkSize refuses a tree size beyond the log's.
func (l *Log) checkSize(n uint64) error {
	l.mu.Lock()
	size := l.size
	l.mu.Unlock()
	if n > uint64(size) {
		return fmt.Errorf("%w: tree size %d, log has %d", ErrNoSuchEpoch, n, size)
	}
	return nil
}

// MemStore is a Store in memory, for tests and tools. It is safe for
// concurrent use.
type MemStore struct {
	mu      sync.RWMutex
	records [][]byte
	hashes  []tlog.Hash
}

// ReadHashes implements tlog.HashReader.
func (m *MemStore) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(m.hashes)) {
			return nil, fmt.Errorf("log: hash %d not stored (have %d)", x, len(m.hashes))
		}
		out[i] = m.hashes[x]
	}
	return out, nil
}

// Size implements Store.
func (m *MemStore) Size() (int64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return int64(len(m.records)), nil
}

// Append implements Store.
func (m *MemStore) Append(n int64, record []byte, hashes []tlog.Hash) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n != int64(len(m.records)) {
		return fmt.Errorf("log: appending record %d to a store of %d", n, len(m.records))
	}
	if at := tlog.StoredHashIndex(0, n); at != int64(len(m.hashes)) {
		return fmt.Errorf("log: hashes for record %d belong at %d, store has %d", n, at, len(m.hashes))
	}
	m.records = append(m.records, append([]byte(nil), record...))
	m.hashes = append(m.hashes, hashes...)
	return nil
}

// ReadRecord implements Store.
func (m *MemStore) ReadRecord(n int64) ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if n < 0 || n >= int64(len(m.records)) {
		return nil, fmt.Errorf("log: record %d not stored (have %d)", n, len(m.records))
	}
	return append([]byte(nil), m.records[n]...), nil
}
