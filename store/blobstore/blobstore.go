// Package blobstore implements store.Blobs on a directory: each blob is a
// file named by a random id, written to a temporary file, fsynced and
// renamed into place so a blob is either complete or absent.
package blobstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/parleychat/parley/store"
)

// Dir stores blobs under a directory.
type Dir struct {
	dir string
}

var _ store.Blobs = (*Dir)(nil)

// Open uses dir (created with mode 0700 if missing) for blobs. Leftover
// temporary files from an interrupted upload are removed.
func Open(dir string) (*Dir, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("blobstore: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("blobstore: %w", err)
	}
	tmps, _ := os.ReadDir(filepath.Join(dir, "tmp"))
	for _, e := range tmps {
		os.Remove(filepath.Join(dir, "tmp", e.Name()))
	}
	return &Dir{dir: dir}, nil
}

// ValidID reports whether id has the form of a blob id (32 hex digits), so
// ids from requests can never name paths outside the directory.
func ValidID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (d *Dir) Put(ctx context.Context, r io.Reader, max int64) (string, int64, error) {
	var raw [16]byte
	rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	f, err := os.OpenFile(filepath.Join(d.dir, "tmp", id), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", 0, fmt.Errorf("blobstore: %w", err)
	}
	tmp := f.Name()
	fail := func(err error) (string, int64, error) {
		f.Close()
		os.Remove(tmp)
		return "", 0, err
	}
	n, err := io.Copy(f, io.LimitReader(ctxReader{ctx, r}, max+1))
	if err != nil {
		return fail(fmt.Errorf("blobstore: write: %w", err))
	}
	if n > max {
		return fail(fmt.Errorf("blobstore: more than %d bytes: %w", max, store.ErrTooLarge))
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("blobstore: sync: %w", err))
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return "", 0, fmt.Errorf("blobstore: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(d.dir, id)); err != nil {
		os.Remove(tmp)
		return "", 0, fmt.Errorf("blobstore: %w", err)
	}
	if err := syncDir(d.dir); err != nil {
		return "", 0, err
	}
	return id, n, nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("blobstore: sync dir: %w", err)
	}
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (d *Dir) Open(ctx context.Context, id string) (io.ReadCloser, int64, error) {
	if !ValidID(id) {
		return nil, 0, fmt.Errorf("blobstore: bad id: %w", store.ErrNotFound)
	}
	f, err := os.Open(filepath.Join(d.dir, id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("blobstore: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("blobstore: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("blobstore: %w", err)
	}
	return f, fi.Size(), nil
}

func (d *Dir) DeleteExpired(ctx context.Context, before time.Time) (int, error) {
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return 0, fmt.Errorf("blobstore: %w", err)
	}
	n := 0
	for _, e := range entries {
		if e.IsDir() || !ValidID(e.Name()) || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		fi, err := e.Info()
		if err != nil || !fi.ModTime().Before(before) {
			continue
		}
		if err := os.Remove(filepath.Join(d.dir, e.Name())); err == nil {
			n++
		}
	}
	return n, nil
}
