package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/parleychat/parley/store"
)

// blobAuth returns the device behind the request's bearer token (from
// Session.blob_token), or writes 401.
func (s *Server) blobAuth(w http.ResponseWriter, r *http.Request) (string, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok {
		if dev, ok := s.tokens.device(tok); ok {
			return dev, true
		}
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="parley"`)
	http.Error(w, "missing or invalid bearer token", http.StatusUnauthorized)
	return "", false
}

// ErrUnauthenticated is returned by AuthenticateHTTP for a request without a
// valid bearer token.
var ErrUnauthenticated = errors.New("missing or invalid bearer token: authenticate over /v1/ws and use Session.blob_token")

// AuthenticateHTTP identifies the account behind an HTTP request's bearer
// token (Session.blob_token), for handlers mounted beside the server's own.
// It returns the username and device id.
func (s *Server) AuthenticateHTTP(r *http.Request) (user, device string, err error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return "", "", ErrUnauthenticated
	}
	dev, ok := s.tokens.device(tok)
	if !ok {
		return "", "", ErrUnauthenticated
	}
	d, err := s.cfg.Store.Device(r.Context(), dev)
	if err != nil {
		// A removed device's token is as good as none.
		return "", "", ErrUnauthenticated
	}
	return d.Username, d.ID, nil
}

// BlobUploadResponse is the JSON body answering POST /v1/blobs.
type BlobUploadResponse struct {
	ID   string `json:"id"`
	Size int64  `json:"size"`
}

func (s *Server) uploadBlob(w http.ResponseWriter, r *http.Request) {
	user, _, err := s.AuthenticateHTTP(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="parley"`)
		http.Error(w, "missing or invalid bearer token", http.StatusUnauthorized)
		return
	}
	max := s.cfg.MaxAttachment
	if r.ContentLength > max {
		http.Error(w, "attachment too large", http.StatusRequestEntityTooLarge)
		return
	}
	id, n, err := s.cfg.Blobs.Put(r.Context(), user, r.Body, store.PutLimits{Max: max})
	switch {
	case errors.Is(err, store.ErrTooLarge):
		http.Error(w, "attachment too large", http.StatusRequestEntityTooLarge)
		return
	case storageFailed(err):
		// Disk full or read-only: say so, so the client retries later.
		s.metrics.storageErrors.Inc()
		s.log.Error("blob upload: storage unavailable", "err", err)
		w.Header().Set("Retry-After", fmt.Sprint(retrySeconds(storageRetryAfter)))
		http.Error(w, "STORAGE_UNAVAILABLE: the server cannot store attachments right now", http.StatusInsufficientStorage)
		return
	case err != nil:
		if r.Context().Err() == nil {
			s.log.Error("blob upload", "err", err)
		}
		http.Error(w, "upload failed", http.StatusInternalServerError)
		return
	}
	if r.ContentLength >= 0 && n != r.ContentLength {
		http.Error(w, "body shorter than Content-Length", http.StatusBadRequest)
		return
	}
	s.metrics.blobBytes.WithLabelValues("up").Add(float64(n))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(BlobUploadResponse{ID: id, Size: n})
}

func (s *Server) downloadBlob(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.blobAuth(w, r); !ok {
		return
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
