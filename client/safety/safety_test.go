package safety

import (
	"bytes"
	"regexp"
	"testing"
)

func TestNumber(t *testing.T) {
	alice := Party{User: "alice", Keys: [][]byte{[]byte("alice-phone-key"), []byte("alice-laptop-key")}}
	bob := Party{User: "bob", Keys: [][]byte{[]byte("bob-key")}}
	n1, err := Number(alice, bob)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9]{60}$`).MatchString(n1) {
		t.Fatalf("number %q is not 60 digits", n1)
	}
	// Same on both sides and independent of key order.
	alice2 := Party{User: "alice", Keys: [][]byte{alice.Keys[1], alice.Keys[0]}}
	n2, err := Number(bob, alice2)
	if err != nil {
		t.Fatal(err)
	}
	if n1 != n2 {
		t.Fatalf("sides disagree: %s vs %s", n1, n2)
	}
	// An extra device changes alice's half only.
	alice3 := Party{User: "alice", Keys: append(alice.Keys, []byte("mallory-key"))}
	n3, _ := Number(alice3, bob)
	if n3[:30] == n1[:30] || n3[30:] != n1[30:] {
		t.Fatalf("extra device: %s vs %s", n3, n1)
	}
	// Renaming a user changes their half.
	n4, _ := Number(Party{User: "alicf", Keys: alice.Keys}, bob)
	if n4[:30] == n1[:30] {
		t.Fatal("user name not bound")
	}
	if got := Format("1234567890123"); got != "12345 67890 123" {
		t.Fatalf("Format = %q", got)
	}
	if _, err := Number(alice, alice); err == nil {
		t.Fatal("same user accepted")
	}
	if _, err := Number(alice, Party{User: "bob"}); err == nil {
		t.Fatal("party without keys accepted")
	}
}

// TestKnownAnswer pins the documented construction (docs/safety-numbers.md
// has the same worked example): the digits below were computed from the
// description with an independent implementation (Python's hashlib), not
// with this package, so a change to the construction (the iteration
// count, the encoding, the digit reduction) fails here.
func TestKnownAnswer(t *testing.T) {
	key := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	alice := Party{User: "alice", Keys: [][]byte{key(2), key(1)}}
	bob := Party{User: "bob", Keys: [][]byte{key(3)}}
	for _, tc := range []struct {
		p    Party
		want string
	}{
		{alice, "368324568316427942915843831280"},
		{bob, "158902442519803041000247320901"},
	} {
		got, err := Fingerprint(tc.p)
		if err != nil || got != tc.want {
			t.Errorf("Fingerprint(%s) = %s, %v; want %s", tc.p.User, got, err, tc.want)
		}
	}
	n, err := Number(bob, alice)
	if err != nil || n != "368324568316427942915843831280158902442519803041000247320901" {
		t.Errorf("Number = %s, %v", n, err)
	}
}
