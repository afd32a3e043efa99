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
	paths := make([]string, len(names))
	for i, name := range names {
		paths[i] = shareddata.Path(t, "testdata", "mls", name)
	}
	RunFiles(t, paths...)
}

// RunFiles is Run for vector files given by path, such as the upstream
// files kept in mls/conformance/testdata that the shared folder lacks.
func RunFiles(t *testing.T, paths ...string) {
	t.Helper()
	for _, path := range paths {
		r, err := conformance.RunFile(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		for _, res := range r.Results {
			if res.Status != conformance.Passed {
				t.Errorf("%s entry %d (suite %d): %s: %s", path, res.Index, res.Suite, res.Status, res.Reason)
			}
		}
		if len(r.Results) == 0 {
			t.Errorf("%s: no entries", path)
		}
	}
}
