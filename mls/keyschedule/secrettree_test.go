package keyschedule

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/treemath"
)

func newTree(t testing.TB, nLeaves uint32, w Window) *SecretTree {
	t.Helper()
	s := lookup(t, ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	tree, err := NewSecretTree(s, bytes.Repeat([]byte{0x42}, s.Nh()), nLeaves, w)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// TestSenderAndReceiverAgree checks that Next on one copy of the tree and
// Key on another give the same keys, for both ratchets.
func TestSenderAndReceiverAgree(t *testing.T) {
	sender, receiver := newTree(t, 8, Window{}), newTree(t, 8, Window{})
	for _, typ := range []RatchetType{HandshakeRatchet, ApplicationRatchet} {
		for i := range 5 {
			kn, err := sender.Next(3, typ)
			if err != nil {
				t.Fatal(err)
			}
			if kn.Generation != uint32(i) {
				t.Fatalf("Next generation = %d, want %d", kn.Generation, i)
			}
			got, err := receiver.Key(3, typ, kn.Generation)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Key, kn.Key) || !bytes.Equal(got.Nonce, kn.Nonce) {
				t.Fatalf("%v generation %d: receiver key differs from sender key", typ, i)
			}
		}
	}
	h, _ := sender.Key(4, HandshakeRatchet, 0)
	a, _ := sender.Key(4, ApplicationRatchet, 0)
	if bytes.Equal(h.Key, a.Key) {
		t.Error("handshake and application ratchets gave the same key")
	}
}

func TestForwardSecrecy(t *testing.T) {
	tree := newTree(t, 4, Window{})
	if _, err := tree.Key(1, ApplicationRatchet, 0); err != nil {
		t.Fatal(err)
	}
	// Replaying the same generation is refused: the key is gone.
	if _, err := tree.Key(1, ApplicationRatchet, 0); !errors.Is(err, ErrGenerationUsed) {
		t.Fatalf("second Key(0): %v, want ErrGenerationUsed", err)
	}
	// Jump ahead, then use the kept key of a skipped generation once.
	if _, err := tree.Key(1, ApplicationRatchet, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := tree.Key(1, ApplicationRatchet, 3); err != nil {
		t.Fatalf("out-of-order generation 3: %v", err)
	}
	for _, g := range []uint32{3, 5} {
		if _, err := tree.Key(1, ApplicationRatchet, g); !errors.Is(err, ErrGenerationUsed) {
			t.Errorf("replayed generation %d: %v, want ErrGenerationUsed", g, err)
		}
	}
	r := &tree.leaves[1][ApplicationRatchet]
	var kept []uint32
	for _, kn := range r.skipped {
		kept = append(kept, kn.Generation)
	}
	if !slices.Equal(kept, []uint32{1, 2, 4}) {
		t.Errorf("kept generations = %v, want [1 2 4]", kept)
	}
	if r.next != 6 {
		t.Errorf("ratchet at generation %d, want 6", r.next)
	}
	// The handshake ratchet of the same leaf is untouched.
	if g, _ := tree.NextGeneration(1, HandshakeRatchet); g != 0 {
		t.Errorf("handshake ratchet moved to %d", g)
	}
}

// TestDeletionSchedule checks §9.2: deriving a leaf deletes every tree
// secret on its path and keeps only the copath secrets.
func TestDeletionSchedule(t *testing.T) {
	tree := newTree(t, 8, Window{})
	if _, err := tree.Next(0, ApplicationRatchet); err != nil {
		t.Fatal(err)
	}
	held := slices.Sorted(maps.Keys(tree.nodes))
	want, _ := treemath.Copath(0, 8) // leaf 0's copath: 2, 5, 11
	slices.Sort(want)
	if !slices.Equal(held, want) {
		t.Errorf("held secrets at nodes %v, want the copath %v", held, want)
	}
	// Deriving leaf 3 consumes node 5 and leaves its other child.
	if _, err := tree.Next(3, HandshakeRatchet); err != nil {
		t.Fatal(err)
	}
	held = slices.Sorted(maps.Keys(tree.nodes))
	if !slices.Equal(held, []treemath.NodeIndex{2, 4, 11}) {
		t.Errorf("held secrets at nodes %v, want [2 4 11]", held)
	}
	if len(tree.leaves) != 2 {
		t.Errorf("%d leaves have ratchets, want 2", len(tree.leaves))
	}
}

// TestLargeGroupCost checks that a 10 000-member tree costs memory only for
// the leaves used.
func TestLargeGroupCost(t *testing.T) {
	tree := newTree(t, 16384, Window{})
	for _, l := range []treemath.LeafIndex{0, 9999, 5000} {
		if _, err := tree.Key(l, ApplicationRatchet, 0); err != nil {
			t.Fatal(err)
		}
	}
	if len(tree.leaves) != 3 || len(tree.nodes) > 3*14 {
		t.Errorf("3 leaves used: %d leaf ratchets, %d node secrets", len(tree.leaves), len(tree.nodes))
	}
	data, err := tree.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 4096 {
		t.Errorf("persisted tree with 3 used leaves is %d bytes", len(data))
	}
	if _, err := tree.Key(16384, ApplicationRatchet, 0); !errors.Is(err, ErrLeafOutOfRange) {
		t.Errorf("leaf past the end: %v, want ErrLeafOutOfRange", err)
	}
}

func TestWindow(t *testing.T) {
	tree := newTree(t, 2, Window{MaxForward: 10, MaxSkipped: 3})
	if _, err := tree.Key(0, ApplicationRatchet, 11); !errors.Is(err, ErrGenerationTooFar) {
		t.Fatalf("generation 11 with MaxForward 10: %v, want ErrGenerationTooFar", err)
	}
	// The refused request changed nothing.
	if g, _ := tree.NextGeneration(0, ApplicationRatchet); g != 0 {
		t.Fatalf("refused request moved the ratchet to %d", g)
	}
	if _, err := tree.Key(0, ApplicationRatchet, 10); err != nil {
		t.Fatal(err)
	}
	// Only the newest 3 skipped keys (7, 8, 9) are kept.
	for g := uint32(0); g < 7; g++ {
		if _, err := tree.Key(0, ApplicationRatchet, g); !errors.Is(err, ErrGenerationUsed) {
			t.Errorf("generation %d outside MaxSkipped: %v, want ErrGenerationUsed", g, err)
		}
	}
	if _, err := tree.Key(0, ApplicationRatchet, 8); err != nil {
		t.Errorf("kept generation 8: %v", err)
	}
	// Further jumps evict the oldest kept keys first.
	if _, err := tree.Key(0, ApplicationRatchet, 13); err != nil { // skips 11, 12
		t.Fatal(err)
	}
	if _, err := tree.Key(0, ApplicationRatchet, 7); !errors.Is(err, ErrGenerationUsed) {
		t.Errorf("evicted generation 7: %v, want ErrGenerationUsed", err)
	}
	for _, g := range []uint32{9, 11, 12} {
		if _, err := tree.Key(0, ApplicationRatchet, g); err != nil {
			t.Errorf("kept generation %d: %v", g, err)
		}
	}

	def := newTree(t, 2, Window{})
	if _, err := def.Key(0, HandshakeRatchet, 1001); !errors.Is(err, ErrGenerationTooFar) {
		t.Errorf("default window, generation 1001: %v, want ErrGenerationTooFar", err)
	}
	if _, err := def.Key(0, HandshakeRatchet, 1000); err != nil {
		t.Errorf("default window, generation 1000: %v", err)
	}
	if n := len(def.leaves[0][HandshakeRatchet].skipped); n != 1000 {
		t.Errorf("default window kept %d keys, want 1000", n)
	}
}

func TestRatchetExhaustion(t *testing.T) {
	tree := newTree(t, 2, Window{})
	if _, err := tree.Next(1, HandshakeRatchet); err != nil {
		t.Fatal(err)
	}
	r := &tree.leaves[1][HandshakeRatchet]
	r.next = 0xfffffffe
	for _, want := range []uint32{0xfffffffe, 0xffffffff} {
		kn, err := tree.Next(1, HandshakeRatchet)
		if err != nil || kn.Generation != want {
			t.Fatalf("Next = %d, %v; want %d", kn.Generation, err, want)
		}
	}
	if _, err := tree.Next(1, HandshakeRatchet); !errors.Is(err, ErrGenerationTooFar) {
		t.Errorf("Next past 2^32-1: %v, want ErrGenerationTooFar", err)
	}
	if _, err := tree.Key(1, HandshakeRatchet, 0xffffffff); !errors.Is(err, ErrGenerationUsed) {
		t.Errorf("Key(2^32-1) after use: %v, want ErrGenerationUsed", err)
	}
	// An exhausted ratchet persists and restores.
	data, _ := tree.MarshalBinary()
	var back SecretTree
	if err := back.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
}

func TestSecretTreePersistence(t *testing.T) {
	s := lookup(t, ciphersuite.MLS_256_DHKEMP384_AES256GCM_SHA384_P384)
	orig, err := NewSecretTree(s, bytes.Repeat([]byte{1}, s.Nh()), 32, Window{MaxForward: 50, MaxSkipped: 20})
	if err != nil {
		t.Fatal(err)
	}
	twin, _ := NewSecretTree(s, bytes.Repeat([]byte{1}, s.Nh()), 32, Window{MaxForward: 50, MaxSkipped: 20})
	// Put the tree in an interesting state: several leaves, skipped keys.
	for _, step := range []struct {
		leaf treemath.LeafIndex
		typ  RatchetType
		gen  uint32
	}{{0, ApplicationRatchet, 4}, {0, ApplicationRatchet, 1}, {17, HandshakeRatchet, 0}, {31, ApplicationRatchet, 30}} {
		if _, err := orig.Key(step.leaf, step.typ, step.gen); err != nil {
			t.Fatal(err)
		}
		if _, err := twin.Key(step.leaf, step.typ, step.gen); err != nil {
			t.Fatal(err)
		}
	}
	data, err := orig.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var restored SecretTree
	if err := restored.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	again, _ := restored.MarshalBinary()
	if !bytes.Equal(again, data) {
		t.Error("re-marshalled tree differs")
	}
	if restored.window != orig.window || restored.LeafCount() != 32 || restored.Suite() != s {
		t.Error("restored tree lost its parameters")
	}
	// The restored tree behaves like the never-persisted twin.
	for _, q := range []struct {
		leaf treemath.LeafIndex
		typ  RatchetType
		gen  uint32
	}{{0, ApplicationRatchet, 2}, {0, ApplicationRatchet, 5}, {17, HandshakeRatchet, 3}, {31, ApplicationRatchet, 12}, {9, HandshakeRatchet, 7}} {
		a, errA := restored.Key(q.leaf, q.typ, q.gen)
		b, errB := twin.Key(q.leaf, q.typ, q.gen)
		if errA != nil || errB != nil || !bytes.Equal(a.Key, b.Key) || !bytes.Equal(a.Nonce, b.Nonce) {
			t.Errorf("leaf %d %v gen %d: restored %v, twin %v", q.leaf, q.typ, q.gen, errA, errB)
		}
	}
	// Consumed keys stay consumed across persistence.
	for _, q := range []struct {
		leaf treemath.LeafIndex
		gen  uint32
	}{{0, 1}, {0, 4}} {
		if _, err := restored.Key(q.leaf, ApplicationRatchet, q.gen); !errors.Is(err, ErrGenerationUsed) {
			t.Errorf("restored tree gave consumed generation %d again: %v", q.gen, err)
		}
	}
}

func TestSecretTreeUnmarshalRejects(t *testing.T) {
	tree := newTree(t, 4, Window{})
	if _, err := tree.Key(2, ApplicationRatchet, 3); err != nil {
		t.Fatal(err)
	}
	good, _ := tree.MarshalBinary()
	before, _ := tree.MarshalBinary()
	for i := range good {
		for _, delta := range []byte{1, 0x80} {
			bad := bytes.Clone(good)
			bad[i] += delta
			var tr SecretTree
			_ = tr.UnmarshalBinary(bad) // must not panic; some flips are still valid states
		}
	}
	for n := range good {
		if err := tree.UnmarshalBinary(good[:n]); err == nil {
			t.Errorf("truncated to %d bytes: no error", n)
		}
	}
	after, _ := tree.MarshalBinary()
	if !bytes.Equal(before, after) {
		t.Error("failed UnmarshalBinary changed the tree")
	}
	if err := tree.UnmarshalBinary(append(bytes.Clone(good), 0)); err == nil {
		t.Error("trailing byte accepted")
	}
}

func TestSenderDataAndReuseGuard(t *testing.T) {
	s := lookup(t, ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	secret := bytes.Repeat([]byte{9}, s.Nh())
	long := bytes.Repeat([]byte{7}, 100)
	k1, n1 := SenderDataKeyNonce(s, secret, long)
	k2, n2 := SenderDataKeyNonce(s, secret, long[:s.Nh()])
	if !bytes.Equal(k1, k2) || !bytes.Equal(n1, n2) {
		t.Error("sender data key depends on bytes past the Nh-byte sample")
	}
	k3, _ := SenderDataKeyNonce(s, secret, long[:5])
	if bytes.Equal(k1, k3) || len(k3) != s.Nk() {
		t.Error("short ciphertext sample not used whole")
	}
	nonce := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	got := ApplyReuseGuard(nonce, [4]byte{0xff, 0, 0xff, 1})
	if !bytes.Equal(got, []byte{0xfe, 2, 0xfc, 5, 5, 6, 7, 8, 9, 10, 11, 12}) || nonce[0] != 1 {
		t.Errorf("ApplyReuseGuard = %x (input %x)", got, nonce)
	}
}

func TestWindowBound(t *testing.T) {
	s := lookup(t, ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	if _, err := NewSecretTree(s, make([]byte, s.Nh()), 2, Window{MaxForward: MaxWindow + 1}); !errors.Is(err, ErrInvalidLength) {
		t.Errorf("window above MaxWindow: %v, want ErrInvalidLength", err)
	}
	if _, err := NewSecretTree(s, make([]byte, 5), 2, Window{}); !errors.Is(err, ErrInvalidSecret) {
		t.Errorf("short encryption_secret: %v, want ErrInvalidSecret", err)
	}
	if _, err := NewSecretTree(s, make([]byte, s.Nh()), 0, Window{}); !errors.Is(err, ErrLeafOutOfRange) {
		t.Errorf("empty tree: %v, want ErrLeafOutOfRange", err)
	}
}

func TestOpenConsumesOnlyOnSuccess(t *testing.T) {
	tree := newTree(t, 4, Window{MaxForward: 100, MaxSkipped: 2})
	twin := newTree(t, 4, Window{MaxForward: 100, MaxSkipped: 2})
	if _, err := tree.Key(2, ApplicationRatchet, 3); err != nil { // keeps 1, 2
		t.Fatal(err)
	}
	twin.Key(2, ApplicationRatchet, 3)
	before, _ := tree.MarshalBinary()
	forged := errors.New("forged")
	for _, g := range []uint32{1, 7, 50} {
		err := tree.Open(2, ApplicationRatchet, g, func(KeyNonce) error { return forged })
		if err != forged {
			t.Fatalf("Open(%d) with failing decrypt: %v, want the decrypt error", g, err)
		}
	}
	after, _ := tree.MarshalBinary()
	if !bytes.Equal(before, after) {
		t.Fatal("failed Open changed the tree")
	}
	// The real messages still decrypt, with the same keys as a twin tree.
	for _, g := range []uint32{1, 7} {
		var got KeyNonce
		if err := tree.Open(2, ApplicationRatchet, g, func(k KeyNonce) error { got = k; return nil }); err != nil {
			t.Fatal(err)
		}
		want, _ := twin.Key(2, ApplicationRatchet, g)
		if !bytes.Equal(got.Key, want.Key) {
			t.Errorf("generation %d: key differs from twin", g)
		}
		if err := tree.Open(2, ApplicationRatchet, g, func(KeyNonce) error { return nil }); !errors.Is(err, ErrGenerationUsed) {
			t.Errorf("second Open(%d): %v, want ErrGenerationUsed", g, err)
		}
	}
	// Jumping to 7 kept only 5 and 6 (MaxSkipped 2): 2 and 4 are gone.
	for _, g := range []uint32{2, 4} {
		if _, err := tree.Key(2, ApplicationRatchet, g); !errors.Is(err, ErrGenerationUsed) {
			t.Errorf("evicted generation %d: %v, want ErrGenerationUsed", g, err)
		}
	}
	for _, g := range []uint32{5, 6} {
		if _, err := tree.Key(2, ApplicationRatchet, g); err != nil {
			t.Errorf("kept generation %d: %v", g, err)
		}
	}
}

func TestClone(t *testing.T) {
	tree := newTree(t, 8, Window{})
	if _, err := tree.Key(5, ApplicationRatchet, 4); err != nil {
		t.Fatal(err)
	}
	orig, _ := tree.MarshalBinary()
	c := tree.Clone()
	if got, _ := c.MarshalBinary(); !bytes.Equal(got, orig) {
		t.Fatal("clone differs from the original")
	}
	for _, g := range []uint32{2, 6} {
		if _, err := c.Key(5, ApplicationRatchet, g); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Next(1, HandshakeRatchet); err != nil {
		t.Fatal(err)
	}
	if now, _ := tree.MarshalBinary(); !bytes.Equal(now, orig) {
		t.Error("using the clone changed the original")
	}
	if _, err := tree.Key(5, ApplicationRatchet, 2); err != nil {
		t.Errorf("original lost generation 2: %v", err)
	}
}
