package server

import (
	"math/rand/v2"
	"testing"

	"github.com/parleychat/parley/mls"
)

// The four-byte check in front of toWire's parse must never skip a
// payload that parses as a PrivateMessage (it would go out unfranked),
// and must let real PrivateMessages through.
func TestPrivateMessageHeader(t *testing.T) {
	pm := (&mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatPrivateMessage, PrivateMessage: &mls.PrivateMessage{
		GroupID: []byte("group"), Epoch: 3, ContentType: mls.ContentTypeApplication,
		AuthenticatedData: []byte("aad"), EncryptedSenderData: []byte("sender data"), Ciphertext: []byte("ciphertext"),
	}}).Marshal()
	if !privateMessageHeader(pm) {
		t.Fatalf("a PrivateMessage %x is skipped", pm[:4])
	}
	rng := rand.New(rand.NewPCG(1, 2))
	payloads := [][]byte{nil, {0}, {0, 1, 0}, {0, 1, 0, 1}, {0, 2, 0, 2}, {1, 0, 2, 0}}
	for range 20000 {
		b := make([]byte, rng.IntN(64))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if len(b) >= 4 && rng.IntN(2) == 0 {
			copy(b, pm[:4]) // a PrivateMessage header, random after it
		}
		payloads = append(payloads, b)
	}
	// Mutations of the real one: every truncation and one-byte change.
	for i := range pm {
		payloads = append(payloads, pm[:i])
		c := append([]byte(nil), pm...)
		c[i] ^= 0x01
		payloads = append(payloads, c)
	}
	for _, b := range payloads {
		var m mls.MLSMessage
		parses := m.Unmarshal(b) == nil && m.PrivateMessage != nil
		if parses && !privateMessageHeader(b) {
			t.Fatalf("%x parses as a PrivateMessage but the header check skips it", b)
		}
	}
}
