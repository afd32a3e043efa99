package blobstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/store/blobtest"
)

func open(t *testing.T, dir string) *Dir {
	t.Helper()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestContract(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) store.Blobs { return open(t, filepath.Join(t.TempDir(), "blobs")) })
}

func TestFilesAndModes(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "blobs")
	d := open(t, dir)
	data := bytes.Repeat([]byte("ciphertext"), 1000)
	id, n, err := d.Put(ctx, "alice", bytes.NewReader(data), store.PutLimits{Max: int64(len(data))})
	if err != nil || n != int64(len(data)) || !ValidID(id) {
		t.Fatalf("Put = %q, %d, %v", id, n, err)
	}
	fi, _ := os.Stat(filepath.Join(dir, id))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("blob mode %v", fi.Mode().Perm())
	}
	for _, p := range []string{dir, filepath.Join(dir, IndexDir)} {
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o700 {
			t.Fatalf("%s mode %v", p, fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, IndexDir, "blobs.db")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("index mode %v", fi.Mode().Perm())
	}
	// Refused uploads leave no file behind.
	if _, _, err := d.Put(ctx, "alice", bytes.NewReader(data), store.PutLimits{Max: int64(len(data) - 1)}); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("oversized Put: %v", err)
	}
	if _, _, err := d.Put(ctx, "alice", bytes.NewReader(data), store.PutLimits{Max: int64(len(data)), Quota: int64(len(data)) + 10}); !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("Put over the quota: %v", err)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(left) != 0 {
		t.Fatalf("refused uploads left %d temp files", len(left))
	}
	if err := d.Delete(ctx, "alice", id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, id)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("deleted blob's file: %v", err)
	}
}

// Blob files stored before the index existed are indexed when the store
// is first opened: owned by nobody (no account can delete them or is
// charged for them), expiring by their file time. The index and the
// usage survive a reopen.
func TestIndexesOlderBlobs(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "blobs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	old, fresh := "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	for _, id := range []string{old, fresh} {
		if err := os.WriteFile(filepath.Join(dir, id), []byte("legacy "+id), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "not-a-blob"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	weekAgo := time.Now().Add(-7 * 24 * time.Hour)
	if err := os.Chtimes(filepath.Join(dir, old), weekAgo, weekAgo); err != nil {
		t.Fatal(err)
	}
	d := open(t, dir)
	if u, err := d.Usage(ctx, ""); err != nil || u.Blobs != 2 {
		t.Fatalf("unowned usage after the import: %+v, %v", u, err)
	}
	if err := d.Delete(ctx, "", old); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleting an unowned blob: %v", err)
	}
	if n, err := d.DeleteExpired(ctx, time.Now().Add(-24*time.Hour)); err != nil || n != 1 {
		t.Fatalf("DeleteExpired = %d, %v; want the week-old blob", n, err)
	}
	if _, _, err := d.Open(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "not-a-blob")); err != nil {
		t.Fatalf("a file that is not a blob was touched: %v", err)
	}
	if _, _, err := d.Put(ctx, "alice", bytes.NewReader([]byte("new")), store.PutLimits{Max: 10}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	// Reopened: the import does not run again, and usage is intact.
	os.WriteFile(filepath.Join(dir, old), []byte("put back by hand"), 0o600)
	d2 := open(t, dir)
	if u, _ := d2.Usage(ctx, ""); u.Blobs != 1 {
		t.Fatalf("unowned blobs after reopening: %d, want 1", u.Blobs)
	}
	if u, _ := d2.Usage(ctx, "alice"); u.Bytes != 3 || u.Blobs != 1 {
		t.Fatalf("alice's usage after reopening: %+v", u)
	}
}

// FuzzValidID: any id accepted names a plain file directly inside the
// blob directory (no separators, no dot segments), and Open never
// escapes it.
func FuzzValidID(f *testing.F) {
	dir := f.TempDir()
	d, err := Open(dir)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { d.Close() })
	for _, s := range []string{"", "0123456789abcdef0123456789abcdef", "../../etc/passwd", "tmp", "0123456789ABCDEF0123456789ABCDEF", "..", "a/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if ValidID(id) {
			if len(id) != 32 || strings.ContainsAny(id, `/\.`) {
				t.Fatalf("ValidID(%q) = true", id)
			}
		}
		rc, _, err := d.Open(context.Background(), id)
		if err == nil {
			rc.Close()
			t.Fatalf("Open(%q) found a blob in an empty store", id)
		}
	})
}
