package keyschedule

import (
	"testing"

	"github.com/parleychat/parley/mls/ciphersuite"
)

// The vector checks for this package live in package conformance (see
// conformance_test.go); this file keeps the helper the other tests share.

func lookup(t testing.TB, id ciphersuite.ID) *ciphersuite.Suite {
	t.Helper()
	s, err := ciphersuite.Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
