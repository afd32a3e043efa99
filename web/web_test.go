package web

import (
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

// A parleyd built without the module (no `go generate ./web`) says so at
// / instead of serving a page that cannot start.
func TestNotBuilt(t *testing.T) {
	files := fstest.MapFS{}
	err := fs.WalkDir(Files(), "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(Files(), path)
		files[path] = &fstest.MapFile{Data: data}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(files); !errors.Is(err, ErrNotBuilt) {
		t.Fatalf("Load without dist/: %v", err)
	}
	rec := httptest.NewRecorder()
	NotBuiltHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "go generate ./web") {
		t.Fatalf("the not-built page: %d %q", rec.Code, rec.Body.String())
	}
	if rec.Header().Get("Content-Security-Policy") != CSP {
		t.Fatal("the not-built page has no CSP")
	}
}

// Only the client's own files are served under /web/: not the page's
// template, not a path outside.
func TestHandlerServesOnlyTheBundle(t *testing.T) {
	files := fstest.MapFS{
		"dist/" + WASMName: {Data: []byte("\x00asm")},
		"dist/" + ExecName: {Data: []byte("// go")},
	}
	for _, name := range staticFiles(t) {
		data, err := fs.ReadFile(Files(), name)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = &fstest.MapFile{Data: data}
	}
	b, err := Load(files)
	if err != nil {
		t.Fatal(err)
	}
	h := b.Handler()
	for path, want := range map[string]int{
		"/": 200, "/web/app.js": 200, "/web/chat.js": 200, "/web/" + WASMName: 200, "/web/SHA256SUMS": 200,
		"/web/index.html": 404, "/web/../web.go": 404, "/web/": 404, "/web/nope": 404,
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != want {
			t.Errorf("GET %s: %d, want %d", path, rec.Code, want)
		}
	}
}

// staticFiles lists every file of web/static (the page, its scripts and
// style sheet), so that the tests' fake bundles keep up with the page.
func staticFiles(t testing.TB) []string {
	t.Helper()
	entries, err := fs.ReadDir(Files(), "static")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() {
			out = append(out, "static/"+e.Name())
		}
	}
	return out
}
