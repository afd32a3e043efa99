// Package datadir is what the parleyd commands share about the server's
// data directory. Only "parleyd serve" creates one. The admin commands work
// on its database files directly, so they must find them where they are
// told and never make new ones: an invite code or a hash list written to a
// new, empty database looks like success, yet the running server never sees
// it.
package datadir

import (
	"errors"
	"fmt"
	"path/filepath"
)

// ErrMissing is wrapped by the error Missing returns.
var ErrMissing = errors.New("no Parley data directory")

// Missing returns the error of an admin command that found no database
// file name in the data directory dir. It names the directory as an
// absolute path, because the usual mistake is running the command from
// another directory with the relative default, and says how to point at
// the right one.
func Missing(dir, name string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	return fmt.Errorf("%w at %s (no %s there): admin commands work on the data directory of a server started with \"parleyd serve\" and never create one; point at it with --data DIR or PARLEY_DATA=DIR",
		ErrMissing, abs, name)
}
