package transport

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A direct upload's PUT carries the headers the server names only if
// they are conditions or the type: a server (or whoever answers for it)
// cannot make the client send a credential, or anything else, to the
// upload URL. The bytes then go nowhere.
func TestDirectUploadHeadersChecked(t *testing.T) {
	for _, tc := range []struct {
		header  map[string]string
		allowed bool
	}{
		{map[string]string{"If-None-Match": "*"}, true},
		{map[string]string{"if-none-match": "*", "Content-Type": "application/octet-stream"}, true},
		{map[string]string{"Authorization": "Bearer stolen"}, false},
		{map[string]string{"If-None-Match": "*", "Cookie": "session=1"}, false},
		{map[string]string{"Host": "elsewhere.example"}, false},
	} {
		var puts atomic.Int64
		var gotCondition atomic.Value
		mux := http.NewServeMux()
		var srvURL string
		mux.HandleFunc("POST /v1/blobs/uploads", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusCreated)
			json.NewEncoder(w).Encode(map[string]any{"id": "b1", "url": srvURL + "/bucket/b1", "ticket": "t", "headers": tc.header})
		})
		mux.HandleFunc("PUT /bucket/b1", func(w http.ResponseWriter, r *http.Request) {
			puts.Add(1)
			gotCondition.Store(r.Header.Get("If-None-Match"))
		})
		mux.HandleFunc("POST /v1/blobs/uploads/b1", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusCreated)
			json.NewEncoder(w).Encode(map[string]any{"id": "b1", "size": 5})
		})
		srv := httptest.NewServer(mux)
		srvURL = srv.URL
		base, _ := url.Parse(srv.URL)
		c := &Conn{base: base, client: srv.Client()}
		id, err := c.uploadDirect(context.Background(), "token", strings.NewReader("hello"), 5, time.Time{}, nil)
		srv.Close()
		if tc.allowed {
			if err != nil || id != "b1" || puts.Load() != 1 {
				t.Errorf("headers %v: id %q, %d PUTs, %v", tc.header, id, puts.Load(), err)
			}
			if got, _ := gotCondition.Load().(string); got != "*" {
				t.Errorf("headers %v: the PUT carried If-None-Match %q", tc.header, got)
			}
			continue
		}
		if err == nil || puts.Load() != 0 {
			t.Errorf("headers %v: accepted (%d PUTs, err %v)", tc.header, puts.Load(), err)
		}
	}
}
