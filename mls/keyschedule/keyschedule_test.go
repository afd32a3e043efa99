package keyschedule

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/codec"
)

func testEpoch(t *testing.T, id ciphersuite.ID) *Epoch {
	t.Helper()
	s := lookup(t, id)
	e, err := NewEpoch(s, bytes.Repeat([]byte{1}, s.Nh()), nil, nil, []byte("group context"))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestEpochInputs(t *testing.T) {
	s := lookup(t, ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	init := bytes.Repeat([]byte{1}, s.Nh())
	// nil commit and PSK secrets are the all-zero ones.
	a, err := NewEpoch(s, init, nil, nil, []byte("gc"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewEpoch(s, init, make([]byte, s.Nh()), make([]byte, s.Nh()), []byte("gc"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.EpochAuthenticator, b.EpochAuthenticator) {
		t.Error("nil secrets differ from zero secrets")
	}
	c, _ := NewEpoch(s, init, nil, nil, []byte("gC"))
	if bytes.Equal(a.InitSecret, c.InitSecret) || bytes.Equal(a.JoinerSecret, c.JoinerSecret) {
		t.Error("GroupContext does not bind the epoch")
	}
	for _, bad := range [][]byte{nil, init[1:], append(bytes.Clone(init), 0)} {
		if _, err := NewEpoch(s, bad, nil, nil, nil); !errors.Is(err, ErrInvalidSecret) {
			t.Errorf("init_secret of %d bytes: %v, want ErrInvalidSecret", len(bad), err)
		}
	}
	if _, err := NewEpoch(s, init, []byte{1}, nil, nil); !errors.Is(err, ErrInvalidSecret) {
		t.Errorf("short commit_secret: %v, want ErrInvalidSecret", err)
	}
	if _, err := FromJoinerSecret(s, init, []byte{1}, nil); !errors.Is(err, ErrInvalidSecret) {
		t.Errorf("short psk_secret: %v, want ErrInvalidSecret", err)
	}
	key, nonce := WelcomeKeyNonce(s, a.WelcomeSecret)
	if len(key) != s.Nk() || len(nonce) != s.Nn() {
		t.Errorf("welcome key/nonce are %d/%d bytes", len(key), len(nonce))
	}
	a.ForgetJoinSecrets()
	if a.JoinerSecret != nil || a.WelcomeSecret != nil {
		t.Error("ForgetJoinSecrets kept the secrets")
	}
}

func TestEpochConsumesEncryptionSecret(t *testing.T) {
	e := testEpoch(t, ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	want := bytes.Clone(e.EncryptionSecret)
	tree, err := e.NewSecretTree(4, Window{})
	if err != nil {
		t.Fatal(err)
	}
	if e.EncryptionSecret != nil {
		t.Error("encryption_secret still held after building the secret tree")
	}
	if _, err := e.NewSecretTree(4, Window{}); !errors.Is(err, ErrConsumed) {
		t.Errorf("second NewSecretTree: %v, want ErrConsumed", err)
	}
	other, _ := NewSecretTree(e.Suite, want, 4, Window{})
	a, _ := tree.Next(2, HandshakeRatchet)
	b, _ := other.Next(2, HandshakeRatchet)
	if !bytes.Equal(a.Key, b.Key) {
		t.Error("Epoch.NewSecretTree used another secret")
	}
}

func TestExporterAndTags(t *testing.T) {
	e := testEpoch(t, ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	a, err := e.Export("parley call key", []byte("ctx"), 32)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := e.Export("parley call key", []byte("ctx2"), 32)
	c, _ := e.Export("parley call keY", []byte("ctx"), 32)
	if bytes.Equal(a, b) || bytes.Equal(a, c) || len(a) != 32 {
		t.Error("exporter output does not depend on label and context")
	}
	for _, n := range []int{-1, 255*32 + 1, 1 << 16} {
		if _, err := e.Export("x", nil, n); !errors.Is(err, ErrInvalidLength) {
			t.Errorf("Export length %d: %v, want ErrInvalidLength", n, err)
		}
	}
	tag := e.ConfirmationTag([]byte("confirmed"))
	if err := e.VerifyConfirmationTag([]byte("confirmed"), tag); err != nil {
		t.Error(err)
	}
	tag[0] ^= 1
	if err := e.VerifyConfirmationTag([]byte("confirmed"), tag); !errors.Is(err, ErrConfirmationTag) {
		t.Errorf("flipped tag: %v, want ErrConfirmationTag", err)
	}
	if bytes.Equal(e.MembershipTag([]byte("x")), e.ConfirmationTag([]byte("x"))) {
		t.Error("membership and confirmation keys coincide")
	}
}

func TestExternalInit(t *testing.T) {
	for _, id := range ciphersuite.Supported() {
		e := testEpoch(t, id)
		priv, pub, err := e.ExternalKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		kemOut, initSecret, err := ExternalInit(e.Suite, pub)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ExternalInitOpen(e.Suite, priv, kemOut)
		if err != nil || !bytes.Equal(got, initSecret) || len(initSecret) != e.Suite.Nh() {
			t.Errorf("%v: ExternalInitOpen = %x, %v; want %x", e.Suite, got, err, initSecret)
		}
	}
}

func TestEpochPersistence(t *testing.T) {
	e := testEpoch(t, ciphersuite.MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448)
	if _, err := e.NewSecretTree(2, Window{}); err != nil { // consumes encryption_secret
		t.Fatal(err)
	}
	data, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back Epoch
	if err := back.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if back.Suite != e.Suite || back.EncryptionSecret != nil || !bytes.Equal(back.InitSecret, e.InitSecret) ||
		!bytes.Equal(back.ResumptionPSK, e.ResumptionPSK) || !bytes.Equal(back.JoinerSecret, e.JoinerSecret) {
		t.Error("epoch did not round-trip")
	}
	for n := range data {
		if err := back.UnmarshalBinary(data[:n]); err == nil {
			t.Errorf("truncated epoch of %d bytes accepted", n)
		}
	}
	if !bytes.Equal(back.InitSecret, e.InitSecret) {
		t.Error("failed UnmarshalBinary changed the epoch")
	}
}

func TestPreSharedKeyID(t *testing.T) {
	ids := []PreSharedKeyID{
		{Type: PSKExternal, ExternalID: []byte("psk-1"), Nonce: bytes.Repeat([]byte{3}, 32)},
		{Type: PSKResumption, Usage: UsageReinit, GroupID: []byte("group"), Epoch: 77, Nonce: []byte{}},
	}
	for _, id := range ids {
		enc, err := id.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		r := codec.NewReader(enc)
		got := DecodePreSharedKeyID(r)
		if err := r.Finish(); err != nil {
			t.Fatal(err)
		}
		again, _ := got.MarshalBinary()
		if !bytes.Equal(again, enc) {
			t.Errorf("PreSharedKeyID did not round-trip: %x vs %x", again, enc)
		}
	}
	for _, bad := range [][]byte{{0, 0}, {3, 0}, {2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, {2, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		r := codec.NewReader(bad)
		DecodePreSharedKeyID(r)
		if !errors.Is(r.Err(), codec.ErrInvalidValue) {
			t.Errorf("DecodePreSharedKeyID(%x): %v, want ErrInvalidValue", bad, r.Err())
		}
	}
	if _, err := (&PreSharedKeyID{Type: 9}).MarshalBinary(); err == nil {
		t.Error("unknown psktype marshalled")
	}
}

func TestPSKSecretOrder(t *testing.T) {
	s := lookup(t, ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	zero, _ := PSKSecret(s, nil)
	if !bytes.Equal(zero, make([]byte, s.Nh())) {
		t.Error("no PSKs is not the zero secret")
	}
	p1 := PSK{ID: []byte{1, 1, 'a', 0}, Secret: []byte("one")}
	p2 := PSK{ID: []byte{1, 1, 'b', 0}, Secret: []byte("two")}
	ab, _ := PSKSecret(s, []PSK{p1, p2})
	ba, _ := PSKSecret(s, []PSK{p2, p1})
	if bytes.Equal(ab, ba) {
		t.Error("psk_secret does not depend on PSK order")
	}
}
