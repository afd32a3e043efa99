// Package web is Parley's web client as parleyd serves it: the page
// (static/: HTML, CSS and a little JavaScript) around a WebAssembly
// module (wasm/: the client library, the same MLS code as the CLI,
// compiled with GOOS=js GOARCH=wasm) whose profile lives in IndexedDB.
//
// The module is built by `go generate ./web` into web/dist (not committed:
// it is 20 MB of build output) and embedded into parleyd from there; a
// parleyd built without it serves a page saying how to build it. Handler
// serves the files under a strict Content-Security-Policy, with
// Subresource Integrity on every script, style and the module, and
// publishes their SHA-256 sums at /web/SHA256SUMS (docs/web.md).
package web

//go:generate go run ./build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
)

//go:embed static dist
var embedded embed.FS

// Files returns the web client's files as built into this binary: static/
// and, after `go generate ./web`, dist/ with the module.
func Files() fs.FS { return embedded }

// File names under dist/ and static/.
const (
	WASMName = "parley.wasm"
	ExecName = "wasm_exec.js" // Go's loader for the module, from the toolchain that built it
)

// ErrNotBuilt means the files have no WebAssembly module.
var ErrNotBuilt = errors.New("web: the web client's WebAssembly module is not built into this parleyd: run `go generate ./web` and rebuild parleyd (docs/web.md)")

// CSP is the pages' Content-Security-Policy: scripts and styles only from
// this origin (and only those the page names with their integrity),
// WebAssembly compilation but no eval, connections only back to this
// server, images from here or decrypted in the page (blob: URLs of group
// pictures), no frames, no forms posting elsewhere, and Trusted Types so
// that no script can write HTML into the page.
const CSP = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; " +
	"connect-src 'self'; img-src 'self' blob:; base-uri 'none'; form-action 'none'; " +
	"frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"

// cspWithObjectStore is CSP letting the page also connect to the
// server's object store at origin (Options.ObjectStore).
func cspWithObjectStore(origin string) string {
	return strings.Replace(CSP, "connect-src 'self';", "connect-src 'self' "+origin+";", 1)
}

// securityHeaders are set on every response of the handler (the
// Content-Security-Policy apart: it is the bundle's).
var securityHeaders = map[string]string{
	"X-Content-Type-Options":       "nosniff",
	"Referrer-Policy":              "no-referrer",
	"X-Frame-Options":              "DENY",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
	"Permissions-Policy":           "camera=(), microphone=(), geolocation=()",
}

// asset is a file served under /web/.
type asset struct {
	name, contentType string
	data              []byte
	sum               [32]byte
	encoded           map[string][]byte // content coding → the compressed file (compress.go)
}

func (a asset) integrity() string { return "sha256-" + base64.StdEncoding.EncodeToString(a.sum[:]) }

// Bundle is the loaded web client: every file, its hash, and the page.
type Bundle struct {
	assets map[string]asset
	index  []byte
	sums   []byte
	csp    string
	// objectStore is Options.ObjectStore: the page may connect there.
	objectStore string
}

// Options are how a server serves its bundle.
type Options struct {
	// ObjectStore is the origin (scheme://host[:port]) of the server's
	// object store, when the server hands out pre-signed URLs for
	// attachments and the web client is to use them: the page's
	// Content-Security-Policy then lets it connect there too, and the
	// page tells the module it may. The store's CORS rules must let the
	// server's web origin PUT and GET (docs/web.md). Empty: every byte
	// goes through the server.
	ObjectStore string
}

// ErrNotOrigin means Options.ObjectStore, or what CheckOrigin was
// given, is not an origin.
var ErrNotOrigin = errors.New("web: want an origin, scheme://host[:port] with http or https and nothing after")

// Load reads the client from files (static/ and dist/, as Files has
// them); ErrNotBuilt if the module is missing.
func Load(files fs.FS) (*Bundle, error) { return LoadWith(files, Options{}) }

// LoadWith is Load for a server that serves the bundle as opts say.
func LoadWith(files fs.FS, opts Options) (*Bundle, error) {
	b := &Bundle{assets: map[string]asset{}, csp: CSP}
	if opts.ObjectStore != "" {
		if err := CheckOrigin(opts.ObjectStore); err != nil {
			return nil, err
		}
		b.csp, b.objectStore = cspWithObjectStore(opts.ObjectStore), opts.ObjectStore
	}
	add := func(path, contentType string) error {
		data, err := fs.ReadFile(files, path)
		if errors.Is(err, fs.ErrNotExist) && strings.HasPrefix(path, "dist/") {
			return ErrNotBuilt
		}
		if err != nil {
			return fmt.Errorf("web: %w", err)
		}
		name := filepath.Base(path)
		a := asset{name: name, contentType: contentType, data: data, sum: sha256.Sum256(data)}
		if err := loadEncoded(files, &a, filepath.Dir(path)); err != nil {
			return err
		}
		b.assets[name] = a
		return nil
	}
	for _, f := range []struct{ path, ct string }{
		{"dist/" + WASMName, "application/wasm"},
		{"dist/" + ExecName, "text/javascript; charset=utf-8"},
		{"static/app.js", "text/javascript; charset=utf-8"},
		{"static/chat.js", "text/javascript; charset=utf-8"},
		{"static/safety.js", "text/javascript; charset=utf-8"},
		{"static/manage.js", "text/javascript; charset=utf-8"},
		{"static/style.css", "text/css; charset=utf-8"},
	} {
		if err := add(f.path, f.ct); err != nil {
			return nil, err
		}
	}
	page, err := fs.ReadFile(files, "static/index.html")
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	tmpl, err := template.New("index").Parse(string(page))
	if err != nil {
		return nil, fmt.Errorf("web: index.html: %w", err)
	}
	a := func(name string) asset { return b.assets[name] }
	var out bytes.Buffer
	err = tmpl.Execute(&out, map[string]string{
		"WASM": "/web/" + WASMName, "WASMIntegrity": a(WASMName).integrity(), "WASMSHA256": b.WASMSHA256(),
		"Exec": "/web/" + ExecName, "ExecIntegrity": a(ExecName).integrity(),
		"App": "/web/app.js", "AppIntegrity": a("app.js").integrity(),
		"Chat": "/web/chat.js", "ChatIntegrity": a("chat.js").integrity(),
		"Safety": "/web/safety.js", "SafetyIntegrity": a("safety.js").integrity(),
		"Manage": "/web/manage.js", "ManageIntegrity": a("manage.js").integrity(),
		"CSS": "/web/style.css", "CSSIntegrity": a("style.css").integrity(),
		"Sums": "/web/SHA256SUMS", "ObjectStore": opts.ObjectStore,
	})
	if err != nil {
		return nil, fmt.Errorf("web: index.html: %w", err)
	}
	b.index = out.Bytes()
	b.assets["index.html"] = asset{name: "index.html", data: b.index, sum: sha256.Sum256(b.index)}
	// sha256sum's format, so that `sha256sum -c` checks a local build.
	var sums bytes.Buffer
	for _, name := range slices.Sorted(maps.Keys(b.assets)) {
		fmt.Fprintf(&sums, "%x  %s\n", b.assets[name].sum, name)
	}
	b.sums = sums.Bytes()
	return b, nil
}

// WASMSHA256 is the hex SHA-256 of the module: the bundle's hash.
func (b *Bundle) WASMSHA256() string {
	s := b.assets[WASMName].sum
	return hex.EncodeToString(s[:])
}

// SHA256SUMS is every served file's SHA-256, as /web/SHA256SUMS serves it.
func (b *Bundle) SHA256SUMS() []byte { return slices.Clone(b.sums) }

// Routes are the handler's patterns for an http.ServeMux (server.Config.Mount).
var Routes = []string{"GET /{$}", "GET /web/"}

// Handler serves the page at / and the files under /web/.
func (b *Bundle) Handler() http.Handler {
	return withHeaders(b.csp, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			// Always revalidated: a new bundle's hashes are in the page.
			w.Header().Set("Cache-Control", "no-cache")
			w.Write(b.index)
		case r.URL.Path == "/web/SHA256SUMS":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache")
			w.Write(b.sums)
		default:
			a, ok := b.assets[strings.TrimPrefix(r.URL.Path, "/web/")]
			if !ok || a.contentType == "" {
				http.NotFound(w, r)
				return
			}
			serveAsset(w, r, a)
		}
	}))
}

// NotBuiltHandler answers / when the module is missing: a page saying how
// to build it, rather than a blank one.
func NotBuiltHandler() http.Handler {
	return withHeaders(CSP, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `<!doctype html><meta charset="utf-8"><title>Parley</title>`+
			`<h1>The web client is not built into this server</h1>`+
			`<p>Run <code>go generate ./web</code> in the Parley source tree, then start <code>go run ./cmd/parleyd serve</code> again. `+
			`The command-line client works without it (see README.md).</p>`)
	}))
}

func withHeaders(csp string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range securityHeaders {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Security-Policy", csp)
		h.ServeHTTP(w, r)
	})
}

// Build compiles the module and copies Go's loader into outDir (the
// toolchain's own wasm_exec.js, which must match the compiler), as `go
// generate ./web` does. The build is reproducible (-trimpath, no VCS
// stamp): the same source and Go version give the same SHA-256, which is
// how a user checks what a server serves (docs/web.md).
func Build(ctx context.Context, outDir string) error {
	pkg, err := packageDir()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("web: %w", err)
	}
	out, err := filepath.Abs(filepath.Join(outDir, WASMName))
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", out, "./wasm")
	cmd.Dir = pkg
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm", "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("web: go build the module: %v\n%s", err, msg)
	}
	goroot, err := exec.CommandContext(ctx, "go", "env", "GOROOT").Output()
	if err != nil {
		return fmt.Errorf("web: go env GOROOT: %w", err)
	}
	loader, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(goroot)), "lib", "wasm", ExecName))
	if err != nil {
		return fmt.Errorf("web: Go's %s: %w", ExecName, err)
	}
	if err := os.WriteFile(filepath.Join(outDir, ExecName), loader, 0o644); err != nil {
		return err
	}
	return compressDist(outDir, WASMName, ExecName)
}

// packageDir is this package's source directory.
func packageDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("web: cannot find the web package's source")
	}
	return filepath.Dir(file), nil
}

// CheckOrigin accepts an origin, scheme://host[:port] with http or
// https and nothing else (ErrNotOrigin otherwise): the text goes
// into the page's policy and its markup.
func CheckOrigin(origin string) error {
	u, err := url.Parse(origin)
	// The text must be exactly scheme://host[:port] (no "?" or "#" left
	// empty), and the host a name or address: a "*" would make a
	// Content-Security-Policy source match every host.
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		u.Scheme+"://"+u.Host != origin || strings.Trim(u.Host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") != "" {
		return fmt.Errorf("%w: %q", ErrNotOrigin, origin)
	}
	return nil
}
