package profile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ErrLocked is returned by Lock when another process keeps the profile
// locked past the context's deadline.
var ErrLocked = errors.New("profile: in use by another parley process")

// lockName is the advisory lock file inside a profile directory.
const lockName = "lock"

// Lock takes the profile's inter-process lock, waiting until ctx is done.
// The returned function releases it. Lock is not reentrant.
func (s *Store) Lock(ctx context.Context) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(s.dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("profile: lock: %w", err)
	}
	delay := 5 * time.Millisecond
	for {
		ok, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("profile: lock: %w", err)
		}
		if ok {
			return func() { unlockFile(f); f.Close() }, nil
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ErrLocked
		case <-time.After(delay):
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}
