package keyschedule_test

import (
	"testing"

	"github.com/parleychat/parley/mls/conformance/vectortest"
)

// TestVectors runs the shared key-schedule, PSK, secret-tree and
// transcript-hash vectors; the checks live in package conformance.
func TestVectors(t *testing.T) {
	vectortest.Run(t, "key-schedule.json", "psk_secret.json", "secret-tree.json", "transcript-hashes.json")
}
