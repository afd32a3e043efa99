package commit

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"testing/iotest"
)

// TestKnownAnswer writes CommitmentValue out byte by byte from the draft's
// struct (§11.6) and checks Compute against an HMAC of it.
func TestKnownAnswer(t *testing.T) {
	kcHex := "d821f8790d97709796b4d7903357c3f5" // §17.1
	key, _ := hex.DecodeString(kcHex)
	var o Opening
	for i := range o {
		o[i] = byte(i)
	}
	label := []byte("alice")
	value := []byte("device list v3")
	var msg []byte
	msg = append(msg, o[:]...)
	msg = append(msg, 5)
	msg = append(msg, label...)
	msg = append(msg, 0, 0, 0, 3)  // version 3
	msg = append(msg, 0, 0, 0, 14) // len(value)
	msg = append(msg, value...)
	mac := hmac.New(sha256.New, key)
	mac.Write(msg)
	want := mac.Sum(nil)

	got, err := Compute(o, label, 3, value)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:], want) {
		t.Fatalf("Compute = %x, want %x", got, want)
	}
	if err := Verify(got, o, label, 3, value); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyRefusesEveryChange(t *testing.T) {
	label, value := []byte("bob"), []byte("keys")
	c, o, err := New(rand.Reader, label, 7, value)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(c, o, label, 7, value); err != nil {
		t.Fatal(err)
	}
	o2 := o
	o2[0] ^= 1
	c2 := c
	c2[31] ^= 0x80
	for name, err := range map[string]error{
		"other opening":    Verify(c, o2, label, 7, value),
		"other label":      Verify(c, o, []byte("bob2"), 7, value),
		"other version":    Verify(c, o, label, 8, value),
		"other value":      Verify(c, o, label, 7, []byte("keyz")),
		"empty value":      Verify(c, o, label, 7, nil),
		"other commitment": Verify(c2, o, label, 7, value),
	} {
		if !errors.Is(err, ErrMismatch) {
			t.Errorf("%s: %v, want ErrMismatch", name, err)
		}
	}
}

// TestLengthPrefixesSeparateFields checks that moving bytes between the
// label and the value changes the commitment.
func TestLengthPrefixesSeparateFields(t *testing.T) {
	var o Opening
	a, _ := Compute(o, []byte("ab"), 1, []byte("c"))
	b, _ := Compute(o, []byte("a"), 1, []byte("bc"))
	if a == b {
		t.Fatal("label/value boundary is not bound")
	}
}

func TestFreshOpenings(t *testing.T) {
	c1, o1, _ := New(rand.Reader, []byte("x"), 0, []byte("v"))
	c2, o2, _ := New(rand.Reader, []byte("x"), 0, []byte("v"))
	if o1 == o2 || c1 == c2 {
		t.Fatal("two commitments to the same value are equal: openings are not fresh")
	}
}

func TestLimits(t *testing.T) {
	var o Opening
	if _, err := Compute(o, make([]byte, MaxLabelLen), 0, nil); err != nil {
		t.Fatalf("255-byte label: %v", err)
	}
	if _, err := Compute(o, make([]byte, MaxLabelLen+1), 0, nil); !errors.Is(err, ErrLabelTooLong) {
		t.Fatalf("256-byte label: %v", err)
	}
	if err := Verify(Commitment{}, o, make([]byte, 300), 0, nil); !errors.Is(err, ErrLabelTooLong) {
		t.Fatalf("Verify with a long label: %v", err)
	}
	if _, _, err := New(iotest.ErrReader(errors.New("no entropy")), nil, 0, nil); err == nil {
		t.Fatal("New with a failing random source succeeded")
	}
}

func BenchmarkCompute(b *testing.B) {
	var o Opening
	label := []byte("alice")
	value := make([]byte, 200)
	for b.Loop() {
		if _, err := Compute(o, label, 1, value); err != nil {
			b.Fatal(err)
		}
	}
}
