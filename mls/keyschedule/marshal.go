package keyschedule

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/codec"
	"github.com/parleychat/parley/mls/treemath"
)

// ErrInvalidState means persisted key-schedule bytes did not decode to a
// consistent state.
var ErrInvalidState = errors.New("keyschedule: invalid persisted state")

const stateVersion = 1

// MarshalBinary encodes the tree's remaining secrets, ratchets and kept
// out-of-order keys, so that group state can be persisted. The encoding is
// private to this package (versioned, not an MLS wire format).
func (t *SecretTree) MarshalBinary() ([]byte, error) {
	w := codec.NewWriter(nil)
	w.U8(stateVersion)
	w.U16(uint16(t.suite.ID()))
	w.U32(t.nLeaves)
	w.U32(t.window.MaxForward)
	w.U32(t.window.MaxSkipped)
	w.Vector(func(w *codec.Writer) {
		for _, n := range slices.Sorted(maps.Keys(t.nodes)) {
			w.U32(uint32(n))
			w.Opaque(t.nodes[n])
		}
	})
	w.Vector(func(w *codec.Writer) {
		for _, l := range slices.Sorted(maps.Keys(t.leaves)) {
			w.U32(uint32(l))
			for _, r := range t.leaves[l] {
				w.U64(r.next)
				w.Opaque(r.secret)
				w.Vector(func(w *codec.Writer) {
					for _, kn := range r.skipped {
						w.U32(kn.Generation)
						w.Opaque(kn.Key)
						w.Opaque(kn.Nonce)
					}
				})
			}
		}
	})
	return w.Bytes(), nil
}

// UnmarshalBinary restores a tree encoded by MarshalBinary. On error the
// receiver is left unchanged.
func (t *SecretTree) UnmarshalBinary(data []byte) error {
	nt, err := decodeSecretTree(data)
	if err != nil {
		return fmt.Errorf("secret tree: %w", err)
	}
	*t = *nt
	return nil
}

func decodeSecretTree(data []byte) (*SecretTree, error) {
	r := codec.NewReader(data)
	if v := r.U8(); r.Err() == nil && v != stateVersion {
		return nil, fmt.Errorf("%w: version %d", ErrInvalidState, v)
	}
	suiteID := ciphersuite.ID(r.U16())
	nLeaves := r.U32()
	window := Window{MaxForward: r.U32(), MaxSkipped: r.U32()}
	if r.Err() != nil {
		return nil, r.Err()
	}
	s, err := ciphersuite.Lookup(suiteID)
	if err != nil {
		return nil, err
	}
	root, ok := treemath.Root(nLeaves)
	if !ok {
		return nil, fmt.Errorf("%w: %d leaves", ErrInvalidState, nLeaves)
	}
	if window == (Window{}) {
		// NewSecretTree never stores the zero window.
		return nil, fmt.Errorf("%w: zero window", ErrInvalidState)
	}
	if window.MaxForward > MaxWindow || window.MaxSkipped > MaxWindow {
		return nil, fmt.Errorf("%w: window %+v", ErrInvalidState, window)
	}
	t := &SecretTree{
		suite:   s,
		nLeaves: nLeaves,
		window:  window,
		nodes:   map[treemath.NodeIndex][]byte{},
		leaves:  map[treemath.LeafIndex]*leafRatchets{},
	}
	bad := func(format string, args ...any) {
		r.Fail(fmt.Errorf("%w: "+format, append([]any{ErrInvalidState}, args...)...))
	}
	// Nodes lie in the perfect tree under root: indices 0 .. 2*root.
	last := int64(-1)
	r.ReadVector(func(r *codec.Reader) {
		n := r.U32()
		secret := r.Opaque()
		switch {
		case r.Err() != nil:
		case int64(n) <= last:
			bad("node %d out of order", n)
		case uint64(n) > 2*uint64(root):
			bad("node %d outside the tree", n)
		case len(secret) != s.Nh():
			bad("node %d secret is %d bytes", n, len(secret))
		default:
			t.nodes[treemath.NodeIndex(n)] = secret
			last = int64(n)
		}
	})
	last = -1
	r.ReadVector(func(r *codec.Reader) {
		l := r.U32()
		var lr leafRatchets
		for i := range lr {
			lr[i] = decodeRatchet(r, s, window, bad)
		}
		switch {
		case r.Err() != nil:
		case int64(l) <= last:
			bad("leaf %d out of order", l)
		case l >= nLeaves:
			bad("leaf %d outside the tree", l)
		default:
			t.leaves[treemath.LeafIndex(l)] = &lr
			last = int64(l)
		}
	})
	if err := r.Finish(); err != nil {
		return nil, err
	}
	return t, nil
}

func decodeRatchet(r *codec.Reader, s *ciphersuite.Suite, w Window, bad func(string, ...any)) ratchet {
	var rt ratchet
	rt.next = r.U64()
	rt.secret = r.Opaque()
	switch {
	case r.Err() != nil:
	case rt.next > 1<<32:
		bad("generation %d", rt.next)
	case rt.next == 1<<32 && len(rt.secret) != 0:
		bad("exhausted ratchet holds a secret")
	case rt.next < 1<<32 && len(rt.secret) != s.Nh():
		bad("ratchet secret is %d bytes", len(rt.secret))
	}
	if rt.next == 1<<32 {
		rt.secret = nil
	}
	last := int64(-1)
	r.ReadVector(func(r *codec.Reader) {
		kn := KeyNonce{Generation: r.U32(), Key: r.Opaque(), Nonce: r.Opaque()}
		switch {
		case r.Err() != nil:
		case int64(kn.Generation) <= last || uint64(kn.Generation) >= rt.next:
			bad("kept generation %d out of order", kn.Generation)
		case len(kn.Key) != s.Nk() || len(kn.Nonce) != s.Nn():
			bad("kept key or nonce has the wrong size")
		case uint32(len(rt.skipped)) >= w.MaxSkipped:
			bad("more kept keys than the window allows")
		default:
			rt.skipped = append(rt.skipped, kn)
			last = int64(kn.Generation)
		}
	})
	return rt
}

// epochFields lists the Epoch's secrets in their persisted order.
func (e *Epoch) epochFields() []*[]byte {
	return []*[]byte{
		&e.JoinerSecret, &e.WelcomeSecret, &e.SenderDataSecret, &e.EncryptionSecret,
		&e.ExporterSecret, &e.ExternalSecret, &e.ConfirmationKey, &e.MembershipKey,
		&e.ResumptionPSK, &e.EpochAuthenticator, &e.InitSecret,
	}
}

// MarshalBinary encodes the epoch's secrets for persistence; consumed
// (nil) secrets stay absent.
func (e *Epoch) MarshalBinary() ([]byte, error) {
	if e.Suite == nil {
		return nil, fmt.Errorf("%w: epoch without a suite", ErrInvalidState)
	}
	w := codec.NewWriter(nil)
	w.U8(stateVersion)
	w.U16(uint16(e.Suite.ID()))
	for _, f := range e.epochFields() {
		w.Opaque(*f)
	}
	return w.Bytes(), nil
}

// UnmarshalBinary restores an epoch encoded by MarshalBinary. On error the
// receiver is left unchanged.
func (e *Epoch) UnmarshalBinary(data []byte) error {
	r := codec.NewReader(data)
	if v := r.U8(); r.Err() == nil && v != stateVersion {
		return fmt.Errorf("epoch: %w: version %d", ErrInvalidState, v)
	}
	id := ciphersuite.ID(r.U16())
	if r.Err() != nil {
		return fmt.Errorf("epoch: %w", r.Err())
	}
	s, err := ciphersuite.Lookup(id)
	if err != nil {
		return fmt.Errorf("epoch: %w", err)
	}
	ne := Epoch{Suite: s}
	for _, f := range ne.epochFields() {
		b := r.Opaque()
		switch {
		case r.Err() != nil:
		case len(b) == 0:
		case len(b) != s.Nh():
			r.Fail(fmt.Errorf("%w: secret is %d bytes", ErrInvalidState, len(b)))
		default:
			*f = b
		}
	}
	if err := r.Finish(); err != nil {
		return fmt.Errorf("epoch: %w", err)
	}
	*e = ne
	return nil
}
