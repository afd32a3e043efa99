//go:build unix

package sqlitestore

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockServer takes the exclusive advisory lock that Options.OneServer
// asks for, on path+"-server.lock", and holds it until the file is
// closed. A second server on the same database would keep its own
// conversation cache and message log index, both of which assume this
// process alone writes messages, heads and cursors (convcache.go,
// logindex.go): the two would give out the same seq twice.
func lockServer(path string) (*os.File, error) {
	f, err := os.OpenFile(path+"-server.lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("sqlitestore: %s: %w (stop it first, or give this server another --data directory)", path, ErrServerRunning)
		}
		return nil, fmt.Errorf("sqlitestore: lock %s: %w", path, err)
	}
	return f, nil
}
