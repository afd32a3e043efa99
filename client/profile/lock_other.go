//go:build !unix && !js

package profile

import "os"

// On systems without flock the lock is process-local only.
func tryLock(f *os.File) (bool, error) { return true, nil }

func unlockFile(f *os.File) {}
