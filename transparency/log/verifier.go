package log

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

var (
	// ErrInconsistent is the error (wrapped in an *InconsistencyError) for
	// a checkpoint that is not an extension of the latest one the Verifier
	// accepted: the log forked or rolled back. Both signed checkpoints are
	// in the error, as evidence.
	ErrInconsistent = errors.New("log: checkpoint inconsistent with the latest one seen")
	// ErrNotIncluded is returned by VerifyEntry when the proof does not
	// show the entry at its epoch in the checkpoint.
	ErrNotIncluded = errors.New("log: entry not proven in the checkpoint")
)

// Inconsistency says how a checkpoint contradicts the latest one.
type Inconsistency int

const (
	// Fork: the new checkpoint is not proven to extend the latest one (same
	// size with another root, or a larger size whose consistency proof
	// fails). Two validly signed checkpoints that no proof can join prove
	// the log misbehaved.
	Fork Inconsistency = iota + 1
	// Rollback: the new checkpoint is smaller than the latest one. The log
	// is hiding later epochs from this client (or serving from a stale
	// replica); the two checkpoints alone do not prove misbehaviour.
	Rollback
)

func (k Inconsistency) String() string {
	switch k {
	case Fork:
		return "fork"
	case Rollback:
		return "rollback"
	}
	return fmt.Sprintf("Inconsistency(%d)", int(k))
}

// InconsistencyError is the evidence of a fork or rollback: the latest
// checkpoint the Verifier had accepted and the one it refused, both as
// signed notes. errors.Is(err, ErrInconsistent) holds for it.
type InconsistencyError struct {
	Kind   Inconsistency
	Latest *SignedCheckpoint // accepted before
	New    *SignedCheckpoint // refused
	Err    error             // the failed proof check, if any
}

func (e *InconsistencyError) Error() string {
	msg := fmt.Sprintf("log: %v: checkpoint of size %d (root %v) after size %d (root %v)",
		e.Kind, e.New.Size, e.New.Hash, e.Latest.Size, e.Latest.Hash)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap makes errors.Is(err, ErrInconsistent) true, and reaches the proof
// check's error.
func (e *InconsistencyError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrInconsistent}
	}
	return []error{ErrInconsistent, e.Err}
}

// Verifier is a client's (or witness's) view of the log: the latest
// checkpoint it accepted, and the policy every checkpoint must meet. It only
// moves forward along one linear history, as draft-ietf-keytrans-protocol-05
// §4 and draft-ietf-keytrans-architecture-09 ("Detecting Forks") ask: once
// it has accepted a checkpoint, it refuses any that does not provably
// extend it. Clients persist Latest().Note and pass it to NewVerifier on
// restart. A Verifier is safe for concurrent use.
type Verifier struct {
	policy Policy

	mu     sync.Mutex
	latest *SignedCheckpoint
}

// NewVerifier returns a Verifier under policy. trusted is the latest
// checkpoint this client accepted before (as a signed note), or nil for a
// client that has never seen the log, which then accepts the first
// checkpoint it is given that meets the policy (trust on first use, reduced
// by witness cosignatures).
func NewVerifier(policy Policy, trusted []byte) (*Verifier, error) {
	v := &Verifier{policy: policy}
	if trusted != nil {
		sc, err := OpenCheckpoint(trusted, policy)
		if err != nil {
			return nil, fmt.Errorf("log: trusted checkpoint: %w", err)
		}
		v.latest = sc
	}
	return v, nil
}

// Latest returns the latest checkpoint accepted, or nil.
func (v *Verifier) Latest() *SignedCheckpoint {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.latest
}

// Advance verifies a signed checkpoint under the policy and, with proof (a
// consistency proof from the latest checkpoint's size to the new one's,
// Log.ProveConsistency), that it extends the latest one; if so it becomes
// the latest and is returned. A checkpoint equal to the latest is accepted
// as is (and needs no proof). It fails with the errors of OpenCheckpoint,
// or with an *InconsistencyError (ErrInconsistent) for a fork or rollback,
// leaving the Verifier unchanged.
func (v *Verifier) Advance(signed []byte, proof tlog.TreeProof) (*SignedCheckpoint, error) {
	sc, err := OpenCheckpoint(signed, v.policy)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	old := v.latest
	switch {
	case old == nil, old.Size == 0 && sc.Size > 0:
		// Every tree extends the empty one.
	case sc.Size == old.Size:
		if sc.Hash != old.Hash {
			return nil, &InconsistencyError{Kind: Fork, Latest: old, New: sc}
		}
		return old, nil
	case sc.Size < old.Size:
		return nil, &InconsistencyError{Kind: Rollback, Latest: old, New: sc}
	default:
		if err := tlog.CheckTree(proof, sc.Size, sc.Hash, old.Size, old.Hash); err != nil {
			return nil, &InconsistencyError{Kind: Fork, Latest: old, New: sc, Err: err}
		}
	}
	v.latest = sc
	return sc, nil
}

// VerifyEntry checks that proof (Log.ProveEntry) shows e as the record at
// position e.Epoch of the log in checkpoint c.
func VerifyEntry(c Checkpoint, e Entry, proof tlog.RecordProof) error {
	if e.Epoch >= uint64(max(c.Size, 0)) {
		return fmt.Errorf("%w: epoch %d beyond checkpoint size %d", ErrNotIncluded, e.Epoch, c.Size)
	}
	rec, err := e.MarshalBinary()
	if err != nil {
		return err
	}
	if err := tlog.CheckRecord(proof, c.Size, c.Hash, int64(e.Epoch), tlog.RecordHash(rec)); err != nil {
		return fmt.Errorf("%w: epoch %d in checkpoint of size %d: %v", ErrNotIncluded, e.Epoch, c.Size, err)
	}
	return nil
}
