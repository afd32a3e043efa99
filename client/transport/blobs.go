package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/internal/presigned"
	"github.com/parleychat/parley/wire"
)

// ErrNotAuthenticated is returned by blob transfers before Register or
// Authenticate succeeded.
var ErrNotAuthenticated = errors.New("transport: not authenticated")

// HTTPError is a non-success HTTP status from /v1/blobs.
type HTTPError struct {
	StatusCode int
	Message    string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("transport: HTTP %d: %s", e.StatusCode, e.Message)
}

// ErrQuotaExceeded matches the HTTPError of an upload refused because the
// account holds as many attachments as the server allows; the error's
// message says the limit and when space frees up. Retrying soon will not
// help: deleting older blobs (DeleteBlob) will.
var ErrQuotaExceeded = errors.New("transport: attachment quota exceeded")

// Is makes errors.Is(err, ErrQuotaExceeded) true for the server's
// QUOTA_EXCEEDED answer.
func (e *HTTPError) Is(target error) bool {
	return target == ErrQuotaExceeded && e.StatusCode == http.StatusInsufficientStorage &&
		strings.HasPrefix(e.Message, "QUOTA_EXCEEDED")
}

func httpError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return &HTTPError{StatusCode: resp.StatusCode, Message: string(b)}
}

type progressReader struct {
	r        io.Reader
	n        int64
	progress func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if n > 0 && p.progress != nil {
		p.progress(p.n)
	}
	return n, err
}

func (c *Conn) blobURL(id string) string {
	u := *c.base
	u.Path = wire.PathBlobs
	if id != "" {
		u.Path += "/" + url.PathEscape(id)
	}
	return u.String()
}

// UploadBlob streams size bytes of (already encrypted) attachment data
// from r and returns the blob id. progress, if not nil, is called with
// the number of bytes sent so far.
func (c *Conn) UploadBlob(ctx context.Context, r io.Reader, size int64, progress func(sent int64)) (string, error) {
	return c.UploadExpiringBlob(ctx, r, size, time.Time{}, progress)
}

// UploadExpiringBlob is UploadBlob for the attachment of a disappearing
// message: the server deletes the blob by expires (zero: never, as
// UploadBlob).
func (c *Conn) UploadExpiringBlob(ctx context.Context, r io.Reader, size int64, expires time.Time, progress func(sent int64)) (string, error) {
	s := c.Session()
	if s == nil {
		return "", ErrNotAuthenticated
	}
	if directTransfers.Load() && size > 0 && !c.noDirectUploads.Load() {
		id, err := c.uploadDirect(ctx, s.BlobToken, r, size, expires, progress)
		if !errors.Is(err, errNoDirectUploads) {
			return id, err
		}
		c.noDirectUploads.Store(true) // the server takes uploads itself
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.blobURL(""), &progressReader{r: io.LimitReader(r, size), progress: progress})
	if err != nil {
		return "", fmt.Errorf("transport: upload blob: %w", err)
	}
	req.ContentLength = size
	req.Header.Set("Authorization", "Bearer "+s.BlobToken)
	req.Header.Set("Content-Type", "application/octet-stream")
	if !expires.IsZero() {
		req.Header.Set(wire.BlobExpiresHeader, strconv.FormatInt(expires.Unix(), 10))
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("transport: upload blob: %w", err)
	}
	return stored(resp, "", size)
}

// stored reads the server's answer to an upload (or to finishing a
// direct one), which must record size bytes (under id, if given).
func stored(resp *http.Response, id string, size int64) (string, error) {
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("transport: upload blob: %w", httpError(resp))
	}
	var out struct {
		ID   string `json:"id"`
		Size int64  `json:"size"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&out); err != nil {
		return "", fmt.Errorf("transport: upload blob: response: %w", err)
	}
	if out.Size != size || (id != "" && out.ID != id) {
		return "", fmt.Errorf("transport: upload blob: server recorded %q of %d bytes, sent %q of %d", out.ID, out.Size, id, size)
	}
	return out.ID, nil
}

// DownloadBlob streams blob id into w and returns its size. progress, if
// not nil, is called with bytes received and the total.
func (c *Conn) DownloadBlob(ctx context.Context, id string, w io.Writer, progress func(received, total int64)) (int64, error) {
	s := c.Session()
	if s == nil {
		return 0, ErrNotAuthenticated
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.blobURL(id), nil)
	if err != nil {
		return 0, fmt.Errorf("transport: download blob: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+s.BlobToken)
	if directTransfers.Load() {
		req.Header.Set(wire.BlobRedirectHeader, "1")
	}
	resp, err := c.downloadClient().Do(req)
	if err != nil {
		if runtime.GOOS == "js" && directTransfers.Load() {
			return 0, fmt.Errorf("transport: download blob: the server or its object store could not be reached from this page (the object store's CORS rules must allow this server's web origin to PUT and GET, docs/web.md): %w", err)
		}
		return 0, fmt.Errorf("transport: download blob: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("transport: download blob: %w", httpError(resp))
	}
	total := resp.ContentLength
	var pr func(int64)
	if progress != nil {
		pr = func(n int64) { progress(n, total) }
	}
	n, err := io.Copy(w, &progressReader{r: resp.Body, progress: pr})
	if err != nil {
		return n, fmt.Errorf("transport: download blob: %w", err)
	}
	if total >= 0 && n != total {
		return n, fmt.Errorf("transport: download blob: got %d of %d bytes", n, total)
	}
	return n, nil
}

// DeleteBlob deletes a blob this account uploaded, freeing its share of
// the account's quota. A blob of another account, or one that is gone, is
// an *HTTPError with status 404.
func (c *Conn) DeleteBlob(ctx context.Context, id string) error {
	s := c.Session()
	if s == nil {
		return ErrNotAuthenticated
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.blobURL(id), nil)
	if err != nil {
		return fmt.Errorf("transport: delete blob: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+s.BlobToken)
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("transport: delete blob: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("transport: delete blob: %w", httpError(resp))
	}
	return nil
}

// downloadClient is the connection's HTTP client for downloads. A server
// whose attachments are in an object store answers a download with a
// redirect to a pre-signed URL of the object; the redirect is followed
// without the blob token, which is the server's alone (Go's client would
// send it on to another port of the same host, and an object store
// refuses a request that carries two credentials).
func (c *Conn) downloadClient() *http.Client {
	return presigned.Client(c.client, wire.BlobRedirectHeader)
}

// directTransfers: uploads and downloads may go to the server's object
// store directly. In a browser (the web client) only once the page says
// its Content-Security-Policy lets it connect to the object store
// (AllowDirectTransfers): until then it moves every byte through its
// node.
var directTransfers atomic.Bool

func init() { directTransfers.Store(runtime.GOOS != "js") }

// AllowDirectTransfers lets this process's connections move attachments
// to and from the server's object store directly when the server offers
// it. Outside a browser they always may. The web client's module calls
// it when its page's Content-Security-Policy names the object store (the
// server sets that policy, docs/web.md); without it a browser would
// refuse the connection.
func AllowDirectTransfers() { directTransfers.Store(true) }

// directUploadHeader reports whether a direct upload's PUT may carry
// header name as the server says: conditions and the type, never a
// credential or anything that would send the bytes elsewhere.
func directUploadHeader(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "If-None-Match", "Content-Type":
		return true
	}
	return false
}

// errNoDirectUploads: the server takes uploads itself (POST /v1/blobs).
var errNoDirectUploads = errors.New("transport: the server takes no direct uploads")

// uploadDirect uploads to the server's object store directly, when the
// server offers it (docs/protocol.md §10): it asks for a pre-signed URL,
// PUTs the bytes there without its token, and has the server check and
// record what arrived.
func (c *Conn) uploadDirect(ctx context.Context, token string, r io.Reader, size int64, expires time.Time, progress func(int64)) (string, error) {
	u := *c.base
	u.Path = wire.PathBlobUploads
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return "", fmt.Errorf("transport: upload blob: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set(wire.BlobSizeHeader, strconv.FormatInt(size, 10))
	if !expires.IsZero() {
		req.Header.Set(wire.BlobExpiresHeader, strconv.FormatInt(expires.Unix(), 10))
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("transport: upload blob: %w", err)
	}
	var start struct {
		ID      string            `json:"id"`
		URL     string            `json:"url"`
		Headers map[string]string `json:"headers"`
		Ticket  string            `json:"ticket"`
	}
	switch resp.StatusCode {
	case http.StatusCreated:
		err = json.NewDecoder(io.LimitReader(resp.Body, 16<<10)).Decode(&start)
		resp.Body.Close()
		if err != nil {
			return "", fmt.Errorf("transport: upload blob: response: %w", err)
		}
	case http.StatusNotImplemented, http.StatusNotFound, http.StatusMethodNotAllowed:
		resp.Body.Close()
		return "", errNoDirectUploads
	default:
		defer resp.Body.Close()
		return "", fmt.Errorf("transport: upload blob: %w", httpError(resp))
	}
	put, err := http.NewRequestWithContext(ctx, http.MethodPut, start.URL, &progressReader{r: io.LimitReader(r, size), progress: progress})
	if err != nil {
		return "", fmt.Errorf("transport: upload blob: the server's upload URL: %w", err)
	}
	put.ContentLength = size
	for k, v := range start.Headers {
		if !directUploadHeader(k) {
			return "", fmt.Errorf("transport: upload blob: the server asks for header %q on the upload; this client sends only If-None-Match and Content-Type there", k)
		}
		put.Header.Set(k, v)
	}
	// The object store's client, with no token: the URL carries its own
	// signature.
	resp, err = c.downloadClient().Do(put)
	if err != nil {
		if runtime.GOOS == "js" {
			// A browser says no more than "failed to fetch" when the
			// object store's CORS rules leave this page out.
			return "", fmt.Errorf("transport: upload blob: the object store did not take the upload from this page (its CORS rules must allow this server's web origin to PUT and GET, docs/web.md): %w", err)
		}
		return "", fmt.Errorf("transport: upload blob: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return "", fmt.Errorf("transport: upload blob: object store: %w", httpError(resp))
	}
	resp.Body.Close()
	u.Path = wire.PathBlobUploads + "/" + url.PathEscape(start.ID)
	fin, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return "", fmt.Errorf("transport: upload blob: %w", err)
	}
	fin.Header.Set("Authorization", "Bearer "+token)
	fin.Header.Set(wire.UploadTicketHeader, start.Ticket)
	resp, err = c.client.Do(fin)
	if err != nil {
		return "", fmt.Errorf("transport: upload blob: %w", err)
	}
	return stored(resp, start.ID, size)
}
