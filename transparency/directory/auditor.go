package directory

import (
	"errors"
	"fmt"
	"slices"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/parleychat/parley/transparency/log"
	"github.com/parleychat/parley/transparency/prefix"
)

// ErrAudit: an epoch the auditor refuses (the directory broke one of its
// rules, or sent something else than it committed to).
var ErrAudit = errors.New("directory: audit failed")

// Auditor follows a directory epoch by epoch and cosigns its checkpoints
// (draft-ietf-keytrans-architecture-09, "Third-Party Auditing"). It keeps
// the whole prefix tree (indexes and leaf values only) and the log, and
// checks for each epoch that:
//   - it is the next epoch, and its time does not go back;
//   - each update's leaf is chained from the label's previous leaf
//     (LeafValue), so no version can ever leave a label's history;
//   - each removal removes a label that is there, and no label is both
//     updated and removed;
//   - the resulting tree's root is the one the epoch's log entry names.
//
// It then cosigns a checkpoint only if it is one of the log it rebuilt:
// same size or smaller, same root. So what it cosigns always extends what
// it cosigned before, and what clients are served has had every change
// checked. An Auditor is not safe for concurrent use.
type Auditor struct {
	policy log.Policy
	store  *log.MemStore
	tree   *prefix.Tree
	size   int64
	last   log.Entry
}

// NewAuditor returns an auditor of the log that policy names (its origin
// and the directory's verifier; witnesses are not needed).
func NewAuditor(policy log.Policy) *Auditor {
	return &Auditor{policy: policy, store: new(log.MemStore), tree: prefix.Empty()}
}

// Size is the number of epochs audited.
func (a *Auditor) Size() int64 { return a.size }

// Len is the number of labels in the audited directory.
func (a *Auditor) Len() int { return a.tree.Len() }

// Apply audits the next epoch: its log record and its changes. A refused
// epoch changes nothing.
func (a *Auditor) Apply(record []byte, c Changes) error {
	e, err := log.ParseEntry(record)
	if err != nil {
		return fmt.Errorf("%w: epoch %d: %w", ErrAudit, a.size, err)
	}
	if e.Epoch != uint64(a.size) || c.Epoch != e.Epoch {
		return fmt.Errorf("%w: expected epoch %d, got entry for %d and changes for %d", ErrAudit, a.size, e.Epoch, c.Epoch)
	}
	if a.size > 0 && e.Time.Before(a.last.Time) {
		return fmt.Errorf("%w: epoch %d's time %v is before the previous epoch's %v", ErrAudit, e.Epoch, e.Time, a.last.Time)
	}
	batch := make([]prefix.Entry, 0, len(c.Updates))
	for _, u := range c.Updates {
		prev, _ := a.tree.Get(u.Index) // zero for a new label
		batch = append(batch, prefix.Entry{Index: u.Index, Value: LeafValue(prev, e.Epoch, u.Commitment)})
	}
	for _, r := range c.Removals {
		if slices.ContainsFunc(c.Updates, func(u IndexedCommitment) bool { return u.Index == r }) {
			return fmt.Errorf("%w: epoch %d updates and removes the same index", ErrAudit, e.Epoch)
		}
	}
	tree, err := a.tree.Insert(batch)
	if err == nil {
		tree, err = tree.Delete(c.Removals)
	}
	if err != nil {
		return fmt.Errorf("%w: epoch %d: %w", ErrAudit, e.Epoch, err)
	}
	if tree.Root() != e.PrefixRoot {
		return fmt.Errorf("%w: epoch %d: the changes give prefix root %x, the log entry says %x", ErrAudit, e.Epoch, tree.Root(), e.PrefixRoot)
	}
	hashes, err := tlog.StoredHashes(a.size, record, a.store)
	if err != nil {
		return err
	}
	if err := a.store.Append(a.size, record, hashes); err != nil {
		return err
	}
	a.tree, a.size, a.last = tree, a.size+1, e
	return nil
}

// Check verifies that a signed checkpoint of the directory is one of the
// log the auditor rebuilt (its size at most the epochs audited, its root
// the rebuilt one at that size) and returns it.
func (a *Auditor) Check(signed []byte) (*log.SignedCheckpoint, error) {
	cp, err := log.OpenCheckpoint(signed, log.Policy{Origin: a.policy.Origin, Log: a.policy.Log})
	if err != nil {
		return nil, err
	}
	if cp.Size < 1 || cp.Size > a.size {
		return nil, fmt.Errorf("%w: checkpoint of size %d, %d epochs audited", ErrAudit, cp.Size, a.size)
	}
	h, err := tlog.TreeHash(cp.Size, a.store)
	if err != nil {
		return nil, err
	}
	if h != cp.Hash {
		return nil, fmt.Errorf("%w: checkpoint of size %d has root %v, the audited log's is %v", ErrAudit, cp.Size, cp.Hash, h)
	}
	return cp, nil
}

// Cosign checks a checkpoint (Check) and adds the auditor's signature,
// keeping the signatures already on it.
func (a *Auditor) Cosign(signed []byte, signer note.Signer) ([]byte, error) {
	cp, err := a.Check(signed)
	if err != nil {
		return nil, err
	}
	return log.Cosign(cp, signer)
}
