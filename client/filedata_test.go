package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/parleychat/parley/client/filecrypt"
	"github.com/parleychat/parley/store/blobstore"
)

// Attachments from and to memory (the web client's way): bob gets
// exactly the bytes alice sent with the digest her message names, with
// progress reported; a limit below the file's size refuses it; and once
// the server flips a byte of the stored ciphertext, FileBytes returns an
// error and no bytes.
func TestFileDataRoundTripAndTamper(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	alice := srv.newUser(t, "alice")
	bob := srv.newUser(t, "bob")
	data := bytes.Repeat([]byte("memory file "), 30000)
	var last, total int64
	sent, err := alice.SendFileData(ctx, "@bob", "notes.txt", bytes.NewReader(data), int64(len(data)), func(done, all int64) { last, total = done, all })
	if err != nil {
		t.Fatal(err)
	}
	if total <= int64(len(data)) || last != total {
		t.Fatalf("upload progress ended at %d of %d (plaintext %d bytes)", last, total, len(data))
	}
	if _, err := alice.SendFileData(ctx, "@bob", "../evil", bytes.NewReader(data), int64(len(data)), nil); err == nil {
		t.Fatal("a file name with a path was sent")
	}
	mustSync(t, bob)
	if _, _, err := bob.FileBytes(ctx, sent.ID, int64(len(data))-1, nil); !errors.Is(err, ErrFileTooLarge) {
		t.Fatalf("a file above the limit: %v", err)
	}
	got, info, err := bob.FileBytes(ctx, sent.ID, 1<<30, nil)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if !bytes.Equal(got, data) || info.SHA256 != hex.EncodeToString(sum[:]) || info.Name != "notes.txt" || info.Size != int64(len(data)) {
		t.Fatalf("got %d bytes, info %+v", len(got), info)
	}
	var blobPath string
	filepath.WalkDir(filepath.Join(srv.dataDir, "blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && blobstore.ValidID(d.Name()) {
			blobPath = p
		}
		return nil
	})
	stored, err := os.ReadFile(blobPath)
	if err != nil {
		t.Fatal(err)
	}
	stored[len(stored)/2] ^= 0x40
	if err := os.WriteFile(blobPath, stored, 0o600); err != nil {
		t.Fatal(err)
	}
	got, _, err = bob.FileBytes(ctx, sent.ID, 1<<30, nil)
	if !errors.Is(err, filecrypt.ErrAuth) || got != nil {
		t.Fatalf("tampered download: %d bytes, %v", len(got), err)
	}
}
