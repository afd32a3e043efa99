package blobs3

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/parleychat/parley/internal/s3test"
	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/store/blobstore"
)

// BenchmarkBlobs uploads and downloads blobs through the directory
// backend and through this one (an in-memory S3 server on loopback TLS,
// in the same process), both with the SQLite index, so that their
// throughputs can be compared as a ratio (docs/benchmarks.md).
func BenchmarkBlobs(b *testing.B) {
	for _, size := range []int{64 << 10, 16 << 20} {
		data := make([]byte, size)
		for name, open := range map[string]func(b *testing.B) store.Blobs{
			"dir": func(b *testing.B) store.Blobs {
				d, err := blobstore.Open(filepath.Join(b.TempDir(), "blobs"))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { d.Close() })
				return d
			},
			"s3": func(b *testing.B) store.Blobs {
				srv := s3test.Start(b)
				idx, err := blobstore.OpenSQLiteIndex(filepath.Join(b.TempDir(), "blobs.db"))
				if err != nil {
					b.Fatal(err)
				}
				s, err := Open(ctx, Config{Endpoint: srv.Endpoint, RootCAs: srv.RootCAs, Bucket: srv.Bucket,
					AccessKeyID: srv.AccessKeyID, SecretAccessKey: srv.SecretAccessKey}, idx)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { s.Close() })
				return s
			},
		} {
			b.Run(name+"/"+byteSize(size), func(b *testing.B) {
				bl := open(b)
				b.SetBytes(int64(2 * size)) // up and down
				for b.Loop() {
					id, _, err := bl.Put(ctx, "alice", bytes.NewReader(data), store.PutLimits{Max: 1 << 30})
					if err != nil {
						b.Fatal(err)
					}
					rc, _, err := bl.Open(ctx, id)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.Copy(io.Discard, rc); err != nil {
						b.Fatal(err)
					}
					rc.Close()
					if err := bl.Delete(ctx, "alice", id); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func byteSize(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}
