package presigned

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// The redirected request carries neither the token nor the dropped
// headers; the first request carries both.
func TestCredentialsStayBehind(t *testing.T) {
	var bucketAuth, bucketHint string
	bucket := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bucketAuth, bucketHint = r.Header.Get("Authorization"), r.Header.Get("Parley-Follow-Redirect")
	}))
	defer bucket.Close()
	var serverAuth string
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serverAuth = r.Header.Get("Authorization")
		http.Redirect(w, r, bucket.URL+"/object?X-Amz-Signature=x", http.StatusTemporaryRedirect)
	}))
	defer server.Close()
	req, _ := http.NewRequest("GET", server.URL+"/v1/blobs/x", nil)
	req.Header.Set("Authorization", "Bearer token")
	req.Header.Set("Parley-Follow-Redirect", "1")
	resp, err := Client(http.DefaultClient, "Parley-Follow-Redirect").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if serverAuth != "Bearer token" || bucketAuth != "" || bucketHint != "" {
		t.Fatalf("server got %q; the bucket got Authorization %q, hint %q", serverAuth, bucketAuth, bucketHint)
	}
}
