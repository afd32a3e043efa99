package directory

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/parleychat/parley/transparency/commit"
	"github.com/parleychat/parley/transparency/prefix"
)

// Changes is what an auditor is given of one epoch: for each label that
// got a new version, its index and commitment; for each label removed, its
// index. No labels and no values: an auditor learns how many accounts
// changed, not which or how.
type Changes struct {
	Epoch    uint64
	Updates  []IndexedCommitment
	Removals []prefix.Index
}

// IndexedCommitment is one update as an auditor sees it.
type IndexedCommitment struct {
	Index      prefix.Index
	Commitment commit.Commitment
}

// ErrMalformedChanges: an encoded Changes that does not parse.
var ErrMalformedChanges = errors.New("directory: malformed epoch changes")

// changesMagic starts every encoding, so that other bytes are not taken
// for changes.
const changesMagic = "parley kt changes v1\n"

// MarshalBinary encodes c as the magic line, then the epoch (uint64), the
// number of updates (uint32), each update's index and commitment, the
// number of removals (uint32) and each removal's index, big endian.
func (c Changes) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, len(changesMagic)+16+len(c.Updates)*64+len(c.Removals)*32)
	b = append(b, changesMagic...)
	b = binary.BigEndian.AppendUint64(b, c.Epoch)
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.Updates)))
	for _, u := range c.Updates {
		b = append(b, u.Index[:]...)
		b = append(b, u.Commitment[:]...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.Removals)))
	for _, r := range c.Removals {
		b = append(b, r[:]...)
	}
	return b, nil
}

// ParseChanges decodes what MarshalBinary encodes, refusing anything else:
// counts must match the length exactly, so nothing is allocated beyond
// what the input holds.
func ParseChanges(b []byte) (Changes, error) {
	var c Changes
	if len(b) < len(changesMagic)+16 || string(b[:len(changesMagic)]) != changesMagic {
		return c, fmt.Errorf("%w: no header", ErrMalformedChanges)
	}
	b = b[len(changesMagic):]
	c.Epoch = binary.BigEndian.Uint64(b)
	n := uint64(binary.BigEndian.Uint32(b[8:]))
	b = b[12:]
	if n*64+4 > uint64(len(b)) {
		return Changes{}, fmt.Errorf("%w: %d updates in %d bytes", ErrMalformedChanges, n, len(b))
	}
	c.Updates = make([]IndexedCommitment, n)
	for i := range c.Updates {
		copy(c.Updates[i].Index[:], b)
		copy(c.Updates[i].Commitment[:], b[32:])
		b = b[64:]
	}
	m := uint64(binary.BigEndian.Uint32(b))
	b = b[4:]
	if m*32 != uint64(len(b)) {
		return Changes{}, fmt.Errorf("%w: %d removals in %d bytes", ErrMalformedChanges, m, len(b))
	}
	c.Removals = make([]prefix.Index, m)
	for i := range c.Removals {
		copy(c.Removals[i][:], b)
		b = b[32:]
	}
	return c, nil
}
