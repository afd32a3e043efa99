package directory

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/parleychat/parley/transparency/commit"
	"github.com/parleychat/parley/transparency/log"
	"github.com/parleychat/parley/transparency/prefix"
	"github.com/parleychat/parley/transparency/vrf"
)

// Config is a directory's identity: its log's name and the two keys only
// it holds. Both keys are the directory's own, separate from every other
// key the server has (docs/transparency.md).
type Config struct {
	// Origin names the log ("parley.example/kt").
	Origin string
	// Signer signs checkpoints (an Ed25519 note key).
	Signer note.Signer
	// VRF maps labels to indexes.
	VRF *vrf.PrivateKey
	// Witnesses, if any, must all cosign an epoch's checkpoint before the
	// directory serves it (Publish): clients that require their
	// cosignatures then always find them on what they are served.
	Witnesses []note.Verifier
}

// Sentinel errors.
var (
	// ErrPending: an epoch waits for its witnesses' cosignatures, and the
	// next cannot be prepared until it is published.
	ErrPending = errors.New("directory: the previous epoch is not yet cosigned by its witnesses")
	// ErrNotServing: the directory has no published epoch to answer from
	// (it is empty, or restarted with its latest epoch not yet cosigned).
	ErrNotServing = errors.New("directory: no published epoch yet")
	// ErrStale: Commit was given an epoch prepared from another state.
	ErrStale = errors.New("directory: epoch was prepared from an older state")
)

// labelState is what the directory keeps in memory per label: enough to
// prove it and to chain its next version.
type labelState struct {
	index    prefix.Index
	vrfProof []byte
	value    prefix.Value
	epoch    uint64 // the epoch of its latest version
	version  uint32
}

// StoredLabel is a label's state as its storage keeps it (Restore).
type StoredLabel struct {
	Label    string
	Index    prefix.Index
	VRFProof []byte
	Value    prefix.Value
	Epoch    uint64
	Version  uint32
}

// Directory is the server's side of key transparency. It is safe for
// concurrent use; Prepare and Commit are meant for one epoch loop.
type Directory struct {
	cfg      Config
	verifier note.Verifier // of cfg.Signer, to open cosigned notes

	mu       sync.RWMutex
	logStore *log.MemStore
	log      *log.Log
	tree     *prefix.Tree // of the latest committed epoch
	labels   map[string]*labelState
	// before holds, while an epoch is pending, the state (nil: absent)
	// each label it changed had before it: lookups answer from the
	// published epoch.
	before   map[string]*labelState
	pubTree  *prefix.Tree
	pubSize  int64  // epochs in the served checkpoint
	pubNote  []byte // the served checkpoint, with the cosignatures it has
	lastNote []byte // the latest committed checkpoint (pending if != pubNote's size)
}

// New returns an empty directory.
func New(cfg Config) (*Directory, error) {
	return Restore(cfg, nil, nil, nil)
}

// Restore returns the directory whose stored state is the log records of
// every epoch (in order), the labels as of the last one, and the latest
// checkpoint it published (with its cosignatures; nil if none). It checks
// that the labels give the last epoch's prefix root, so a directory whose
// stored state does not match its log does not start.
func Restore(cfg Config, records [][]byte, labels []StoredLabel, published []byte) (*Directory, error) {
	if cfg.Signer == nil || cfg.VRF == nil {
		return nil, errors.New("directory: config needs a note signer and a VRF key")
	}
	v, err := verifierOf(cfg.Signer)
	if err != nil {
		return nil, err
	}
	d := &Directory{cfg: cfg, verifier: v, logStore: new(log.MemStore), labels: make(map[string]*labelState, len(labels))}
	for n, rec := range records {
		hashes, err := tlog.StoredHashes(int64(n), rec, d.logStore)
		if err != nil {
			return nil, fmt.Errorf("directory: stored epoch %d: %w", n, err)
		}
		if err := d.logStore.Append(int64(n), rec, hashes); err != nil {
			return nil, err
		}
	}
	if d.log, err = log.Open(d.logStore, cfg.Origin, cfg.Signer); err != nil {
		return nil, err
	}
	entries := make([]prefix.Entry, 0, len(labels))
	for _, l := range labels {
		if err := checkLabel(l.Label); err != nil {
			return nil, err
		}
		d.labels[l.Label] = &labelState{index: l.Index, vrfProof: l.VRFProof, value: l.Value, epoch: l.Epoch, version: l.Version}
		entries = append(entries, prefix.Entry{Index: l.Index, Value: l.Value})
	}
	if d.tree, err = prefix.Build(entries); err != nil {
		return nil, fmt.Errorf("directory: stored labels: %w", err)
	}
	size := d.log.Size()
	if size > 0 {
		last, err := d.log.Entry(uint64(size - 1))
		if err != nil {
			return nil, err
		}
		if last.PrefixRoot != d.tree.Root() {
			return nil, fmt.Errorf("directory: stored labels give prefix root %x, epoch %d's is %x: storage does not match the log",
				d.tree.Root(), last.Epoch, last.PrefixRoot)
		}
		if d.lastNote, err = d.log.Checkpoint(); err != nil {
			return nil, err
		}
	} else if len(labels) > 0 {
		return nil, errors.New("directory: stored labels without any epoch")
	}
	switch {
	case size == 0:
	case published == nil && len(cfg.Witnesses) == 0:
		d.publishLocked(d.lastNote)
	case published != nil:
		cp, err := log.OpenCheckpoint(published, log.Policy{Origin: cfg.Origin, Log: v})
		if err != nil {
			return nil, fmt.Errorf("directory: stored published checkpoint: %w", err)
		}
		if cp.Size == size {
			d.publishLocked(published)
		}
		// Otherwise the latest epoch waits for its cosignatures; nothing
		// is served until then (Publish).
	}
	return d, nil
}

func verifierOf(s note.Signer) (note.Verifier, error) {
	// note.Signer does not expose its public key; a signature over a probe
	// text opened by the key's own verifier would need it too. Callers
	// build signers with NewNoteKeys, which keeps the verifier alongside.
	if ks, ok := s.(*noteKey); ok {
		return ks.Verifier, nil
	}
	return nil, errors.New("directory: use NewNoteKey's signer (the directory needs its verifier too)")
}

func (d *Directory) publishLocked(n []byte) {
	d.pubTree, d.pubSize, d.pubNote = d.tree, d.log.Size(), n
	d.before = nil
}

// VRFPublic is the directory's VRF public key, which clients need.
func (d *Directory) VRFPublic() *vrf.PublicKey { return d.cfg.VRF.Public() }

// Verifier is the directory's checkpoint verifier key.
func (d *Directory) Verifier() note.Verifier { return d.verifier }

// Size is the number of epochs committed; Published the number served.
func (d *Directory) Size() int64 {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.log.Size()
}

// Published returns the served checkpoint (nil if none) and its size.
func (d *Directory) Published() ([]byte, int64) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.pubNote, d.pubSize
}

// Latest returns the latest committed checkpoint, cosigned or not (what a
// witness is asked to cosign).
func (d *Directory) Latest() []byte {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.lastNote
}

// Version returns a label's current version (committed, not necessarily
// served), and whether it is in the directory.
func (d *Directory) Version(label string) (uint32, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	l, ok := d.labels[label]
	if !ok {
		return 0, false
	}
	return l.version, true
}

// Len is the number of labels in the directory.
func (d *Directory) Len() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.labels)
}

// Change is one label's change in an epoch: its new version and value, or
// its removal (Value nil).
type Change struct {
	Label   string
	Version uint32
	Value   []byte
}

// Update is one label's new version in an epoch, with everything the
// storage must keep to answer for it.
type Update struct {
	Label      string
	Index      prefix.Index
	VRFProof   []byte
	Version    uint32
	Commitment commit.Commitment
	Opening    commit.Opening
	Value      []byte
	Prev, Leaf prefix.Value
}

// Removal is a label taken out of the directory.
type Removal struct {
	Label string
	Index prefix.Index
}

// Epoch is an epoch prepared but not yet committed: the caller stores it
// (all of it, atomically), then calls Commit.
type Epoch struct {
	Entry      log.Entry
	Record     []byte // Entry's encoding: the log record
	Checkpoint []byte // signed by the directory
	Updates    []Update
	Removals   []Removal

	tree     *prefix.Tree
	prevSize int64
}

// Changes returns what an auditor is given of the epoch: indexes and
// commitments, no labels and no values.
func (e *Epoch) Changes() Changes {
	c := Changes{Epoch: e.Entry.Epoch}
	for _, u := range e.Updates {
		c.Updates = append(c.Updates, IndexedCommitment{Index: u.Index, Commitment: u.Commitment})
	}
	for _, r := range e.Removals {
		c.Removals = append(c.Removals, r.Index)
	}
	return c
}

// Prepare computes the next epoch, at time t, from changes (each label at
// most once), drawing commitment openings from rand. The directory does
// not change until Commit. An epoch with no changes is allowed: it moves
// the log's time forward, so clients can tell a quiet directory from a
// frozen one.
func (d *Directory) Prepare(rand io.Reader, t time.Time, changes []Change) (*Epoch, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	size := d.log.Size()
	if size > 0 && d.pubSize != size {
		return nil, ErrPending
	}
	epoch := uint64(size)
	e := &Epoch{prevSize: size}
	seen := make(map[string]bool, len(changes))
	var batch []prefix.Entry
	var removed []prefix.Index
	for _, c := range changes {
		if err := checkLabel(c.Label); err != nil {
			return nil, err
		}
		if seen[c.Label] {
			return nil, fmt.Errorf("directory: label %q changes twice in one epoch", c.Label)
		}
		seen[c.Label] = true
		cur := d.labels[c.Label]
		if c.Value == nil {
			if cur == nil {
				return nil, fmt.Errorf("directory: removing %q, which is not in the directory", c.Label)
			}
			e.Removals = append(e.Removals, Removal{Label: c.Label, Index: cur.index})
			removed = append(removed, cur.index)
			continue
		}
		u := Update{Label: c.Label, Version: c.Version, Value: c.Value}
		if cur != nil {
			if c.Version <= cur.version {
				return nil, fmt.Errorf("%w: %q version %d after %d", ErrVersion, c.Label, c.Version, cur.version)
			}
			u.Index, u.VRFProof, u.Prev = cur.index, cur.vrfProof, cur.value
		} else {
			var err error
			if u.Index, u.VRFProof, err = indexFor(d.cfg.VRF, c.Label); err != nil {
				return nil, err
			}
		}
		var err error
		if u.Commitment, u.Opening, err = commit.New(rand, []byte(c.Label), c.Version, c.Value); err != nil {
			return nil, err
		}
		u.Leaf = LeafValue(u.Prev, epoch, u.Commitment)
		e.Updates = append(e.Updates, u)
		batch = append(batch, prefix.Entry{Index: u.Index, Value: u.Leaf})
	}
	tree, err := d.tree.Insert(batch)
	if err != nil {
		return nil, err
	}
	if tree, err = tree.Delete(removed); err != nil {
		return nil, err
	}
	e.tree = tree
	e.Entry = log.Entry{Epoch: epoch, Time: t.Truncate(time.Millisecond).UTC(), PrefixRoot: tree.Root()}
	if size > 0 {
		last, err := d.log.Entry(epoch - 1)
		if err != nil {
			return nil, err
		}
		if e.Entry.Time.Before(last.Time) {
			return nil, fmt.Errorf("%w: %v after %v", log.ErrTimeGoesBack, e.Entry.Time, last.Time)
		}
	}
	if e.Record, err = e.Entry.MarshalBinary(); err != nil {
		return nil, err
	}
	hashes, err := tlog.StoredHashes(size, e.Record, d.logStore)
	if err != nil {
		return nil, err
	}
	root, err := tlog.TreeHash(size+1, overlay{d.logStore, tlog.StoredHashIndex(0, size), hashes})
	if err != nil {
		return nil, err
	}
	if e.Checkpoint, err = log.Sign(log.Checkpoint{Origin: d.cfg.Origin, Size: size + 1, Hash: root}, d.cfg.Signer); err != nil {
		return nil, err
	}
	return e, nil
}

// overlay reads hashes from a store plus the ones about to be appended.
type overlay struct {
	base  tlog.HashReader
	from  int64
	extra []tlog.Hash
}

func (o overlay) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x >= o.from {
			if x-o.from >= int64(len(o.extra)) {
				return nil, fmt.Errorf("directory: hash %d not available", x)
			}
			out[i] = o.extra[x-o.from]
			continue
		}
		h, err := o.base.ReadHashes([]int64{x})
		if err != nil {
			return nil, err
		}
		out[i] = h[0]
	}
	return out, nil
}

// Commit makes a stored epoch the directory's latest. Without witnesses it
// is served at once; with them, once they have cosigned it (Publish).
func (d *Directory) Commit(e *Epoch) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.log.Size() != e.prevSize {
		return ErrStale
	}
	_, cp, err := d.log.Append(e.Entry.PrefixRoot, e.Entry.Time)
	if err != nil {
		return err
	}
	if !bytes.Equal(cp, e.Checkpoint) {
		// Ed25519 note signatures are deterministic, so this means the
		// log's state moved under us: a bug, never to be served.
		return fmt.Errorf("directory: epoch %d's checkpoint changed between Prepare and Commit", e.Entry.Epoch)
	}
	before := make(map[string]*labelState, len(e.Updates)+len(e.Removals))
	for _, u := range e.Updates {
		before[u.Label] = d.labels[u.Label]
		d.labels[u.Label] = &labelState{index: u.Index, vrfProof: u.VRFProof, value: u.Leaf, epoch: e.Entry.Epoch, version: u.Version}
	}
	for _, r := range e.Removals {
		before[r.Label] = d.labels[r.Label]
		delete(d.labels, r.Label)
	}
	d.tree = e.tree
	d.lastNote = e.Checkpoint
	if len(d.cfg.Witnesses) == 0 {
		d.publishLocked(e.Checkpoint)
	} else {
		d.before = before
	}
	return nil
}

// Publish adds witnesses' cosignatures (a note of the latest committed
// checkpoint, or of the served one, carrying them) and, once every
// configured witness has signed the latest, serves it. It returns the
// note to store as the published one, or nil when the latest is still
// waiting for other witnesses.
func (d *Directory) Publish(cosigned []byte) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	verifiers := append([]note.Verifier{d.verifier}, d.cfg.Witnesses...)
	in, err := note.Open(cosigned, note.VerifierList(verifiers...))
	if err != nil {
		return nil, fmt.Errorf("directory: cosigned checkpoint: %w", err)
	}
	if !slices.ContainsFunc(in.Sigs, func(s note.Signature) bool { return s.Hash != d.verifier.KeyHash() || s.Name != d.verifier.Name() }) {
		return nil, errors.New("directory: the checkpoint carries no signature by a configured witness")
	}
	size := d.log.Size()
	served := d.pubNote != nil && d.pubSize == size
	switch {
	case d.lastNote != nil && sameText(d.lastNote, in.Text):
		merged, err := mergeSigs(d.lastNote, in, verifiers)
		if err != nil {
			return nil, err
		}
		d.lastNote = merged
		if served {
			d.pubNote = merged
			return merged, nil
		}
		_, err = log.OpenCheckpoint(merged, log.Policy{Origin: d.cfg.Origin, Log: d.verifier, Witnesses: d.cfg.Witnesses, Quorum: len(d.cfg.Witnesses)})
		switch {
		case errors.Is(err, log.ErrQuorum):
			return nil, nil
		case err != nil:
			return nil, err
		}
		d.publishLocked(merged)
		return merged, nil
	case d.pubNote != nil && sameText(d.pubNote, in.Text):
		merged, err := mergeSigs(d.pubNote, in, verifiers)
		if err != nil {
			return nil, err
		}
		d.pubNote = merged
		return merged, nil
	}
	return nil, errors.New("directory: cosigned checkpoint is neither the latest nor the served one")
}

func sameText(msg []byte, text string) bool {
	n, err := note.Open(msg, note.VerifierList())
	var unverified *note.UnverifiedNoteError
	if errors.As(err, &unverified) {
		n = unverified.Note
	} else if err != nil {
		return false
	}
	return n.Text == text
}

// mergeSigs returns base with the verified signatures of in added.
func mergeSigs(base []byte, in *note.Note, verifiers []note.Verifier) ([]byte, error) {
	b, err := note.Open(base, note.VerifierList(verifiers...))
	if err != nil {
		return nil, err
	}
	sigs := slices.Clone(b.Sigs)
	for _, s := range in.Sigs {
		if !slices.ContainsFunc(sigs, func(x note.Signature) bool { return x.Hash == s.Hash && x.Name == s.Name }) {
			sigs = append(sigs, s)
		}
	}
	return note.Sign(&note.Note{Text: b.Text, Sigs: sigs})
}
