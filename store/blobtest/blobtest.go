// Package blobtest is the contract suite every store.Blobs backend must
// pass. A backend's test calls Run with a constructor for a fresh, empty
// blob store:
//
//	func TestContract(t *testing.T) {
//		blobtest.Run(t, func(t *testing.T) store.Blobs { ... })
//	}
//
// It checks what the server relies on for quotas and deletion: a blob
// belongs to the account that uploaded it, usage is exact, a failed Put
// stores nothing, the quota holds under concurrent uploads, and only the
// owner can delete a blob while everyone else gets the same ErrNotFound as
// for a blob that never existed.
package blobtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/store"
)

// Run runs the contract suite. newBlobs must return a new, empty store;
// closing it, if it needs that, is the constructor's job (t.Cleanup).
func Run(t *testing.T, newBlobs func(t *testing.T) store.Blobs) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b store.Blobs)
	}{
		{"PutOpen", testPutOpen},
		{"TooLarge", testTooLarge},
		{"Usage", testUsage},
		{"Quota", testQuota},
		{"ConcurrentQuota", testConcurrentQuota},
		{"Delete", testDelete},
		{"DeleteOwner", testDeleteOwner},
		{"Expiry", testExpiry},
		{"Disappearing", testDisappearing},
		{"CanceledPut", testCanceledPut},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newBlobs(t)) })
	}
}

var ctx = context.Background()

const big = 1 << 30

func put(t *testing.T, b store.Blobs, owner string, data []byte) string {
	t.Helper()
	id, n, err := b.Put(ctx, owner, bytes.NewReader(data), store.PutLimits{Max: big})
	if err != nil || n != int64(len(data)) || id == "" {
		t.Fatalf("Put(%s, %d bytes) = %q, %d, %v", owner, len(data), id, n, err)
	}
	return id
}

func content(t *testing.T, b store.Blobs, id string) ([]byte, error) {
	t.Helper()
	rc, size, err := b.Open(ctx, id)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read blob %s: %v", id, err)
	}
	if int64(len(data)) != size {
		t.Fatalf("blob %s: Open said %d bytes, read %d", id, size, len(data))
	}
	return data, nil
}

func wantUsage(t *testing.T, b store.Blobs, owner string, bytes int64, blobs int) {
	t.Helper()
	u, err := b.Usage(ctx, owner)
	if err != nil {
		t.Fatalf("Usage(%s): %v", owner, err)
	}
	if u.Bytes != bytes || u.Blobs != blobs {
		t.Fatalf("Usage(%s) = %+v, want %d bytes in %d blobs", owner, u, bytes, blobs)
	}
}

func testPutOpen(t *testing.T, b store.Blobs) {
	data := bytes.Repeat([]byte("ciphertext"), 10_000)
	id := put(t, b, "alice", data)
	got, err := content(t, b, id)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Open: %v (content equal: %v)", err, bytes.Equal(got, data))
	}
	empty := put(t, b, "alice", nil)
	if got, err := content(t, b, empty); err != nil || len(got) != 0 {
		t.Fatalf("empty blob: %q, %v", got, err)
	}
	if id2 := put(t, b, "alice", data); id2 == id {
		t.Fatal("two uploads got the same id")
	}
	for _, bad := range []string{"", "../x", "nope", "00000000000000000000000000000000"} {
		if _, _, err := b.Open(ctx, bad); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Open(%q): %v, want ErrNotFound", bad, err)
		}
	}
	if _, _, err := b.Put(ctx, "", bytes.NewReader(data), store.PutLimits{Max: big}); !errors.Is(err, store.ErrBadRequest) {
		t.Fatalf("Put without an owner: %v, want ErrBadRequest", err)
	}
}

func testTooLarge(t *testing.T, b store.Blobs) {
	data := make([]byte, 1000)
	if _, _, err := b.Put(ctx, "alice", bytes.NewReader(data), store.PutLimits{Max: 999}); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("Put over max: %v, want ErrTooLarge", err)
	}
	wantUsage(t, b, "alice", 0, 0)
	if _, n, err := b.Put(ctx, "alice", bytes.NewReader(data), store.PutLimits{Max: 1000}); err != nil || n != 1000 {
		t.Fatalf("Put of exactly max: %d, %v", n, err)
	}
}

func testUsage(t *testing.T, b store.Blobs) {
	wantUsage(t, b, "alice", 0, 0)
	put(t, b, "alice", make([]byte, 100))
	put(t, b, "alice", make([]byte, 250))
	put(t, b, "bob", make([]byte, 7))
	wantUsage(t, b, "alice", 350, 2)
	wantUsage(t, b, "bob", 7, 1)
	wantUsage(t, b, "carol", 0, 0)
}

func testQuota(t *testing.T, b store.Blobs) {
	lim := store.PutLimits{Max: big, Quota: 1000}
	if _, _, err := b.Put(ctx, "alice", bytes.NewReader(make([]byte, 600)), lim); err != nil {
		t.Fatal(err)
	}
	// 600 + 401 > 1000: refused, and nothing of it kept.
	_, _, err := b.Put(ctx, "alice", bytes.NewReader(make([]byte, 401)), lim)
	if !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("Put over the quota: %v, want ErrQuotaExceeded", err)
	}
	wantUsage(t, b, "alice", 600, 1)
	// A body much larger than what is left is refused too.
	if _, _, err := b.Put(ctx, "alice", bytes.NewReader(make([]byte, 1<<20)), lim); !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("large Put over the quota: %v, want ErrQuotaExceeded", err)
	}
	// Filling it exactly is allowed.
	if _, _, err := b.Put(ctx, "alice", bytes.NewReader(make([]byte, 400)), lim); err != nil {
		t.Fatalf("Put filling the quota exactly: %v", err)
	}
	wantUsage(t, b, "alice", 1000, 2)
	// Quotas are per account.
	if _, _, err := b.Put(ctx, "bob", bytes.NewReader(make([]byte, 1000)), lim); err != nil {
		t.Fatalf("bob is not limited by alice's usage: %v", err)
	}
	// No quota: no limit.
	if _, _, err := b.Put(ctx, "alice", bytes.NewReader(make([]byte, 10)), store.PutLimits{Max: big}); err != nil {
		t.Fatal(err)
	}
}

func testConcurrentQuota(t *testing.T, b store.Blobs) {
	const size, fit, tries = 1000, 3, 8
	lim := store.PutLimits{Max: big, Quota: size * fit}
	var wg sync.WaitGroup
	errs := make(chan error, tries)
	for range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := b.Put(ctx, "alice", bytes.NewReader(make([]byte, size)), lim)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrQuotaExceeded):
			t.Fatalf("concurrent Put: %v", err)
		}
	}
	if ok != fit {
		t.Fatalf("%d of %d concurrent uploads accepted, the quota fits %d", ok, tries, fit)
	}
	wantUsage(t, b, "alice", size*fit, fit)
}

func testDelete(t *testing.T, b store.Blobs) {
	a1 := put(t, b, "alice", make([]byte, 100))
	a2 := put(t, b, "alice", make([]byte, 50))
	bob := put(t, b, "bob", make([]byte, 10))
	// Another account's blob and a blob that does not exist look the same.
	for _, tc := range []struct{ owner, id string }{
		{"bob", a1}, {"alice", bob}, {"", a1}, {"alice", "00000000000000000000000000000000"}, {"alice", "../" + a1}, {"alice", ""},
	} {
		if err := b.Delete(ctx, tc.owner, tc.id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Delete(%q, %q): %v, want ErrNotFound", tc.owner, tc.id, err)
		}
	}
	if _, err := content(t, b, a1); err != nil {
		t.Fatalf("a refused Delete removed the blob: %v", err)
	}
	if err := b.Delete(ctx, "alice", a1); err != nil {
		t.Fatalf("Delete by the owner: %v", err)
	}
	if _, err := content(t, b, a1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Open after Delete: %v, want ErrNotFound", err)
	}
	if err := b.Delete(ctx, "alice", a1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second Delete: %v, want ErrNotFound", err)
	}
	wantUsage(t, b, "alice", 50, 1)
	wantUsage(t, b, "bob", 10, 1)
	if _, err := content(t, b, a2); err != nil {
		t.Fatal(err)
	}
	// Deleting frees quota.
	lim := store.PutLimits{Max: big, Quota: 100}
	if _, _, err := b.Put(ctx, "alice", bytes.NewReader(make([]byte, 60)), lim); !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("Put over the quota: %v", err)
	}
	if err := b.Delete(ctx, "alice", a2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Put(ctx, "alice", bytes.NewReader(make([]byte, 60)), lim); err != nil {
		t.Fatalf("Put after a Delete freed the quota: %v", err)
	}
}

func testDeleteOwner(t *testing.T, b store.Blobs) {
	var alice []string
	for i := range 5 {
		alice = append(alice, put(t, b, "alice", []byte(fmt.Sprint("a", i))))
	}
	bob := put(t, b, "bob", []byte("b"))
	n, err := b.DeleteOwner(ctx, "alice")
	if err != nil || n != 5 {
		t.Fatalf("DeleteOwner = %d, %v; want 5", n, err)
	}
	for _, id := range alice {
		if _, err := content(t, b, id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("alice's blob after DeleteOwner: %v", err)
		}
	}
	if _, err := content(t, b, bob); err != nil {
		t.Fatalf("bob's blob after alice's DeleteOwner: %v", err)
	}
	wantUsage(t, b, "alice", 0, 0)
	wantUsage(t, b, "bob", 1, 1)
	if n, err := b.DeleteOwner(ctx, "alice"); err != nil || n != 0 {
		t.Fatalf("DeleteOwner again = %d, %v", n, err)
	}
}

func testExpiry(t *testing.T, b store.Blobs) {
	a := put(t, b, "alice", make([]byte, 10))
	put(t, b, "bob", make([]byte, 20))
	if n, err := b.DeleteExpired(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("DeleteExpired of nothing old = %d, %v", n, err)
	}
	if _, err := content(t, b, a); err != nil {
		t.Fatal(err)
	}
	if n, err := b.DeleteExpired(ctx, time.Now().Add(time.Hour)); err != nil || n != 2 {
		t.Fatalf("DeleteExpired = %d, %v; want 2", n, err)
	}
	if _, err := content(t, b, a); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired blob: %v", err)
	}
	wantUsage(t, b, "alice", 0, 0)
	wantUsage(t, b, "bob", 0, 0)
}

// failingReader returns some data and then an error, as a connection that
// breaks mid-upload does.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("connection reset")
	}
	n := min(len(p), f.n)
	f.n -= n
	return n, nil
}

func testCanceledPut(t *testing.T, b store.Blobs) {
	if _, _, err := b.Put(ctx, "alice", &failingReader{n: 5000}, store.PutLimits{Max: big}); err == nil {
		t.Fatal("Put from a failing reader succeeded")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := b.Put(cctx, "alice", bytes.NewReader(make([]byte, 100)), store.PutLimits{Max: big}); err == nil {
		t.Fatal("Put with a canceled context succeeded")
	}
	wantUsage(t, b, "alice", 0, 0)
}

func testDisappearing(t *testing.T, b store.Blobs) {
	base := time.Unix(1_900_000_000, 0)
	putExp := func(data string, exp time.Time) string {
		id, _, err := b.Put(ctx, "alice", strings.NewReader(data), store.PutLimits{Max: big, Expires: exp})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	soon := putExp("soon", base.Add(time.Minute))
	later := putExp("later", base.Add(time.Hour))
	kept := put(t, b, "alice", []byte("kept"))
	n, next, err := b.DeleteDisappeared(ctx, base.Add(time.Second))
	if err != nil || n != 0 || !next.Equal(base.Add(time.Minute)) {
		t.Fatalf("DeleteDisappeared(before) = %d, %v, %v", n, next, err)
	}
	n, next, err = b.DeleteDisappeared(ctx, base.Add(time.Minute))
	if err != nil || n != 1 || !next.Equal(base.Add(time.Hour)) {
		t.Fatalf("DeleteDisappeared(at expiry) = %d, %v, %v", n, next, err)
	}
	if _, err := content(t, b, soon); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("disappeared blob still there: %v", err)
	}
	for _, id := range []string{later, kept} {
		if _, err := content(t, b, id); err != nil {
			t.Fatalf("blob %s went too early: %v", id, err)
		}
	}
	wantUsage(t, b, "alice", int64(len("later")+len("kept")), 2)
	if n, next, err = b.DeleteDisappeared(ctx, base.Add(24*time.Hour)); err != nil || n != 1 || !next.IsZero() {
		t.Fatalf("DeleteDisappeared(after all) = %d, %v, %v", n, next, err)
	}
	if _, err := content(t, b, kept); err != nil {
		t.Fatalf("blob without expiry deleted: %v", err)
	}
}
