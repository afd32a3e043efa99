package mls_test

import (
	"path/filepath"
	"testing"

	"github.com/parleychat/parley/mls/conformance/vectortest"
)

// TestVectors runs the MLS test vectors that exercise this package: the
// checks live in package conformance (which imports this one, so this test
// is external), and each file runs as its own parallel subtest.
func TestVectors(t *testing.T) {
	for _, name := range []string{
		"tree-validation.json",
		"tree-operations.json",
		"treekem.json",
		"message-protection.json",
		"welcome.json",
		"transcript-hashes.json",
		"passive-client-welcome.json",
		"interop-passive/application.json",
		"interop-passive/welcome_join.json",
		"interop-passive/external_join.json",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			vectortest.Run(t, name)
		})
	}
	// Upstream files the shared folder lacks (see conformance/testdata/SOURCE.md).
	for _, name := range []string{
		"messages.json",
		"passive-client-handling-commit.json",
		"passive-client-random.json",
		"external_proposals.json",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			vectortest.RunFiles(t, filepath.Join("conformance", "testdata", name))
		})
	}
}
