package profile

import (
	"context"
	"errors"
)

// ErrLocked is returned by Lock when another process keeps the profile
// locked past the context's deadline.
var ErrLocked = errors.New("profile: in use by another parley process")

// Backend is where a profile's rows live. It sees only what the Store
// has already sealed: opaque bucket and row identifiers (HMACs) and
// sealed values, plus two meta rows (the plaintext Argon2id header and
// the sealed verifier). Implementations: SQLite (sqlite.go, every
// platform but the browser) and IndexedDB (indexeddb.go, GOOS=js) over
// the in-memory rows of memory.go. All run the contract in
// contract_test.go.
type Backend interface {
	// Update runs fn in one transaction: every change fn made is
	// durable when Update returns nil, and none is if fn or the commit
	// fails.
	Update(ctx context.Context, fn func(RawTx) error) error
	// Lock takes the profile's whole-profile lock (see Store.Lock).
	Lock(ctx context.Context) (unlock func(), err error)
	Close() error
}

// RawTx is a backend transaction over sealed rows.
type RawTx interface {
	// Meta returns the meta row name, or ErrNotFound.
	Meta(name string) ([]byte, error)
	PutMeta(name string, value []byte) error
	// Get returns the sealed value of (bucket, id), or ErrNotFound.
	Get(bucket, id []byte) ([]byte, error)
	// Put stores a sealed value. A new row goes last in its bucket's
	// List order; a replaced row keeps its place.
	Put(bucket, id, sealed []byte) error
	// Delete removes a row; a missing row is not an error.
	Delete(bucket, id []byte) error
	DeleteBucket(bucket []byte) error
	// List returns a bucket's rows in insertion order.
	List(bucket []byte) ([]RawRow, error)
	Count(bucket []byte) (int, error)
}

// RawRow is a sealed row as a backend holds it.
type RawRow struct {
	ID     []byte
	Sealed []byte
}

// chanLock is a context-aware mutex: the profile lock of backends whose
// only users are in this process (the browser tab; see docs/web.md for
// tabs).
type chanLock chan struct{}

func newChanLock() chanLock { return make(chanLock, 1) }

func (l chanLock) lock(ctx context.Context) (func(), error) {
	select {
	case l <- struct{}{}:
		return func() { <-l }, nil
	case <-ctx.Done():
		return nil, ErrLocked
	}
}
