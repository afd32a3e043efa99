package main

import (
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
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
	withWebStatic(t, files)
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

// withWebStatic adds to files every file of the web client's static/
// (as built into parleyd) that files does not have yet.
func withWebStatic(t *testing.T, files fstest.MapFS) fstest.MapFS {
	t.Helper()
	err := fs.WalkDir(web.Files(), "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || files[path] != nil {
			return err
		}
		data, err := fs.ReadFile(web.Files(), path)
		files[path] = &fstest.MapFile{Data: data}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
