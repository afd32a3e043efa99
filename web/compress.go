package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/andybalholm/brotli"
)

// The bundle is served precompressed: the module is 20 MB and about a
// quarter of that gzipped, a fifth with brotli. `go generate ./web`
// writes dist/parley.wasm.gz and .br next to the module (compressing 20
// MB well takes tens of seconds, too long for every parleyd start);
// Load compresses the small files itself.
//
// Subresource Integrity is unaffected: the browser checks the hash of
// the decoded body, which is the file SHA256SUMS lists.

// Content codings the handler serves, best first.
const (
	encBrotli = "br"
	encGzip   = "gzip"
)

var encodings = []struct {
	name, suffix string
	compress     func(io.Writer, []byte) error
	decompress   func(io.Reader) io.Reader
}{
	{encBrotli, ".br", compressBrotli, func(r io.Reader) io.Reader { return brotli.NewReader(r) }},
	{encGzip, ".gz", compressGzip, func(r io.Reader) io.Reader {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return errReader{err}
		}
		return zr
	}},
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// Brotli quality 6 with a 16 MiB window: within a few percent of quality
// 9's size on the module at a quarter of its time (docs/benchmarks.md).
func compressBrotli(w io.Writer, data []byte) error {
	bw := brotli.NewWriterOptions(w, brotli.WriterOptions{Quality: 6, LGWin: 24})
	if _, err := bw.Write(data); err != nil {
		return err
	}
	return bw.Close()
}

func compressGzip(w io.Writer, data []byte) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(data); err != nil {
		return err
	}
	return zw.Close()
}

// ErrStaleCompressed means a precompressed file in dist/ does not decode
// to the file next to it: left from another build.
var ErrStaleCompressed = errors.New("web: a precompressed file in web/dist does not match the module: run `go generate ./web` again")

// decodeBounded decodes a precompressed file, reading no more than the
// file it must equal plus one byte (to see it is longer): a corrupt or
// hostile file cannot make Load allocate without bound.
func decodeBounded(dec func(io.Reader) io.Reader, data []byte, want int) ([]byte, error) {
	return io.ReadAll(io.LimitReader(dec(bytes.NewReader(data)), int64(want)+1))
}

// loadEncoded fills a.encoded: the precompressed files dist/ has for it
// (checked to decode to exactly a.data), or, for files small enough to
// compress at start (everything but the module), compressed here. A
// coding that does not make the file smaller is not kept.
func loadEncoded(files fs.FS, a *asset, dir string) error {
	a.encoded = map[string][]byte{}
	for _, e := range encodings {
		data, err := fs.ReadFile(files, dir+"/"+a.name+e.suffix)
		switch {
		case err == nil:
			dec, err := decodeBounded(e.decompress, data, len(a.data))
			if err != nil || sha256.Sum256(dec) != a.sum {
				return fmt.Errorf("%w (%s%s)", ErrStaleCompressed, a.name, e.suffix)
			}
		case errors.Is(err, fs.ErrNotExist):
			if len(a.data) > 1<<20 && e.name == encBrotli {
				continue // too slow to do at every start: go generate makes it
			}
			var buf bytes.Buffer
			if err := e.compress(&buf, a.data); err != nil {
				return fmt.Errorf("web: compressing %s: %w", a.name, err)
			}
			data = buf.Bytes()
		default:
			return fmt.Errorf("web: %w", err)
		}
		if len(data) < len(a.data) {
			a.encoded[e.name] = data
		}
	}
	return nil
}

// compressDist writes name.gz and name.br next to each file in dir, as
// `go generate ./web` does, the codings in parallel.
func compressDist(dir string, names ...string) error {
	var wg sync.WaitGroup
	errs := make([]error, len(names)*len(encodings))
	for i, name := range names {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("web: %w", err)
		}
		for j, e := range encodings {
			wg.Go(func() {
				var buf bytes.Buffer
				if err := e.compress(&buf, data); err != nil {
					errs[i*len(encodings)+j] = fmt.Errorf("web: compressing %s: %w", name, err)
					return
				}
				errs[i*len(encodings)+j] = os.WriteFile(filepath.Join(dir, name+e.suffix), buf.Bytes(), 0o644)
			})
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// negotiate picks the content coding for an Accept-Encoding header
// (RFC 9110 §12.5.3): the one with the highest q-value among those the
// asset has, brotli before gzip on a tie, "" (identity) if none.
func negotiate(header string, have map[string][]byte) string {
	best, bestQ := "", 0.0
	q := map[string]float64{}
	star := -1.0
	for part := range strings.SplitSeq(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		v := 1.0
		if p, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			f, err := strconv.ParseFloat(p, 64)
			if err != nil || f < 0 || f > 1 {
				continue
			}
			v = f
		}
		if name == "*" {
			star = v
			continue
		}
		q[name] = v
	}
	for _, e := range encodings {
		if _, ok := have[e.name]; !ok {
			continue
		}
		v, ok := q[e.name]
		if !ok {
			v = max(star, 0)
		}
		if v > bestQ {
			best, bestQ = e.name, v
		}
	}
	return best
}

// serveAsset writes a, compressed if the request accepts a coding it
// has. Each representation has its own ETag, and the response varies
// on Accept-Encoding for caches.
func serveAsset(w http.ResponseWriter, r *http.Request, a asset) {
	w.Header().Set("Content-Type", a.contentType)
	w.Header().Set("Cache-Control", "no-cache")
	tag := hex.EncodeToString(a.sum[:16])
	body := a.data
	if len(a.encoded) > 0 {
		w.Header().Add("Vary", "Accept-Encoding")
	}
	if enc := negotiate(r.Header.Get("Accept-Encoding"), a.encoded); enc != "" {
		w.Header().Set("Content-Encoding", enc)
		tag += "-" + enc
		body = a.encoded[enc]
		// http.ServeContent leaves out Content-Length when a coding is
		// set (it cannot know the coded length); here it is known, and
		// the browser shows the download's progress by it. Ranges of a
		// compressed copy are not offered: the whole file is sent.
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		r = r.Clone(r.Context())
		r.Header.Del("Range")
	}
	w.Header().Set("ETag", `"`+tag+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}
