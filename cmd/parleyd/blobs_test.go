package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/minio/minio-go/v7/pkg/cors"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/channels/channelcmd"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/internal/s3test"
	"github.com/parleychat/parley/store/blobs3"
	"github.com/parleychat/parley/web"
)

// s3URL is an s3:// --blobs for the test server, with prefix "att".
func s3URL(s *s3test.Server, bucket string) string {
	return "s3://" + bucket + "/att?endpoint=" + s.Endpoint + "&ca=" + s.CAFile
}

func writeCredentials(t *testing.T, key, secret string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "s3-credentials")
	if err := os.WriteFile(p, []byte("# parleyd's S3 key\naccess_key_id = "+key+"\nsecret_access_key="+secret+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestServeS3Blobs runs "parleyd serve --blobs s3://..." against an
// S3-compatible server on loopback: an attachment uploaded through parleyd
// is an object named by its blob id under the prefix, downloads whole and
// by range (resumable), and is deleted by its owner; the index is in the
// data directory, and no blob directory is made.
func TestServeS3Blobs(t *testing.T) {
	s3 := s3test.Start(t)
	data := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	f := serveFlags{data: data, listen: "127.0.0.1:0", registration: "open", retention: time.Hour,
		maxAttachment: 32 << 20, maxFrame: 1 << 20, shutdownTimeout: 10 * time.Second,
		blobs: s3URL(s3, s3.Bucket), blobsCredentials: writeCredentials(t, s3.AccessKeyID, s3.SecretAccessKey, 0o600)}
	go func() { done <- serveWith(ctx, f, slog.New(slog.NewTextHandler(io.Discard, nil)), ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	c, err := transport.Dial(ctx, "http://"+addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := c.Register(ctx, "alice", newKey(t), "")
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 12<<20+321) // more than one part
	rand.Read(body)
	id, err := c.UploadBlob(ctx, bytes.NewReader(body), int64(len(body)), nil)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	if keys := s3.Keys(t); len(keys) != 1 || keys[0] != "att/"+id {
		t.Fatalf("objects %q, want att/%s", keys, id)
	}
	if !bytes.Equal(s3.Get(t, "att/"+id), body) {
		t.Fatal("the object holds other bytes than were uploaded")
	}
	var got bytes.Buffer
	if n, err := c.DownloadBlob(ctx, id, &got, nil); err != nil || n != int64(len(body)) || !bytes.Equal(got.Bytes(), body) {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	// A download resumed from the middle.
	req, _ := http.NewRequest("GET", "http://"+addr+"/v1/blobs/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+sess.BlobToken)
	req.Header.Set("Range", "bytes=7000000-")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	tail, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusPartialContent || !bytes.Equal(tail, body[7000000:]) {
		t.Fatalf("range download: HTTP %d, %d bytes, %v", resp.StatusCode, len(tail), err)
	}
	if err := c.DeleteBlob(ctx, id); err != nil {
		t.Fatal(err)
	}
	if keys := s3.Keys(t); len(keys) != 0 {
		t.Fatalf("objects after the owner deleted the blob: %q", keys)
	}
	// The S3 server breaks off every upload: the client is told to retry
	// later (507 STORAGE_UNAVAILABLE with Retry-After), and nothing is kept.
	s3.FailUploads(1000)
	up, _ := http.NewRequest("POST", "http://"+addr+"/v1/blobs", bytes.NewReader(body[:50000]))
	up.Header.Set("Authorization", "Bearer "+sess.BlobToken)
	resp, err = http.DefaultClient.Do(up)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInsufficientStorage || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(msg), "STORAGE_UNAVAILABLE") {
		t.Fatalf("upload while S3 fails: HTTP %d, Retry-After %q, %q", resp.StatusCode, resp.Header.Get("Retry-After"), msg)
	}
	s3.FailUploads(-1)
	if keys := s3.Keys(t); len(keys) != 0 {
		t.Fatalf("objects after a failed upload: %q", keys)
	}
	// An object lost behind parleyd's back: 404, and the server stays up.
	id, err = c.UploadBlob(ctx, bytes.NewReader(body[:1000]), 1000, nil)
	if err != nil {
		t.Fatalf("upload after S3 recovered: %v", err)
	}
	s3.Remove(t, "att/"+id)
	var he *transport.HTTPError
	if _, err := c.DownloadBlob(ctx, id, io.Discard, nil); !errors.As(err, &he) || he.StatusCode != http.StatusNotFound {
		t.Fatalf("download of a blob whose object is gone: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, s3IndexFile)); err != nil {
		t.Fatalf("the index: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "blobs")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a blob directory was made beside the bucket: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// presignedNode runs "parleyd serve --blobs s3://...&presign=1m" and
// signs alice up on it with a client that trusts the test bucket's
// private CA (as a real bucket's public certificate is trusted).
func presignedNode(t *testing.T) (*s3test.Server, string, *transport.Conn, *transport.Session) {
	t.Helper()
	return presignedNodeOn(t, s3test.Start(t))
}

// presignedNodeOn is presignedNode on a given S3 server.
func presignedNodeOn(t *testing.T, s3 *s3test.Server) (*s3test.Server, string, *transport.Conn, *transport.Session) {
	t.Helper()
	addr, _ := startNode3(t, serveFlags{registration: "open",
		blobs: s3URL(s3, s3.Bucket) + "&presign=1m", blobsCredentials: writeCredentials(t, s3.AccessKeyID, s3.SecretAccessKey, 0o600)})
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s3.RootCAs}}}
	c, err := transport.Dial(context.Background(), "http://"+addr, &transport.Options{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	sess, err := c.Register(context.Background(), "alice", newKey(t), "")
	if err != nil {
		t.Fatal(err)
	}
	return s3, addr, c, sess
}

// With presign, "parleyd serve --blobs s3://...&presign=1m" answers a
// download with a redirect to a pre-signed URL of the object, and the
// client fetches the bytes from the bucket: they do not pass through
// parleyd. The client leaves its blob token behind (the bucket would
// refuse a request with two credentials, and the token is parleyd's
// alone); no URL is handed out without a valid token.
func TestServeS3PresignedDownloads(t *testing.T) {
	ctx := context.Background()
	s3, addr, c, sess := presignedNode(t)
	body := make([]byte, 70000)
	rand.Read(body)
	id, err := c.UploadBlob(ctx, bytes.NewReader(body), int64(len(body)), nil)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	var got bytes.Buffer
	if n, err := c.DownloadBlob(ctx, id, &got, nil); err != nil || n != int64(len(body)) || !bytes.Equal(got.Bytes(), body) {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	if n := s3.PresignedGets.Load(); n != 1 {
		t.Fatalf("%d downloads from the bucket by pre-signed URL, want 1", n)
	}

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	ask := func(token string) *http.Response { return askRedirect(t, "http://"+addr+"/v1/blobs/"+id, token) }
	resp := ask(sess.BlobToken)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.Contains(loc, "X-Amz-Signature=") || !strings.Contains(loc, "X-Amz-Expires=60") ||
		strings.Contains(loc, sess.BlobToken) || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("download answer: HTTP %d, Location %q, Cache-Control %q", resp.StatusCode, loc, resp.Header.Get("Cache-Control"))
	}
	for _, token := range []string{"", "forged", sess.BlobToken[:len(sess.BlobToken)-2] + "AA"} {
		if resp := ask(token); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Location") != "" {
			t.Fatalf("download with token %q: HTTP %d, Location %q", token, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// A client that does not say it follows (the web client, whose
	// Content-Security-Policy allows only its own origin) gets the bytes
	// from parleyd.
	req, _ := http.NewRequest("GET", "http://"+addr+"/v1/blobs/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+sess.BlobToken)
	resp, err = noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	streamed, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(streamed, body) {
		t.Fatalf("download without %s: HTTP %d, %d bytes", "Parley-Follow-Redirect", resp.StatusCode, len(streamed))
	}
}

// With presign, uploads go from the client to the bucket too: parleyd
// hands out a pre-signed PUT of exactly the declared size and an upload
// ticket, and indexes the object once the client says it is there. The
// moves of a client that cheats: finishing before uploading, with a
// forged ticket, or with another account's, or putting other bytes over
// its upload after the server checked it.
func TestServeS3DirectUploads(t *testing.T) {
	ctx := context.Background()
	s3, addr, c, sess := presignedNode(t)
	uploadRoundTrip(t, s3, c)
	if n := s3.PresignedPuts.Load(); n != 1 {
		t.Fatalf("%d uploads to the bucket by pre-signed URL, want 1", n)
	}

	post := func(path, token string, header http.Header) (int, []byte) {
		req, _ := http.NewRequest("POST", "http://"+addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		maps.Copy(req.Header, header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	code, b := post("/v1/blobs/uploads", sess.BlobToken, http.Header{"Parley-Size": {"1000"}})
	var start struct {
		ID, URL, Ticket string
		Headers         map[string]string
	}
	if code != http.StatusCreated || json.Unmarshal(b, &start) != nil || start.Ticket == "" {
		t.Fatalf("start: HTTP %d %s", code, b)
	}
	if start.Headers["If-None-Match"] != "*" {
		t.Fatalf("start: headers %v, want If-None-Match: *", start.Headers)
	}
	bucket := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s3.RootCAs}}}
	put := func(data []byte, header map[string]string) int {
		req, _ := http.NewRequest("PUT", start.URL, bytes.NewReader(data))
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := bucket.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	finish := func(token, ticket string) int {
		code, _ := post("/v1/blobs/uploads/"+start.ID, token, http.Header{"Parley-Upload-Ticket": {ticket}})
		return code
	}
	if code := finish(sess.BlobToken, start.Ticket); code != http.StatusNotFound {
		t.Fatalf("finishing before the upload: HTTP %d, want 404", code)
	}
	mallory, err := transport.Dial(ctx, "http://"+addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mallory.Close()
	ms, err := mallory.Register(ctx, "mallory", newKey(t), "")
	if err != nil {
		t.Fatal(err)
	}
	if code := finish(ms.BlobToken, start.Ticket); code != http.StatusForbidden {
		t.Fatalf("mallory finishing alice's upload: HTTP %d, want 403", code)
	}
	forged := start.Ticket[:len(start.Ticket)-3] + "AAA"
	if code := finish(sess.BlobToken, forged); code != http.StatusForbidden {
		t.Fatalf("a forged ticket: HTTP %d, want 403", code)
	}
	first := make([]byte, 1000)
	rand.Read(first)
	if code := put(first, start.Headers); code != http.StatusOK {
		t.Fatalf("the PUT: HTTP %d", code)
	}
	if code := finish(sess.BlobToken, start.Ticket); code != http.StatusCreated {
		t.Fatalf("finish: HTTP %d", code)
	}
	// The URL is still valid, but creates its object once: other bytes
	// of the same size cannot replace the checked upload, with the
	// condition (412) or without it (the signature covers it: 403).
	if code := put(make([]byte, 1000), start.Headers); code != http.StatusPreconditionFailed {
		t.Fatalf("a second PUT through the upload URL: HTTP %d, want 412", code)
	}
	if code := put(make([]byte, 1000), nil); code != http.StatusForbidden {
		t.Fatalf("a second PUT without If-None-Match: HTTP %d, want 403", code)
	}
	if !bytes.Equal(s3.Get(t, "att/"+start.ID), first) {
		t.Fatal("the checked upload was overwritten")
	}
	for _, bad := range []string{"", "0", "-5", "lots", fmt.Sprint(2 << 20)} {
		if code, _ := post("/v1/blobs/uploads", sess.BlobToken, http.Header{"Parley-Size": {bad}}); code != http.StatusBadRequest && code != http.StatusRequestEntityTooLarge {
			t.Errorf("start with Parley-Size %q: HTTP %d", bad, code)
		}
	}
}

// TestServeS3StartupErrors: a parleyd given a bucket it cannot use stops
// at start-up, before listening, saying what to fix; secrets never show in
// the message.
func TestServeS3StartupErrors(t *testing.T) {
	s3 := s3test.Start(t)
	good := writeCredentials(t, s3.AccessKeyID, s3.SecretAccessKey, 0o600)
	for _, tc := range []struct {
		name, blobs, creds string
		env                []string
		says               []string
	}{
		{"wrong key", s3URL(s3, s3.Bucket), writeCredentials(t, "WRONGKEY", "wrong-secret", 0o600), nil,
			[]string{"credentials refused", "InvalidAccessKeyId", "PARLEY_S3_ACCESS_KEY_ID"}},
		{"no bucket", s3URL(s3, "no-such-bucket"), good, nil, []string{"does not exist", "create it"}},
		{"nothing listening", "s3://b/att?endpoint=127.0.0.1:1", good, nil, []string{"unreachable", "127.0.0.1:1"}},
		{"no TLS off loopback", "s3://b?endpoint=s3.example.com&tls=off", good, nil, []string{"not a loopback address"}},
		{"secret in the URL", "s3://KEY:wrong-secret@b?endpoint=" + s3.Endpoint, "", nil, []string{"do not go in the URL"}},
		{"no endpoint", "s3://b/att", good, nil, []string{"?endpoint=HOST:PORT"}},
		{"unknown parameter", s3URL(s3, s3.Bucket) + "&sekret=x", good, nil, []string{`unknown parameter "sekret"`}},
		{"bad sweep", s3URL(s3, s3.Bucket) + "&sweep=often", good, nil, []string{"sweep=\"often\""}},
		{"bad presign", s3URL(s3, s3.Bucket) + "&presign=soon", good, nil, []string{"presign=\"soon\"", "1s to 168h"}},
		{"presign beyond S3's limit", s3URL(s3, s3.Bucket) + "&presign=200h", good, nil, []string{"presign=\"200h\"", "S3's limit"}},
		{"credentials readable by others", s3URL(s3, s3.Bucket), writeCredentials(t, s3.AccessKeyID, "wrong-secret", 0o644), nil, []string{"chmod 600"}},
		{"no credentials", s3URL(s3, s3.Bucket), "", []string{"", ""}, []string{"PARLEY_S3_ACCESS_KEY_ID", "--blobs-credentials"}},
		{"credentials from the environment, wrong", s3URL(s3, s3.Bucket), "", []string{"OTHERKEY", "wrong-secret"}, []string{"credentials refused"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != nil {
				t.Setenv(envS3KeyID, tc.env[0])
				t.Setenv(envS3Secret, tc.env[1])
			}
			f := serveFlags{data: filepath.Join(t.TempDir(), "data"), listen: "127.0.0.1:0", registration: "open", retention: time.Hour,
				maxAttachment: 1 << 20, maxFrame: 1 << 20, shutdownTimeout: 10 * time.Second, blobs: tc.blobs, blobsCredentials: tc.creds}
			ready := make(chan string, 1)
			err := serveWith(context.Background(), f, slog.New(slog.NewTextHandler(io.Discard, nil)), ready)
			if err == nil {
				t.Fatal("serve ran")
			}
			if len(ready) != 0 {
				t.Fatal("serve listened before failing")
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if strings.Contains(err.Error(), "wrong-secret") || strings.Contains(err.Error(), s3.SecretAccessKey) {
				t.Errorf("error %q shows a secret", err)
			}
		})
	}
	if keys := s3.Keys(t); len(keys) != 0 {
		t.Fatalf("failed start-ups left objects: %q", keys)
	}
}

// The real command: exit status 1 and the reason on stderr; --help
// explains the s3:// form and where credentials go.
func TestServeS3Command(t *testing.T) {
	s3 := s3test.Start(t)
	t.Setenv(envS3KeyID, "WRONGKEY")
	t.Setenv(envS3Secret, "wrong-secret")
	var errb bytes.Buffer
	code := run(context.Background(), []string{"serve", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--metrics-listen", "off", "--blobs", s3URL(s3, s3.Bucket)}, io.Discard, &errb)
	if code != 1 || !strings.Contains(errb.String(), "credentials refused") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := run(context.Background(), []string{"serve", "--help"}, io.Discard, &errb); code != 0 {
		t.Fatalf("serve --help exited %d", code)
	}
	for _, s := range []string{"s3://BUCKET/PREFIX?endpoint=HOST:PORT", "tls=off", "-blobs-credentials", envS3KeyID, envS3Secret} {
		if !strings.Contains(errb.String(), s) {
			t.Errorf("serve --help does not explain %s", s)
		}
	}
}

// TestServeS3ChannelMedia runs "parleyd serve --channel-media
// s3://...&presign=1m": a channel post's image is an object under the
// prefix, not bytes in the channels database; it is streamed from there,
// or, to a client that asks, handed out as a pre-signed URL, which the
// CLI follows without its token; the CLI's digest check catches an
// object altered in the bucket; deleting the post removes the object at
// once, so a URL handed out before stops working.
func TestServeS3ChannelMedia(t *testing.T) {
	ctx := context.Background()
	s3 := s3test.Start(t)
	addr, data := startNode3(t, serveFlags{registration: "open",
		blobsCredentials: writeCredentials(t, s3.AccessKeyID, s3.SecretAccessKey, 0o600),
		channelMedia:     "s3://" + s3.Bucket + "/chan?endpoint=" + s3.Endpoint + "&ca=" + s3.CAFile + "&presign=1m",
		abuse:            abuseFlags{metricsListen: "off", metricsToken: "op"}})
	_, sess := dial(t, addr, "alice", "")
	api := channelClient{t: t, url: "http://" + addr, token: sess.BlobToken}
	if code, b := api.do("POST", "/v1/channels", "application/json", strings.NewReader(`{"id":"news","title":"News"}`)); code != http.StatusCreated {
		t.Fatalf("create channel: HTTP %d: %s", code, b)
	}
	img, _ := sharedImage(t, "bridge-mods", "aaa-orig.jpg")
	code, b := api.post("news", "a picture", img)
	var pr channels.PostResponse
	if code != http.StatusCreated || json.Unmarshal(b, &pr) != nil {
		t.Fatalf("post: HTTP %d: %s", code, b)
	}
	keys := s3.Keys(t)
	if len(keys) != 1 || !strings.HasPrefix(keys[0], "chan/") || !bytes.Equal(s3.Get(t, keys[0]), img) {
		t.Fatalf("objects %q, want the image under chan/", keys)
	}
	// The image's bytes are in neither the channels database nor its
	// write-ahead log (where a fresh insert lands first).
	chunk := img[len(img)/2 : len(img)/2+64]
	for _, name := range []string{"channels.db", "channels.db-wal"} {
		raw, err := os.ReadFile(filepath.Join(data, name))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		if bytes.Contains(raw, chunk) {
			t.Fatalf("%s holds the image's bytes", name)
		}
	}
	mediaPath := fmt.Sprintf("/v1/channels/news/posts/%d/media/0", pr.Post.ID)
	code, got := api.do("GET", mediaPath, "", nil)
	if code != http.StatusOK || !bytes.Equal(got, img) {
		t.Fatalf("media: HTTP %d, %d bytes", code, len(got))
	}
	if n := s3.PresignedGets.Load(); n != 0 {
		t.Fatalf("%d pre-signed downloads for a client that did not ask", n)
	}
	// Asked for: a redirect to the bucket, which answers without the token.
	resp := askRedirect(t, "http://"+addr+mediaPath, sess.BlobToken)
	presigned := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.Contains(presigned, "X-Amz-Signature") || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("media with Parley-Follow-Redirect: HTTP %d, Location %q", resp.StatusCode, presigned)
	}
	bucket := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s3.RootCAs}}}
	fromBucket := func() (int, []byte) {
		resp, err := bucket.Get(presigned)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, b := fromBucket(); code != http.StatusOK || !bytes.Equal(b, img) {
		t.Fatalf("the pre-signed URL: HTTP %d, %d bytes", code, len(b))
	}
	// The CLI follows it, checks the digest and saves the file.
	getMedia := func(out string) (int, string) {
		var stdout, stderr bytes.Buffer
		auth := func(r *http.Request) error { r.Header.Set("Authorization", "Bearer "+sess.BlobToken); return nil }
		code := channelcmd.RunWithOptions(ctx, "http://"+addr, auth, []string{"get-media", "news", fmt.Sprint(pr.Post.ID), "0", "--out", out}, &stdout, &stderr,
			channelcmd.Options{HTTPClient: bucket}) // it trusts the bucket's CA as the system's would a real one
		return code, stdout.String() + stderr.String()
	}
	bucket.CloseIdleConnections()
	saved := filepath.Join(t.TempDir(), "saved.jpg")
	before := s3.PresignedGets.Load()
	if code, out := getMedia(saved); code != 0 {
		t.Fatalf("channel get-media: exit %d: %s", code, out)
	}
	if b, err := os.ReadFile(saved); err != nil || !bytes.Equal(b, img) {
		t.Fatalf("saved file: %v", err)
	}
	if n := s3.PresignedGets.Load() - before; n != 1 {
		t.Fatalf("the CLI made %d pre-signed downloads, want 1 (through the bucket)", n)
	}
	// The object altered in the bucket: the CLI saves nothing.
	s3.Put(t, keys[0], bytes.Repeat([]byte{0xff}, len(img)))
	altered := filepath.Join(t.TempDir(), "altered.jpg")
	if code, out := getMedia(altered); code == 0 || !strings.Contains(out, "does not match") {
		t.Fatalf("get-media of an altered object: exit %d: %s", code, out)
	}
	if _, err := os.Stat(altered); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an altered download was saved: %v", err)
	}
	if code, b := api.do("DELETE", fmt.Sprintf("/v1/channels/news/posts/%d", pr.Post.ID), "", nil); code != http.StatusNoContent {
		t.Fatalf("delete: HTTP %d: %s", code, b)
	}
	if keys := s3.Keys(t); len(keys) != 0 {
		t.Fatalf("objects right after the post was deleted: %q", keys)
	}
	if code, _ := fromBucket(); code != http.StatusNotFound {
		t.Fatalf("a URL handed out before the deletion: HTTP %d, want 404", code)
	}
	_, metrics := get(t, "http://"+addr+"/metrics", "Bearer op")
	for _, want := range []string{"parleyd_channel_media_objects_put_total 1", "parleyd_channel_media_objects_removed_total 1", "parleyd_channel_media_object_failures_total 0"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

}

// --channel-media takes an s3:// URL or nothing; what is wrong with it is
// said before anything is served.
func TestChannelMediaFlagErrors(t *testing.T) {
	s3 := s3test.Start(t)
	good := writeCredentials(t, s3.AccessKeyID, s3.SecretAccessKey, 0o600)
	for _, tc := range []struct {
		name, url, creds, want string
	}{
		{"directory", "/srv/media", good, "want an s3:// URL"},
		{"presign", "s3://" + s3.Bucket + "/c?endpoint=" + s3.Endpoint + "&ca=" + s3.CAFile + "&presign=1ms", good, "--channel-media: presign="},
		{"no bucket", "s3://no-such-bucket/c?endpoint=" + s3.Endpoint + "&ca=" + s3.CAFile, good, "create it"},
		{"wrong key", "s3://" + s3.Bucket + "/c?endpoint=" + s3.Endpoint + "&ca=" + s3.CAFile, writeCredentials(t, "WRONG", "wrong", 0o600), "credentials"},
		{"unknown parameter", "s3://" + s3.Bucket + "/c?endpoint=" + s3.Endpoint + "&colour=blue", good, `--channel-media s3://parley-test/c?endpoint=127.0.0.1:`},
		{"presign too long", "s3://" + s3.Bucket + "/c?endpoint=" + s3.Endpoint + "&ca=" + s3.CAFile + "&presign=1h", good, "longer than 15m0s"},
		{"unknown parameter named", "s3://" + s3.Bucket + "/c?endpoint=" + s3.Endpoint + "&colour=blue", good, `unknown parameter "colour"`},
	} {
		_, _, err := openChannelMedia(context.Background(), tc.url, "", tc.creds, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	// The attachments' bucket and prefix, or one inside the other: each
	// store's sweep would delete the other's objects.
	blobs := "s3://" + s3.Bucket + "/att?endpoint=" + s3.Endpoint + "&ca=" + s3.CAFile
	for _, tc := range []struct{ name, url, want string }{
		{"same prefix", "s3://" + s3.Bucket + "/att?endpoint=" + s3.Endpoint + "&ca=" + s3.CAFile, "overlapping prefixes"},
		{"inside it", "s3://" + s3.Bucket + "/att/media?endpoint=" + s3.Endpoint + "&ca=" + s3.CAFile, "overlapping prefixes"},
		{"around it", "s3://" + s3.Bucket + "?endpoint=" + s3.Endpoint + "&ca=" + s3.CAFile, "overlapping prefixes"},
	} {
		_, _, err := openChannelMedia(context.Background(), tc.url, blobs, good, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	if _, _, err := openChannelMedia(context.Background(), "s3://"+s3.Bucket+"/attachments-media?endpoint="+s3.Endpoint+"&ca="+s3.CAFile, blobs, good, slog.New(slog.DiscardHandler)); err != nil {
		t.Errorf("a prefix beside the attachments': %v", err)
	}
}

// The client's direct transfers against a real S3 server (the Versity S3
// Gateway) rather than the fake: the upload's PUT with its signed
// Content-Length and If-None-Match, the redirected download followed
// without the token (a real server refuses two credentials), and a
// second PUT through the same URL refused.
func TestServeVersityDirectTransfers(t *testing.T) {
	s3, addr, c, sess := presignedNodeOn(t, s3test.StartVersity(t))
	id := uploadRoundTrip(t, s3, c)
	// The download was a redirect to the bucket.
	resp := askRedirect(t, "http://"+addr+"/v1/blobs/"+id, sess.BlobToken)
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(resp.Header.Get("Location"), "https://"+s3.Endpoint+"/") {
		t.Fatalf("download with Parley-Follow-Redirect: HTTP %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// A second upload URL, used twice: the real server refuses the second.
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/blobs/uploads", nil)
	req.Header.Set("Authorization", "Bearer "+sess.BlobToken)
	req.Header.Set("Parley-Size", "100")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("start an upload: HTTP %d", resp.StatusCode)
	}
	var start struct {
		URL     string
		Headers map[string]string
	}
	json.NewDecoder(resp.Body).Decode(&start)
	resp.Body.Close()
	bucket := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s3.RootCAs}}}
	for i, want := range []int{http.StatusOK, http.StatusPreconditionFailed} {
		put, _ := http.NewRequest("PUT", start.URL, bytes.NewReader(make([]byte, 100)))
		for k, v := range start.Headers {
			put.Header.Set(k, v)
		}
		resp, err := bucket.Do(put)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("PUT %d through the upload URL: HTTP %d, want %d", i+1, resp.StatusCode, want)
		}
	}
}

// uploadRoundTrip uploads 90 000 random bytes through c, checks the
// object holds them and that c downloads them back, and returns the
// blob's id.
func uploadRoundTrip(t *testing.T, s3 *s3test.Server, c *transport.Conn) string {
	t.Helper()
	ctx := context.Background()
	body := make([]byte, 90000)
	rand.Read(body)
	id, err := c.UploadBlob(ctx, bytes.NewReader(body), int64(len(body)), nil)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	if !bytes.Equal(s3.Get(t, "att/"+id), body) {
		t.Fatal("the object holds other bytes than were uploaded")
	}
	var got bytes.Buffer
	if _, err := c.DownloadBlob(ctx, id, &got, nil); err != nil || !bytes.Equal(got.Bytes(), body) {
		t.Fatalf("download: %v", err)
	}
	return id
}

// "parleyd admin channel-media move" moves the files a server without
// --channel-media kept in the channels database to the bucket, while it
// runs; a server started with --channel-media then serves them from
// there. A second run moves nothing; a deleted post's file is not moved.
func TestAdminChannelMediaMove(t *testing.T) {
	s3 := s3test.Start(t)
	creds := writeCredentials(t, s3.AccessKeyID, s3.SecretAccessKey, 0o600)
	mediaURL := "s3://" + s3.Bucket + "/chan?endpoint=" + s3.Endpoint + "&ca=" + s3.CAFile
	data := filepath.Join(t.TempDir(), "data")
	serve := func(channelMedia string) (addr string, stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		ready, done := make(chan string, 1), make(chan error, 1)
		f := serveFlags{data: data, listen: "127.0.0.1:0", registration: "open", retention: time.Hour,
			maxAttachment: 1 << 20, maxFrame: 1 << 20, shutdownTimeout: 10 * time.Second,
			blobsCredentials: creds, channelMedia: channelMedia}
		go func() { done <- serveWith(ctx, f, slog.New(slog.NewTextHandler(io.Discard, nil)), ready) }()
		select {
		case addr = <-ready:
		case err := <-done:
			t.Fatalf("serve: %v", err)
		}
		return addr, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		}
	}
	addr, stop := serve("")
	ctx := context.Background()
	_, sess := dial(t, addr, "alice", "")
	api := channelClient{t: t, url: "http://" + addr, token: sess.BlobToken}
	if code, b := api.do("POST", "/v1/channels", "application/json", strings.NewReader(`{"id":"news","title":"News"}`)); code != http.StatusCreated {
		t.Fatalf("create channel: HTTP %d: %s", code, b)
	}
	img, _ := sharedImage(t, "bridge-mods", "aaa-orig.jpg")
	other, _ := sharedImage(t, "reg-test-input", "pen-and-coaster.png")
	var ids []int64
	for _, b := range [][]byte{img, other, img} {
		code, body := api.post("news", "a picture", b)
		var pr channels.PostResponse
		if code != http.StatusCreated || json.Unmarshal(body, &pr) != nil {
			t.Fatalf("post: HTTP %d: %s", code, body)
		}
		ids = append(ids, pr.Post.ID)
	}
	if code, b := api.do("DELETE", fmt.Sprintf("/v1/channels/news/posts/%d", ids[2]), "", nil); code != http.StatusNoContent {
		t.Fatalf("delete: HTTP %d: %s", code, b)
	}
	if keys := s3.Keys(t); len(keys) != 0 {
		t.Fatalf("objects before the move: %q", keys)
	}
	move := func() moveResult {
		var out, errb bytes.Buffer
		if code := run(ctx, []string{"admin", "channel-media", "move", "--data", data, "--to", mediaURL, "--blobs-credentials", creds, "--json"}, &out, &errb); code != 0 {
			t.Fatalf("channel-media move: exit %d: %s%s", code, out.String(), errb.String())
		}
		var r moveResult
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("channel-media move --json: %v: %s", err, out.String())
		}
		return r
	}
	if r := move(); r.Moved != 2 || r.Bytes != int64(len(img)+len(other)) {
		t.Fatalf("move while the server runs: %+v", r)
	}
	if keys := s3.Keys(t); len(keys) != 2 {
		t.Fatalf("objects after the move: %q", keys)
	}
	if r := move(); r.Moved != 0 {
		t.Fatalf("a second move: %+v", r)
	}
	stop()

	addr, stop = serve(mediaURL)
	defer stop()
	api.url = "http://" + addr
	for i, want := range [][]byte{img, other} {
		code, got := api.do("GET", fmt.Sprintf("/v1/channels/news/posts/%d/media/0", ids[i]), "", nil)
		if code != http.StatusOK || !bytes.Equal(got, want) {
			t.Fatalf("moved file %d: HTTP %d, %d bytes", i, code, len(got))
		}
	}
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"admin", "channel-media", "move", "--data", data}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "give --to") {
		t.Fatalf("move without --to: exit %d: %s", code, errb.String())
	}
}

// askRedirect GETs url with the token (if any) and
// Parley-Follow-Redirect: 1, without following a redirect, and returns
// the answer (its body closed).
func askRedirect(t *testing.T, url, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Parley-Follow-Redirect", "1")
	resp, err := (&http.Transport{}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// --web-direct-transfers names the web origin whose page may use the
// bucket directly. It needs an s3:// --blobs with presign=, refuses
// anything but an origin, and refuses to start when the bucket's CORS
// rules (as a real S3 server serves them) would refuse that origin, since
// every upload from the web client would then fail; an endpoint that
// serves no rules gets a warning. When it starts, the page's policy names
// the pre-signed URLs' origin.
func TestWebDirectTransfersFlag(t *testing.T) {
	ctx := context.Background()
	const webOrigin = "https://chat.example.org"
	openS3 := func(t *testing.T, s3 *s3test.Server, params string) blobBackend {
		t.Helper()
		b, err := openBlobs(ctx, t.TempDir(), "", s3URL(s3, s3.Bucket)+params, writeCredentials(t, s3.AccessKeyID, s3.SecretAccessKey, 0o600), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	if opts, err := webDirectTransfers(ctx, "", nil, slog.New(slog.DiscardHandler)); err != nil || opts.ObjectStore != "" {
		t.Fatalf("no flag: %+v, %v", opts, err)
	}
	dirBlobs, err := openBlobs(ctx, t.TempDir(), "", "", "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer dirBlobs.Close()
	fake := s3test.Start(t)
	for _, tc := range []struct {
		name, origin string
		blobs        blobBackend
		want         string
	}{
		{"not an origin", "chat.example.org", dirBlobs, "want an origin"},
		{"a path", webOrigin + "/app", dirBlobs, "want an origin"},
		{"a directory", webOrigin, dirBlobs, "attachments are not in a bucket"},
		{"no presign", webOrigin, openS3(t, fake, ""), "presign="},
	} {
		if _, err := webDirectTransfers(ctx, tc.origin, tc.blobs, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}

	// The fake serves no CORS rules: a warning, and the page may connect.
	var logs strings.Builder
	opts, err := webDirectTransfers(ctx, webOrigin, openS3(t, fake, "&presign=1m"), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil || opts.ObjectStore != "https://"+fake.Endpoint {
		t.Fatalf("a bucket without CORS rules to read: %+v, %v", opts, err)
	}
	if !strings.Contains(logs.String(), "could not be checked") {
		t.Fatalf("no warning that the rules went unchecked: %s", logs.String())
	}

	real := s3test.StartVersity(t)
	blobs := openS3(t, real, "&presign=1m")
	if _, err := webDirectTransfers(ctx, webOrigin, blobs, slog.New(slog.DiscardHandler)); !errors.Is(err, blobs3.ErrCORSRefuses) || !strings.Contains(err.Error(), "--web-direct-transfers") {
		t.Fatalf("a bucket without CORS rules: %v, want ErrCORSRefuses", err)
	}
	real.SetCORS(t, cors.Rule{AllowedOrigin: []string{webOrigin}, AllowedMethod: []string{"GET", "PUT"},
		AllowedHeader: []string{"if-none-match", "parley-follow-redirect"}})
	opts, err = webDirectTransfers(ctx, webOrigin, blobs, slog.New(slog.DiscardHandler))
	if err != nil || opts.ObjectStore != "https://"+real.Endpoint {
		t.Fatalf("with the documented rules: %+v, %v", opts, err)
	}
	files := withWebStatic(t, fstest.MapFS{"dist/" + web.WASMName: {Data: []byte("\x00asm")}, "dist/" + web.ExecName: {Data: []byte("//")}})
	mount := withWebClient(map[string]http.Handler{}, files, opts, slog.New(slog.DiscardHandler))
	rec := httptest.NewRecorder()
	mount["GET /{$}"].ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self' https://"+real.Endpoint+";") {
		t.Fatalf("the page's policy does not name the bucket: %s", csp)
	}
}
