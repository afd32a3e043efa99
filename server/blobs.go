package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/parleychat/parley/internal/bytesize"
	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/wire"
)

// blobAuth returns the device behind the request's bearer token (from
// Session.blob_token), or writes 401.
func (s *Server) blobAuth(w http.ResponseWriter, r *http.Request) (string, bool) {
	_, dev, err := s.AuthenticateHTTP(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="parley"`)
		http.Error(w, "missing or invalid bearer token", http.StatusUnauthorized)
		return "", false
	}
	return dev, true
}

// ErrUnauthenticated is returned by AuthenticateHTTP for a request without a
// valid bearer token.
var ErrUnauthenticated = errors.New("missing or invalid bearer token: authenticate over /v1/ws and use Session.blob_token")

// AuthenticateHTTP identifies the account behind an HTTP request's bearer
// token (Session.blob_token), for handlers mounted beside the server's own.
// It returns the username and device id. Any node sharing the token key
// accepts the token; every use looks the device up, so a device removed
// (or an account suspended or banned) through any node is refused here at
// once, not when its token expires.
func (s *Server) AuthenticateHTTP(r *http.Request) (user, device string, err error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return "", "", ErrUnauthenticated
	}
	dev, err := s.tokens.device(tok)
	if err != nil {
		return "", "", ErrUnauthenticated
	}
	d, err := s.cfg.Store.Device(r.Context(), dev)
	if err != nil {
		// A removed device's token is as good as none. (A store that
		// fails refuses too: the client retries after signing in again.)
		return "", "", ErrUnauthenticated
	}
	if s.cfg.Sanction != nil {
		barred, _, err := s.cfg.Sanction(r.Context(), d.Username)
		if err != nil || barred {
			// No token is issued to a barred account (handlers.go,
			// blobToken); one issued before the decision ends with it.
			return "", "", ErrUnauthenticated
		}
	}
	return d.Username, d.ID, nil
}

// BlobUploadResponse is the JSON body answering POST /v1/blobs.
type BlobUploadResponse struct {
	ID   string `json:"id"`
	Size int64  `json:"size"`
}

// blobUser returns the account behind the request's bearer token, or
// writes 401.
func (s *Server) blobUser(w http.ResponseWriter, r *http.Request) (string, bool) {
	user, _, err := s.AuthenticateHTTP(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="parley"`)
		http.Error(w, "missing or invalid bearer token", http.StatusUnauthorized)
		return "", false
	}
	return user, true
}

// uploadBlob stores an attachment for the caller's account. Before any of
// the body is read it checks, cheapest first, that the account has a free
// upload slot (MaxUploadsPerAccount), is within its upload rate and that
// the declared length fits its quota; Put checks the quota exactly.
func (s *Server) uploadBlob(w http.ResponseWriter, r *http.Request) {
	user, ok := s.blobUser(w, r)
	if !ok {
		return
	}
	if !s.uploads.acquire(user, math.MaxInt, s.cfg.MaxUploadsPerAccount) {
		s.metrics.rateLimited.WithLabelValues("uploads_in_progress").Inc()
		w.Header().Set("Retry-After", "1")
		http.Error(w, fmt.Sprintf("TOO_MANY_UPLOADS: at most %d uploads at once per account; wait for one to finish", s.cfg.MaxUploadsPerAccount), http.StatusTooManyRequests)
		return
	}
	defer s.uploads.release(user)
	// The same cap across the nodes.
	ok, counted := s.slots.Acquire(r.Context(), "uploads:"+user, s.cfg.MaxUploadsPerAccount)
	if !ok {
		s.metrics.rateLimited.WithLabelValues("uploads_in_progress").Inc()
		w.Header().Set("Retry-After", "1")
		http.Error(w, fmt.Sprintf("TOO_MANY_UPLOADS: at most %d uploads at once per account (on all of the server's nodes); wait for one to finish", s.cfg.MaxUploadsPerAccount), http.StatusTooManyRequests)
		return
	}
	if counted {
		defer s.slots.Release("uploads:" + user)
	}
	if !s.allowUpload(w, user) {
		return
	}
	if r.ContentLength > s.cfg.MaxAttachment {
		s.tooLarge(w)
		return
	}
	if r.ContentLength > 0 && !s.withinQuota(w, r, user, s.cfg.BlobQuota, r.ContentLength, "blob upload") {
		return
	}
	lim, ok := s.blobLimits(w, r)
	if !ok {
		return
	}
	id, n, err := s.cfg.Blobs.Put(r.Context(), user, r.Body, lim)
	switch {
	case errors.Is(err, store.ErrTooLarge):
		s.tooLarge(w)
		return
	case errors.Is(err, store.ErrQuotaExceeded):
		u, _ := s.cfg.Blobs.Usage(r.Context(), user)
		s.quotaExceeded(w, u)
		return
	case errors.Is(err, ErrSlowBody):
		return // limitBodies answers 408
	case err != nil:
		s.blobStorageError(w, r, "blob upload", err)
		return
	}
	if r.ContentLength >= 0 && n != r.ContentLength {
		// Put stored it; the client will not learn the id, so take it back.
		s.cfg.Blobs.Delete(context.WithoutCancel(r.Context()), user, id)
		http.Error(w, "body shorter than Content-Length", http.StatusBadRequest)
		return
	}
	s.uploaded(w, "up", id, n, lim.Expires)
}

// tooLarge answers 413 for a file over the server's attachment limit.
func (s *Server) tooLarge(w http.ResponseWriter) {
	http.Error(w, fmt.Sprintf("files are limited to %s on this server", bytesize.Format(s.cfg.MaxAttachment)), http.StatusRequestEntityTooLarge)
}

// withinQuota checks, before any byte is taken, that size more bytes
// keep user within quota (0: none); if not it answers (413 with the
// usage, or the storage error) and reports false. The store checks
// again, exactly, when the upload is recorded.
func (s *Server) withinQuota(w http.ResponseWriter, r *http.Request, user string, quota, size int64, what string) bool {
	if quota <= 0 {
		return true
	}
	u, err := s.cfg.Blobs.Usage(r.Context(), user)
	if err != nil {
		s.blobStorageError(w, r, what+": usage", err)
		return false
	}
	if u.Bytes+size > quota {
		s.quotaExceeded(w, u)
		return false
	}
	return true
}

// uploaded counts a stored upload and answers 201 with its id and size.
func (s *Server) uploaded(w http.ResponseWriter, how, id string, size int64, expires time.Time) {
	s.metrics.blobBytes.WithLabelValues(how).Add(float64(size))
	s.expiryAdded(expires)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(BlobUploadResponse{ID: id, Size: size})
}

// DirectUploadResponse starts a direct upload: PUT exactly the declared
// size to URL (no credentials, Headers as they are), then POST
// PathBlobUploads/ID with Ticket.
type DirectUploadResponse struct {
	ID      string            `json:"id"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	Ticket  string            `json:"ticket"`
}

// uploadTicketTTL is how long a direct upload may take to be finished.
const uploadTicketTTL = 24 * time.Hour

// startUpload hands out a direct upload: the bytes go from the client to
// the object store, not through this node. The checks are uploadBlob's
// that need no bytes (the account's upload rate, the size, the quota);
// finishUpload checks what arrived.
func (s *Server) startUpload(w http.ResponseWriter, r *http.Request) {
	user, du, ok := s.directUploadCaller(w, r)
	if !ok {
		return
	}
	size, err := strconv.ParseInt(r.Header.Get(wire.BlobSizeHeader), 10, 64)
	if err != nil || size <= 0 {
		http.Error(w, wire.BlobSizeHeader+" must be the file's size in bytes (at least 1)", http.StatusBadRequest)
		return
	}
	if size > s.cfg.MaxAttachment {
		s.tooLarge(w)
		return
	}
	lim, ok := s.blobLimits(w, r)
	if !ok {
		return
	}
	if !s.allowUpload(w, user) {
		return
	}
	if !s.withinQuota(w, r, user, lim.Quota, size, "direct upload") {
		return
	}
	up, ok, err := du.UploadURL(r.Context(), size)
	if err != nil {
		s.blobStorageError(w, r, "direct upload", err)
		return
	}
	if !ok {
		noDirectUploads(w)
		return
	}
	var expires int64
	if !lim.Expires.IsZero() {
		expires = lim.Expires.Unix()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(DirectUploadResponse{ID: up.ID, URL: up.URL, Headers: up.Header,
		Ticket: s.tokens.uploadTicket(user, up.ID, size, expires, uploadTicketTTL)})
}

// finishUpload indexes a direct upload as its ticket says: the object
// must hold the declared size, and the quota is checked again, exactly.
func (s *Server) finishUpload(w http.ResponseWriter, r *http.Request) {
	user, du, ok := s.directUploadCaller(w, r)
	if !ok {
		return
	}
	owner, id, size, expires, err := s.tokens.checkUploadTicket(r.Header.Get(wire.UploadTicketHeader))
	if err != nil || owner != user || id != r.PathValue("id") {
		http.Error(w, "invalid or expired upload ticket (or another account's): start the upload again", http.StatusForbidden)
		return
	}
	lim := store.PutLimits{Max: s.cfg.MaxAttachment, Quota: max(s.cfg.BlobQuota, 0)}
	if expires > 0 {
		lim.Expires = time.Unix(expires, 0)
	}
	err = du.FinishUpload(r.Context(), user, id, size, lim)
	switch {
	case errors.Is(err, store.ErrNotFound):
		http.Error(w, "nothing was uploaded for this ticket: PUT the file to its URL first", http.StatusNotFound)
		return
	case errors.Is(err, store.ErrBadRequest):
		http.Error(w, "the upload is not the size it was started with; start it again", http.StatusBadRequest)
		return
	case errors.Is(err, store.ErrTooLarge):
		s.tooLarge(w)
		return
	case errors.Is(err, store.ErrQuotaExceeded):
		u, _ := s.cfg.Blobs.Usage(r.Context(), user)
		s.quotaExceeded(w, u)
		return
	case err != nil:
		s.blobStorageError(w, r, "direct upload: finish", err)
		return
	}
	s.uploaded(w, "up_direct", id, size, lim.Expires)
}

// allowUpload counts one upload (through this node or direct) against
// the account's upload rate, shared across nodes; over it, it answers 429
// with Retry-After.
func (s *Server) allowUpload(w http.ResponseWriter, user string) bool {
	l := s.cfg.Limits.UploadPerAccount
	ok, after := s.shared.AllowN("upload/"+user, 1, l)
	if !ok {
		s.metrics.rateLimited.WithLabelValues("uploads_per_account").Inc()
		w.Header().Set("Retry-After", fmt.Sprint(retrySeconds(after)))
		http.Error(w, fmt.Sprintf("RATE_LIMITED: too many uploads (at most %d per %v per account); retry in %ds", l.N, l.Per, retrySeconds(after)), http.StatusTooManyRequests)
	}
	return ok
}

// directUploadCaller authenticates a direct upload's request and returns
// the store's direct uploads; it answers 401, or 501 if the store takes
// none (the client then uploads through POST /v1/blobs).
func (s *Server) directUploadCaller(w http.ResponseWriter, r *http.Request) (string, store.BlobDirectUploads, bool) {
	user, ok := s.blobUser(w, r)
	if !ok {
		return "", nil, false
	}
	du, ok := s.cfg.Blobs.(store.BlobDirectUploads)
	if !ok {
		noDirectUploads(w)
	}
	return user, du, ok
}

func noDirectUploads(w http.ResponseWriter) {
	http.Error(w, "NOT_IMPLEMENTED: this server takes uploads itself: POST "+wire.PathBlobs, http.StatusNotImplemented)
}

// blobLimits reads an upload's limits: the server's, and the expiry of a
// disappearing message's attachment (BlobExpiresHeader). It writes 400
// for a bad header.
func (s *Server) blobLimits(w http.ResponseWriter, r *http.Request) (store.PutLimits, bool) {
	lim := store.PutLimits{Max: s.cfg.MaxAttachment, Quota: max(s.cfg.BlobQuota, 0)}
	if h := r.Header.Get(wire.BlobExpiresHeader); h != "" {
		// The attachment of a disappearing message: deleted with it.
		sec, err := strconv.ParseInt(h, 10, 64)
		if err != nil || sec <= 0 {
			http.Error(w, wire.BlobExpiresHeader+" is a time in seconds since the UNIX epoch", http.StatusBadRequest)
			return lim, false
		}
		lim.Expires = time.Unix(sec, 0)
	}
	return lim, true
}

// blobStorageError answers a failed blob operation: 507 with Retry-After
// if the disk is full or failing (so the client retries later), else 500.
func (s *Server) blobStorageError(w http.ResponseWriter, r *http.Request, what string, err error) {
	if storageFailed(err) {
		s.metrics.storageErrors.Inc()
		s.log.Error(what+": storage unavailable", "err", err)
		w.Header().Set("Retry-After", fmt.Sprint(retrySeconds(storageRetryAfter)))
		http.Error(w, "STORAGE_UNAVAILABLE: the server cannot store attachments right now", http.StatusInsufficientStorage)
		return
	}
	if r.Context().Err() == nil {
		s.log.Error(what, "err", err)
	}
	http.Error(w, "upload failed", http.StatusInternalServerError)
}

// quotaExceeded answers an upload over the account's quota: 507, as
// WebDAV does for quotas (RFC 4331), without Retry-After (waiting a few
// seconds will not help) and saying what will.
func (s *Server) quotaExceeded(w http.ResponseWriter, u store.BlobUsage) {
	s.metrics.rateLimited.WithLabelValues("blob_quota").Inc()
	http.Error(w, fmt.Sprintf("QUOTA_EXCEEDED: your account may hold at most %s of attachments and holds %s in %d files; "+
		"delete old files or wait for them to expire after %s",
		bytesize.Format(s.cfg.BlobQuota), bytesize.Format(u.Bytes), u.Blobs, formatDays(s.cfg.Retention)), http.StatusInsufficientStorage)
}

// deleteBlob deletes one of the caller's account's blobs. A blob of
// another account is answered exactly like one that does not exist (404),
// so that ids cannot be probed.
func (s *Server) deleteBlob(w http.ResponseWriter, r *http.Request) {
	user, ok := s.blobUser(w, r)
	if !ok {
		return
	}
	err := s.cfg.Blobs.Delete(r.Context(), user, r.PathValue("id"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		http.Error(w, "no such blob", http.StatusNotFound)
	case err != nil:
		s.blobStorageError(w, r, "blob delete", err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// deleteAccountBlobs deletes every blob the account uploaded, as part of
// deleting the account. If it fails the account is kept, so the user can
// retry and nothing of theirs stays behind.
func (s *Server) deleteAccountBlobs(ctx context.Context, user string) error {
	n, err := s.cfg.Blobs.DeleteOwner(ctx, user)
	if err != nil {
		s.log.Error("account deletion: deleting the account's attachments failed", "err", err)
		return fmt.Errorf("%w: delete attachments: %v", store.ErrUnavailable, err)
	}
	s.log.Debug("account deletion: attachments deleted", "blobs", n)
	return nil
}

func formatDays(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		if days := d / (24 * time.Hour); days == 1 {
			return "1 day"
		} else {
			return fmt.Sprintf("%d days", days)
		}
	}
	return d.String()
}

func (s *Server) downloadBlob(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.blobAuth(w, r); !ok {
		return
	}
	if bu, ok := s.cfg.Blobs.(store.BlobURLs); ok && r.Header.Get(wire.BlobRedirectHeader) == "1" {
		// The bytes come from the bucket, not through this node.
		u, ok, err := bu.DownloadURL(r.Context(), r.PathValue("id"))
		if errors.Is(err, store.ErrNotFound) {
			http.Error(w, "no such blob", http.StatusNotFound)
			return
		}
		if err != nil {
			s.log.Error("blob download: pre-signing a URL", "err", err)
			http.Error(w, "download failed", http.StatusInternalServerError)
			return
		}
		if ok {
			s.metrics.blobRedirects.Inc()
			w.Header().Set("Cache-Control", "no-store") // the URL expires
			http.Redirect(w, r, u, http.StatusTemporaryRedirect)
			return
		}
	}
	rc, size, err := s.cfg.Blobs.Open(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, "no such blob", http.StatusNotFound)
		return
	}
	if err != nil {
		s.log.Error("blob download", "err", err)
		http.Error(w, "download failed", http.StatusInternalServerError)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	s.metrics.blobBytes.WithLabelValues("down").Add(float64(size))
	if rs, ok := rc.(io.ReadSeeker); ok {
		// Supports Range requests, so interrupted downloads can resume.
		http.ServeContent(w, r, "", time.Time{}, rs)
		return
	}
	w.Header().Set("Content-Length", itoa(size))
	io.Copy(w, rc)
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// storageFailed reports whether err comes from the disk rather than the
// request: full (or over a quota or file size limit), read-only or failing.
func storageFailed(err error) bool {
	return errors.Is(err, store.ErrUnavailable) || errors.Is(err, syscall.ENOSPC) ||
		errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EIO) ||
		errors.Is(err, syscall.EFBIG)
}
