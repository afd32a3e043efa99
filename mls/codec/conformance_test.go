package codec_test

import (
	"testing"

	"github.com/parleychat/parley/mls/conformance/vectortest"
)

// TestVectors runs the shared deserialization.json vectors; the checks live in
// package conformance.
func TestVectors(t *testing.T) {
	vectortest.Run(t, "deserialization.json")
}
