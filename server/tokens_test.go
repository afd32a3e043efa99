package server

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// Blob bearer tokens are MACs over device and expiry (docs/protocol.md
// §10): a node with the same key accepts another's token; a token under
// another key (forged), one bit off, past its expiry or rewritten to name
// another device is refused.
func TestTokensMAC(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	key := bytes.Repeat([]byte{7}, BlobTokenKeySize)
	a, b := newTokens(key, clock), newTokens(bytes.Clone(key), clock)
	tok := a.issue("device-1", time.Hour)
	if dev, err := b.device(tok); err != nil || dev != "device-1" {
		t.Fatalf("a token from node A on node B: %q %v", dev, err)
	}
	if strings.Contains(tok, string(key)) {
		t.Fatal("the key is in the token")
	}
	forger := newTokens(bytes.Repeat([]byte{8}, BlobTokenKeySize), clock)
	if _, err := a.device(forger.issue("device-1", time.Hour)); err == nil {
		t.Fatal("a token made with another key was accepted")
	}
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	for i := range raw {
		off := bytes.Clone(raw)
		off[i] ^= 1
		if _, err := a.device(base64.RawURLEncoding.EncodeToString(off)); err == nil {
			t.Fatalf("a token with byte %d changed was accepted", i)
		}
	}
	// Another device's id with the first token's MAC.
	other := bytes.Clone(raw)
	copy(other[tokenHeader:], "device-2")
	if _, err := a.device(base64.RawURLEncoding.EncodeToString(other)); err == nil {
		t.Fatal("a token rewritten to name another device was accepted")
	}
	now = now.Add(time.Hour)
	if _, err := a.device(tok); err == nil {
		t.Fatal("a token was accepted at its expiry")
	}
	if _, err := a.device(a.issue("device-3", -time.Second)); err == nil {
		t.Fatal("an expired token was accepted")
	}
	for _, bad := range []string{"", "x", strings.Repeat("A", maxTokenChars+1), tok + "A", "!" + tok[1:]} {
		if _, err := a.device(bad); err == nil {
			t.Fatalf("the malformed token %.20q was accepted", bad)
		}
	}
}

// FuzzBlobToken: a token is untrusted bytes from any HTTP client. Whatever
// it is, parsing does not panic, and a token that is accepted is exactly
// the one the issuer would make for what it carries (nothing else verifies);
// a real token survives the round trip.
func FuzzBlobToken(f *testing.F) {
	key := bytes.Repeat([]byte{1}, BlobTokenKeySize)
	tk := newTokens(key, func() time.Time { return time.Unix(1_800_000_000, 0) })
	good := tk.issue("0123456789abcdef0123456789abcdef", time.Hour)
	f.Add(good)
	f.Add("")
	f.Add(good[:len(good)-2])
	f.Add(strings.Repeat("A", 200))
	f.Fuzz(func(t *testing.T, s string) {
		dev, exp, err := tk.parse(s)
		if err != nil {
			return
		}
		if re := tk.encode(dev, exp); re != s {
			t.Fatalf("accepted %q, which is not the token for (%q, %d): %q", s, dev, exp, re)
		}
		if s != good && dev == "0123456789abcdef0123456789abcdef" && exp == time.Unix(1_800_000_000, 0).Add(time.Hour).Unix() {
			t.Fatal("a second encoding of the good token was accepted")
		}
	})
}

// Upload tickets (docs/protocol.md §10, direct uploads) bind account,
// blob id, size and the blob's expiry: another node with the key takes
// one; one under another key, with any byte changed, or past its expiry
// is refused.
func TestUploadTicket(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	key := bytes.Repeat([]byte{7}, BlobTokenKeySize)
	a, b := newTokens(key, clock), newTokens(bytes.Clone(key), clock)
	tk := a.uploadTicket("alice", "0123456789abcdef0123456789abcdef", 4000, 1_800_003_600, time.Hour)
	owner, id, size, exp, err := b.checkUploadTicket(tk)
	if err != nil || owner != "alice" || id != "0123456789abcdef0123456789abcdef" || size != 4000 || exp != 1_800_003_600 {
		t.Fatalf("a ticket from node A on node B: %q %q %d %d %v", owner, id, size, exp, err)
	}
	forger := newTokens(bytes.Repeat([]byte{8}, BlobTokenKeySize), clock)
	if _, _, _, _, err := a.checkUploadTicket(forger.uploadTicket("alice", "x", 1, 0, time.Hour)); err == nil {
		t.Fatal("a ticket made with another key was accepted")
	}
	for i := range tk {
		for _, c := range []byte{'A', '_', '.'} {
			if tk[i] == c {
				continue
			}
			off := tk[:i] + string(c) + tk[i+1:]
			if _, _, _, _, err := a.checkUploadTicket(off); err == nil {
				t.Fatalf("a ticket with character %d changed to %q was accepted", i, c)
			}
		}
	}
	now = now.Add(time.Hour + time.Second)
	if _, _, _, _, err := a.checkUploadTicket(tk); err == nil {
		t.Fatal("an expired ticket was accepted")
	}
}

// FuzzUploadTicket: whatever a client sends as an upload ticket is
// refused without a panic, unless it is one the server made.
func FuzzUploadTicket(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	tokens := newTokens(bytes.Repeat([]byte{7}, BlobTokenKeySize), func() time.Time { return now })
	genuine := tokens.uploadTicket("alice", "0123456789abcdef0123456789abcdef", 4000, 0, time.Hour)
	f.Add(genuine)
	f.Add("")
	f.Add(".")
	f.Add(strings.Repeat("A", 600))
	f.Add(genuine[:len(genuine)/2])
	f.Fuzz(func(t *testing.T, tk string) {
		owner, id, size, _, err := tokens.checkUploadTicket(tk)
		if err != nil {
			return
		}
		if tk != genuine || owner != "alice" || id != "0123456789abcdef0123456789abcdef" || size != 4000 {
			t.Fatalf("accepted a ticket the server did not make: %q (%q %q %d)", tk, owner, id, size)
		}
	})
}
