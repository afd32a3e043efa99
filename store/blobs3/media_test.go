package blobs3

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"slices"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/s3test"
)

// Channel media objects: put under the prefix with a random name, read
// back whole, removed (twice is once), and swept when old and unnamed.
func TestMediaObjects(t *testing.T) { testMediaObjects(t, s3test.Start(t)) }

func testMediaObjects(t *testing.T, srv *s3test.Server) {
	cfg := config(srv)
	cfg.Prefix = "channels/"
	m, err := OpenMedia(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	small, large := random(t, 1000), random(t, minPartSize+4321)
	a, err := m.PutMedia(ctx, small)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.PutMedia(ctx, large)
	if err != nil {
		t.Fatal(err)
	}
	if keys := srv.Keys(t); !slices.Equal(keys, sorted("channels/"+a, "channels/"+b)) {
		t.Fatalf("objects %v", keys)
	}
	for _, c := range []struct {
		name string
		want []byte
	}{{a, small}, {b, large}} {
		rc, n, err := m.OpenMedia(ctx, c.name)
		if err != nil || n != int64(len(c.want)) {
			t.Fatalf("OpenMedia: %d, %v", n, err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, c.want) {
			t.Fatal("read back other bytes")
		}
	}
	for _, bad := range []string{"", "../x", "ABC", "0123456789abcdef0123456789abcdef"} {
		if _, _, err := m.OpenMedia(ctx, bad); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("OpenMedia(%q): %v", bad, err)
		}
	}
	if err := m.RemoveMedia(ctx, []string{a, a, "0123456789abcdef0123456789abcdef"}); err != nil {
		t.Fatal(err)
	}
	if keys := srv.Keys(t); !slices.Equal(keys, []string{"channels/" + b}) {
		t.Fatalf("after removing %s: %v", a, keys)
	}
	// b is in use; c is not; both are older than the cut-off. A key
	// that is not a media object's name is never touched.
	c, _ := m.PutMedia(ctx, small)
	srv.Put(t, "channels/not-a-media-object", []byte("x"))
	n, err := m.SweepMedia(ctx, time.Now().Add(time.Minute), func(o string) (bool, error) { return o == b, nil })
	if err != nil || n != 1 {
		t.Fatalf("SweepMedia = %d, %v", n, err)
	}
	if keys := srv.Keys(t); !slices.Equal(keys, sorted("channels/"+b, "channels/not-a-media-object")) {
		t.Fatalf("after the sweep (%s unnamed): %v", c, keys)
	}
	// Younger than the cut-off: kept even if unnamed.
	if n, err := m.SweepMedia(ctx, time.Now().Add(-time.Hour), func(string) (bool, error) { return false, nil }); err != nil || n != 0 {
		t.Fatalf("SweepMedia of young objects = %d, %v", n, err)
	}
}

func sorted(s ...string) []string { slices.Sort(s); return s }
