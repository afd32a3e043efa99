// Package vectortest lets a package's own tests run the shared MLS test
// vectors of the kinds that package implements, through package
// conformance, so that each check is written once.
package vectortest

import (
	"testing"

	"github.com/parleychat/parley/internal/shareddata"
	"github.com/parleychat/parley/mls/conformance"
)

// Run runs the named files of the shared MLS vector folder (for example
// "tree-math.json") and fails t for every entry that does not pass,
// including skipped ones: every suite is implemented.
func Run(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		r, err := conformance.RunFile(shareddata.Path(t, "testdata", "mls", name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		for _, res := range r.Results {
			if res.Status != conformance.Passed {
				t.Errorf("%s entry %d (suite %d): %s: %s", name, res.Index, res.Suite, res.Status, res.Reason)
			}
		}
		if len(r.Results) == 0 {
			t.Errorf("%s: no entries", name)
		}
	}
}
