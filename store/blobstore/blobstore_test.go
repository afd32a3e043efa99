package blobstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/store"
)

func TestPutOpenExpire(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "blobs")
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("ciphertext"), 1000)
	id, n, err := d.Put(ctx, bytes.NewReader(data), int64(len(data)))
	if err != nil || n != int64(len(data)) || !ValidID(id) {
		t.Fatalf("Put = %q, %d, %v", id, n, err)
	}
	fi, _ := os.Stat(filepath.Join(dir, id))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("blob mode %v", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v", fi.Mode().Perm())
	}
	rc, size, err := d.Open(ctx, id)
	if err != nil || size != int64(len(data)) {
		t.Fatalf("Open: %d, %v", size, err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
	if _, _, err := d.Put(ctx, bytes.NewReader(data), int64(len(data)-1)); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("oversized Put: %v", err)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(left) != 0 {
		t.Fatalf("oversized upload left %d temp files", len(left))
	}
	for _, bad := range []string{"../x", "", "zz", id + "0"} {
		if _, _, err := d.Open(ctx, bad); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Open(%q): %v", bad, err)
		}
	}
	if n, _ := d.DeleteExpired(ctx, time.Now().Add(-time.Hour)); n != 0 {
		t.Fatalf("deleted %d fresh blobs", n)
	}
	if n, _ := d.DeleteExpired(ctx, time.Now().Add(time.Hour)); n != 1 {
		t.Fatalf("deleted %d blobs, want 1", n)
	}
	if _, _, err := d.Open(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired blob: %v", err)
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
