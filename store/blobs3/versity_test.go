package blobs3

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/cors"
	"github.com/parleychat/parley/internal/s3test"
	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/store/blobtest"
)

// TestVersityGateway runs the store against a real S3 server, the Versity
// S3 Gateway (s3test.StartVersity), rather than the in-memory fake the
// other tests use: the contract suite (multipart uploads included),
// pre-signed downloads, direct uploads with their signed size and
// conditional write, the start-up probe of conditional writes, and the
// channel media objects. What the fake accepts and a real server would
// refuse (or the other way round) fails here.
func TestVersityGateway(t *testing.T) {
	shared := s3test.StartVersity(t)
	var n atomic.Int64
	t.Run("Contract", func(t *testing.T) {
		blobtest.Run(t, func(t *testing.T) store.Blobs {
			cfg := config(shared)
			cfg.Prefix = fmt.Sprintf("contract-%d/", n.Add(1))
			return open(t, cfg, sqliteIndex(t))
		})
	})
	t.Run("PresignedDownloads", func(t *testing.T) {
		cfg := config(shared)
		cfg.Prefix, cfg.Presign = "presigned/", time.Minute
		s := open(t, cfg, sqliteIndex(t))
		body := random(t, 3000)
		id, _, err := s.Put(ctx, "alice", strings.NewReader(string(body)), store.PutLimits{Max: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		u, ok, err := s.DownloadURL(ctx, id)
		if err != nil || !ok {
			t.Fatalf("DownloadURL: %v %v", ok, err)
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: shared.RootCAs}}}
		get := func(u string) (int, []byte) {
			resp, err := hc.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, b
		}
		if code, b := get(u); code != http.StatusOK || string(b) != string(body) {
			t.Fatalf("the pre-signed URL: HTTP %d, %d bytes", code, len(b))
		}
		// Another object under the same signature: refused.
		other := strings.Replace(u, id, strings.Repeat("0", len(id)), 1)
		if code, _ := get(other); code != http.StatusForbidden {
			t.Fatalf("an edited pre-signed URL: HTTP %d, want 403", code)
		}
	})
	t.Run("DirectUploads", func(t *testing.T) { testDirectUploads(t, s3test.StartVersity(t)) })
	t.Run("Media", func(t *testing.T) { testMediaObjects(t, s3test.StartVersity(t)) })
	t.Run("BrowserAccess", func(t *testing.T) { testBrowserAccess(t, s3test.StartVersity(t)) })
}

// testBrowserAccess: the origin a page must be allowed to connect to is
// the pre-signed URLs' own, and the start-up check reads the bucket's
// CORS rules as S3 applies them: none, rules for another origin, and
// rules without the headers the web client sends, and rules that let a
// page send an Authorization header to the bucket, all refuse; the
// rules docs/web.md gives allow.
func testBrowserAccess(t *testing.T, srv *s3test.Server) {
	cfg := config(srv)
	cfg.Presign = time.Minute
	s := open(t, cfg, sqliteIndex(t))
	origin, err := s.BrowserOrigin(ctx)
	if err != nil || origin != "https://"+srv.Endpoint {
		t.Fatalf("BrowserOrigin: %q, %v; want https://%s", origin, err, srv.Endpoint)
	}
	const web = "https://chat.example.org"
	if err := s.CheckBrowserAccess(ctx, web); !errors.Is(err, ErrCORSRefuses) {
		t.Fatalf("no CORS rules: %v, want ErrCORSRefuses", err)
	}
	srv.SetCORS(t, cors.Rule{AllowedOrigin: []string{"https://other.example.org"}, AllowedMethod: []string{"GET", "PUT"}, AllowedHeader: []string{"*"}})
	if err := s.CheckBrowserAccess(ctx, web); !errors.Is(err, ErrCORSRefuses) {
		t.Fatalf("rules for another origin: %v, want ErrCORSRefuses", err)
	}
	srv.SetCORS(t, cors.Rule{AllowedOrigin: []string{web}, AllowedMethod: []string{"GET", "PUT"}, AllowedHeader: []string{"content-type", "parley-follow-redirect"}})
	if err := s.CheckBrowserAccess(ctx, web); !errors.Is(err, ErrCORSRefuses) || !strings.Contains(err.Error(), "if-none-match") {
		t.Fatalf("rules without If-None-Match: %v, want ErrCORSRefuses naming it", err)
	}
	srv.SetCORS(t, cors.Rule{AllowedOrigin: []string{web}, AllowedMethod: []string{"GET", "PUT"}, AllowedHeader: []string{"*"}})
	if err := s.CheckBrowserAccess(ctx, web); !errors.Is(err, ErrCORSRefuses) || !strings.Contains(err.Error(), "Authorization") {
		t.Fatalf("rules allowing every header: %v, want ErrCORSRefuses naming Authorization", err)
	}
	srv.SetCORS(t, cors.Rule{AllowedOrigin: []string{web}, AllowedMethod: []string{"GET", "PUT"},
		AllowedHeader: []string{"if-none-match", "parley-follow-redirect"}, MaxAgeSeconds: 3600})
	if err := s.CheckBrowserAccess(ctx, web); err != nil {
		t.Fatalf("the documented rules: %v", err)
	}
	noPresign := open(t, config(srv), sqliteIndex(t))
	if _, err := noPresign.BrowserOrigin(ctx); !errors.Is(err, ErrNoPresign) {
		t.Fatalf("BrowserOrigin without presign: %v, want ErrNoPresign", err)
	}
}
