package client

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// TestPinnedFormats pins the user-visible and on-the-wire values derived
// in this package against the worked examples of docs/formats.md, which
// were computed from the documented constructions with an independent
// implementation (Python's hashlib and hmac), not with this code.
func TestPinnedFormats(t *testing.T) {
	secret := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	auth, mlsKey, acct := bytes.Repeat([]byte{0xaa}, 32), bytes.Repeat([]byte{0xbb}, 32), bytes.Repeat([]byte{0xcc}, 32)
	if got := linkCode("12345678", secret); got != "12345678-AEBA-GBAF-AYDQ-QCIK" {
		t.Errorf("link code %s", got)
	}
	if code, sec, err := splitLinkCode("12345678-AEBA-GBAF-AYDQ-QCIK"); err != nil || code != "12345678" || !bytes.Equal(sec, secret) {
		t.Errorf("split link code: %s %x %v", code, sec, err)
	}
	if got := hex.EncodeToString(linkMAC(secret, "alice", auth, mlsKey)); got != "6447bd93b80245e07271ada3d92796746434d1a17a8219ebbfb11481c24a4fd1" {
		t.Errorf("link MAC %s", got)
	}
	conf := linkConfirmation(secret, "alice", acct, auth)
	if got := hex.EncodeToString(conf[len(acct):]); !bytes.Equal(conf[:len(acct)], acct) || got != "b28d64d265ebe019a2643d8616b3c761279bb7ffab4bb107c6654e7e940599fd" {
		t.Errorf("link confirmation %x", conf)
	}
	if got := fingerprint(acct); got != "c2f480d4dda9" {
		t.Errorf("account key fingerprint %s", got)
	}
}
