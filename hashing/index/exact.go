package index

import (
	"crypto/md5"
	"crypto/sha256"
	"slices"
	"sync"
)

// Exact indexes MD5 and SHA-256 digests of whole files. Several entries
// may share a digest (the same file in two banks). It is safe for
// concurrent use.
type Exact struct {
	mu     sync.RWMutex
	md5    map[[md5.Size]byte][]ID
	sha256 map[[sha256.Size]byte][]ID
	keys   []exactKey // by ID
	live   int
}

type exactKey struct {
	sha     bool
	sum     [sha256.Size]byte // MD5 in the first 16 bytes
	deleted bool
}

// NewExact returns an empty exact-digest index.
func NewExact() *Exact {
	return &Exact{md5: make(map[[md5.Size]byte][]ID), sha256: make(map[[sha256.Size]byte][]ID)}
}

// InsertMD5 adds an MD5 digest and returns its ID.
func (e *Exact) InsertMD5(sum [md5.Size]byte) ID {
	e.mu.Lock()
	defer e.mu.Unlock()
	id := ID(len(e.keys))
	k := exactKey{}
	copy(k.sum[:], sum[:])
	e.keys = append(e.keys, k)
	e.md5[sum] = append(e.md5[sum], id)
	e.live++
	return id
}

// InsertSHA256 adds a SHA-256 digest and returns its ID.
func (e *Exact) InsertSHA256(sum [sha256.Size]byte) ID {
	e.mu.Lock()
	defer e.mu.Unlock()
	id := ID(len(e.keys))
	e.keys = append(e.keys, exactKey{sha: true, sum: sum})
	e.sha256[sum] = append(e.sha256[sum], id)
	e.live++
	return id
}

// LookupMD5 returns the IDs of entries with this MD5, in increasing order.
func (e *Exact) LookupMD5(sum [md5.Size]byte) []ID {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return slices.Clone(e.md5[sum])
}

// LookupSHA256 returns the IDs of entries with this SHA-256, in increasing
// order.
func (e *Exact) LookupSHA256(sum [sha256.Size]byte) []ID {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return slices.Clone(e.sha256[sum])
}

// Len returns the number of entries, not counting deleted ones.
func (e *Exact) Len() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.live
}

// Delete removes the entry with the given ID, reporting whether it was
// present.
func (e *Exact) Delete(id ID) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if int(id) >= len(e.keys) || e.keys[id].deleted {
		return false
	}
	k := &e.keys[id]
	k.deleted = true
	e.live--
	remove := func(ids []ID) []ID {
		i, ok := slices.BinarySearch(ids, id)
		if !ok {
			return ids
		}
		return slices.Delete(ids, i, i+1)
	}
	if k.sha {
		if ids := remove(e.sha256[k.sum]); len(ids) > 0 {
			e.sha256[k.sum] = ids
		} else {
			delete(e.sha256, k.sum)
		}
	} else {
		var m [md5.Size]byte
		copy(m[:], k.sum[:])
		if ids := remove(e.md5[m]); len(ids) > 0 {
			e.md5[m] = ids
		} else {
			delete(e.md5, m)
		}
	}
	return true
}
