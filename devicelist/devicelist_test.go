package devicelist

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/wire/parleypb"
)

func testList(t testing.TB) (List, ed25519.PrivateKey) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	dpub, _, _ := ed25519.GenerateKey(rand.Reader)
	return List{Username: "alice", AccountKey: pub, Version: 3, Signed: time.Unix(1700000000, 0).UTC(),
		Devices: []Device{{ID: "d1", AuthKey: dpub, MLSKey: bytes.Repeat([]byte{7}, 32), Added: time.Unix(1600000000, 0).UTC()}}}, priv
}

func TestSignVerify(t *testing.T) {
	l, priv := testList(t)
	s, err := Sign(l, priv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(s)
	if err != nil {
		t.Fatal(err)
	}
	if got.Username != "alice" || got.Version != 3 || !got.HasMLSKey("d1", l.Devices[0].MLSKey) || got.HasMLSKey("d1", []byte("x")) || !got.Signed.Equal(l.Signed) {
		t.Fatalf("round trip: %+v", got)
	}
}

// A server that edits a list (adds a ghost, swaps a key, raises the
// version) breaks the signature.
func TestTamperedListsAreRefused(t *testing.T) {
	l, priv := testList(t)
	s, _ := Sign(l, priv)
	for i := range s.List {
		c := &parleypb.SignedDeviceList{List: bytes.Clone(s.List), Signature: s.Signature}
		c.List[i] ^= 1
		if _, err := Verify(c); err == nil {
			t.Fatalf("list with byte %d flipped verifies", i)
		}
	}
	// A list signed by another key verifies only as that key's list: the
	// caller's pin catches it.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	l2 := l
	l2.AccountKey = other.Public().(ed25519.PublicKey)
	s2, _ := Sign(l2, other)
	got, err := Verify(s2)
	if err != nil || bytes.Equal(got.AccountKey, l.AccountKey) {
		t.Fatalf("re-signed list: %v", err)
	}
	if _, err := Sign(l, other); err == nil {
		t.Fatal("signed with a key that is not the list's")
	}
	if _, err := Verify(&parleypb.SignedDeviceList{List: s.List, Signature: make([]byte, 64)}); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("zero signature: %v", err)
	}
	zero := &parleypb.DeviceList{Username: "alice", AccountKey: make([]byte, 32), Version: 1}
	if _, err := Verify(&parleypb.SignedDeviceList{List: mustMarshal(t, zero), Signature: make([]byte, 64)}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("small-order account key: %v", err)
	}
}

func TestMalformedListsAreRefused(t *testing.T) {
	l, priv := testList(t)
	for name, mod := range map[string]func(*List){
		"bad name":     func(l *List) { l.Username = "A" },
		"version 0":    func(l *List) { l.Version = 0 },
		"repeated id":  func(l *List) { l.Devices = append(l.Devices, l.Devices[0]) },
		"short key":    func(l *List) { l.Devices[0].AuthKey = l.Devices[0].AuthKey[:5] },
		"no mls key":   func(l *List) { l.Devices[0].MLSKey = nil },
		"empty device": func(l *List) { l.Devices[0].ID = "" },
	} {
		c := l
		c.Devices = append([]Device(nil), l.Devices...)
		mod(&c)
		if _, err := Sign(c, priv); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Sign = %v, want ErrMalformed", name, err)
		}
	}
	if _, err := Verify(nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("nil: %v", err)
	}
	if _, err := Verify(&parleypb.SignedDeviceList{List: []byte{0xff, 0xff}}); !errors.Is(err, ErrMalformed) {
		t.Errorf("garbage: %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	l, priv := testList(f)
	s, _ := Sign(l, priv)
	f.Add(s.List, s.Signature)
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, list, sig []byte) {
		got, err := Verify(&parleypb.SignedDeviceList{List: list, Signature: sig})
		if err != nil {
			return
		}
		// Anything accepted is well formed and re-verifies.
		if check(got) != nil {
			t.Fatalf("accepted a list that fails check: %+v", got)
		}
	})
}

func mustMarshal(t *testing.T, m *parleypb.DeviceList) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
