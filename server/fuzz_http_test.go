package server_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/parleychat/parley/wire"
)

// FuzzBlobHTTP sends arbitrary blob ids, bearer tokens and Range headers
// to the attachment endpoints: the server must answer with a sensible
// status (never 5xx, never a panic) and only serve the blob that exists to
// the token that is valid.
func FuzzBlobHTTP(f *testing.F) {
	ts := newServer(f)
	alice := register(f, ts, "alice")
	content := bytes.Repeat([]byte("blob-content-"), 100)
	id, err := alice.conn.UploadBlob(bg, bytes.NewReader(content), int64(len(content)), nil)
	if err != nil {
		f.Fatal(err)
	}
	token := alice.conn.Session().BlobToken
	h := ts.srv.Handler()

	f.Add(id, true, "", "")
	f.Add(id, true, "", "bytes=0-9")
	f.Add(id, true, "", "bytes=99999-")
	f.Add(id, false, "Bearer nope", "bytes=-5")
	f.Add("../parley.db", true, "", "")
	f.Add("%2e%2e%2fparley.db", true, "", "")
	f.Add("tmp", true, "", "bytes=0-0,5-9")
	f.Add(id, false, "Basic "+token, "")
	f.Fuzz(func(t *testing.T, blobID string, validToken bool, auth, rng string) {
		if validToken {
			auth = "Bearer " + token
		}
		req, err := http.NewRequest(http.MethodGet, "http://parley.test"+wire.PathBlobs+"/"+url.PathEscape(blobID), nil)
		if err != nil {
			return
		}
		if !validHeader(auth) || !validHeader(rng) {
			return
		}
		req.Header.Set("Authorization", auth)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch code := rec.Code; {
		case code >= 500:
			t.Fatalf("GET %q (auth %q, range %q): %d %s", blobID, auth, rng, code, rec.Body)
		case code == http.StatusOK || code == http.StatusPartialContent:
			if !validToken || blobID != id {
				t.Fatalf("served %q with auth %q", blobID, auth)
			}
			if code == http.StatusOK && !bytes.Equal(rec.Body.Bytes(), content) {
				t.Fatal("wrong content")
			}
		}
	})
}

func validHeader(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
