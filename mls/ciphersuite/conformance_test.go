package ciphersuite_test

import (
	"testing"

	"github.com/parleychat/parley/mls/conformance/vectortest"
)

// TestVectors runs the shared crypto-basics.json vectors; the checks live in
// package conformance.
func TestVectors(t *testing.T) {
	vectortest.Run(t, "crypto-basics.json")
}
