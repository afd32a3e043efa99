package treemath_test

import (
	"testing"

	"github.com/parleychat/parley/mls/conformance/vectortest"
)

// TestVectors runs the shared tree-math.json vectors; the checks live in
// package conformance.
func TestVectors(t *testing.T) {
	vectortest.Run(t, "tree-math.json")
}
