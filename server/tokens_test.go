package server

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Blob bearer tokens are kept only as SHA-256 hashes (docs/protocol.md
// §10): the token itself is nowhere in what the server holds, it still
// finds its device, and a token one character off finds nothing.
func TestTokensStoredHashed(t *testing.T) {
	tk := newTokens()
	tok := tk.issue("device-1", time.Hour)
	if dev, ok := tk.device(tok); !ok || dev != "device-1" {
		t.Fatalf("token does not find its device: %q %v", dev, ok)
	}
	for k, v := range tk.m {
		if strings.Contains(string(k[:]), tok) || strings.Contains(fmt.Sprintf("%x %+v", k, v), tok) {
			t.Fatal("the token is stored as is")
		}
	}
	off := tok[:len(tok)-1] + string(rune(tok[len(tok)-1]^1))
	if _, ok := tk.device(off); ok {
		t.Fatal("a different token found the device")
	}
	expired := tk.issue("device-2", -time.Second)
	if _, ok := tk.device(expired); ok {
		t.Fatal("an expired token found its device")
	}
}
