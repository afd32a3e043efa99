package keyschedule

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/treemath"
)

var (
	// ErrGenerationUsed means the key for a generation was already handed
	// out (and deleted, §9.2), or was dropped from the out-of-order window:
	// a replayed message, or one that arrived too late.
	ErrGenerationUsed = errors.New("keyschedule: generation already used or deleted")
	// ErrGenerationTooFar means a generation lies beyond the window of
	// keys the tree will derive ahead of the ratchet (Window.MaxForward),
	// or beyond the end of the 32-bit ratchet.
	ErrGenerationTooFar = errors.New("keyschedule: generation too far ahead")
	// ErrLeafOutOfRange means a leaf index is not in the tree.
	ErrLeafOutOfRange = errors.New("keyschedule: leaf index out of range")
)

// RatchetType picks one of a leaf's two ratchets (§9).
type RatchetType uint8

const (
	HandshakeRatchet   RatchetType = 0
	ApplicationRatchet RatchetType = 1
)

func (t RatchetType) String() string {
	switch t {
	case HandshakeRatchet:
		return "handshake"
	case ApplicationRatchet:
		return "application"
	}
	return fmt.Sprintf("RatchetType(%d)", uint8(t))
}

// Window bounds what a ratchet keeps for out-of-order messages.
type Window struct {
	// MaxForward is how many generations past the next unused one a
	// request may reach; a farther request is ErrGenerationTooFar.
	MaxForward uint32
	// MaxSkipped is how many keys of skipped generations a ratchet keeps;
	// beyond it the oldest are deleted.
	MaxSkipped uint32
}

// DefaultWindow is the window NewSecretTree uses for a zero Window.
var DefaultWindow = Window{MaxForward: 1000, MaxSkipped: 1000}

// MaxWindow bounds both Window fields, so that one message can never make
// a ratchet derive or keep more than about a million keys.
const MaxWindow = 1 << 20

// KeyNonce is one generation's AEAD key and nonce (ratchet_key_[N]_[j],
// ratchet_nonce_[N]_[j]). The nonce is the key-schedule nonce, before the
// reuse guard is applied (see ApplyReuseGuard).
type KeyNonce struct {
	Generation uint32
	Key        []byte
	Nonce      []byte
}

// ratchet is one hash ratchet (§9.1). next is the generation whose
// ratchet secret is held in secret; it reaches 2^32 when the ratchet is
// exhausted, and secret is then nil.
type ratchet struct {
	next    uint64
	secret  []byte
	skipped []KeyNonce // sorted by Generation, all < next
}

type leafRatchets [2]ratchet

// SecretTree is the secret tree of one epoch (§9). It derives secrets
// lazily: it starts with only the encryption_secret at the root, and
// deriving a leaf's ratchets replaces each secret on the way down by its two
// children, so memory grows only with the leaves actually used (log n
// secrets each). A SecretTree is not safe for concurrent use.
type SecretTree struct {
	suite   *ciphersuite.Suite
	nLeaves uint32
	window  Window
	// nodes holds the tree secrets not yet consumed. A secret is deleted
	// as soon as its children are derived (§9.2).
	nodes map[treemath.NodeIndex][]byte
	// leaves holds the ratchets of leaves whose secret has been consumed.
	leaves map[treemath.LeafIndex]*leafRatchets
}

// NewSecretTree builds the secret tree for a group of nLeaves leaves (the
// ratchet tree's leaf count) from encryption_secret. The tree takes
// ownership of encryptionSecret. A zero window means DefaultWindow.
func NewSecretTree(s *ciphersuite.Suite, encryptionSecret []byte, nLeaves uint32, window Window) (*SecretTree, error) {
	if len(encryptionSecret) != s.Nh() {
		return nil, fmt.Errorf("secret tree: %w: encryption_secret is %d bytes, want %d", ErrInvalidSecret, len(encryptionSecret), s.Nh())
	}
	root, ok := treemath.Root(nLeaves)
	if !ok {
		return nil, fmt.Errorf("secret tree: %w: %d leaves", ErrLeafOutOfRange, nLeaves)
	}
	if window == (Window{}) {
		window = DefaultWindow
	}
	if window.MaxForward > MaxWindow || window.MaxSkipped > MaxWindow {
		return nil, fmt.Errorf("secret tree: %w: window %+v exceeds %d", ErrInvalidLength, window, MaxWindow)
	}
	return &SecretTree{
		suite:   s,
		nLeaves: nLeaves,
		window:  window,
		nodes:   map[treemath.NodeIndex][]byte{root: encryptionSecret},
		leaves:  map[treemath.LeafIndex]*leafRatchets{},
	}, nil
}

// NewSecretTree builds the epoch's secret tree and consumes its
// encryption_secret (a second call returns ErrConsumed).
func (e *Epoch) NewSecretTree(nLeaves uint32, window Window) (*SecretTree, error) {
	if e.EncryptionSecret == nil {
		return nil, fmt.Errorf("secret tree: %w", ErrConsumed)
	}
	t, err := NewSecretTree(e.Suite, e.EncryptionSecret, nLeaves, window)
	if err != nil {
		return nil, err
	}
	e.EncryptionSecret = nil
	return t, nil
}

// Suite returns the tree's cipher suite.
func (t *SecretTree) Suite() *ciphersuite.Suite { return t.suite }

// LeafCount returns the number of leaves the tree was built for.
func (t *SecretTree) LeafCount() uint32 { return t.nLeaves }

// leaf returns the ratchets of leaf l, deriving them on first use.
func (t *SecretTree) leaf(l treemath.LeafIndex) (*leafRatchets, error) {
	if uint32(l) >= t.nLeaves {
		return nil, fmt.Errorf("%w: leaf %d of %d", ErrLeafOutOfRange, l, t.nLeaves)
	}
	if r, ok := t.leaves[l]; ok {
		return r, nil
	}
	target := l.NodeIndex()
	// The path from the root down to the leaf, in the perfect tree the
	// root spans (for a leaf count that is not a power of two, some of its
	// nodes lie past the array's end; that is harmless here).
	root, _ := treemath.Root(t.nLeaves)
	path := []treemath.NodeIndex{root}
	for n := root; n != target; {
		var ok bool
		if target < n {
			n, ok = treemath.Left(n)
		} else {
			n, ok = treemath.Right(n)
		}
		if !ok {
			return nil, fmt.Errorf("%w: leaf %d of %d", ErrLeafOutOfRange, l, t.nLeaves)
		}
		path = append(path, n)
	}
	// Start from the lowest secret still held on that path, then walk
	// down, replacing each secret by its children (§9.2).
	start := -1
	for i := len(path) - 1; i >= 0; i-- {
		if _, ok := t.nodes[path[i]]; ok {
			start = i
			break
		}
	}
	if start < 0 {
		// Unreachable for a consistent tree: every leaf either has ratchets
		// or a held secret on its path.
		return nil, fmt.Errorf("secret tree: %w: no secret left on the path of leaf %d", ErrConsumed, l)
	}
	for _, n := range path[start : len(path)-1] {
		secret := t.nodes[n]
		left, _ := treemath.Left(n)
		right, _ := treemath.Right(n)
		t.nodes[left] = t.suite.ExpandWithLabel(secret, "tree", []byte("left"), t.suite.Nh())
		t.nodes[right] = t.suite.ExpandWithLabel(secret, "tree", []byte("right"), t.suite.Nh())
		clear(secret)
		delete(t.nodes, n)
	}
	secret := t.nodes[target]
	r := &leafRatchets{
		HandshakeRatchet:   {secret: t.suite.ExpandWithLabel(secret, "handshake", nil, t.suite.Nh())},
		ApplicationRatchet: {secret: t.suite.ExpandWithLabel(secret, "application", nil, t.suite.Nh())},
	}
	clear(secret)
	delete(t.nodes, target)
	t.leaves[l] = r
	return r, nil
}

func (t *SecretTree) ratchet(l treemath.LeafIndex, typ RatchetType) (*ratchet, error) {
	if typ != HandshakeRatchet && typ != ApplicationRatchet {
		return nil, fmt.Errorf("secret tree: unknown ratchet type %d", typ)
	}
	r, err := t.leaf(l)
	if err != nil {
		return nil, err
	}
	return &r[typ], nil
}

// Key returns the key and nonce of generation for leaf l's ratchet, to
// decrypt a received message, and deletes them from the tree: asking again
// is ErrGenerationUsed. Keys of generations skipped on the way are kept
// (within the Window) for messages that arrive out of order.
//
// Key consumes the generation even if the message then fails to decrypt;
// Open consumes it only on success.
func (t *SecretTree) Key(l treemath.LeafIndex, typ RatchetType, generation uint32) (KeyNonce, error) {
	var kn KeyNonce
	err := t.Open(l, typ, generation, func(k KeyNonce) error {
		kn = k
		return nil
	})
	return kn, err
}

// Open calls decrypt with the key and nonce of generation for leaf l's
// ratchet and consumes them (as Key does) only if decrypt returns nil.
// If decrypt fails, the ratchet is left exactly as it was, so a forged or
// corrupted message cannot burn a generation the real sender will use
// (§9.2: a key is consumed once it has successfully decrypted a message).
// decrypt's error is returned unwrapped.
func (t *SecretTree) Open(l treemath.LeafIndex, typ RatchetType, generation uint32, decrypt func(KeyNonce) error) error {
	r, err := t.ratchet(l, typ)
	if err != nil {
		return err
	}
	// Work on a copy of the ratchet and commit it only on success.
	scratch := ratchet{next: r.next, secret: bytes.Clone(r.secret), skipped: slices.Clone(r.skipped)}
	kn, err := scratch.take(t.suite, t.window, generation)
	if err != nil {
		clear(scratch.secret)
		return fmt.Errorf("%s key for leaf %d: %w", typ, l, err)
	}
	if err := decrypt(kn); err != nil {
		if scratch.next != r.next {
			// Keys derived only for this attempt: wipe them.
			clear(scratch.secret)
			clear(kn.Key)
			clear(kn.Nonce)
			for _, k := range scratch.skipped {
				if uint64(k.Generation) >= r.next {
					clear(k.Key)
					clear(k.Nonce)
				}
			}
		}
		return err
	}
	// Wipe what the commit drops: the old ratchet secret (if it moved) and
	// the kept keys that were evicted from the window.
	if scratch.next != r.next {
		clear(r.secret)
	} else {
		clear(scratch.secret)
		scratch.secret = r.secret
	}
	for _, k := range r.skipped {
		if k.Generation == kn.Generation {
			continue // handed to decrypt
		}
		if _, kept := slices.BinarySearchFunc(scratch.skipped, k.Generation, cmpGeneration); !kept {
			clear(k.Key)
			clear(k.Nonce)
		}
	}
	*r = scratch
	return nil
}

func cmpGeneration(k KeyNonce, g uint32) int { return cmp.Compare(k.Generation, g) }

// Next returns the key and nonce of the next unused generation of leaf l's
// ratchet, to encrypt a message this member sends, and advances the
// ratchet past it.
func (t *SecretTree) Next(l treemath.LeafIndex, typ RatchetType) (KeyNonce, error) {
	r, err := t.ratchet(l, typ)
	if err != nil {
		return KeyNonce{}, err
	}
	if r.next > 0xffffffff {
		return KeyNonce{}, fmt.Errorf("%s key for leaf %d: %w: ratchet exhausted", typ, l, ErrGenerationTooFar)
	}
	kn, err := r.take(t.suite, t.window, uint32(r.next))
	if err != nil {
		return KeyNonce{}, fmt.Errorf("%s key for leaf %d: %w", typ, l, err)
	}
	return kn, nil
}

// take implements Key for one ratchet.
func (r *ratchet) take(s *ciphersuite.Suite, w Window, gen uint32) (KeyNonce, error) {
	g := uint64(gen)
	if g < r.next {
		i, found := slices.BinarySearchFunc(r.skipped, gen, cmpGeneration)
		if !found {
			return KeyNonce{}, fmt.Errorf("%w: generation %d", ErrGenerationUsed, gen)
		}
		kn := r.skipped[i]
		r.skipped = slices.Delete(r.skipped, i, i+1)
		return kn, nil
	}
	if g-r.next > uint64(w.MaxForward) {
		return KeyNonce{}, fmt.Errorf("%w: generation %d, next is %d, window %d", ErrGenerationTooFar, gen, r.next, w.MaxForward)
	}
	// Skipped generations that the window could not hold anyway are not
	// kept; derive only the secrets for them.
	keepFrom := uint64(0)
	if g-r.next > uint64(w.MaxSkipped) {
		keepFrom = g - uint64(w.MaxSkipped)
	}
	for r.next < g {
		if r.next >= keepFrom {
			r.skipped = append(r.skipped, r.keyNonce(s))
		}
		r.advance(s)
	}
	if over := len(r.skipped) - int(w.MaxSkipped); over > 0 {
		// Evict the oldest. Their bytes may be shared with the committed
		// ratchet, so Open wipes them once the change is committed.
		r.skipped = slices.Delete(r.skipped, 0, over)
	}
	kn := r.keyNonce(s)
	r.advance(s)
	return kn, nil
}

// keyNonce derives the key and nonce of generation r.next (§9.1).
func (r *ratchet) keyNonce(s *ciphersuite.Suite) KeyNonce {
	gen := uint32(r.next)
	return KeyNonce{
		Generation: gen,
		Key:        s.DeriveTreeSecret(r.secret, "key", gen, s.Nk()),
		Nonce:      s.DeriveTreeSecret(r.secret, "nonce", gen, s.Nn()),
	}
}

// advance replaces ratchet_secret_[j] by ratchet_secret_[j+1].
func (r *ratchet) advance(s *ciphersuite.Suite) {
	old := r.secret
	if r.next == 0xffffffff {
		r.secret = nil
	} else {
		r.secret = s.DeriveTreeSecret(old, "secret", uint32(r.next), s.Nh())
	}
	clear(old)
	r.next++
}

// NextGeneration reports the next unused generation of leaf l's ratchet
// without deriving anything beyond the leaf's ratchet roots.
func (t *SecretTree) NextGeneration(l treemath.LeafIndex, typ RatchetType) (uint32, error) {
	r, err := t.ratchet(l, typ)
	if err != nil {
		return 0, err
	}
	if r.next > 0xffffffff {
		return 0, fmt.Errorf("%w: ratchet exhausted", ErrGenerationTooFar)
	}
	return uint32(r.next), nil
}

// SenderDataKeyNonce derives the key and nonce that protect a
// PrivateMessage's SenderData (§6.3.2) from sender_data_secret and the
// first Nh bytes of the content ciphertext (all of it if shorter).
func SenderDataKeyNonce(s *ciphersuite.Suite, senderDataSecret, ciphertext []byte) (key, nonce []byte) {
	sample := ciphertext
	if len(sample) > s.Nh() {
		sample = sample[:s.Nh()]
	}
	return s.ExpandWithLabel(senderDataSecret, "key", sample, s.Nk()),
		s.ExpandWithLabel(senderDataSecret, "nonce", sample, s.Nn())
}

// ApplyReuseGuard returns a copy of nonce with its first four bytes XORed
// with reuseGuard (§6.3.1), the nonce actually used for content
// encryption.
func ApplyReuseGuard(nonce []byte, reuseGuard [4]byte) []byte {
	out := append([]byte(nil), nonce...)
	for i := 0; i < 4 && i < len(out); i++ {
		out[i] ^= reuseGuard[i]
	}
	return out
}
