package blobs3

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/parleychat/parley/internal/pgtest"
	"github.com/parleychat/parley/internal/s3test"
	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/store/blobpg"
	"github.com/parleychat/parley/store/blobstore"
	"github.com/parleychat/parley/store/blobtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var ctx = context.Background()

func config(s *s3test.Server) Config {
	return Config{Endpoint: s.Endpoint, RootCAs: s.RootCAs, Bucket: s.Bucket, Prefix: "blobs/",
		AccessKeyID: s.AccessKeyID, SecretAccessKey: s.SecretAccessKey, MaxRetries: 1, PartSize: minPartSize}
}

func sqliteIndex(t *testing.T) blobstore.Index {
	t.Helper()
	idx, err := blobstore.OpenSQLiteIndex(filepath.Join(t.TempDir(), "index", "blobs.db"))
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func open(t *testing.T, cfg Config, idx blobstore.Index) *Store {
	t.Helper()
	s, err := Open(ctx, cfg, idx)
	if err != nil {
		idx.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The contract suite, with the index in SQLite (one node) and in
// PostgreSQL (several nodes sharing --db).
func TestContractSQLiteIndex(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) store.Blobs { return open(t, config(s3test.Start(t)), sqliteIndex(t)) })
}

func TestContractPostgresIndex(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) store.Blobs {
		idx, err := blobpg.OpenIndex(ctx, pgtest.DB(t))
		if err != nil {
			t.Fatal(err)
		}
		return open(t, config(s3test.Start(t)), idx)
	})
}

func random(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// Objects are named by the prefix and the blob id only, hold exactly the
// uploaded bytes (several parts for a large one), and go with the blob.
// Refused uploads leave no object behind.
func TestObjects(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, config(srv), sqliteIndex(t))
	small, large := random(t, 1000), random(t, 2*minPartSize+12345)
	idSmall, _, err := s.Put(ctx, "alice", bytes.NewReader(small), store.PutLimits{Max: 100 << 20})
	if err != nil {
		t.Fatal(err)
	}
	before := srv.Uploads.Load()
	idLarge, n, err := s.Put(ctx, "alice", bytes.NewReader(large), store.PutLimits{Max: 100 << 20})
	if err != nil || n != int64(len(large)) {
		t.Fatalf("large Put: %d, %v", n, err)
	}
	if parts := srv.Uploads.Load() - before; parts != 3 {
		t.Fatalf("a body of 2 parts and a bit went up in %d PUTs, want 3 parts", parts)
	}
	if got := srv.Keys(t); len(got) != 2 || !contains(got, "blobs/"+idSmall) || !contains(got, "blobs/"+idLarge) {
		t.Fatalf("objects %q, want blobs/<id> for %s and %s", got, idSmall, idLarge)
	}
	if !bytes.Equal(srv.Get(t, "blobs/"+idLarge), large) {
		t.Fatal("the object holds other bytes than were uploaded")
	}
	// Streamed back, and seekable (HTTP Range requests).
	rc, size, err := s.Open(ctx, idLarge)
	if err != nil || size != int64(len(large)) {
		t.Fatalf("Open: %d, %v", size, err)
	}
	rs, ok := rc.(io.ReadSeeker)
	if !ok {
		t.Fatal("Open's reader cannot seek: downloads could not resume")
	}
	if _, err := rs.Seek(minPartSize+7, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	tail, err := io.ReadAll(rs)
	rc.Close()
	if err != nil || !bytes.Equal(tail, large[minPartSize+7:]) {
		t.Fatalf("read after seeking: %d bytes, %v", len(tail), err)
	}
	// Over the size limit and over the quota: refused, nothing stored.
	if _, _, err := s.Put(ctx, "alice", bytes.NewReader(large), store.PutLimits{Max: minPartSize}); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("oversized Put: %v", err)
	}
	if _, _, err := s.Put(ctx, "alice", bytes.NewReader(large), store.PutLimits{Max: 100 << 20, Quota: int64(len(large)) + 2000}); !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("Put over the quota: %v", err)
	}
	if got := srv.Keys(t); len(got) != 2 {
		t.Fatalf("refused uploads left objects: %q", got)
	}
	if err := s.Delete(ctx, "alice", idLarge); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteExpired(ctx, time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("DeleteExpired = %d, %v", n, err)
	}
	if got := srv.Keys(t); len(got) != 0 {
		t.Fatalf("deleted and expired blobs left objects: %q", got)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// The S3 server breaks off mid-upload (a single PUT and a multipart
// upload): Put fails with a retryable error (store.ErrUnavailable, which
// the server answers with 507 and Retry-After), the index has no row, the
// account is charged nothing, and no object is left. Once the server
// recovers, the next upload works.
func TestS3FailsMidUpload(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, config(srv), sqliteIndex(t))
	srv.FailUploads(100)
	for _, size := range []int{1000, 2*minPartSize + 1} {
		id, _, err := s.Put(ctx, "alice", bytes.NewReader(random(t, size)), store.PutLimits{Max: 100 << 20})
		if err == nil {
			t.Fatalf("%d bytes: Put succeeded (id %s) while the S3 server failed every upload", size, id)
		}
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("%d bytes: %v, want store.ErrUnavailable (retryable)", size, err)
		}
	}
	if u, err := s.Usage(ctx, "alice"); err != nil || u.Blobs != 0 || u.Bytes != 0 {
		t.Fatalf("usage after failed uploads: %+v, %v", u, err)
	}
	if got := srv.Keys(t); len(got) != 0 {
		t.Fatalf("failed uploads left objects: %q", got)
	}
	srv.FailUploads(-1)
	data := random(t, 1000)
	id, _, err := s.Put(ctx, "alice", bytes.NewReader(data), store.PutLimits{Max: 100 << 20})
	if err != nil {
		t.Fatalf("Put after the S3 server recovered: %v", err)
	}
	rc, _, err := s.Open(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("read back other bytes")
	}
}

// failingIndex refuses every insert, as a database that is down does.
type failingIndex struct{ blobstore.Index }

func (failingIndex) Insert(context.Context, string, string, int64, int64, time.Time, time.Time) error {
	return errors.New("index database unreachable")
}

// The object was stored but its index row cannot be committed: the
// upload fails and the object is removed at once.
func TestIndexFailsAfterUpload(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, config(srv), failingIndex{sqliteIndex(t)})
	if _, _, err := s.Put(ctx, "alice", bytes.NewReader(random(t, 1000)), store.PutLimits{Max: 1 << 20}); err == nil {
		t.Fatal("Put succeeded without an index row")
	}
	if got := srv.Keys(t); len(got) != 0 {
		t.Fatalf("an upload whose row failed left objects: %q", got)
	}
}

// An object removed behind the server's back: Open says so clearly (an
// ErrObjectMissing that is also ErrNotFound, naming the object), without
// panicking, and the owner can still delete the blob.
func TestObjectMissing(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, config(srv), sqliteIndex(t))
	id, _, err := s.Put(ctx, "alice", strings.NewReader("ciphertext"), store.PutLimits{Max: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	srv.Remove(t, "blobs/"+id)
	_, _, err = s.Open(ctx, id)
	if !errors.Is(err, ErrObjectMissing) || !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "blobs/"+id) {
		t.Fatalf("Open of an indexed blob without its object: %v", err)
	}
	if err := s.Delete(ctx, "alice", id); err != nil {
		t.Fatalf("deleting a blob whose object is gone: %v", err)
	}
	if u, _ := s.Usage(ctx, "alice"); u.Blobs != 0 {
		t.Fatalf("usage after the delete: %+v", u)
	}
}

// Orphans (an object stored by a node that died before committing its
// row, and a multipart upload never completed) are removed by Sweep once
// older than the grace period; indexed blobs, objects still in their grace
// period and keys that are not blob ids are left alone.
func TestSweep(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, config(srv), sqliteIndex(t))
	kept, _, err := s.Put(ctx, "alice", strings.NewReader("indexed"), store.PutLimits{Max: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	orphan := "blobs/" + newID()
	srv.Put(t, orphan, []byte("orphan"))
	srv.Put(t, "blobs/not-a-blob", []byte("x"))
	srv.Put(t, "elsewhere/"+newID(), []byte("outside the prefix"))
	if n, err := s.Sweep(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("Sweep within the grace period = %d, %v", n, err)
	}
	if n, err := s.Sweep(ctx, time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want the one orphan", n, err)
	}
	want := []string{"blobs/" + kept, "blobs/not-a-blob"}
	if got := srv.Keys(t); len(got) != 3 || !contains(got, want[0]) || !contains(got, want[1]) || contains(got, orphan) {
		t.Fatalf("after the sweep: %q", got)
	}
}

// Open refuses to start against a wrong bucket, refused credentials or
// an endpoint where no S3 server answers, with errors saying which.
func TestStartupChecks(t *testing.T) {
	srv := s3test.Start(t)
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   error
		says   string
	}{
		{"no bucket", func(c *Config) { c.Bucket = "no-such-bucket" }, ErrNoBucket, "create it"},
		{"wrong key", func(c *Config) { c.AccessKeyID = "WRONGKEY" }, ErrCredentials, "PARLEY_S3_ACCESS_KEY_ID"},
		{"nothing listening", func(c *Config) { c.Endpoint = closedPort(t) }, ErrUnreachable, "S3 server is running"},
		{"TLS to a plain-HTTP server", func(c *Config) { c.Endpoint = s3test.StartPlain(t).Endpoint }, ErrUnreachable, "tls=off"},
		{"untrusted certificate", func(c *Config) { c.RootCAs = nil }, ErrUnreachable, "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config(srv)
			tc.change(&cfg)
			idx := sqliteIndex(t)
			defer idx.Close()
			_, err := Open(ctx, cfg, idx)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Open: %v; want %v saying %q", err, tc.want, tc.says)
			}
			if strings.Contains(err.Error(), cfg.SecretAccessKey) {
				t.Fatal("the error shows the secret key")
			}
		})
	}
	if got := srv.Keys(t); len(got) != 0 {
		t.Fatalf("start-up checks left objects: %q", got)
	}
}

// closedPort is a loopback address where nothing listens: port 1
// (tcpmux), which nothing on a test machine serves.
func closedPort(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:1"
}

// readPart returns exactly the body's first bytes, up to the part size,
// and says whether the body ended within them, however the reads are cut.
func TestReadPart(t *testing.T) {
	const part = 200 << 10
	for _, n := range []int{0, 1, 64 << 10, 64<<10 + 1, part - 1, part, part + 1, 3 * part} {
		data := random(t, n)
		for name, r := range map[string]io.Reader{"whole": bytes.NewReader(data), "one byte": iotest.OneByteReader(bytes.NewReader(data)),
			"half": iotest.HalfReader(bytes.NewReader(data)), "data+EOF": iotest.DataErrReader(bytes.NewReader(data))} {
			got, complete, err := readPart(r, part)
			want := data[:min(n, part)]
			// At exactly a part, whether the end was seen depends on the reads.
			if err != nil || !bytes.Equal(got, want) || (n != part && complete != (n < part)) {
				t.Fatalf("%d bytes, %s reads: %d bytes, complete %v, %v", n, name, len(got), complete, err)
			}
		}
	}
	if _, _, err := readPart(iotest.ErrReader(errors.New("reset")), part); err == nil {
		t.Fatal("a failing body read as complete")
	}
}

// Two nodes share the bucket and the PostgreSQL index: a blob uploaded
// through one is read, counted and deleted through the other, and the
// quota holds for uploads arriving at both at once.
func TestTwoNodesPostgres(t *testing.T) {
	srv, dsn := s3test.Start(t), pgtest.DB(t)
	node := func() *Store {
		idx, err := blobpg.OpenIndex(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		return open(t, config(srv), idx)
	}
	a, b := node(), node()
	data := random(t, 1000)
	id, _, err := a.Put(ctx, "alice", bytes.NewReader(data), store.PutLimits{Max: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	rc, n, err := b.Open(ctx, id)
	if err != nil || n != 1000 {
		t.Fatalf("node B opens the blob: %d bytes, %v", n, err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("node B read other bytes")
	}
	if err := b.Delete(ctx, "mallory", id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another account deleting through node B: %v", err)
	}
	if err := b.Delete(ctx, "alice", id); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Open(ctx, id); !errors.Is(err, store.ErrNotFound) || errors.Is(err, ErrObjectMissing) {
		t.Fatalf("node A opening a blob deleted through B: %v, want a plain ErrNotFound", err)
	}
	errs := make(chan error, 10)
	for i := range 10 {
		go func() {
			_, _, err := []*Store{a, b}[i%2].Put(ctx, "bob", bytes.NewReader(data), store.PutLimits{Max: 1 << 20, Quota: 5000})
			errs <- err
		}()
	}
	stored := 0
	for range 10 {
		switch err := <-errs; {
		case err == nil:
			stored++
		case !errors.Is(err, store.ErrQuotaExceeded):
			t.Fatal(err)
		}
	}
	if u, _ := a.Usage(ctx, "bob"); stored != 5 || u.Bytes != 5000 {
		t.Fatalf("%d uploads stored, usage %+v; want 5 and 5000 bytes", stored, u)
	}
	if keys := srv.Keys(t); len(keys) != 5 {
		t.Fatalf("%d objects in the bucket, want the 5 stored blobs", len(keys))
	}
}

// Pre-signed downloads: a URL for a blob the index holds fetches its
// bytes from the bucket without credentials, for Presign. The
// URL cannot be turned into one for another blob, does not outlive its
// expiry, and none is handed out for a blob that is gone. (The fake S3
// checks the signature V4 as S3 does.)
func TestPresignedDownloads(t *testing.T) {
	srv := s3test.Start(t)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	srv.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	cfg := config(srv)
	cfg.Presign = time.Minute
	s := open(t, cfg, sqliteIndex(t))
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.RootCAs}}}
	get := func(u string, header http.Header) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest("GET", u, nil)
		if err != nil {
			t.Fatal(err)
		}
		maps.Copy(req.Header, header)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	a, b := random(t, 3000), random(t, 100)
	idA, _, err := s.Put(ctx, "alice", bytes.NewReader(a), store.PutLimits{Max: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	idB, _, err := s.Put(ctx, "bob", bytes.NewReader(b), store.PutLimits{Max: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	u, ok, err := s.DownloadURL(ctx, idA)
	if err != nil || !ok {
		t.Fatalf("DownloadURL: %q %v %v", u, ok, err)
	}
	if code, got := get(u, nil); code != http.StatusOK || !bytes.Equal(got, a) {
		t.Fatalf("GET of the pre-signed URL %s: HTTP %d, %s", u, code, got)
	}
	if n := srv.PresignedGets.Load(); n != 1 {
		t.Fatalf("%d pre-signed GETs counted, want 1", n)
	}
	// The URL made into one for bob's blob: the signature no longer holds.
	if code, _ := get(strings.Replace(u, idA, idB, 1), nil); code != http.StatusForbidden {
		t.Fatalf("a URL for another blob: HTTP %d, want 403", code)
	}
	// With a second credential beside it, as a client forwarding its
	// bearer token would send: refused, as S3 does.
	if code, _ := get(u, http.Header{"Authorization": {"Bearer token"}}); code != http.StatusBadRequest {
		t.Fatalf("a pre-signed URL with an Authorization header too: HTTP %d, want 400", code)
	}
	clock.Add(int64(time.Minute + time.Second))
	if code, _ := get(u, nil); code != http.StatusForbidden {
		t.Fatalf("an expired URL: HTTP %d, want 403", code)
	}
	if err := s.Delete(ctx, "alice", idA); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.DownloadURL(ctx, idA); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DownloadURL of a deleted blob: %v", err)
	}
	for _, bad := range []string{"", "../x", strings.Repeat("z", 32)} {
		if _, _, err := s.DownloadURL(ctx, bad); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("DownloadURL(%q): %v", bad, err)
		}
	}

	// Off unless configured; out of S3's range refused at Open.
	off := open(t, config(srv), sqliteIndex(t))
	if u, ok, err := off.DownloadURL(ctx, idB); ok || err != nil || u != "" {
		t.Fatalf("DownloadURL with pre-signing off: %q %v %v", u, ok, err)
	}
	for _, d := range []time.Duration{-time.Second, 500 * time.Millisecond, 8 * 24 * time.Hour} {
		c := config(srv)
		c.Presign = d
		idx := sqliteIndex(t)
		if st, err := Open(ctx, c, idx); err == nil {
			st.Close()
			t.Errorf("Open with Presign %v succeeded", d)
		} else {
			idx.Close()
		}
	}
}

// Direct uploads: a client PUTs exactly the size it asked for to the
// pre-signed URL (S3 refuses any other length: the signature covers
// it), then FinishUpload indexes the object as the owner's, the quota
// checked. An upload of another size is refused and removed, so is one
// over the quota; finishing twice is fine, finishing nothing is not
// found.
func TestDirectUploads(t *testing.T) { testDirectUploads(t, s3test.Start(t)) }

func testDirectUploads(t *testing.T, srv *s3test.Server) {
	cfg := config(srv)
	cfg.Presign = time.Minute
	s := open(t, cfg, sqliteIndex(t))
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.RootCAs}}}
	put := func(up store.DirectUpload, body []byte, length int64) int {
		t.Helper()
		req, err := http.NewRequest("PUT", up.URL, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range up.Header {
			req.Header.Set(k, v)
		}
		req.ContentLength = length
		resp, err := hc.Do(req)
		if err != nil {
			return 0 // the client refused to send a body of another length
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	lim := store.PutLimits{Max: 1 << 20, Quota: 10000}
	body := random(t, 4000)
	u, ok, err := s.UploadURL(ctx, int64(len(body)))
	if err != nil || !ok {
		t.Fatalf("UploadURL: %v %v", ok, err)
	}
	id := u.ID
	if err := s.FinishUpload(ctx, "alice", id, int64(len(body)), lim); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("finishing before anything was uploaded: %v", err)
	}
	// A body of another length under the same URL: S3 refuses it.
	if code := put(u, random(t, 5000), 5000); code != http.StatusForbidden {
		t.Fatalf("a PUT of 5000 bytes to a URL signed for 4000: HTTP %d", code)
	}
	if code := put(u, body, int64(len(body))); code != http.StatusOK {
		t.Fatalf("the PUT: HTTP %d", code)
	}
	if err := s.FinishUpload(ctx, "alice", id, int64(len(body)), lim); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishUpload(ctx, "alice", id, int64(len(body)), lim); err != nil {
		t.Fatalf("finishing again: %v", err)
	}
	if err := s.FinishUpload(ctx, "mallory", id, int64(len(body)), lim); !errors.Is(err, store.ErrBadRequest) {
		t.Fatalf("mallory finishing alice's upload: %v", err)
	}
	// The URL's holder PUTs other bytes of the same size after the
	// upload was checked and indexed: the URL creates its object once.
	if code := put(u, random(t, len(body)), int64(len(body))); code != http.StatusPreconditionFailed {
		t.Fatalf("a second PUT through the URL: HTTP %d, want 412", code)
	}
	// Without the signed condition the signature does not hold.
	if code := put(store.DirectUpload{URL: u.URL}, random(t, len(body)), int64(len(body))); code != http.StatusForbidden {
		t.Fatalf("a PUT through the URL without If-None-Match: HTTP %d, want 403", code)
	}
	rc, n, err := s.Open(ctx, id)
	if err != nil || n != int64(len(body)) {
		t.Fatalf("Open: %d %v", n, err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, body) {
		t.Fatal("the blob holds other bytes than were uploaded")
	}
	if u, err := s.Usage(ctx, "alice"); err != nil || u.Bytes != int64(len(body)) || u.Blobs != 1 {
		t.Fatalf("usage: %+v %v", u, err)
	}

	// Refused at the finish, and the object removed: finished as another
	// size than arrived; over the quota (4000 held, 7000 more, quota
	// 10000).
	for _, tc := range []struct {
		name          string
		put, finished int64
		want          error
	}{
		{"300 bytes finished as 100", 300, 100, store.ErrBadRequest},
		{"over the quota", 7000, 7000, store.ErrQuotaExceeded},
	} {
		up, ok, err := s.UploadURL(ctx, tc.put)
		if err != nil || !ok {
			t.Fatalf("%s: UploadURL: %v %v", tc.name, ok, err)
		}
		if code := put(up, random(t, int(tc.put)), tc.put); code != http.StatusOK {
			t.Fatalf("%s: the PUT: HTTP %d", tc.name, code)
		}
		if err := s.FinishUpload(ctx, "alice", up.ID, tc.finished, lim); !errors.Is(err, tc.want) {
			t.Fatalf("%s: FinishUpload = %v, want %v", tc.name, err, tc.want)
		}
		if slices.Contains(srv.Keys(t), "blobs/"+up.ID) {
			t.Fatalf("%s: the refused upload's object was kept", tc.name)
		}
	}
	// Off unless configured.
	if _, ok, err := open(t, config(srv), sqliteIndex(t)).UploadURL(ctx, 10); ok || err != nil {
		t.Fatalf("UploadURL with pre-signing off: %v %v", ok, err)
	}
}

// A passing failure of the conditional-write probe (a 503 here) says
// nothing about the condition: Open fails saying so, rather than signing
// every upload URL without it for the life of the process.
func TestConditionalProbeFailureStopsStartup(t *testing.T) {
	srv := s3test.Start(t)
	srv.Conditions.Store(s3test.ConditionsFailing)
	cfg := config(srv)
	cfg.Presign = time.Minute
	idx := sqliteIndex(t)
	defer idx.Close()
	_, err := Open(ctx, cfg, idx)
	if err == nil || !strings.Contains(err.Error(), "conditional writes") {
		t.Fatalf("Open with a failing probe: %v, want an error about conditional writes", err)
	}
	if keys := srv.Keys(t); len(keys) != 0 {
		t.Fatalf("the probe object was left behind: %v", keys)
	}
}

// An object store that ignores S3's conditional write, or refuses it as
// not implemented, still takes direct uploads: Open finds out with its
// probe object, signs the upload URLs without the condition (which such
// a store would refuse, or which would promise what it does not keep),
// and tells the operator that an upload URL can then overwrite its
// object until it expires.
func TestDirectUploadsWithoutConditionalWrites(t *testing.T) {
	for _, mode := range []int32{s3test.ConditionsIgnored, s3test.ConditionsNotImplemented, s3test.ConditionsHonoured} {
		srv := s3test.Start(t)
		srv.Conditions.Store(mode)
		var logged bytes.Buffer
		cfg := config(srv)
		cfg.Presign = time.Minute
		cfg.Logger = slog.New(slog.NewTextHandler(&logged, nil))
		s := open(t, cfg, sqliteIndex(t))
		up, ok, err := s.UploadURL(ctx, 100)
		if err != nil || !ok {
			t.Fatalf("mode %d: UploadURL: %v %v", mode, ok, err)
		}
		warned := strings.Contains(logged.String(), "does not honour conditional writes")
		if honoured := mode == s3test.ConditionsHonoured; warned == honoured || (up.Header["If-None-Match"] == "*") != honoured {
			t.Fatalf("mode %d: warned %v, upload headers %v", mode, warned, up.Header)
		}
		req, _ := http.NewRequest("PUT", up.URL, bytes.NewReader(random(t, 100)))
		for k, v := range up.Header {
			req.Header.Set(k, v)
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.RootCAs}}}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("mode %d: the PUT: HTTP %d", mode, resp.StatusCode)
		}
		if err := s.FinishUpload(ctx, "alice", up.ID, 100, store.PutLimits{Max: 1000}); err != nil {
			t.Fatalf("mode %d: finish: %v", mode, err)
		}
		if keys := srv.Keys(t); len(keys) != 1 || keys[0] != "blobs/"+up.ID {
			t.Fatalf("mode %d: objects %v, want the upload alone (the probe removed)", mode, keys)
		}
	}
}
