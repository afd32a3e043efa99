package client

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parleychat/parley/client/filecrypt"
	"github.com/parleychat/parley/internal/s3test"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/store/blobs3"
	"github.com/parleychat/parley/store/blobstore"
)

// A file sent through a server whose attachments are in S3-compatible
// storage (store/blobs3): bob downloads what alice sent; the object in
// the bucket is the client's ciphertext (the plaintext is not in it); and
// when the storage tampers with the object, bob's download fails
// authentication and writes nothing.
func TestFileThroughS3Blobs(t *testing.T) {
	ctx := context.Background()
	s3 := s3test.Start(t)
	srv := startServerWith(t, func(cfg *server.Config) {
		idx, err := blobstore.OpenSQLiteIndex(filepath.Join(t.TempDir(), "blobs.db"))
		if err != nil {
			t.Fatal(err)
		}
		blobs, err := blobs3.Open(ctx, blobs3.Config{Endpoint: s3.Endpoint, RootCAs: s3.RootCAs, Bucket: s3.Bucket, Prefix: "att",
			AccessKeyID: s3.AccessKeyID, SecretAccessKey: s3.SecretAccessKey}, idx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { blobs.Close() })
		cfg.Blobs = blobs
	})
	alice, bob := srv.newUser(t, "alice"), srv.newUser(t, "bob")
	mustSend(t, alice, "@bob", "hi")
	mustSync(t, bob)
	plain := bytes.Repeat([]byte("attachment plaintext canary "), 400_000) // 11 MiB: a multipart upload
	file := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(file, plain, 0o600); err != nil {
		t.Fatal(err)
	}
	sent, err := alice.SendFile(ctx, "@bob", file, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)
	keys := s3.Keys(t)
	if len(keys) != 1 || !strings.HasPrefix(keys[0], "att/") || !blobstore.ValidID(strings.TrimPrefix(keys[0], "att/")) {
		t.Fatalf("objects in the bucket: %q, want one att/<blob id>", keys)
	}
	stored := s3.Get(t, keys[0])
	if bytes.Contains(stored, []byte("plaintext canary")) || len(stored) < len(plain) {
		t.Fatalf("the object (%d bytes) is not the ciphertext of the %d-byte file", len(stored), len(plain))
	}
	out := filepath.Join(t.TempDir(), "out", "big.bin")
	os.MkdirAll(filepath.Dir(out), 0o700)
	if _, _, err := bob.GetFile(ctx, sent.ID, out, nil); err != nil {
		t.Fatalf("download through S3: %v", err)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("bob's copy differs from alice's file (%d bytes, %v)", len(got), err)
	}
	// The storage flips one byte of the object.
	stored[len(stored)/2] ^= 0x40
	s3.Put(t, keys[0], stored)
	out2 := filepath.Join(t.TempDir(), "out2.bin")
	if _, _, err := bob.GetFile(ctx, sent.ID, out2, nil); !errors.Is(err, filecrypt.ErrAuth) {
		t.Fatalf("download of a tampered object: %v, want filecrypt.ErrAuth", err)
	}
	if _, err := os.Stat(out2); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a tampered file was written")
	}
}
