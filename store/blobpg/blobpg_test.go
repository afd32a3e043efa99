package blobpg

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/parleychat/parley/internal/pgtest"
	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/store/blobstore"
	"github.com/parleychat/parley/store/blobtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func open(t *testing.T, dir, dsn string) *blobstore.Dir {
	t.Helper()
	d, err := Open(context.Background(), dir, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestContract(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) store.Blobs { return open(t, filepath.Join(t.TempDir(), "blobs"), pgtest.DB(t)) })
}

// Two nodes share the directory and the database: a blob uploaded
// through one is read, counted and deleted through the other, and the
// quota holds for uploads arriving at both at once.
func TestTwoNodes(t *testing.T) {
	ctx := context.Background()
	dir, dsn := filepath.Join(t.TempDir(), "blobs"), pgtest.DB(t)
	a, b := open(t, dir, dsn), open(t, dir, dsn)
	data := bytes.Repeat([]byte("x"), 1000)
	id, _, err := a.Put(ctx, "alice", bytes.NewReader(data), store.PutLimits{Max: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	r, n, err := b.Open(ctx, id)
	if err != nil || n != 1000 {
		t.Fatalf("node B opens the blob: %d bytes, %v", n, err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("node B read other bytes")
	}
	if u, err := b.Usage(ctx, "alice"); err != nil || u.Bytes != 1000 || u.Blobs != 1 {
		t.Fatalf("node B's usage of alice: %+v %v", u, err)
	}
	if err := b.Delete(ctx, "mallory", id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another account deleting through node B: %v", err)
	}
	if err := b.Delete(ctx, "alice", id); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Open(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("node A still serves a blob deleted through B: %v", err)
	}
	// 10 uploads of 1000 bytes, 5 000 allowed: exactly 5 are stored.
	var wg sync.WaitGroup
	var mu sync.Mutex
	stored := 0
	for i := range 10 {
		node := []*blobstore.Dir{a, b}[i%2]
		wg.Go(func() {
			_, _, err := node.Put(ctx, "bob", bytes.NewReader(data), store.PutLimits{Max: 1 << 20, Quota: 5000})
			if err == nil {
				mu.Lock()
				stored++
				mu.Unlock()
			} else if !errors.Is(err, store.ErrQuotaExceeded) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if u, _ := a.Usage(ctx, "bob"); stored != 5 || u.Bytes != 5000 {
		t.Fatalf("%d uploads stored, usage %+v; want 5 and 5000 bytes", stored, u)
	}
}
