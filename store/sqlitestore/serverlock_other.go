//go:build !unix

package sqlitestore

import "os"

// lockServer takes no lock where flock(2) is missing: one server per
// database is then the operator's to keep.
func lockServer(string) (*os.File, error) { return nil, nil }
