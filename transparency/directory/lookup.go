package directory

import (
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/parleychat/parley/transparency/log"
	"github.com/parleychat/parley/transparency/prefix"
)

// Lookup is the directory's part of an answer about one label at the
// served epoch: the checkpoint and how it extends the asker's, the
// epoch's log entry and its proof, the VRF proof for the label and the
// prefix proof for its index. The caller adds, for a label that is
// present, the stored version it is at (Found, Epoch) as an Opening.
type Lookup struct {
	Checkpoint  []byte
	Consistency tlog.TreeProof // from the asker's known size; nil if none
	Record      []byte         // the served epoch's log entry
	EntryProof  tlog.RecordProof
	VRFProof    []byte
	Proof       *prefix.Proof
	// Found: the label is in the served epoch, at the version published
	// in epoch Epoch (whose stored Update the caller sends along).
	Found bool
	Epoch uint64
	// Served is the served epoch the answer is for.
	Served uint64
}

// Search answers for label at the served epoch. knownSize is the size of
// the latest checkpoint the asker has accepted (0 if none): the answer
// carries the consistency proof from it. An asker that claims to know
// more than is served gets no proof, and its own checks see a rollback.
func (d *Directory) Search(label string, knownSize int64) (*Lookup, error) {
	if err := checkLabel(label); err != nil {
		return nil, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.pubNote == nil {
		return nil, ErrNotServing
	}
	l := &Lookup{Checkpoint: d.pubNote}
	var err error
	if knownSize > 0 && knownSize < d.pubSize {
		if l.Consistency, err = d.log.ProveConsistency(knownSize, d.pubSize); err != nil {
			return nil, err
		}
	}
	epoch := uint64(d.pubSize - 1)
	l.Served = epoch
	if l.Record, err = d.logStore.ReadRecord(int64(epoch)); err != nil {
		return nil, err
	}
	if l.EntryProof, err = d.log.ProveEntry(epoch, d.pubSize); err != nil {
		return nil, err
	}
	st, pending := d.before[label]
	if !pending {
		st = d.labels[label]
	}
	if st != nil {
		l.VRFProof = st.vrfProof
		l.Found, l.Epoch = true, st.epoch
		var v prefix.Value
		v, l.Found, l.Proof = d.pubTree.Lookup(st.index)
		if !l.Found || v != st.value {
			return nil, fmt.Errorf("directory: label state out of step with the tree at epoch %d", epoch)
		}
		return l, nil
	}
	// A label not in the directory: its proof is computed now, since it
	// was never inserted (the vrf package's note on timing applies; the
	// name is the asker's own question).
	idx, proof, err := indexFor(d.cfg.VRF, label)
	if err != nil {
		return nil, err
	}
	l.VRFProof = proof
	_, l.Found, l.Proof = d.pubTree.Lookup(idx)
	if l.Found {
		return nil, fmt.Errorf("directory: absent label's index is in the tree at epoch %d", epoch)
	}
	return l, nil
}

// Consistency proves that the served checkpoint of size newSize extends
// the one of size oldSize (clients comparing checkpoints they were shown).
func (d *Directory) Consistency(oldSize, newSize int64) (tlog.TreeProof, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if newSize > d.pubSize {
		return nil, fmt.Errorf("%w: size %d, %d served", log.ErrNoSuchEpoch, newSize, d.pubSize)
	}
	return d.log.ProveConsistency(oldSize, newSize)
}

// Record returns an epoch's log record (for auditors), committed epochs
// only.
func (d *Directory) Record(epoch uint64) ([]byte, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if epoch >= uint64(d.log.Size()) {
		return nil, fmt.Errorf("%w: epoch %d", log.ErrNoSuchEpoch, epoch)
	}
	return d.logStore.ReadRecord(int64(epoch))
}
