package directory

import (
	"errors"
	"fmt"
	"time"

	"github.com/parleychat/parley/transparency/commit"
	"github.com/parleychat/parley/transparency/log"
	"github.com/parleychat/parley/transparency/prefix"
	"github.com/parleychat/parley/transparency/vrf"
)

// Keys is what a client needs to check the directory's answers: the
// checkpoint policy (the directory's note key and any witnesses it
// requires), the VRF public key, and how far epoch times may be from its
// clock.
type Keys struct {
	Policy log.Policy
	VRF    *vrf.PublicKey
	// MaxAhead is how far in the future an epoch's time may be (clock
	// skew). MaxBehind is how old the served epoch may be: a directory
	// that keeps serving an old epoch (a freeze, to hide a change) is
	// refused after that long. The directory publishes an epoch at least
	// every few minutes even when nothing changes. Zero disables a check.
	MaxAhead, MaxBehind time.Duration
}

// Opening is one stored version of a label, as the directory sends it to
// a client: enough to recompute its commitment and leaf.
type Opening struct {
	Epoch   uint64       // the epoch it was published in
	Prev    prefix.Value // the label's leaf before it (zero for the first)
	Version uint32
	Opening commit.Opening
	Value   []byte
}

// Leaf recomputes the leaf value this version gives for label.
func (o *Opening) Leaf(label string) (prefix.Value, error) {
	c, err := commit.Compute(o.Opening, []byte(label), o.Version, o.Value)
	if err != nil {
		return prefix.Value{}, err
	}
	return LeafValue(o.Prev, o.Epoch, c), nil
}

// Answer is a directory's answer about one label: the Lookup, and the
// label's current version if it was found.
type Answer struct {
	Lookup
	Current *Opening
}

// Result is what a verified answer says.
type Result struct {
	Checkpoint *log.SignedCheckpoint
	Entry      log.Entry // of the served epoch
	Found      bool
	Leaf       prefix.Value // the label's leaf, if found
	Current    *Opening     // its current version, if found
}

// Errors of the client checks. Every one but ErrStaleEpoch and
// ErrFutureEpoch is proof that the directory (or something between it and
// the client) lied; log.ErrInconsistent is also possible, with evidence.
var (
	// ErrProof: a proof in the answer does not verify.
	ErrProof = errors.New("directory: the answer's proof does not verify")
	// ErrStaleEpoch: the served epoch is older than Keys.MaxBehind.
	ErrStaleEpoch = errors.New("directory: the served epoch is too old")
	// ErrFutureEpoch: the served epoch's time is ahead of the clock.
	ErrFutureEpoch = errors.New("directory: the served epoch's time is ahead of this clock")
	// ErrHistory: a label's versions do not chain from the leaf verified
	// before to the current one: the directory hid or rewrote a version.
	ErrHistory = errors.New("directory: the label's history does not chain to what was verified before")
)

// VerifySearch checks an answer about label against the client's
// Verifier (which advances to the answer's checkpoint if it extends the
// latest one) and returns what it proves. A failed check changes nothing
// but the Verifier, and that only to a checkpoint it proved consistent.
func VerifySearch(v *log.Verifier, keys Keys, label string, a *Answer, now time.Time) (*Result, error) {
	if a == nil {
		return nil, fmt.Errorf("%w: empty answer", ErrProof)
	}
	if err := checkLabel(label); err != nil {
		return nil, err
	}
	cp, err := v.Advance(a.Checkpoint, a.Consistency)
	if err != nil {
		return nil, err
	}
	e, err := log.ParseEntry(a.Record)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProof, err)
	}
	if e.Epoch+1 != uint64(cp.Size) {
		return nil, fmt.Errorf("%w: answer is for epoch %d, the checkpoint's latest is %d", ErrProof, e.Epoch, cp.Size-1)
	}
	if err := log.VerifyEntry(cp.Checkpoint, e, a.EntryProof); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProof, err)
	}
	if keys.MaxAhead > 0 && e.Time.After(now.Add(keys.MaxAhead)) {
		return nil, fmt.Errorf("%w: epoch %d is dated %v", ErrFutureEpoch, e.Epoch, e.Time)
	}
	if keys.MaxBehind > 0 && e.Time.Before(now.Add(-keys.MaxBehind)) {
		return nil, fmt.Errorf("%w: epoch %d is from %v, more than %v ago", ErrStaleEpoch, e.Epoch, e.Time, keys.MaxBehind)
	}
	beta, err := keys.VRF.Verify([]byte(label), a.VRFProof)
	if err != nil {
		return nil, fmt.Errorf("%w: VRF proof for %q: %w", ErrProof, label, err)
	}
	idx, err := IndexOf(beta)
	if err != nil {
		return nil, err
	}
	if a.Proof == nil {
		return nil, fmt.Errorf("%w: no prefix proof", ErrProof)
	}
	r := &Result{Checkpoint: cp, Entry: e}
	if a.Current == nil {
		if err := prefix.VerifyNonInclusion(e.PrefixRoot, idx, a.Proof); err != nil {
			return nil, fmt.Errorf("%w: %q absent: %w", ErrProof, label, err)
		}
		return r, nil
	}
	if a.Current.Epoch > e.Epoch {
		return nil, fmt.Errorf("%w: version from epoch %d in epoch %d", ErrProof, a.Current.Epoch, e.Epoch)
	}
	leaf, err := a.Current.Leaf(label)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProof, err)
	}
	if err := prefix.VerifyInclusion(e.PrefixRoot, idx, leaf, a.Proof); err != nil {
		return nil, fmt.Errorf("%w: %q version %d: %w", ErrProof, label, a.Current.Version, err)
	}
	r.Found, r.Leaf, r.Current = true, leaf, a.Current
	return r, nil
}

// Known is a label's leaf as its owner last verified it, and the epoch of
// that version; the zero Known means nothing verified yet (the history is
// then checked from the label's first version).
type Known struct {
	Leaf  prefix.Value
	Epoch uint64
}

// VerifyHistory checks an owner's monitoring answer: the current answer
// about its label, and every version published after known, oldest first
// (the current one last). The versions must chain from known.Leaf to the
// current leaf: then the directory has shown every version the label had
// in between, because each leaf hashes the one before it and an auditor
// checked every epoch's chaining. It returns the result and the versions
// for the caller to check (are they all the owner's own?).
func VerifyHistory(v *log.Verifier, keys Keys, label string, known Known, a *Answer, versions []Opening, now time.Time) (*Result, error) {
	r, err := VerifySearch(v, keys, label, a, now)
	if err != nil {
		return nil, err
	}
	var zero prefix.Value
	if !r.Found {
		if known.Leaf == zero && len(versions) == 0 {
			return r, nil
		}
		return nil, fmt.Errorf("%w: %q is no longer in the directory", ErrHistory, label)
	}
	cur, epoch, first := known.Leaf, known.Epoch, known.Leaf == zero
	for i := range versions {
		o := &versions[i]
		if !first && o.Epoch <= epoch || o.Epoch > r.Entry.Epoch {
			return nil, fmt.Errorf("%w: version %d from epoch %d after epoch %d", ErrHistory, o.Version, o.Epoch, epoch)
		}
		if o.Prev != cur {
			return nil, fmt.Errorf("%w: version %d (epoch %d) does not follow the one before it", ErrHistory, o.Version, o.Epoch)
		}
		if cur, err = o.Leaf(label); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrProof, err)
		}
		epoch, first = o.Epoch, false
	}
	if cur != r.Leaf {
		return nil, fmt.Errorf("%w: the versions shown end at another leaf than the directory's current one", ErrHistory)
	}
	return r, nil
}
