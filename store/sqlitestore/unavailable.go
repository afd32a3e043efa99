package sqlitestore

import (
	"errors"
	"fmt"
	"syscall"

	"modernc.org/sqlite"

	"github.com/parleychat/parley/store"
)

// Primary SQLite result codes meaning the storage itself failed
// (https://sqlite.org/rescode.html), as opposed to a bad request.
const (
	sqliteReadOnly = 8
	sqliteIOErr    = 10
	sqliteFull     = 13
	sqliteCantOpen = 14
)

// unavailable marks errors caused by the disk (full, read-only, I/O
// error) with store.ErrUnavailable, so the server can answer
// STORAGE_UNAVAILABLE instead of INTERNAL. Other errors pass unchanged.
func unavailable(err error) error {
	if err == nil || errors.Is(err, store.ErrUnavailable) {
		return err
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqliteReadOnly, sqliteIOErr, sqliteFull, sqliteCantOpen:
			return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EIO) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EFBIG) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}
