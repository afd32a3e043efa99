package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/parleychat/parley/web"
)

// parleyd mounts the web client at / beside the delivery service; built
// without the module (a fresh checkout that did not run go generate
// ./web), / says how to build it, under the same security headers, and
// the delivery service's routes are untouched.
func TestWebClientMounted(t *testing.T) {
	files := fstest.MapFS{"static/index.html": {Data: []byte("x")}} // no dist/
	mount := withWebClient(map[string]http.Handler{}, files, web.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	mux := http.NewServeMux()
	for p, h := range mount {
		mux.Handle(p, h)
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "go generate ./web") ||
		rec.Header().Get("Content-Security-Policy") != web.CSP {
		t.Fatalf("/ without the module: %d %q %v", rec.Code, rec.Body.String(), rec.Header())
	}
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/other", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("/other: %d (the web client must only answer / and /web/)", rec.Code)
	}

	// With the module: the page and /web/ are served.
	files["dist/"+web.WASMName] = &fstest.MapFile{Data: []byte("\x00asm")}
	files["dist/"+web.ExecName] = &fstest.MapFile{Data: []byte("//")}
	// Every file of web/static, so that a new script cannot break this
	// test again (the bundle refuses to build with one missing).
	static, err := os.ReadDir("../../web/static")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range static {
		if name := e.Name(); name != "index.html" {
			files["static/"+name] = &fstest.MapFile{Data: []byte("//")}
		}
	}
	mount = withWebClient(map[string]http.Handler{}, files, web.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	mux = http.NewServeMux()
	for p, h := range mount {
		mux.Handle(p, h)
	}
	for _, path := range []string{"/", "/web/SHA256SUMS", "/web/" + web.WASMName} {
		rec = httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Security-Policy") != web.CSP {
			t.Fatalf("GET %s: %d %v", path, rec.Code, rec.Header())
		}
	}
}
