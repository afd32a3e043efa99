package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/andybalholm/brotli"
)

func TestNegotiate(t *testing.T) {
	both := map[string][]byte{"br": nil, "gzip": nil}
	gz := map[string][]byte{"gzip": nil}
	for _, c := range []struct {
		header string
		have   map[string][]byte
		want   string
	}{
		{"gzip, deflate, br, zstd", both, "br"},
		{"gzip, deflate", both, "gzip"},
		{"br", gz, ""},
		{"", both, ""},
		{"identity", both, ""},
		{"br;q=0, gzip", both, "gzip"},
		{"br;q=0.5, gzip;q=0.8", both, "gzip"},
		{"GZIP;q=1.0", both, "gzip"},
		{"*", both, "br"},
		{"*;q=0", both, ""},
		{"*, br;q=0", both, "gzip"},
		{"gzip;q=0", gz, ""},
		{"gzip;q=2, br;q=-1", both, ""},
		{"gzip;q=abc", both, ""},
		{"gzip", nil, ""},
	} {
		if got := negotiate(c.header, c.have); got != c.want {
			t.Errorf("negotiate(%q, %d codings) = %q, want %q", c.header, len(c.have), got, c.want)
		}
	}
}

// Whatever the header, the coding chosen is one the file has and one
// the header does not refuse with q=0.
func FuzzNegotiate(f *testing.F) {
	f.Add("gzip, deflate, br", true)
	f.Add("br;q=0, *", false)
	f.Add("*;q=0.001,gzip;q=0", true)
	f.Fuzz(func(t *testing.T, header string, withBrotli bool) {
		have := map[string][]byte{"gzip": nil}
		if withBrotli {
			have["br"] = nil
		}
		got := negotiate(header, have)
		if got == "" {
			return
		}
		if _, ok := have[got]; !ok {
			t.Fatalf("negotiate(%q) = %q, which the file does not have", header, got)
		}
		for part := range strings.SplitSeq(header, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if strings.EqualFold(strings.TrimSpace(name), got) && strings.TrimSpace(params) == "q=0" {
				t.Fatalf("negotiate(%q) = %q, which it refuses", header, got)
			}
		}
	})
}

// fakeBundle is the page's real static files and a made-up module of
// compressible bytes, with dist/'s precompressed files as Build writes
// them.
func fakeBundle(t *testing.T) fstest.MapFS {
	t.Helper()
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	var wasm bytes.Buffer
	for wasm.Len() < 2<<20 {
		fmt.Fprintf(&wasm, "func%d(local.get %d) ", r.IntN(5000), r.IntN(64))
	}
	os.WriteFile(filepath.Join(dir, WASMName), wasm.Bytes(), 0o644)
	os.WriteFile(filepath.Join(dir, ExecName), bytes.Repeat([]byte("// Go's loader\n"), 500), 0o644)
	if err := compressDist(dir, WASMName, ExecName); err != nil {
		t.Fatal(err)
	}
	files := fstest.MapFS{}
	for _, name := range []string{WASMName, ExecName} {
		for _, suffix := range []string{"", ".gz", ".br"} {
			data, err := os.ReadFile(filepath.Join(dir, name+suffix))
			if err != nil {
				t.Fatal(err)
			}
			files["dist/"+name+suffix] = &fstest.MapFile{Data: data}
		}
	}
	return withStatic(t, files)
}

// get fetches path from h with an Accept-Encoding and decodes the body
// as its Content-Encoding says, returning the response and both bodies.
func getEncoded(t *testing.T, h http.Handler, path, accept string, extra ...string) (*http.Response, []byte, []byte) {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	if accept != "" {
		req.Header.Set("Accept-Encoding", accept)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	raw := rec.Body.Bytes()
	return resp, raw, decodeBody(t, resp.Header.Get("Content-Encoding"), raw)
}

func decodeBody(t *testing.T, enc string, raw []byte) []byte {
	t.Helper()
	var r io.Reader
	switch enc {
	case "":
		return raw
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case "br":
		r = brotli.NewReader(bytes.NewReader(raw))
	default:
		t.Fatalf("unexpected Content-Encoding %q", enc)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoding %s: %v", enc, err)
	}
	return out
}

// checkSum: body's SHA-256 is the line SHA256SUMS has for name.
func checkSum(t *testing.T, sums []byte, name string, body []byte) {
	t.Helper()
	line := fmt.Sprintf("%x  %s\n", sha256.Sum256(body), name)
	if !bytes.Contains(sums, []byte(line)) {
		t.Errorf("the decoded %s (%d bytes) is not the file SHA256SUMS lists:\n%s", name, len(body), sums)
	}
}

// Every file goes out in the best coding the browser accepts, with
// Content-Encoding, Vary and an ETag of its own, and decodes to exactly
// the file SHA256SUMS lists (so Subresource Integrity still holds); a
// browser that accepts none gets the file as it is.
func TestServesPrecompressed(t *testing.T) {
	b, err := Load(fakeBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	h := b.Handler()
	_, sums, _ := getEncoded(t, h, "/web/SHA256SUMS", "")
	for _, name := range []string{WASMName, ExecName, "app.js", "chat.js", "safety.js", "manage.js", "style.css"} {
		etags := map[string]bool{}
		for accept, want := range map[string]string{
			"gzip, deflate, br, zstd": "br",
			"gzip, deflate":           "gzip",
			"br;q=0, gzip;q=0.5":      "gzip",
			"":                        "",
			"identity":                "",
		} {
			resp, raw, body := getEncoded(t, h, "/web/"+name, accept)
			if resp.StatusCode != 200 {
				t.Fatalf("GET %s: %s", name, resp.Status)
			}
			if got := resp.Header.Get("Content-Encoding"); got != want {
				t.Errorf("GET %s, Accept-Encoding %q: Content-Encoding %q, want %q", name, accept, got, want)
			}
			if resp.Header.Get("Vary") != "Accept-Encoding" {
				t.Errorf("GET %s: Vary %q", name, resp.Header.Get("Vary"))
			}
			if want != "" && len(raw) >= len(body) {
				t.Errorf("GET %s as %s: %d bytes for %d decoded", name, want, len(raw), len(body))
			}
			if cl := resp.Header.Get("Content-Length"); cl != fmt.Sprint(len(raw)) {
				t.Errorf("GET %s as %q: Content-Length %s for %d bytes", name, want, cl, len(raw))
			}
			checkSum(t, sums, name, body)
			etags[resp.Header.Get("ETag")] = true
			for k, v := range securityHeaders {
				if resp.Header.Get(k) != v {
					t.Errorf("GET %s as %q: no %s", name, want, k)
				}
			}
			if resp.Header.Get("Content-Security-Policy") != CSP {
				t.Errorf("GET %s as %q: no Content-Security-Policy", name, want)
			}
		}
		if len(etags) != 3 {
			t.Errorf("%s: ETags %v: each coding needs its own", name, etags)
		}
	}
	// A cached gzip copy revalidates as itself, not as the brotli one.
	resp, _, _ := getEncoded(t, h, "/web/"+WASMName, "gzip")
	tag := resp.Header.Get("ETag")
	if resp, _, _ := getEncoded(t, h, "/web/"+WASMName, "gzip", "If-None-Match", tag); resp.StatusCode != http.StatusNotModified {
		t.Errorf("revalidating the gzip copy: %s", resp.Status)
	}
	if resp, _, _ := getEncoded(t, h, "/web/"+WASMName, "br", "If-None-Match", tag); resp.StatusCode != http.StatusOK {
		t.Errorf("the gzip copy's ETag matched the brotli one: %s", resp.Status)
	}
}

// A precompressed file from another build (or a corrupt one) is refused
// at Load: serving it would hand browsers code their integrity check
// rejects, or a server's stale code.
func TestStalePrecompressedRefused(t *testing.T) {
	for name, change := range map[string]func(files fstest.MapFS){
		"other module": func(files fstest.MapFS) {
			var buf bytes.Buffer
			compressGzip(&buf, []byte("\x00asm another build"))
			files["dist/"+WASMName+".gz"] = &fstest.MapFile{Data: buf.Bytes()}
		},
		"longer": func(files fstest.MapFS) {
			var buf bytes.Buffer
			compressBrotli(&buf, append(bytes.Clone(files["dist/"+WASMName].Data), 'x'))
			files["dist/"+WASMName+".br"] = &fstest.MapFile{Data: buf.Bytes()}
		},
		"not gzip": func(files fstest.MapFS) {
			files["dist/"+ExecName+".gz"] = &fstest.MapFile{Data: []byte("plain text")}
		},
		"truncated": func(files fstest.MapFS) {
			gz := files["dist/"+WASMName+".gz"].Data
			files["dist/"+WASMName+".gz"] = &fstest.MapFile{Data: gz[:len(gz)/2]}
		},
	} {
		files := fakeBundle(t)
		change(files)
		if _, err := Load(files); !errors.Is(err, ErrStaleCompressed) {
			t.Errorf("%s: Load = %v, want ErrStaleCompressed", name, err)
		}
	}
}

// Without precompressed files (a dist/ from before they existed), Load
// gzips the module itself; brotli, too slow for every start, is left out.
func TestLoadCompressesWhatIsMissing(t *testing.T) {
	files := fakeBundle(t)
	delete(files, "dist/"+WASMName+".gz")
	delete(files, "dist/"+WASMName+".br")
	b, err := Load(files)
	if err != nil {
		t.Fatal(err)
	}
	resp, _, body := getEncoded(t, b.Handler(), "/web/"+WASMName, "br, gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
	checkSum(t, b.SHA256SUMS(), WASMName, body)
}

// The real bundle, as `go generate ./web` builds it, over HTTP from a
// running server: the module and the loader go out brotli- or
// gzip-compressed at a fraction of their size, and decode to the files
// /web/SHA256SUMS publishes.
func TestBuiltBundleServedCompressed(t *testing.T) {
	b := bundle(t)
	url := startServer(t, b)
	// No transparent gzip: the test sees the bytes on the wire.
	hc := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	get := func(path, accept string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", url+path, nil)
		if accept != "" {
			req.Header.Set("Accept-Encoding", accept)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s %v", path, resp.Status, err)
		}
		return resp, raw
	}
	_, sums := get("/web/SHA256SUMS", "")
	for _, name := range []string{WASMName, ExecName} {
		_, plain := get("/web/"+name, "")
		for _, enc := range []string{"br", "gzip"} {
			resp, raw := get("/web/"+name, enc)
			if resp.Header.Get("Content-Encoding") != enc || resp.Header.Get("Vary") != "Accept-Encoding" {
				t.Fatalf("GET %s as %s: Content-Encoding %q, Vary %q", name, enc, resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"))
			}
			if resp.ContentLength != int64(len(raw)) {
				t.Errorf("GET %s as %s: Content-Length %d for %d bytes", name, enc, resp.ContentLength, len(raw))
			}
			body := decodeBody(t, enc, raw)
			checkSum(t, sums, name, body)
			if !bytes.Equal(body, plain) {
				t.Errorf("%s as %s decodes to other bytes than the plain file", name, enc)
			}
			if name == WASMName && len(raw)*3 > len(plain) {
				t.Errorf("the module as %s is %d bytes of %d: not compressed", enc, len(raw), len(plain))
			}
		}
	}
}
