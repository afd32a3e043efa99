package web

import (
	"crypto/sha256"
	"errors"
	"fmt"
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
	b, err := Load(fakeFiles(t))
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

// fakeFiles is a bundle's files with a stand-in module.
func fakeFiles(t testing.TB) fstest.MapFS {
	t.Helper()
	return withStatic(t, fstest.MapFS{
		"dist/" + WASMName: {Data: []byte("\x00asm")},
		"dist/" + ExecName: {Data: []byte("// go")},
	})
}

// withStatic adds every file of web/static to files.
func withStatic(t testing.TB, files fstest.MapFS) fstest.MapFS {
	t.Helper()
	for _, name := range staticFiles(t) {
		data, err := fs.ReadFile(Files(), name)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = &fstest.MapFile{Data: data}
	}
	return files
}

// With an object store, the page may connect there and nowhere else new:
// its origin is added to connect-src alone, the page names it for the
// script, and the published sums cover that page. Anything but a bare
// origin is refused, so that no text can widen the policy or the markup.
func TestObjectStoreInPolicy(t *testing.T) {
	const store = "https://bucket.s3.example:9000"
	b, err := LoadWith(fakeFiles(t), Options{ObjectStore: store})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	b.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	csp := rec.Header().Get("Content-Security-Policy")
	want := "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; " +
		"connect-src 'self' https://bucket.s3.example:9000; img-src 'self' blob:; base-uri 'none'; form-action 'none'; " +
		"frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"
	if csp != want {
		t.Fatalf("CSP %q, want %q", csp, want)
	}
	if !strings.Contains(rec.Body.String(), `<meta name="parley-object-store" content="`+store+`">`) {
		t.Fatal("the page does not name the object store for its script")
	}
	if !strings.Contains(string(b.SHA256SUMS()), fmt.Sprintf("%x  index.html", sha256.Sum256(rec.Body.Bytes()))) {
		t.Fatal("SHA256SUMS does not cover the page served")
	}
	plain, err := Load(fakeFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	rec = httptest.NewRecorder()
	plain.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Header().Get("Content-Security-Policy") != CSP || strings.Contains(rec.Body.String(), "parley-object-store") {
		t.Fatal("without an object store the page names one")
	}
	for _, bad := range []string{
		"bucket.example", "https://", "ftp://bucket.example", "https://bucket.example/", "https://bucket.example/x",
		"https://bucket.example?x=1", "https://u:p@bucket.example", "https://bucket.example; script-src *",
		"https://bucket.example' 'unsafe-eval", `https://bucket.example"><script>`, "javascript:alert(1)", "*",
		"https://*", "https://*.amazonaws.com", "https://bucket.example?", "https://bucket.example#",
		"https://bucket.example;", "https://bucket.example,x", "https://bucket'example", "HTTPS://bucket.example",
	} {
		if _, err := LoadWith(fakeFiles(t), Options{ObjectStore: bad}); !errors.Is(err, ErrNotOrigin) {
			t.Errorf("object store %q: %v, want ErrNotOrigin", bad, err)
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
