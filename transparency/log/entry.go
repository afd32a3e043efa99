// Package log is key transparency's log of checkpoints: an append-only
// Merkle log in which each epoch of the directory appends one record (its
// number, the time, and the root of that epoch's prefix tree, package
// transparency/prefix), with signed checkpoints of the log, proofs that an
// epoch's record is in a checkpoint, and proofs that a later checkpoint
// extends an earlier one.
//
// It is the draft's log tree (draft-ietf-keytrans-protocol-05 §3.2, §3.4,
// §11.8, §12.1) built from the Go ecosystem's standard pieces instead of the
// draft's own encodings (docs/transparency.md explains the trade):
//
//   - the Merkle log is golang.org/x/mod/sumdb/tlog, RFC 6962 hashing
//     (record hash SHA-256(0x00 || record), interior SHA-256(0x01 || l || r)),
//     with its record and consistency proofs (ProveRecord/CheckRecord,
//     ProveTree/CheckTree); hashes are read through tlog.HashReader from a
//     Store, kept in memory here (MemStore) and in SQL by the server;
//   - a checkpoint is a C2SP tlog-checkpoint body (origin, size, root hash)
//     in a golang.org/x/mod/sumdb/note signed note: the directory signs it
//     with its Ed25519 note key, and auditors (witnesses) that have checked
//     it extends what they saw before add their own signatures to the same
//     note (Cosign);
//   - clients hold a Verifier, which requires the signatures its Policy asks
//     for and refuses any checkpoint that is not an extension of the latest
//     one it accepted (ErrInconsistent, with both checkpoints as evidence).
//
// The package is pure: no network, no SQL, no clock (callers pass times).
package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// EntrySize is the size of an encoded Entry.
const EntrySize = 8 + 8 + 32

// Entry is the record the directory appends to the log for one epoch: the
// draft's LogEntry (§11.8: timestamp, prefix tree root) with the epoch
// number in front.
type Entry struct {
	// Epoch is the entry's position in the log, counted from 0. It is
	// redundant with the position, which the log's hashes bind, and is
	// checked against it so that an entry cannot be shown as another epoch's.
	Epoch uint64
	// Time is when the epoch was published, with millisecond precision (as
	// the draft's timestamp: milliseconds since the Unix epoch). Times never
	// decrease along the log (§4).
	Time time.Time
	// PrefixRoot is the root hash of the epoch's prefix tree.
	PrefixRoot [32]byte
}

var (
	// ErrMalformedEntry is returned for bytes that are not an encoded Entry,
	// and by Log.Append for a time that cannot be encoded.
	ErrMalformedEntry = errors.New("log: malformed entry")
)

// timeMillis returns t in milliseconds since the Unix epoch, refusing
// times before 1970 (the draft's timestamp is unsigned).
func timeMillis(t time.Time) (uint64, error) {
	ms := t.UnixMilli()
	if ms < 0 {
		return 0, fmt.Errorf("%w: time %v is before 1970", ErrMalformedEntry, t)
	}
	return uint64(ms), nil
}

// MarshalBinary encodes e as epoch (uint64), time in milliseconds since the
// Unix epoch (uint64), prefix root (32 bytes), big endian: 48 bytes. These
// bytes are the log record whose tlog.RecordHash is the log's leaf.
func (e Entry) MarshalBinary() ([]byte, error) {
	ms, err := timeMillis(e.Time)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, EntrySize)
	b = binary.BigEndian.AppendUint64(b, e.Epoch)
	b = binary.BigEndian.AppendUint64(b, ms)
	return append(b, e.PrefixRoot[:]...), nil
}

// ParseEntry decodes an Entry, refusing anything but exactly EntrySize
// bytes with a time that fits time.Time's millisecond range.
func ParseEntry(b []byte) (Entry, error) {
	if len(b) != EntrySize {
		return Entry{}, fmt.Errorf("%w: %d bytes, want %d", ErrMalformedEntry, len(b), EntrySize)
	}
	ms := binary.BigEndian.Uint64(b[8:16])
	if ms > 1<<63-1 {
		return Entry{}, fmt.Errorf("%w: time out of range", ErrMalformedEntry)
	}
	e := Entry{
		Epoch: binary.BigEndian.Uint64(b[:8]),
		Time:  time.UnixMilli(int64(ms)).UTC(),
	}
	copy(e.PrefixRoot[:], b[16:])
	return e, nil
}
